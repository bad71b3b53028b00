//! Times as crictl shows them: "2 minutes ago" (go-units `HumanDuration`) and RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// go-units `HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    // Go rounds hours to the nearest integer.
    let hours = (seconds + 1800) / 3600;
    if seconds < 1 {
        "Less than a second".to_owned()
    } else if seconds == 1 {
        "1 second".to_owned()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".to_owned()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// "2 minutes ago" for a CRI timestamp (nanoseconds since the epoch).
pub fn ago(created_nanos: i64, now_nanos: i64) -> String {
    let elapsed = u64::try_from(now_nanos.saturating_sub(created_nanos)).unwrap_or(0);
    format!("{} ago", human_duration(Duration::from_nanos(elapsed)))
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.123456789Z`, `…+02:00`) into
/// nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> anyhow::Result<i64> {
    let invalid = || anyhow::anyhow!("invalid RFC 3339 time {text:?}");
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        bail!(invalid());
    }
    if b[13] != b':' || b[16] != b':' {
        bail!(invalid());
    }
    let num = |range: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let s = text.get(range).ok_or_else(invalid)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            bail!(invalid());
        }
        s.parse().map_err(|_| invalid())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        bail!(invalid());
    }
    if second > 60 {
        bail!(invalid());
    }
    let mut rest = &text[19..];
    let mut nanos = 0_i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            bail!(invalid());
        }
        let mut scaled = fraction[..digits.min(9)].to_owned();
        while scaled.len() < 9 {
            scaled.push('0');
        }
        nanos = scaled.parse().map_err(|_| invalid())?;
        rest = &fraction[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => bail!(invalid()),
            };
            let h: i64 = rest[1..3].parse().map_err(|_| invalid())?;
            let m: i64 = rest[4..6].parse().map_err(|_| invalid())?;
            sign * (h * 3600 + m * 60)
        }
        _ => bail!(invalid()),
    };
    let secs = corral_fsutil::time::days_from_civil(year, month, day) * 86_400
        + hour * 3600
        + minute * 60
        + second
        - offset_secs;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(invalid)
}

/// Formats nanoseconds since the epoch as Go's RFC3339Nano in UTC (fraction without trailing
/// zeros).
pub use corral_fsutil::time::rfc3339_nano_trimmed as format_rfc3339_nano;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(21 * 86_400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(800 * 86_400)), "2 years");
        assert_eq!(ago(0, 120_000_000_000), "2 minutes ago");
        assert_eq!(ago(10, 0), "Less than a second ago");
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = parse_rfc3339("2016-10-06T00:17:09.669794202Z").expect("parses");
        assert_eq!(t, 1_475_713_029_669_794_202);
        assert_eq!(format_rfc3339_nano(t), "2016-10-06T00:17:09.669794202Z");
        let t = parse_rfc3339("2016-10-06T02:17:09.5+02:00").expect("offset");
        assert_eq!(format_rfc3339_nano(t), "2016-10-06T00:17:09.5Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").ok(), Some(0));
        assert_eq!(format_rfc3339_nano(0), "1970-01-01T00:00:00Z");
        for bad in [
            "",
            "2016-10-06",
            "2016-13-06T00:00:00Z",
            "2016-10-06T00:00:00",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }
}
