//! The container's user and groups, resolved from the image's `/etc/passwd` and `/etc/group`.
//!
//! The files are opened with `openat2(RESOLVE_IN_ROOT)` beneath the rootfs: symlinks (absolute
//! or `..`) resolve as if the rootfs were `/`, so an image cannot make us read a host file.

#![allow(unsafe_code)] // one `OwnedFd::from_raw_fd`, below

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use corral_cri_api::v1::{LinuxContainerSecurityContext, SupplementalGroupsPolicy};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use super::SpecError;

/// The largest `/etc/passwd` or `/etc/group` we read.
const MAX_DB_BYTES: u64 = 8 << 20;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the groups listing the user, then `supplemental_groups`.
    pub additional_gids: Vec<u32>,
    /// The user's home directory from `/etc/passwd` (for `HOME`), `None` if not listed.
    pub home: Option<String>,
}

#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// A user or group as written: a number or a name (the image `User` parser's).
type Id<'a> = corral_images::user::Id<'a>;

/// A CRI id: 0 to 4294967294 (`u32::MAX` is `(uid_t)-1`, "no id").
fn id_from_i64(field: &str, v: i64) -> Result<u32, SpecError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v <= corral_images::user::MAX_ID)
        .ok_or_else(|| SpecError::invalid(format!("{field}: {v} is not a valid id")))
}

/// Resolves the user: the security context's `run_as_user`/`run_as_username`/`run_as_group`
/// override the image's `User` (`uid`, `uid:gid`, `name`, `name:group`, ...).
pub(super) fn resolve(
    rootfs: &Path,
    image_user: &str,
    sc: Option<&LinuxContainerSecurityContext>,
) -> Result<ResolvedUser, SpecError> {
    let username = sc.map_or("", |s| s.run_as_username.as_str());
    let run_as_user = sc.and_then(|s| s.run_as_user.as_ref()).map(|v| v.value);
    let run_as_group = sc.and_then(|s| s.run_as_group.as_ref()).map(|v| v.value);
    super::check_no_nul("security_context.run_as_username", username)?;
    super::check_no_nul("image config User", image_user)?;

    // (user, group, the field to blame for an unknown name)
    let (user, group, user_field, group_field): (Id, Option<Id>, &str, &str) =
        match (username, run_as_user) {
            ("", None) => {
                if run_as_group.is_some() {
                    return Err(SpecError::invalid(
                        "security_context.run_as_group: set without run_as_user or run_as_username",
                    ));
                }
                let parsed = corral_images::user::parse_user(image_user)
                    .map_err(|e| SpecError::invalid(e.to_string()))?;
                let u = parsed.user.unwrap_or(Id::Num(0));
                let g = parsed.group;
                (u, g, "image config User", "image config User")
            }
            (name, None) => {
                // The kubelet passes ImageStatus's user name on here: the same rule applies.
                let id = corral_images::user::parse_id(name).map_err(|reason| {
                    SpecError::invalid(format!(
                        "security_context.run_as_username: {name:?} {reason}: not a valid user id"
                    ))
                })?;
                (id, None, "security_context.run_as_username", "")
            }
            ("", Some(uid)) => (
                Id::Num(id_from_i64("security_context.run_as_user", uid)?),
                None,
                "security_context.run_as_user",
                "",
            ),
            (_, Some(_)) => {
                return Err(SpecError::invalid(
                    "security_context: run_as_user and run_as_username are both set",
                ));
            }
        };
    let group = match run_as_group {
        Some(g) => Some(Id::Num(id_from_i64("security_context.run_as_group", g)?)),
        None => group,
    };

    let passwd = read_confined(rootfs, "etc/passwd")?
        .map(|s| parse_passwd(&s))
        .unwrap_or_default();
    let entry = match user {
        Id::Name(name) => Some(passwd.iter().find(|e| e.name == name).ok_or_else(|| {
            SpecError::invalid(format!(
                "{user_field}: user {name:?} not found in the image's /etc/passwd"
            ))
        })?),
        Id::Num(uid) => passwd.iter().find(|e| e.uid == uid),
    };
    let uid = match user {
        Id::Num(uid) => uid,
        Id::Name(_) => entry.map_or(0, |e| e.uid),
    };

    let policy = sc.map_or(0, |s| s.supplemental_groups_policy);
    let strict = policy == SupplementalGroupsPolicy::Strict as i32;
    let need_groups = matches!(group, Some(Id::Name(_))) || (!strict && entry.is_some());
    let groups = if need_groups {
        read_confined(rootfs, "etc/group")?
            .map(|s| parse_group(&s))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let gid = match group {
        Some(Id::Num(gid)) => gid,
        Some(Id::Name(name)) => {
            groups
                .iter()
                .find(|g| g.name == name)
                .ok_or_else(|| {
                    SpecError::invalid(format!(
                        "{group_field}: group {name:?} not found in the image's /etc/group"
                    ))
                })?
                .gid
        }
        None => entry.map_or(0, |e| e.gid),
    };

    let mut additional_gids = vec![gid];
    let mut push = |g: u32| {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    };
    if let (Some(entry), false) = (entry, strict) {
        for g in groups.iter().filter(|g| g.members.contains(&entry.name)) {
            push(g.gid);
        }
    }
    for (i, g) in sc
        .map_or(&[][..], |s| &s.supplemental_groups[..])
        .iter()
        .enumerate()
    {
        push(id_from_i64(
            &format!("security_context.supplemental_groups[{i}]"),
            *g,
        )?);
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f.get(5).map_or_else(String::new, |h| h.to_string()),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Reads `rel` beneath `rootfs`, resolving every symlink as if `rootfs` were `/`. `None` if it
/// does not exist (or is not a regular file: a FIFO would block us).
pub(super) fn read_confined(rootfs: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let shown = rootfs.join(rel);
    let root = File::open(rootfs).map_err(|e| SpecError::io(rootfs, e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 0;
    let fd = loop {
        match openat2(root.as_raw_fd(), rel, how) {
            Ok(fd) => break fd,
            // RESOLVE_IN_ROOT asks for a retry when a rename raced with the lookup.
            Err(Errno::EAGAIN | Errno::EINTR) if tries < 16 => tries += 1,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(SpecError::io(shown, e.into())),
        }
    };
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let meta = file.metadata().map_err(|e| SpecError::io(&shown, e))?;
    if !meta.is_file() {
        tracing::warn!(path = %shown.display(), "not a regular file; ignored");
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_DB_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SpecError::io(&shown, e))?;
    if bytes.len() as u64 > MAX_DB_BYTES {
        return Err(SpecError::invalid(format!(
            "image file /{rel} is larger than {MAX_DB_BYTES} bytes"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
