//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) and the kubelet's
//! conversions of a container's resources into the numbers of CRI `LinuxContainerResources`:
//! cpu shares, CFS quota and period, memory limit, and `oom_score_adj` from the pod's QoS class.
//!
//! A quantity is kept exactly in nano-units (10⁻⁹), the finest precision Kubernetes keeps;
//! finer digits round up, as the API server does.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form `<number><suffix>`. The message is the API server's.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// Too large to hold.
    #[error("quantity too large")]
    TooLarge,
}

/// A resource quantity, exact to the nano-unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

const NANO: i128 = 1_000_000_000;

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    /// A quantity of `n` whole units.
    pub fn from_units(n: i64) -> Self {
        Quantity {
            nanos: i128::from(n) * NANO,
        }
    }

    /// A quantity of `m` thousandths (`100m`).
    pub fn from_milli(m: i64) -> Self {
        Quantity {
            nanos: i128::from(m) * 1_000_000,
        }
    }

    /// Parses a quantity as the API server does.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = bytes.first()
            && (c == b'+' || c == b'-')
        {
            negative = c == b'-';
            i = 1;
        }
        let mut mantissa: i128 = 0;
        let mut frac_digits: i32 = 0;
        let mut digits = 0;
        let mut seen_dot = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_digit() {
                // Digits beyond what i128 holds are only accepted as trailing fraction zeros.
                if mantissa > i128::MAX / 100 {
                    if seen_dot && c == b'0' {
                        i += 1;
                        continue;
                    }
                    return Err(QuantityError::TooLarge);
                }
                mantissa = mantissa * 10 + i128::from(c - b'0');
                digits += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if digits == 0 {
            return Err(QuantityError::Format);
        }
        let suffix = &s[i..];
        // value = mantissa * 10^(exp10 - frac_digits) * 2^(exp2), in units.
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let rest = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or(QuantityError::Format)?;
                let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) || body.len() > 4 {
                    return Err(QuantityError::Format);
                }
                let e: i32 = rest.parse().map_err(|_| QuantityError::Format)?;
                (e, 0)
            }
        };
        let mut num = mantissa
            .checked_mul(1i128 << exp2)
            .ok_or(QuantityError::TooLarge)?;
        let scale = exp10 - frac_digits + 9; // to nanos
        if scale >= 0 {
            let f = 10i128
                .checked_pow(scale.unsigned_abs())
                .ok_or(QuantityError::TooLarge)?;
            num = num.checked_mul(f).ok_or(QuantityError::TooLarge)?;
        } else {
            match 10i128.checked_pow(scale.unsigned_abs()) {
                Some(f) => num = ceil_div(num, f),
                // Smaller than any nano: rounds up to one nano (or zero).
                None => num = i128::from(num != 0),
            }
        }
        if num > i128::from(i64::MAX) * NANO {
            return Err(QuantityError::TooLarge);
        }
        Ok(Quantity {
            nanos: if negative { -num } else { num },
        })
    }

    /// Parses a k8s-openapi quantity.
    pub fn from_k8s(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, QuantityError> {
        Self::parse(&q.0)
    }

    /// The value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Whole units, rounded up (Kubernetes' `Value()`).
    pub fn value(&self) -> i64 {
        saturate(ceil_div(self.nanos, NANO))
    }

    /// Thousandths, rounded up (Kubernetes' `MilliValue()`).
    pub fn milli_value(&self) -> i64 {
        saturate(ceil_div(self.nanos, 1_000_000))
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    /// Prints the quantity in units, milli-units or nano-units, whichever is exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

/// Fewest cpu shares the kubelet gives (also what a zero request gets).
pub const MIN_SHARES: u64 = 2;
/// Most cpu shares.
pub const MAX_SHARES: u64 = 262_144;
/// Shares per whole cpu.
pub const SHARES_PER_CPU: i64 = 1024;
/// The CFS period the kubelet uses, in microseconds.
pub const QUOTA_PERIOD: i64 = 100_000;
/// The smallest CFS quota the kubelet sets, in microseconds.
pub const MIN_QUOTA: i64 = 1000;

/// The kubelet's `MilliCPUToShares`: 0 → 2, 1000m → 1024, clamped to 2..=262144.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    let shares = milli_cpu.saturating_mul(SHARES_PER_CPU) / 1000;
    u64::try_from(shares)
        .unwrap_or(MIN_SHARES)
        .clamp(MIN_SHARES, MAX_SHARES)
}

/// The kubelet's `MilliCPUToQuota`: 0 (no limit) → 0, otherwise `milli * period / 1000`, at
/// least 1000.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA)
}

