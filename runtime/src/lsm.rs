//! AppArmor and SELinux labels for `execve`: `process.apparmorProfile` and
//! `process.selinuxLabel`, applied by writing the LSM's exec attribute of the calling thread
//! right before `execve` (what runc does), so the new program starts confined.

use std::ffi::CString;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use crate::Error;
use crate::report::{ChildResult, Step};

/// The attribute to write in the child, and what.
pub(crate) struct LsmExec {
    attr: CString,
    value: Vec<u8>,
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

impl LsmExec {
    /// The label `process` asks for, if any; `InvalidSpec` when the host lacks its LSM or both
    /// are set.
    pub(crate) fn new(process: &Process) -> Result<Option<Self>, Error> {
        let nonempty =
            |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(String::from);
        let apparmor = nonempty(process.apparmor_profile());
        let selinux = nonempty(process.selinux_label());
        let (attr, value) = match (apparmor, selinux) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(Error::InvalidSpec(
                    "process.apparmorProfile and process.selinuxLabel are both set".into(),
                ));
            }
            (Some(profile), None) => {
                if !apparmor_enabled() {
                    return Err(Error::InvalidSpec(
                        "process.apparmorProfile: no AppArmor on this host".into(),
                    ));
                }
                // Linux 5.1+ has a per-LSM directory; older kernels only the shared attribute.
                let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
                    "/proc/self/attr/apparmor/exec"
                } else {
                    "/proc/self/attr/exec"
                };
                (attr, format!("exec {profile}"))
            }
            (None, Some(label)) => {
                if !selinux_enabled() {
                    return Err(Error::InvalidSpec(
                        "process.selinuxLabel: no SELinux on this host".into(),
                    ));
                }
                ("/proc/self/attr/exec", label)
            }
        };
        if value.contains('\0') {
            return Err(Error::InvalidSpec("LSM label contains a NUL byte".into()));
        }
        Ok(Some(Self {
            attr: CString::new(attr).map_err(|_| Error::InvalidSpec("LSM attribute".into()))?,
            value: value.into_bytes(),
        }))
    }

    /// Child: writes the label (the container's `/proc` is mounted by now).
    pub(crate) fn apply(&self) -> ChildResult {
        let fd = open(
            self.attr.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .step("open the LSM exec attribute")?;
        let written = nix::unistd::write(crate::sys::borrow(fd), &self.value);
        let _ = nix::unistd::close(fd);
        written.step("write the LSM exec attribute")?;
        Ok(())
    }
}
