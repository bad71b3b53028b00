//! Whether CRIU can checkpoint on this host. CheckpointContainer asks before anything else
//! happens: without a working CRIU the answer is FAILED_PRECONDITION naming why, taken from
//! `criu check` itself (for example Debian bookworm's CRIU 3.17 fails on kernels from 6.13 on,
//! whose vDSO layout it does not know: checkpoint-restore/criu#2532).

use std::time::Duration;

/// How long `criu check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// What `criu check` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criu {
    /// `criu check` passed.
    Usable,
    /// CRIU cannot run here, and why.
    Unusable(String),
}

/// Runs `criu check` (found through `PATH`).
pub async fn probe() -> Criu {
    let run = tokio::process::Command::new("criu")
        .arg("check")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => {
            return Criu::Unusable(format!(
                "`criu check` did not finish within {CHECK_TIMEOUT:?}"
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Criu::Unusable("criu is not installed (Debian: apt-get install criu)".into());
        }
        Ok(Err(e)) => return Criu::Unusable(format!("cannot run criu: {e}")),
        Ok(Ok(out)) => out,
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // criu 3.17 exits 0 even when kernel feature detection fails; its error lines tell.
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
    if out.status.success() && errors.is_empty() {
        return Criu::Usable;
    }
    let why = if errors.is_empty() {
        format!("exit status {}", out.status)
    } else {
        errors.join("; ")
    };
    Criu::Unusable(format!("`criu check` fails on this host: {why}"))
}