/// A pod's quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    /// Every container has cpu and memory limits equal to its requests.
    Guaranteed,
    /// Some requests or limits, not Guaranteed.
    Burstable,
    /// No cpu or memory requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The name as `status.qosClass` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

type Resources = BTreeMap<String, Quantity>;

fn parse_map(
    m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Resources {
    // Quantities that do not parse were refused by validation; here they count as absent.
    m.into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::from_k8s(v).ok().map(|q| (k.clone(), q)))
        .collect()
}

/// A container's limits.
pub fn limits(c: &Container) -> Resources {
    parse_map(c.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

/// A container's requests with the API server's defaulting: a resource with a limit and no
/// request requests its limit.
pub fn requests(c: &Container) -> Resources {
    let mut req = parse_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    for (k, v) in limits(c) {
        req.entry(k).or_insert(v);
    }
    req
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.into_iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
    })
}

/// The pod's QoS class (`GetPodQOS`), over containers and init containers, cpu and memory only.
pub fn qos_class(pod: &Pod) -> QosClass {
    let mut req: Resources = BTreeMap::new();
    let mut lim: Resources = BTreeMap::new();
    let mut guaranteed = true;
    for c in all_containers(pod) {
        for (name, q) in requests(c) {
            if (name == "cpu" || name == "memory") && q > Quantity::ZERO {
                req.entry(name).or_default().nanos += q.nanos;
            }
        }
        let mut found = 0;
        for (name, q) in limits(c) {
            if (name == "cpu" || name == "memory") && q > Quantity::ZERO {
                found += 1;
                lim.entry(name).or_default().nanos += q.nanos;
            }
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if req.is_empty() && lim.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed && req.len() == lim.len() && req.iter().all(|(k, v)| lim.get(k) == Some(v)) {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// `oom_score_adj` for a Guaranteed pod's containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// `oom_score_adj` for a BestEffort pod's containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// The kubelet's `GetContainerOOMScoreAdjust`: Guaranteed -997, BestEffort 1000, Burstable
/// `1000 - 1000 * memoryRequest / memoryCapacity` kept within 3..=999. (The kubelet's floor is
/// `1000 + GUARANTEED_OOM_SCORE_ADJ` = 3; kubernetes.io's table says 2.) A capacity of 0 or
/// less gives 999.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    if memory_capacity <= 0 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    let request = i128::from(requests(container).get("memory").map_or(0, Quantity::value));
    let adj = 1000 - (1000 * request) / i128::from(memory_capacity);
    let adj = i64::try_from(adj).unwrap_or(0);
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        1000 + GUARANTEED_OOM_SCORE_ADJ
    } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        adj - 1
    } else {
        adj
    }
}

/// What the kubelet puts in CRI `LinuxContainerResources` for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxResources {
    /// `cpu_shares`, from the cpu request (or limit when no request).
    pub cpu_shares: i64,
    /// `cpu_quota` in µs per period; 0 when there is no cpu limit.
    pub cpu_quota: i64,
    /// `cpu_period` in µs (always 100000).
    pub cpu_period: i64,
    /// `memory_limit_in_bytes`; 0 when there is no memory limit.
    pub memory_limit_in_bytes: i64,
    /// `oom_score_adj`.
    pub oom_score_adj: i64,
}

/// A container's CRI resources as the kubelet computes them (`calculateLinuxResources` plus
/// the OOM score). `memory_capacity` is the node's memory in bytes.
pub fn linux_resources(pod: &Pod, container: &Container, memory_capacity: i64) -> LinuxResources {
    let req = requests(container);
    let lim = limits(container);
    let milli = |m: &Resources, k: &str| m.get(k).map_or(0, Quantity::milli_value);
    LinuxResources {
        cpu_shares: i64::try_from(milli_cpu_to_shares(milli(&req, "cpu"))).unwrap_or(2),
        cpu_quota: milli_cpu_to_quota(milli(&lim, "cpu"), QUOTA_PERIOD),
        cpu_period: QUOTA_PERIOD,
        memory_limit_in_bytes: lim.get("memory").map_or(0, Quantity::value),
        oom_score_adj: oom_score_adj(pod, container, memory_capacity),
    }
}

impl PartialEq<i64> for Quantity {
    fn eq(&self, other: &i64) -> bool {
        self.nanos == i128::from(*other) * NANO
    }
}

