//! Root tests of user namespaces: a container in a new user namespace, its rootfs and a
//! volume through idmapped mounts, exec joining it, a pod's pinned user namespace, and the
//! specs that are refused. Observed from inside the container and on the host. `harness =
//! false` for the same reason as `root.rs`.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use common::*;
use corral_runtime::{Error, cgroups, container, exec, sandbox, userns};
use serde_json::{Value, json};

const HOST: u32 = 100000;
const SIZE: u32 = 65536;

fn map() -> Value {
    json!([{"containerID": 0, "hostID": HOST, "size": SIZE}])
}

/// Namespaces of a container with its own user namespace (`user_path`: join that one).
fn userns_linux(user_path: Option<&std::path::Path>) -> Value {
    let user = match user_path {
        Some(p) => json!({"type": "user", "path": p}),
        None => json!({"type": "user"}),
    };
    json!({
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                       {"type": "uts"}, {"type": "mount"}, user],
        "uidMappings": map(), "gidMappings": map(),
    })
}

/// The container's root (host ID 100000) sets the container up by host paths: the tempdir
/// (mode 0700) must let it through, as the daemon's state directories do.
fn traversable(t: &Test) -> R {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o711)).map_err(s)
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn idmapped_rootfs_and_volume(t: &Test) -> R {
    traversable(t)?;
    let vol = t.dir.path().join("vol");
    std::fs::create_dir_all(&vol).map_err(s)?;
    std::fs::write(vol.join("owned"), "x").map_err(s)?;
    std::os::unix::fs::chown(vol.join("owned"), Some(1000), Some(1001)).map_err(s)?;
    let cmd = "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g; \
               stat -c %u:%g / /bin/busybox /vol/owned; touch /made /vol/made; \
               stat -c %u:%g /made; cat /sys/class/net/lo/flags; echo $$";
    let mut spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"linux": userns_linux(None)}),
    );
    let mut ann = std::collections::HashMap::new();
    ann.insert(
        userns::ROOTFS_IDMAP_ANNOTATION.to_owned(),
        "true".to_owned(),
    );
    spec.set_annotations(Some(ann));
    append_mounts(
        &mut spec,
        json!([{"destination": "/vol", "type": "bind", "source": vol,
                "options": ["rbind", "rw", "idmap"],
                "uidMappings": map(), "gidMappings": map()}]),
    );
    let (out, code) = t.run(&spec)?;
    check_eq(&code, &0).map_err(|e| format!("{e}: {out}"))?;
    let lines: Vec<String> = out.lines().map(words).collect();
    let want = [
        "0 100000 65536",
        "0 100000 65536",
        "0",
        "0",
        "0:0",
        "0:0",
        "1000:1001",
        "0:0",
        "0x8",
        "1",
    ];
    check_eq(&lines, &want.to_vec())?;
    // On the host, what the container's root created through the idmapped mounts is owned by
    // the IDs it has on disk: host root's.
    for f in [t.rootfs.join("made"), vol.join("made")] {
        let md = std::fs::metadata(&f).map_err(s)?;
        check_eq(&(md.uid(), md.gid()), &(0, 0))?;
    }
    check_eq(
        &std::fs::metadata(vol.join("owned")).map_err(s)?.uid(),
        &1000,
    )
}

fn plain_rootfs_shows_unmapped_owner(t: &Test) -> R {
    traversable(t)?;
    // Without the idmapped rootfs, host root's files belong to an ID the namespace does not
    // map (the overflow ID), and the container's root is host ID 100000.
    let cmd = "stat -c %u:%g /; id -u; touch /x 2>/dev/null || echo denied";
    let spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"linux": userns_linux(None)}),
    );
    let (out, code) = t.run(&spec)?;
    check_eq(&code, &0)?;
    check_eq(&out.as_str(), &"65534:65534\n0\ndenied\n")
}

