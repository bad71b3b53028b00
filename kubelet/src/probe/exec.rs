//! The exec probe: the command (with `$(VAR)` expanded against the container's literal env)
//! through the CRI's `ExecSync`, output bounded, the exit code deciding.

use super::*;

/// Go's `%q` is close enough to Rust's `{:?}` for command lines.
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

pub(super) fn expand_command(command: &[String], env: &[EnvVar]) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            corral_kube::env::expand(arg, |name| {
                env.iter()
                    .rev()
                    .find(|var| var.name == name)
                    .map(|var| var.value.clone().unwrap_or_default())
            })
        })
        .collect()
}

pub(super) fn combined_output(output: &ExecOutput) -> String {
    let mut data = output.stdout.clone();
    data.extend_from_slice(&output.stderr);
    data.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&data).into_owned()
}

pub(super) async fn exec_probe(
    action: &ExecAction,
    target: &Target<'_>,
    timeout: Duration,
) -> Outcome {
    let command = expand_command(action.command.as_deref().unwrap_or_default(), target.env);
    let joined = command.join(" ");
    match target
        .exec
        .exec_sync(target.container_id, command, timeout)
        .await
    {
        Ok(output) if output.exit_code == 0 => Outcome::Success,
        Ok(output) => Outcome::Failure(combined_output(&output)),
        Err(ExecError::TimedOut) => {
            Outcome::Failure(format!("command {} timed out", quoted(&joined)))
        }
        Err(ExecError::Failed(message)) => Outcome::Unknown(message),
    }
}
