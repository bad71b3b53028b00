use corral_cri_api::v1::{Int64Value, SupplementalGroupsPolicy};

use super::super::user::read_confined;
use super::{Fixture, image, invalid, symlink};

/// (uid, gid, additional gids) of the container's process.
fn user_of(f: &Fixture) -> (u32, u32, Vec<u32>) {
    let spec = f.spec().unwrap();
    let u = spec.process().as_ref().unwrap().user().clone();
    (u.uid(), u.gid(), u.additional_gids().clone().unwrap())
}

fn with_user(f: &mut Fixture, user: &str) {
    f.image = image(serde_json::json!({"Cmd": ["sh"], "User": user}));
}

#[test]
fn default_is_root() {
    let f = Fixture::new();
    assert_eq!(user_of(&f), (0, 0, vec![0]));
}

#[test]
fn image_user_forms() {
    let mut f = Fixture::new();
    // A name: uid and primary gid from /etc/passwd, groups listing it from /etc/group.
    with_user(&mut f, "app");
    assert_eq!(user_of(&f), (1000, 1001, vec![1001, 29, 44]));
    // A uid listed in /etc/passwd: the same.
    with_user(&mut f, "1000");
    assert_eq!(user_of(&f), (1000, 1001, vec![1001, 29, 44]));
    // uid:gid: the gid given wins; groups still from the user's name.
    with_user(&mut f, "1000:50");
    assert_eq!(user_of(&f), (1000, 50, vec![50, 29, 44]));
    // name:group
    with_user(&mut f, "app:staff");
    assert_eq!(user_of(&f), (1000, 50, vec![50, 29, 44]));
    // An unlisted uid: gid 0.
    with_user(&mut f, "4242");
    assert_eq!(user_of(&f), (4242, 0, vec![0]));
    with_user(&mut f, "4242:4343");
    assert_eq!(user_of(&f), (4242, 4343, vec![4343]));
}

#[test]
fn unknown_names_are_invalid() {
    let mut f = Fixture::new();
    with_user(&mut f, "nobody");
    assert_eq!(
        invalid(f.spec()),
        "image config User: user \"nobody\" not found in the image's /etc/passwd"
    );
    with_user(&mut f, "app:nogroup");
    assert!(invalid(f.spec()).contains("group \"nogroup\" not found"));
    with_user(&mut f, ":staff");
    assert!(invalid(f.spec()).contains("no user"));
    let mut f = Fixture::new();
    f.sc().run_as_username = "ghost".into();
    assert!(invalid(f.spec()).starts_with("security_context.run_as_username: user \"ghost\""));
}

#[test]
fn number_like_users_that_are_not_ids_are_refused_not_looked_up() {
    let mut f = Fixture::new();
    // A hostile image maps each of these names to root.
    let names = ["4294967296", "-1", "+0", "00", " 0", "4294967295"];
    let passwd: String = names
        .iter()
        .map(|n| format!("{n}:x:0:0::/:/bin/sh\n"))
        .collect();
    std::fs::write(f.rootfs().join("etc/passwd"), passwd).unwrap();
    for user in names
        .iter()
        .copied()
        .chain(["4294967296:4294967296", "1000:-1"])
    {
        with_user(&mut f, user);
        let e = invalid(f.spec());
        assert!(
            e.starts_with(&format!("image config User {user:?}: ")) && e.contains("not a valid"),
            "{user:?}: {e}"
        );
    }
    // The same rule for a user name passed on by the kubelet, and for CRI ids.
    let mut f = Fixture::new();
    f.sc().run_as_username = "4294967296".into();
    assert!(invalid(f.spec()).contains("run_as_username: \"4294967296\" is out of range"));
    let mut f = Fixture::new();
    f.sc().run_as_user = Some(Int64Value { value: 4294967295 });
    assert!(invalid(f.spec()).contains("run_as_user: 4294967295 is not a valid id"));
}