impl PartialOrd<i64> for Quantity {
    fn partial_cmp(&self, other: &i64) -> Option<Ordering> {
        self.nanos.partial_cmp(&(i128::from(*other) * NANO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQ;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn parses_every_suffix_exactly() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("1").value(), 1);
        assert_eq!(q("128Mi").value(), 128 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("500Ki").value(), 512_000);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("2k").value(), 2000);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("250u").nanos(), 250_000);
        assert_eq!(q("7n").nanos(), 7);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("5.").value(), 5);
        assert_eq!(q("+3").value(), 3);
        assert_eq!(q("-3").value(), -3);
        assert_eq!(q("12e-3").milli_value(), 12);
        assert_eq!(q("1e+2").value(), 100);
        assert_eq!(q("0").value(), 0);
    }

    #[test]
    fn rounds_up_like_kubernetes() {
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("0.1m").milli_value(), 1);
        assert_eq!(q("0.1n").nanos(), 1);
        assert_eq!(q("1e-20").nanos(), 1);
        assert_eq!(q("1.0000000001").value(), 2);
        assert_eq!(q("0.5000").milli_value(), 500);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "m", "1x", "1.2.3", "1 Gi", "Gi", "1mi", "1KiB", "1e", "1e3.5", "--1", "1k2",
            "abc", "1e99999",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Quantity::parse("99999999999999999999999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(Quantity::parse("10Ei"), Err(QuantityError::TooLarge));
    }

    #[test]
    fn compares_across_suffixes() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("100m") < q("0.2"));
        assert!(q("3") > 2);
        assert_eq!(q("1500m").to_string(), "1500m");
        assert_eq!(q("2k").to_string(), "2000");
    }

    #[test]
    fn cpu_shares_and_quota() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(500_000), 262_144);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), 0);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, QUOTA_PERIOD), 200_000);
    }

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), KQ(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(cs: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: cs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&pod(vec![container(&[], &[])])),
            QosClass::BestEffort
        );
        let g = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(
            qos_class(&pod(vec![g.clone()])),
            QosClass::Guaranteed,
            "limits give requests"
        );
        let g2 = container(
            &[("cpu", "1000m"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1024Mi")],
        );
        assert_eq!(qos_class(&pod(vec![g2])), QosClass::Guaranteed);
        let b = container(&[("cpu", "500m")], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&pod(vec![b])), QosClass::Burstable);
        let only_cpu = container(&[], &[("cpu", "1")]);
        assert_eq!(qos_class(&pod(vec![only_cpu])), QosClass::Burstable);
        assert_eq!(
            qos_class(&pod(vec![g, container(&[], &[])])),
            QosClass::Burstable
        );
        let eph = container(&[("ephemeral-storage", "1Gi")], &[]);
        assert_eq!(qos_class(&pod(vec![eph])), QosClass::BestEffort);
    }

    #[test]
    fn oom_scores() {
        let cap = 8 * 1024 * 1024 * 1024;
        let g = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(oom_score_adj(&pod(vec![g.clone()]), &g, cap), -997);
        let be = container(&[], &[]);
        assert_eq!(oom_score_adj(&pod(vec![be.clone()]), &be, cap), 1000);
        let b = container(&[("memory", "2Gi")], &[]);
        assert_eq!(oom_score_adj(&pod(vec![b.clone()]), &b, cap), 750);
        let tiny = container(&[("cpu", "1m")], &[]);
        assert_eq!(oom_score_adj(&pod(vec![tiny.clone()]), &tiny, cap), 999);
        let huge = container(&[("memory", "8Gi")], &[]);
        assert_eq!(oom_score_adj(&pod(vec![huge.clone()]), &huge, cap), 3);
        assert_eq!(oom_score_adj(&pod(vec![huge.clone()]), &huge, 0), 999);
    }

    #[test]
    fn linux_resources_like_the_kubelet() {
        let c = container(
            &[("cpu", "250m"), ("memory", "64Mi")],
            &[("cpu", "500m"), ("memory", "128Mi")],
        );
        let r = linux_resources(&pod(vec![c.clone()]), &c, 1 << 33);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert!(r.oom_score_adj > 990 && r.oom_score_adj < 1000);
        let lim_only = container(&[], &[("cpu", "2")]);
        let r = linux_resources(&pod(vec![lim_only.clone()]), &lim_only, 1 << 33);
        assert_eq!(r.cpu_shares, 2048, "request defaults to limit");
        let none = container(&[], &[]);
        let r = linux_resources(&pod(vec![none.clone()]), &none, 1 << 33);
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.memory_limit_in_bytes,
                r.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
    }
}
