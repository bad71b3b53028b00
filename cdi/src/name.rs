//! Qualified device names: `vendor.com/class=name`.

use crate::CdiError;

/// A parsed `vendor/class=name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    pub vendor: String,
    pub class: String,
    pub device: String,
}

impl QualifiedName {
    pub fn parse(text: &str) -> Result<QualifiedName, CdiError> {
        let bad = || CdiError::BadName(text.to_owned());
        let (kind, device) = text.split_once('=').ok_or_else(bad)?;
        let (vendor, class) = parse_kind(kind).ok_or_else(bad)?;
        if !valid_device_name(device) {
            return Err(bad());
        }
        Ok(QualifiedName {
            vendor: vendor.to_owned(),
            class: class.to_owned(),
            device: device.to_owned(),
        })
    }

    /// `vendor/class`.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.vendor, self.class)
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.device)
    }
}

/// Splits and checks a spec's `kind` (`vendor/class`). The vendor is a domain-like name
/// (letters, digits, `-`, `_`, `.`; starting and ending alphanumeric); the class the same
/// without dots.
pub(crate) fn parse_kind(kind: &str) -> Option<(&str, &str)> {
    let (vendor, class) = kind.split_once('/')?;
    let edges_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let vendor_ok = edges_ok(vendor)
        && vendor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let class_ok = edges_ok(class)
        && class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    (vendor_ok && class_ok).then_some((vendor, class))
}

/// A device name: letters, digits, `-`, `_`, `.`, `:`; starting and ending alphanumeric.
pub(crate) fn valid_device_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_are_refused() {
        let n = QualifiedName::parse("vendor.example.com/gpu=card-0").unwrap();
        assert_eq!(
            (n.vendor.as_str(), n.class.as_str(), n.device.as_str()),
            ("vendor.example.com", "gpu", "card-0")
        );
        assert_eq!(n.to_string(), "vendor.example.com/gpu=card-0");
        for bad in [
            "",
            "gpu=0",
            "vendor.com/gpu",
            "vendor.com/=0",
            "/gpu=0",
            "vendor.com/g.pu=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=0/../x",
            "vendor.com/gpu=a b",
        ] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
