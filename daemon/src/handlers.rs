//! Runtime handlers (RuntimeClass): the built-in runtime, and the OCI runtimes configured under
//! `[runtime.handlers.<name>]`, whose command line (runc's) the pod's shim drives.
//!
//! Each configured runtime is asked once, at start-up, what it supports (`<runtime> features`,
//! the OCI runtime spec's features document): a recursive read-only mount needs `rro` among its
//! mount options, and user namespaces need it to know the user namespace and idmapped mounts.
//! A runtime that cannot say (crun before 1.9 has no `features`) supports neither. A runtime that
//! cannot be run at all stays listed; RunPodSandbox on it fails, naming why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_cri_api::v1::{RuntimeHandler, RuntimeHandlerFeatures};
use corral_shim::proto::OciRuntime;

/// The built-in runtime's name; the empty name means it too.
pub const BUILTIN: &str = "corral";

/// Whether `handler` (as RunPodSandbox named it) is the built-in runtime.
pub fn is_builtin(handler: &str) -> bool {
    handler.is_empty() || handler == BUILTIN
}

/// How long `<runtime> features` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub recursive_read_only_mounts: bool,
    pub user_namespaces: bool,
}

/// What a runtime's command line offers beyond create/start/exec/delete (from its `--help`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commands {
    /// A `checkpoint` command (runc; not crun 1.8).
    pub checkpoint: bool,
    /// The global `--criu <path>` option (runc's).
    pub criu_option: bool,
}

/// A configured OCI runtime.
#[derive(Debug, Clone)]
pub struct Handler {
    pub name: String,
    pub path: PathBuf,
    pub features: Features,
    pub commands: Commands,
    /// Why it cannot run here (its program is missing or fails), if it cannot.
    pub unusable: Option<String>,
}

/// The runtime handlers of this daemon.
#[derive(Debug, Clone, Default)]
pub struct Handlers {
    oci: Vec<Handler>,
    /// The CRIU program OCI runtimes checkpoint and restore with (None: their default).
    criu: Option<PathBuf>,
}

impl Handlers {
    /// Probes each configured runtime, given as its name and program (blocking: runs each
    /// `features` and `--help` once). Takes no config type, so the config may name
    /// [`BUILTIN`] without an import circle.
    pub fn probe<'a>(
        configured: impl IntoIterator<Item = (&'a String, &'a PathBuf)>,
        criu: Option<PathBuf>,
    ) -> Handlers {
        let oci = configured
            .into_iter()
            .map(|(name, path)| {
                let (features, unusable) = match probe_features(path) {
                    Ok(f) => (f, None),
                    Err(why) => {
                        tracing::warn!(handler = %name, path = %path.display(), %why, "runtime handler cannot run");
                        (Features::default(), Some(why))
                    }
                };
                let commands = match &unusable {
                    None => probe_commands(path),
                    Some(_) => Commands::default(),
                };
                Handler {
                    name: name.clone(),
                    path: path.clone(),
                    features,
                    commands,
                    unusable,
                }
            })
            .collect();
        Handlers { oci, criu }
    }

    /// The OCI runtime a pod on `handler` runs on (None: the built-in runtime); an unknown
    /// handler is an invalid argument naming it and the known ones.
    pub fn resolve(&self, handler: &str) -> Result<Option<(&Handler, OciRuntime)>, Resolve> {
        if is_builtin(handler) {
            return Ok(None);
        }
        let Some(h) = self.oci.iter().find(|h| h.name == handler) else {
            let mut known = vec![format!("{BUILTIN:?} (the default)")];
            known.extend(self.oci.iter().map(|h| format!("{:?}", h.name)));
            return Err(Resolve::Unknown(format!(
                "runtime handler {handler:?} is not configured (known: {})",
                known.join(", ")
            )));
        };
        if let Some(why) = &h.unusable {
            return Err(Resolve::Unusable(format!(
                "runtime handler {handler:?} cannot run here: {why}"
            )));
        }
        let runtime = OciRuntime {
            handler: h.name.clone(),
            path: h.path.clone(),
            criu: self.criu.clone().filter(|_| h.commands.criu_option),
        };
        Ok(Some((h, runtime)))
    }

    /// `Status.runtime_handlers`: the built-in runtime (the default, unnamed) first, then each
    /// configured one.
    pub fn status(&self, builtin: Features) -> Vec<RuntimeHandler> {
        let entry = |name: &str, f: Features| RuntimeHandler {
            name: name.to_owned(),
            features: Some(RuntimeHandlerFeatures {
                recursive_read_only_mounts: f.recursive_read_only_mounts,
                user_namespaces: f.user_namespaces,
            }),
        };
        std::iter::once(entry("", builtin))
            .chain(self.oci.iter().map(|h| entry(&h.name, h.features)))
            .collect()
    }
}

