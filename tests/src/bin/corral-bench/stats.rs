//! Medians, 90th percentiles and the plain-text table.

use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Nearest-rank 90th percentile.
pub fn p90(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let rank = (v.len() * 9).div_ceil(10).max(1);
    v[rank - 1]
}

pub fn header() {
    println!(
        "  {:<22} {:>12} {:>10} {:>16} {:>10} {:>8}",
        "operation", "corral med", "p90", "containerd med", "p90", "ratio"
    );
}

/// One row: medians and p90s in ms; returns the ratio of medians corral/containerd.
pub fn row(label: &str, c: &[Duration], d: &[Duration]) -> f64 {
    let (mc, md) = (median(c), median(d));
    let ratio = mc.as_secs_f64() / md.as_secs_f64().max(1e-9);
    println!(
        "  {:<22} {:>9.2} ms {:>7.2} ms {:>13.2} ms {:>7.2} ms {:>8.3}",
        label,
        ms(mc),
        ms(p90(c)),
        ms(md),
        ms(p90(d)),
        ratio
    );
    ratio
}

pub fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}
