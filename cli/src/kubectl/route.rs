//! `create` and `run` exist twice: crictl's (`create POD_ID CONTAINER_CONFIG POD_CONFIG`,
//! `run CONTAINER_CONFIG POD_CONFIG`) and kubectl's (`create -f FILE`, `create namespace NAME`,
//! `run NAME --image IMAGE`). Before clap sees the arguments, the kubectl forms are renamed to
//! the hidden subcommands `kube-create` and `kube-run`:
//!
//! - `create` with `-f`/`--filename`, or whose first argument is `namespace` or `ns`;
//! - `run` with `--image`.

use std::ffi::OsString;

/// The hidden subcommand of kubectl's `create`.
pub const KUBE_CREATE: &str = "kube-create";
/// The hidden subcommand of kubectl's `run`.
pub const KUBE_RUN: &str = "kube-run";

/// Global flags that take a value (`-r X`), to step over them to the subcommand.
const GLOBAL_WITH_VALUE: [&str; 6] = [
    "-r",
    "--runtime-endpoint",
    "-i",
    "--image-endpoint",
    "-t",
    "--timeout",
];

/// The index of the subcommand in `argv` (after the program name and global flags).
fn subcommand_index(argv: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].to_str()?;
        if GLOBAL_WITH_VALUE.contains(&arg) {
            i += 2;
        } else if arg.starts_with('-') {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

fn is_flag(arg: &str, short: &str, long: &str) -> bool {
    arg == short
        || arg == long
        || arg.starts_with(&format!("{long}="))
        || (arg.len() > short.len() && arg.starts_with(short) && !arg.starts_with("--"))
}

/// Renames kubectl's `create` and `run` to their hidden subcommands.
pub fn route(mut argv: Vec<OsString>) -> Vec<OsString> {
    let Some(at) = subcommand_index(&argv) else {
        return argv;
    };
    let rest: Vec<&str> = argv[at + 1..]
        .iter()
        .map(|a| a.to_str().unwrap_or(""))
        .take_while(|a| *a != "--")
        .collect();
    let kube = match argv[at].to_str() {
        Some("create") => {
            rest.iter().any(|a| is_flag(a, "-f", "--filename"))
                || rest
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .is_some_and(|a| matches!(*a, "namespace" | "ns"))
        }
        Some("run") => rest
            .iter()
            .any(|a| *a == "--image" || a.starts_with("--image=")),
        _ => false,
    };
    if kube {
        let name = if argv[at] == "create" {
            KUBE_CREATE
        } else {
            KUBE_RUN
        };
        argv[at] = name.into();
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(args: &[&str]) -> Vec<String> {
        route(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn kubectl_forms_are_renamed() {
        assert_eq!(
            routed(&["corralctl", "create", "-f", "pod.yaml"]),
            ["corralctl", "kube-create", "-f", "pod.yaml"]
        );
        assert_eq!(
            routed(&["corralctl", "-r", "/s.sock", "create", "--filename=x.yaml"])[3],
            "kube-create"
        );
        assert_eq!(
            routed(&["corralctl", "create", "-fpod.yaml"])[1],
            "kube-create"
        );
        assert_eq!(
            routed(&["corralctl", "create", "namespace", "dev"])[1],
            "kube-create"
        );
        assert_eq!(
            routed(&["corralctl", "create", "ns", "dev"])[1],
            "kube-create"
        );
        assert_eq!(
            routed(&["corralctl", "-D", "run", "web", "--image", "nginx"])[2],
            "kube-run"
        );
        assert_eq!(
            routed(&["corralctl", "run", "web", "--image=nginx"])[1],
            "kube-run"
        );
    }

    #[test]
    fn crictl_forms_are_kept() {
        assert_eq!(
            routed(&["corralctl", "create", "p1", "c.json", "p.json"])[1],
            "create"
        );
        assert_eq!(
            routed(&["corralctl", "create", "--no-pull", "p1", "c.json", "p.json"])[1],
            "create"
        );
        assert_eq!(routed(&["corralctl", "run", "c.json", "p.json"])[1], "run");
        assert_eq!(
            routed(&["corralctl", "run", "--runtime", "runc", "c.json", "p.json"])[1],
            "run"
        );
        // `--image` after `--` belongs to the command, not to `run`.
        assert_eq!(
            routed(&["corralctl", "-i", "create", "run", "x", "--", "--image"])[3],
            "run"
        );
        // The global `-i` takes a value: `create` is that value, `run` the subcommand.
        assert_eq!(routed(&["corralctl", "-i", "create", "ps"])[3], "ps");
        assert_eq!(routed(&["corralctl"]), ["corralctl"]);
    }
}
