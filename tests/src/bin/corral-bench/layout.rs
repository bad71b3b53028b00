//! Whether corrald's text layout list still names the binary's functions.
//!
//! corrald's release build links its functions in the order of `daemon/text-order.txt`
//! (ARCHITECTURE.md, "Memory"); names the binary no longer has are skipped. Symbol names carry
//! a hash of their crate's build metadata, so a dependency added to corrald renames a third of
//! the list at once (idle memory 1.7 MiB higher), and ThinLTO's `.llvm.<hash>` names change
//! with any edit to the code they come from. The bench says how much of the list the measured
//! binary has.

use std::collections::HashSet;
use std::path::Path;

/// Below this share of the list found, the bench calls the layout stale.
const STALE_BELOW: f64 = 0.9;

/// A line for the bench's header; `None` when `nm` cannot read the binary.
pub fn report(corrald: &Path) -> Option<String> {
    let list = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/text-order.txt"),
    )
    .ok()?;
    let out = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(corrald)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let symbols = String::from_utf8_lossy(&out.stdout);
    let have: HashSet<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let wanted: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    let found = wanted.iter().filter(|n| have.contains(*n)).count();
    let share = found as f64 / wanted.len().max(1) as f64;
    Some(format!(
        "# corrald's text layout: {found} of the {} functions in daemon/text-order.txt are in this binary ({:.0} %){}",
        wanted.len(),
        share * 100.0,
        if share < STALE_BELOW {
            ": the list is stale (or this is not a release build); idle memory will be higher until scripts/text-order.sh is rerun"
        } else {
            ""
        }
    ))
}
