//! The mount table of this mount namespace (`/proc/self/mountinfo`).

use std::path::PathBuf;

/// Every mount point, with its file system type, in the table's order.
pub fn mount_points() -> std::io::Result<Vec<(PathBuf, String)>> {
    // Bytes, decoded lossily: one mount point that is not UTF-8 (any user's FUSE mount) must not
    // fail the whole read, as `read_to_string` did. Such a point comes out changed.
    let bytes = std::fs::read("/proc/self/mountinfo")?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            Some((PathBuf::from(unescape(point)), fstype.to_string()))
        })
        .collect())
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
