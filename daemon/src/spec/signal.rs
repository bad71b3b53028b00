//! The signal that stops a container.

use corral_cri_api::v1::{ContainerConfig, Signal as CriSignal};
use nix::sys::signal::Signal;
use oci_spec::image::ImageConfiguration;

use super::SpecError;

/// The signal that stops the container, as a raw signal number (real-time signals such as
/// `SIGRTMIN+3`, which systemd images use, have no [`nix::sys::signal::Signal`] variant): the CRI
/// `stop_signal` unless `RUNTIME_DEFAULT`, else the image's `StopSignal` (`SIGTERM`, `TERM`,
/// `term`, `15`, `SIGRTMIN+3`, `RTMAX-1`, ...), else `SIGTERM`.
pub fn stop_signal(config: &ContainerConfig, image: &ImageConfiguration) -> Result<i32, SpecError> {
    if config.stop_signal != CriSignal::RuntimeDefault as i32 {
        let sig = CriSignal::try_from(config.stop_signal).map_err(|_| {
            SpecError::invalid(format!("stop_signal: unknown value {}", config.stop_signal))
        })?;
        let name = sig.as_str_name();
        let name = name
            .replace("RTMINPLUS", "RTMIN+")
            .replace("RTMAXMINUS", "RTMAX-");
        return parse_signal("stop_signal", &name);
    }
    match image
        .config()
        .as_ref()
        .and_then(|c| c.stop_signal().as_deref())
    {
        Some(s) if !s.is_empty() => parse_signal("image config StopSignal", s),
        _ => Ok(Signal::SIGTERM as i32),
    }
}

/// Parses a signal the way Docker and containerd do: a number, or a name with or without `SIG`,
/// in any case.
pub(super) fn parse_signal(field: &str, raw: &str) -> Result<i32, SpecError> {
    let bad = || SpecError::invalid(format!("{field}: invalid signal {raw:?}"));
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Ok(n) = raw.parse::<i32>() {
        return if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |rest: &str, base: i32, sign: char| -> Result<i32, SpecError> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix(sign).ok_or_else(bad)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            digits.parse().map_err(|_| bad())?
        };
        let n = if sign == '+' { base + off } else { base - off };
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest, min, '+');
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest, max, '-');
    }
    let name = match name {
        "IOT" => "ABRT",
        "CLD" => "CHLD",
        "POLL" => "IO",
        n => n,
    };
    Signal::iterator()
        .find(|s| s.as_str().strip_prefix("SIG") == Some(name))
        .map(|s| s as i32)
        .ok_or_else(bad)
}
