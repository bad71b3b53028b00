//! Running `iptables`/`ip6tables` and `iptables-restore` for the built-in network's rules.

use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// The program for an address family.
pub fn program(v6: bool) -> &'static str {
    if v6 { "ip6tables" } else { "iptables" }
}

/// Runs `<program> -w <args>` to its end.
async fn output(v6: bool, args: &[&str]) -> Result<std::process::Output, String> {
    Command::new(program(v6))
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{}: {e}", program(v6)))
}

/// Runs `<program> -w <args>`; `Ok(false)` when it exits non-zero (a `-C` that found nothing).
pub async fn run(v6: bool, args: &[&str]) -> Result<bool, String> {
    Ok(output(v6, args).await?.status.success())
}

/// Runs `<program> -w <args>`, an error naming stderr when it fails.
pub async fn must(v6: bool, args: &[&str]) -> Result<(), String> {
    let out = output(v6, args).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} {}: {}",
        program(v6),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Appends `rule` to `chain` of `table` unless it is there already.
pub async fn ensure(v6: bool, table: &str, chain: &str, rule: &[&str]) -> Result<(), String> {
    let mut check = vec!["-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if run(v6, &check).await? {
        return Ok(());
    }
    let mut add = vec!["-t", table, "-A", chain];
    add.extend_from_slice(rule);
    must(v6, &add).await
}

/// The rules of `table` as `iptables-save` prints them (`-A CHAIN ...` lines).
pub async fn save(v6: bool, table: &str) -> Result<String, String> {
    let prog = format!("{}-save", program(v6));
    let out = Command::new(&prog)
        .args(["-t", table])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{prog}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Feeds `lines` (`-A ...`/`-D ...`) for `table` to `iptables-restore --noflush` in one
/// transaction.
pub async fn restore(v6: bool, table: &str, lines: &[String]) -> Result<(), String> {
    if lines.is_empty() {
        return Ok(());
    }
    let prog = format!("{}-restore", program(v6));
    let mut script = format!("*{table}\n");
    for l in lines {
        script.push_str(l);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    let mut child = Command::new(&prog)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("{prog}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{prog}: {} (script: {script:?})",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}