fn exec_joins_the_user_namespace(t: &Test) -> R {
    traversable(t)?;
    let spec = t.spec(
        json!(["sleep", "100"]),
        json!({"linux": userns_linux(None)}),
    );
    let (stdio, _r) = t.stdio()?;
    let mut c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    let result = (|| {
        c.start().map_err(|e| e.to_string())?;
        let target = exec::Target::of(&spec, c.pid()).map_err(|e| e.to_string())?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).map_err(s)?;
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
        check_eq(
            &words(uid_line),
            &format!("Uid: {HOST} {HOST} {HOST} {HOST}"),
        )?;
        let (out, code, _) = t.exec(
            &target,
            &[
                "sh",
                "-c",
                "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u",
            ],
        )?;
        check_eq(&code, &0)?;
        let ns = std::fs::read_link(format!("/proc/{}/ns/user", c.pid())).map_err(s)?;
        let lines: Vec<String> = out.lines().map(words).collect();
        check_eq(
            &lines,
            &vec![
                ns.display().to_string(),
                "0 100000 65536".into(),
                "0".into(),
            ],
        )
    })();
    cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
    wait(c.pidfd())?;
    result
}

fn pod_user_namespace_pinned(t: &Test) -> R {
    traversable(t)?;
    let pins = t.dir.path().join("pins");
    let mappings: userns::IdMappings =
        serde_json::from_value(json!({"uids": map(), "gids": map()})).map_err(s)?;
    let sysctls = [("net.ipv4.ip_forward".to_owned(), "1".to_owned())];
    let pinned = sandbox::pin_namespaces(
        &pins,
        &sandbox::PodNamespaces {
            network: true,
            ipc: true,
            hostname: Some("podhost"),
            sysctls: &sysctls,
            userns: Some(&mappings),
        },
    )
    .map_err(|e| e.to_string())?;
    let holder = sandbox::spawn_pid_holder_in(&pins, pinned.user.as_deref());
    let result = (|| {
        let holder = holder.as_ref().map_err(|e| e.to_string())?;
        let user = pinned.user.as_ref().ok_or("no user pin")?;
        let ns = json!([
            {"type": "mount"},
            {"type": "pid", "path": pins.join("pid")},
            {"type": "network", "path": pinned.net.as_ref().ok_or("no net pin")?},
            {"type": "ipc", "path": pinned.ipc.as_ref().ok_or("no ipc pin")?},
            {"type": "uts", "path": pinned.uts.as_ref().ok_or("no uts pin")?},
            {"type": "user", "path": user},
        ]);
        let cmd = "hostname; cat /sys/class/net/lo/flags; cat /proc/sys/net/ipv4/ip_forward; \
                   cat /proc/self/uid_map; stat -c %u /proc/1";
        let linux = json!({"namespaces": ns, "uidMappings": map(), "gidMappings": map()});
        let spec = t.spec(json!(["sh", "-c", cmd]), json!({"linux": linux.clone()}));
        let (out, code) = t.run(&spec)?;
        check_eq(&code, &0).map_err(|e| format!("{e}: {out}"))?;
        let lines: Vec<String> = out.lines().map(words).collect();
        check_eq(
            &lines,
            &["podhost", "0x9", "1", "0 100000 65536", "0"]
                .map(String::from)
                .to_vec(),
        )?;
        // The pinned namespaces belong to the pod's user namespace.
        let pin = std::fs::metadata(user).map_err(s)?;
        let h = std::fs::metadata(format!("/proc/{}/ns/user", holder.pid)).map_err(s)?;
        check_eq(&(h.dev(), h.ino()), &(pin.dev(), pin.ino()))?;
        // Joining it with other mappings in the spec is refused by the intermediate process.
        let mut other = linux;
        other["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": SIZE}]);
        let spec = t.spec(json!(["true"]), json!({"linux": other}));
        let (stdio, _r) = t.stdio()?;
        match container::create(&spec, t.dir.path(), "test", stdio) {
            Err(Error::Child { step, .. }) => check(step.contains("differs"), &step)?,
            Err(e) => return Err(format!("unexpected error {e}")),
            Ok(_) => return Err("mismatched mappings accepted".into()),
        }
        Ok(())
    })();
    if let Ok(h) = &holder {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(h.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        wait(h.pidfd.as_fd())?;
    }
    sandbox::unpin_namespaces(&pins).map_err(|e| e.to_string())?;
    check(!pins.join("user").exists(), "user pin still exists")?;
    result
}