impl Handlers {
    /// Why pods on `handler` cannot checkpoint, if they cannot.
    pub fn cannot_checkpoint(&self, handler: &str) -> Option<String> {
        if is_builtin(handler) {
            return Some(
                "the built-in runtime cannot checkpoint containers; run the pod with an OCI runtime handler (such as runc)".into(),
            );
        }
        let h = self.oci.iter().find(|h| h.name == handler)?;
        (!h.commands.checkpoint).then(|| {
            format!(
                "runtime handler {handler:?} ({}) has no checkpoint command",
                h.path.display()
            )
        })
    }
}

/// Why a handler cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    Unknown(String),
    Unusable(String),
}

/// Runs `<path> features` and reads what the runtime supports; a runtime without the command
/// supports nothing optional, one that cannot run at all is an error.
fn probe_features(path: &Path) -> Result<Features, String> {
    let (status, out) = run_bounded(path, "features")?;
    if !status.success() {
        // It ran, but has no features document.
        return Ok(Features::default());
    }
    Ok(parse_features(&out))
}

/// Reads `<path> --help` for the commands and options beyond the basic ones.
fn probe_commands(path: &Path) -> Commands {
    let Ok((_, help)) = run_bounded(path, "--help") else {
        return Commands::default();
    };
    let text = String::from_utf8_lossy(&help);
    parse_commands(&text)
}

/// `checkpoint` listed as a command (a line starting with it) and `--criu` as an option.
pub fn parse_commands(help: &str) -> Commands {
    Commands {
        checkpoint: help
            .lines()
            .any(|l| l.split_whitespace().next() == Some("checkpoint")),
        criu_option: help.lines().any(|l| l.trim_start().starts_with("--criu")),
    }
}

/// How `<path> <arg>` exited and the first MiB of its stdout (read while it runs, so a long
/// output cannot stall it), killed after the probe's time limit.
fn run_bounded(path: &Path, arg: &str) -> Result<(std::process::ExitStatus, Vec<u8>), String> {
    let mut child = std::process::Command::new(path)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = Vec::new();
            let _ = stdout.take(1 << 20).read_to_end(&mut buf);
            buf
        })
    });
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "{} {arg} did not answer within {PROBE_TIMEOUT:?}",
                    path.display()
                ));
            }
            Err(e) => break Err(format!("{}: {e}", path.display())),
        }
    };
    let out = reader
        .map(|r| r.join().unwrap_or_default())
        .unwrap_or_default();
    Ok((status?, out))
}

/// The features document's answers (`mountOptions` has `rro`; `linux.namespaces` has `user`
/// and `linux.mountExtensions.idmap.enabled` is true).
pub fn parse_features(document: &[u8]) -> Features {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(document) else {
        return Features::default();
    };
    let has = |list: Option<&serde_json::Value>, item: &str| {
        list.and_then(|l| l.as_array())
            .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(item)))
    };
    let linux = doc.get("linux");
    let idmap = linux
        .and_then(|l| l.pointer("/mountExtensions/idmap/enabled"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Features {
        recursive_read_only_mounts: has(doc.get("mountOptions"), "rro"),
        user_namespaces: idmap && has(linux.and_then(|l| l.get("namespaces")), "user"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_come_from_the_document() {
        let runc = br#"{"mountOptions":["bind","rro"],"linux":{"namespaces":["user","net"]}}"#;
        assert_eq!(
            parse_features(runc),
            Features {
                recursive_read_only_mounts: true,
                user_namespaces: false,
            }
        );
        let idmap = br#"{"mountOptions":["ro"],"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":true}}}}"#;
        assert_eq!(
            parse_features(idmap),
            Features {
                recursive_read_only_mounts: false,
                user_namespaces: true,
            }
        );
        assert_eq!(parse_features(b"unknown command"), Features::default());
    }

    #[test]
    fn commands_come_from_the_help() {
        let runc = "COMMANDS:\n   checkpoint  checkpoint a running container\n   create  create\nGLOBAL OPTIONS:\n   --criu value  path to the criu binary\n";
        assert_eq!(
            parse_commands(runc),
            Commands {
                checkpoint: true,
                criu_option: true,
            }
        );
        let crun = "  create   Create a container\n  exec     Exec a command\n      --cgroup-manager=MANAGER\n";
        assert_eq!(parse_commands(crun), Commands::default());
    }

    #[test]
    fn unknown_handlers_are_named_with_the_known_ones() {
        let mut configured = std::collections::BTreeMap::new();
        configured.insert("runc".to_owned(), PathBuf::from("/nonexistent/runc"));
        let handlers = Handlers::probe(&configured, None);
        assert!(matches!(handlers.resolve(""), Ok(None)));
        assert!(matches!(handlers.resolve(BUILTIN), Ok(None)));
        match handlers.resolve("kata") {
            Err(Resolve::Unknown(msg)) => {
                assert!(
                    msg.contains("\"kata\"") && msg.contains("\"runc\""),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        match handlers.resolve("runc") {
            Err(Resolve::Unusable(msg)) => assert!(msg.contains("/nonexistent/runc"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
