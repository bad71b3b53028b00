//! Finding and running one plugin binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::Error;

/// Largest result a plugin may print, in bytes.
const MAX_OUTPUT: u64 = 1 << 20;
/// How much of a plugin's stderr an error message quotes.
const MAX_STDERR: u64 = 4 << 10;

/// Where plugin binaries are looked for unless configured otherwise: the CNI project's
/// install directory, then Debian's (`containernetworking-plugins`).
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// Where plugins are and how long each call may take.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// Searched in order for a binary named like the plugin's `type`.
    pub dirs: Vec<PathBuf>,
    /// Time limit of one plugin call; the plugin is killed when it is over.
    pub timeout: Duration,
}

/// The per-call CNI environment.
#[derive(Debug, Clone, Copy)]
pub struct CallEnv<'a> {
    pub command: &'static str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_ARGS`: `K=V` pairs joined with `;`.
    pub args: &'a str,
}

impl Plugins {
    /// [`DEFAULT_PLUGIN_DIRS`], each call limited to `timeout`.
    pub fn in_default_dirs(timeout: Duration) -> Plugins {
        Plugins {
            dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            timeout,
        }
    }

    /// The first executable file named `kind` in the plugin directories.
    pub fn find(&self, kind: &str) -> Result<PathBuf, Error> {
        use std::os::unix::fs::PermissionsExt as _;
        self.dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| Error::PluginNotFound {
                plugin: kind.to_owned(),
                dirs: self.dirs_joined(", "),
            })
    }

    fn dirs_joined(&self, sep: &str) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Runs plugin `kind` of `network` with `config` on stdin. Returns what it printed on
    /// success (may be empty); a non-zero exit becomes [`Error::Plugin`] with the CNI error's
    /// `msg` and `details` (or its stderr).
    pub async fn call(
        &self,
        network: &str,
        kind: &str,
        env: CallEnv<'_>,
        config: &Value,
    ) -> Result<Vec<u8>, Error> {
        let failed = |code: Option<u32>, msg: String| Error::Plugin {
            network: network.to_owned(),
            plugin: kind.to_owned(),
            command: env.command,
            code,
            msg,
        };
        let binary = self.find(kind)?;
        let stdin = serde_json::to_vec(config).map_err(|e| failed(None, e.to_string()))?;
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", env.command)
            .env("CNI_CONTAINERID", env.container_id)
            .env("CNI_NETNS", env.netns)
            .env("CNI_IFNAME", env.ifname)
            .env("CNI_ARGS", env.args)
            .env("CNI_PATH", self.dirs_joined(":"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(None, format!("cannot run {}: {e}", binary.display())))?;
        let (Some(mut input), Some(out), Some(err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(failed(None, "no pipes to the plugin".into()));
        };
        let run = async {
            let write = async {
                // A plugin may exit without reading its input; that shows in its status.
                let _ = input.write_all(&stdin).await;
                drop(input);
            };
            let (_, out, err, status) = tokio::join!(
                write,
                read_capped(out, MAX_OUTPUT),
                read_capped(err, MAX_STDERR),
                child.wait()
            );
            (out, err, status)
        };
        let (out, err, status) =
            tokio::time::timeout(self.timeout, run)
                .await
                .map_err(|_| Error::Timeout {
                    network: network.to_owned(),
                    plugin: kind.to_owned(),
                    command: env.command,
                    secs: self.timeout.as_secs(),
                })?;
        let status = status.map_err(|e| failed(None, e.to_string()))?;
        let out = out.map_err(|e| failed(None, format!("reading its output: {e}")))?;
        if status.success() {
            if out.len() as u64 > MAX_OUTPUT {
                return Err(Error::BadResult {
                    network: network.to_owned(),
                    plugin: kind.to_owned(),
                    command: env.command,
                    msg: format!("result larger than {MAX_OUTPUT} bytes"),
                });
            }
            return Ok(out);
        }
        let stderr = err.unwrap_or_default();
        let (code, msg) = error_message(&out, &stderr);
        Err(failed(
            code,
            msg.unwrap_or_else(|| format!("exited with {status}")),
        ))
    }
}

/// Reads at most `cap + 1` bytes, then drains the rest so the writer never blocks.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r).take(cap + 1).read_to_end(&mut buf).await?;
    tokio::io::copy(&mut r, &mut tokio::io::sink()).await?;
    Ok(buf)
}

/// The CNI error object a failing plugin prints (`code`, `msg`, `details`), or its stderr.
fn error_message(stdout: &[u8], stderr: &[u8]) -> (Option<u32>, Option<String>) {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        let code = v.get("code").and_then(Value::as_u64).map(|c| c as u32);
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
        let details = v.get("details").and_then(Value::as_str).unwrap_or("");
        let text = match (msg.is_empty(), details.is_empty()) {
            (false, false) => Some(format!("{msg}: {details}")),
            (false, true) => Some(msg.to_owned()),
            (true, false) => Some(details.to_owned()),
            (true, true) => None,
        };
        if code.is_some() || text.is_some() {
            return (code, text);
        }
    }
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = stderr.trim();
    (
        None,
        (!stderr.is_empty()).then(|| stderr.chars().take(MAX_STDERR as usize).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                br#"{"code":11,"msg":"failed to allocate","details":"range full"}"#,
                b""
            ),
            (Some(11), Some("failed to allocate: range full".into()))
        );
        assert_eq!(error_message(b"", b" boom\n"), (None, Some("boom".into())));
        assert_eq!(error_message(b"{}", b""), (None, None));
    }

    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn env() -> CallEnv<'static> {
        CallEnv {
            command: "ADD",
            container_id: "c1",
            netns: Path::new("/proc/self/ns/net"),
            ifname: "eth0",
            args: "IgnoreUnknown=1",
        }
    }

    #[tokio::test]
    async fn runs_a_plugin_with_the_cni_environment() {
        let d = tempfile::tempdir().unwrap();
        script(
            d.path(),
            "echoenv",
            r#"read -r cfg; printf '{"cmd":"%s","id":"%s","if":"%s","in":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$cfg""#,
        );
        script(
            d.path(),
            "fail",
            r#"echo '{"code":7,"msg":"bad config"}'; exit 1"#,
        );
        script(d.path(), "slow", "sleep 5");
        std::fs::write(d.path().join("noexec"), "").unwrap();
        let plugins = Plugins {
            dirs: vec![d.path().join("missing"), d.path().to_path_buf()],
            timeout: Duration::from_millis(300),
        };
        let out = plugins
            .call("net", "echoenv", env(), &serde_json::json!({"a": 1}))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cmd":"ADD","id":"c1","if":"eth0","in":{"a":1}})
        );

        let e = plugins
            .call("net", "fail", env(), &Value::Null)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI network \"net\": plugin \"fail\" ADD failed: bad config (code 7)"
        );
        let e = plugins
            .call("net", "slow", env(), &Value::Null)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let e = plugins
            .call("net", "noexec", env(), &Value::Null)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PluginNotFound { .. }), "{e}");
        assert!(e.to_string().contains("noexec"), "{e}");
    }
}