fn refused_specs(t: &Test) -> R {
    traversable(t)?;
    let no_maps = json!({"namespaces": [{"type": "mount"}, {"type": "user"}]});
    let maps_without_ns = json!({"namespaces": [{"type": "mount"}],
                                 "uidMappings": map(), "gidMappings": map()});
    let mut no_root = userns_linux(None);
    no_root["uidMappings"] = json!([{"containerID": 1, "hostID": HOST, "size": 10}]);
    let mut overflow = userns_linux(None);
    overflow["gidMappings"] = json!([{"containerID": 0, "hostID": u32::MAX, "size": 2}]);
    let cases = [
        (no_maps, None, "needs linux.uidMappings"),
        (maps_without_ns, None, "without a user namespace"),
        (no_root, None, "container ID 0 is not mapped"),
        (overflow, None, "overflows"),
        (
            userns_linux(None),
            Some(json!([{"containerID": 0, "hostID": 300000, "size": SIZE}])),
            "must equal",
        ),
        (json!({}), Some(map()), "need a user namespace"),
    ];
    for (linux, mount_map, want) in cases {
        let mut spec = t.spec(json!(["true"]), json!({"linux": linux}));
        if let Some(mm) = mount_map {
            append_mounts(
                &mut spec,
                json!([{"destination": "/v", "type": "bind", "source": t.dir.path(),
                        "options": ["rbind"], "uidMappings": mm, "gidMappings": mm}]),
            );
        }
        let (stdio, _r) = t.stdio()?;
        match container::create(&spec, t.dir.path(), "test", stdio) {
            Err(Error::InvalidSpec(m)) => check(m.contains(want), &format!("{want}: {m}"))?,
            Err(e) => return Err(format!("{want}: unexpected error {e}")),
            Ok(_) => return Err(format!("{want}: accepted")),
        }
    }
    // The container's root must be able to reach the rootfs.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(s)?;
    }
    let spec = t.spec(json!(["true"]), json!({"linux": userns_linux(None)}));
    let (stdio, _r) = t.stdio()?;
    match container::create(&spec, t.dir.path(), "test", stdio) {
        Err(Error::InvalidSpec(m)) => check(m.contains("search permission"), &m)?,
        Err(e) => return Err(format!("unexpected error {e}")),
        Ok(_) => return Err("unsearchable rootfs accepted".into()),
    }
    // The rootfs idmap needs a user namespace.
    let mut spec = t.spec(json!(["true"]), json!({}));
    let mut ann = std::collections::HashMap::new();
    ann.insert(
        userns::ROOTFS_IDMAP_ANNOTATION.to_owned(),
        "true".to_owned(),
    );
    spec.set_annotations(Some(ann));
    let (stdio, _r) = t.stdio()?;
    match container::create(&spec, t.dir.path(), "test", stdio) {
        Err(Error::InvalidSpec(m)) => check(m.contains("needs a user namespace"), &m)?,
        Err(e) => return Err(format!("unexpected error {e}")),
        Ok(_) => return Err("rootfs idmap without userns accepted".into()),
    }
    no_children()
}

fn probe(t: &Test) -> R {
    userns::probe(t.dir.path()).map_err(|e| e.to_string())?;
    check(userns::supported(t.dir.path()), "not supported")?;
    no_children()
}

fn append_mounts(spec: &mut oci_spec::runtime::Spec, extra: Value) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let extra: Vec<oci_spec::runtime::Mount> = serde_json::from_value(extra).expect("mounts");
    mounts.extend(extra);
    spec.set_mounts(Some(mounts));
}

fn main() {
    run_all(&[
        ("probe", probe),
        ("idmapped_rootfs_and_volume", idmapped_rootfs_and_volume),
        (
            "plain_rootfs_shows_unmapped_owner",
            plain_rootfs_shows_unmapped_owner,
        ),
        (
            "exec_joins_the_user_namespace",
            exec_joins_the_user_namespace,
        ),
        ("pod_user_namespace_pinned", pod_user_namespace_pinned),
        ("refused_specs", refused_specs),
    ]);
}