#[test]
fn security_context_overrides_the_image_user() {
    let mut f = Fixture::new();
    with_user(&mut f, "app");
    f.sc().run_as_user = Some(Int64Value { value: 1 });
    assert_eq!(user_of(&f), (1, 1, vec![1]));
    f.sc().run_as_group = Some(Int64Value { value: 7 });
    assert_eq!(user_of(&f), (1, 7, vec![7]));
    f.sc().supplemental_groups = vec![100, 7, 101];
    assert_eq!(user_of(&f), (1, 7, vec![7, 100, 101]));

    let mut f = Fixture::new();
    f.sc().run_as_username = "app".into();
    f.sc().supplemental_groups = vec![5];
    assert_eq!(user_of(&f), (1000, 1001, vec![1001, 29, 44, 5]));
    // Strict: only the primary gid and supplemental_groups.
    f.sc().supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
    assert_eq!(user_of(&f), (1000, 1001, vec![1001, 5]));
}

#[test]
fn security_context_user_errors() {
    let mut f = Fixture::new();
    f.sc().run_as_group = Some(Int64Value { value: 7 });
    assert!(invalid(f.spec()).contains("run_as_group: set without run_as_user"));
    f.sc().run_as_user = Some(Int64Value { value: -1 });
    assert!(invalid(f.spec()).contains("run_as_user: -1"));
    f.sc().run_as_user = Some(Int64Value { value: 1 });
    f.sc().run_as_username = "app".into();
    assert!(invalid(f.spec()).contains("both set"));
    let mut f = Fixture::new();
    f.sc().supplemental_groups = vec![1 << 40];
    assert!(invalid(f.spec()).contains("supplemental_groups[0]"));
}

#[test]
fn numeric_users_need_no_passwd() {
    let mut f = Fixture::new();
    std::fs::remove_file(f.rootfs().join("etc/passwd")).unwrap();
    std::fs::remove_file(f.rootfs().join("etc/group")).unwrap();
    with_user(&mut f, "1000:1000");
    assert_eq!(user_of(&f), (1000, 1000, vec![1000]));
    with_user(&mut f, "app");
    assert!(invalid(f.spec()).contains("not found"));
}

#[test]
fn passwd_symlinks_out_of_the_rootfs_are_not_followed() {
    let mut f = Fixture::new();
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "evil:x:4000:4000::/evil:/bin/sh\n").unwrap();
    let passwd = f.rootfs().join("etc/passwd");
    with_user(&mut f, "evil");

    // Absolute symlink: resolved inside the rootfs, where it does not exist.
    std::fs::remove_file(&passwd).unwrap();
    symlink(outside.join("passwd"), &passwd);
    assert!(invalid(f.spec()).contains("user \"evil\" not found"));

    // Relative symlink climbing out: `..` stops at the rootfs.
    std::fs::remove_file(&passwd).unwrap();
    symlink("../../../../../../../../outside/passwd", &passwd);
    assert!(invalid(f.spec()).contains("user \"evil\" not found"));

    // A symlink inside the rootfs is followed there.
    std::fs::remove_file(&passwd).unwrap();
    std::fs::create_dir_all(f.rootfs().join("lib")).unwrap();
    std::fs::write(
        f.rootfs().join("lib/passwd"),
        "evil:x:4000:4000::/evil:/bin/sh\n",
    )
    .unwrap();
    symlink("/lib/passwd", &passwd);
    assert_eq!(user_of(&f), (4000, 4000, vec![4000]));
}

#[test]
fn read_confined_ignores_non_regular_files() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.rootfs().join("etc/dir")).unwrap();
    assert_eq!(read_confined(&f.rootfs(), "etc/dir").unwrap(), None);
    assert_eq!(read_confined(&f.rootfs(), "etc/missing").unwrap(), None);
    assert_eq!(read_confined(&f.rootfs(), "etc/passwd/x").unwrap(), None);
    nix::unistd::mkfifo(
        &f.rootfs().join("etc/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert_eq!(read_confined(&f.rootfs(), "etc/fifo").unwrap(), None);
}
