//! Which CRIU to run, and whether it can checkpoint on this host. CheckpointContainer and
//! restores ask before anything else happens: without a working CRIU the answer is
//! FAILED_PRECONDITION naming why, taken from `criu check` itself (for example Debian
//! bookworm's CRIU 3.17 fails on kernels from 6.13 on, whose vDSO layout it does not know:
//! checkpoint-restore/criu#2532). `scripts/install-deps.sh` builds CRIU 4.2 into
//! [`INSTALLED`] where that happens.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where `scripts/install-criu.sh` installs the CRIU it builds; the default when present.
pub const INSTALLED: &str = "/usr/local/lib/corral/criu";

/// How long `criu check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a failed probe is believed: an administrator who installs CRIU should not have to
/// restart corrald, yet a kubelet checkpointing in a loop should not run `criu check` each time.
const RETRY_UNUSABLE: Duration = Duration::from_secs(60);

/// What `criu check` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criu {
    /// `criu check` passed.
    Usable,
    /// CRIU cannot run here, and why.
    Unusable(String),
}

/// The CRIU program: `configured`, else [`INSTALLED`] when it exists, else `criu` (through
/// `PATH`).
pub fn resolve(configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(p) => p.to_path_buf(),
        None if Path::new(INSTALLED).is_file() => PathBuf::from(INSTALLED),
        None => PathBuf::from("criu"),
    }
}

/// `criu check` of one program, its answer kept: a pass for the daemon's life (a CRIU that
/// breaks later fails the checkpoint itself, with its log), a failure for [`RETRY_UNUSABLE`].
#[derive(Debug)]
pub struct Prober {
    program: PathBuf,
    last: tokio::sync::Mutex<Option<(Instant, Criu)>>,
}

impl Prober {
    pub fn new(program: PathBuf) -> Prober {
        Prober {
            program,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The program probed (what the shim is told to run).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The last answer if it is still believed, else a fresh `criu check` (one at a time).
    pub async fn probe(&self) -> Criu {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && (*answer == Criu::Usable || at.elapsed() < RETRY_UNUSABLE)
        {
            return answer.clone();
        }
        let answer = probe(&self.program).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    /// The last answer without probing (`Status` must not wait for `criu check`).
    pub fn cached(&self) -> Option<Criu> {
        self.last
            .try_lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(_, a)| a.clone()))
    }
}

/// Runs `<program> check`.
pub async fn probe(program: &Path) -> Criu {
    let run = tokio::process::Command::new(program)
        .arg("check")
        .kill_on_drop(true)
        .output();
    let shown = program.display();
    let out = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => {
            return Criu::Unusable(format!(
                "`{shown} check` did not finish within {CHECK_TIMEOUT:?}"
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Criu::Unusable(format!(
                "{shown} is not installed (scripts/install-deps.sh criu builds CRIU 4.2 into \
                 {INSTALLED}; or set runtime.criu_path)"
            ));
        }
        Ok(Err(e)) => return Criu::Unusable(format!("cannot run {shown}: {e}")),
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
    Criu::Unusable(format!("`{shown} check` fails on this host: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_program_is_unusable_and_says_how_to_get_one() {
        let p = Prober::new("/nonexistent/criu".into());
        assert_eq!(p.cached(), None);
        let Criu::Unusable(why) = p.probe().await else {
            panic!("usable?")
        };
        assert!(
            why.contains("/nonexistent/criu") && why.contains("criu_path"),
            "{why}"
        );
        assert!(matches!(p.cached(), Some(Criu::Unusable(_))));
    }

    #[test]
    fn a_configured_path_wins() {
        assert_eq!(
            resolve(Some(Path::new("/x/criu"))),
            PathBuf::from("/x/criu")
        );
        let default = resolve(None);
        assert!(default == Path::new(INSTALLED) || default == Path::new("criu"));
    }
}
