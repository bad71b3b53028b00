//! The image config `User` (`uid`, `uid:gid`, `name`, `name:group`), parsed in one place for
//! every reader: ImageStatus (the uid or user name the kubelet checks `runAsNonRoot` against),
//! the pod manager's own `runAsNonRoot` check, and the spec builder.
//!
//! Two parsers that disagree are a root bypass: `4294967296` once counted as a non-root number
//! in ImageStatus (parsed as i64) and was then looked up as a *name* in the image's
//! `/etc/passwd` (parsed as u32 or else a name), where the image mapped it to uid 0.
//!
//! The rule is strict. A part that looks like a number (after trimming whitespace and one `+` or
//! `-`, only ASCII digits remain) must be written canonically: plain decimal digits, no sign, no
//! whitespace, no leading zeros (`0` itself excepted), at most 4294967294 (4294967295 is
//! `(uid_t)-1`, which means "no id" to the kernel). Anything else that looks numeric (`-1`, `+0`,
//! ` 0`, `00`, `4294967296`) is an error naming it, never a name: Go's `strconv` (containerd,
//! the kubelet, runc) accepts `+0` and `00` as 0 and rejects ` 0`, so readers disagree on these
//! forms, and an image has no reason to use them. Every other part is a name, looked up in the
//! image's `/etc/passwd` or `/etc/group`.

use std::fmt;

/// The largest valid uid or gid: `u32::MAX` is `(uid_t)-1`.
pub const MAX_ID: u32 = u32::MAX - 1;

/// A user or group as the image names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id<'a> {
    /// A numeric id.
    Num(u32),
    /// A name, to look up in the image's `/etc/passwd` or `/etc/group`.
    Name(&'a str),
}

/// A parsed image `User`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageUser<'a> {
    /// The user; `None` when `User` is empty (the image runs as root).
    pub user: Option<Id<'a>>,
    /// The group after `:`, if one is given.
    pub group: Option<Id<'a>>,
}

/// Why a number-like id is not a valid id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadId {
    /// `-1`.
    Negative,
    /// `+0`.
    Sign,
    /// ` 0`.
    Whitespace,
    /// `00`.
    LeadingZero,
    /// Above [`MAX_ID`].
    OutOfRange,
}

impl fmt::Display for BadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadId::Negative => "is negative",
            BadId::Sign => "has a sign",
            BadId::Whitespace => "has whitespace around a number",
            BadId::LeadingZero => "has leading zeros",
            BadId::OutOfRange => "is out of range (the largest id is 4294967294)",
        })
    }
}

/// An image `User` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A number-like user or group that is not a valid id.
    #[error("image config User {value:?}: {what} {part:?} {reason}: not a valid {what} id")]
    BadId {
        /// The whole `User` value.
        value: String,
        /// `user` or `group`.
        what: &'static str,
        /// The offending part.
        part: String,
        /// What is wrong with it.
        reason: BadId,
    },
    /// `:gid` (or `:`) without a user, or more than one `:`.
    #[error("image config User {value:?}: {reason}")]
    Malformed {
        /// The whole `User` value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Parses one user or group: a canonical number is an id, anything else that looks numeric is
/// an error, the rest is a name.
pub fn parse_id(s: &str) -> Result<Id<'_>, BadId> {
    let trimmed = s.trim();
    let (sign, digits) = match trimmed.as_bytes().first() {
        Some(b'+' | b'-') => (trimmed.as_bytes()[0], &trimmed[1..]),
        _ => (0, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Id::Name(s));
    }
    if sign == b'-' && digits.bytes().any(|b| b != b'0') {
        return Err(BadId::Negative);
    }
    if sign != 0 {
        return Err(BadId::Sign);
    }
    if trimmed.len() != s.len() {
        return Err(BadId::Whitespace);
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(BadId::LeadingZero);
    }
    match digits.parse::<u32>() {
        Ok(n) if n <= MAX_ID => Ok(Id::Num(n)),
        _ => Err(BadId::OutOfRange),
    }
}

/// Parses an image config `User`: empty, `user` or `user:group`, each part a number or a name.
/// An empty group (`1000:`) is no group.
pub fn parse_user(value: &str) -> Result<ImageUser<'_>, UserError> {
    let (user, group) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    let malformed = |reason| UserError::Malformed {
        value: value.to_owned(),
        reason,
    };
    if group.is_some_and(|g| g.contains(':')) {
        return Err(malformed("more than one ':'"));
    }
    if user.is_empty() && group.is_some() {
        return Err(malformed("has a ':' but no user"));
    }
    let id = |what, part| {
        parse_id(part).map_err(|reason| UserError::BadId {
            value: value.to_owned(),
            what,
            part: part.to_owned(),
            reason,
        })
    };
    Ok(ImageUser {
        user: if user.is_empty() {
            None
        } else {
            Some(id("user", user)?)
        },
        group: match group {
            Some(g) if !g.is_empty() => Some(id("group", g)?),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_forms() {
        let u = |s| parse_user(s).unwrap();
        assert_eq!(u(""), ImageUser::default());
        assert_eq!(u("0").user, Some(Id::Num(0)));
        assert_eq!(
            u("1000:50"),
            ImageUser {
                user: Some(Id::Num(1000)),
                group: Some(Id::Num(50))
            }
        );
        assert_eq!(u("4294967294").user, Some(Id::Num(MAX_ID)));
        assert_eq!(
            u("nobody:nogroup"),
            ImageUser {
                user: Some(Id::Name("nobody")),
                group: Some(Id::Name("nogroup"))
            }
        );
        assert_eq!(
            u("1000:"),
            ImageUser {
                user: Some(Id::Num(1000)),
                group: None
            }
        );
        // Not numbers: names, looked up (and refused if absent) in the image's files.
        assert_eq!(u("1e3").user, Some(Id::Name("1e3")));
        assert_eq!(u("0x0").user, Some(Id::Name("0x0")));
        assert_eq!(u("-").user, Some(Id::Name("-")));
    }

    #[test]
    fn number_like_values_that_are_not_ids_are_errors_naming_them() {
        let cases = [
            ("4294967296", "user", "4294967296", BadId::OutOfRange),
            ("4294967295", "user", "4294967295", BadId::OutOfRange),
            (
                "99999999999999999999999",
                "user",
                "99999999999999999999999",
                BadId::OutOfRange,
            ),
            ("-1", "user", "-1", BadId::Negative),
            ("-0", "user", "-0", BadId::Sign),
            ("+0", "user", "+0", BadId::Sign),
            ("00", "user", "00", BadId::LeadingZero),
            ("0100", "user", "0100", BadId::LeadingZero),
            (" 0", "user", " 0", BadId::Whitespace),
            ("0\n", "user", "0\n", BadId::Whitespace),
            ("1000:-1", "group", "-1", BadId::Negative),
            ("nobody: 0", "group", " 0", BadId::Whitespace),
        ];
        for (value, what, part, reason) in cases {
            assert_eq!(
                parse_user(value),
                Err(UserError::BadId {
                    value: value.into(),
                    what,
                    part: part.into(),
                    reason
                }),
                "{value:?}"
            );
        }
        let e = parse_user("4294967296:4294967296").unwrap_err();
        assert_eq!(
            e.to_string(),
            "image config User \"4294967296:4294967296\": user \"4294967296\" is out of range \
             (the largest id is 4294967294): not a valid user id"
        );
    }

    #[test]
    fn malformed_values() {
        assert!(matches!(parse_user(":0"), Err(UserError::Malformed { .. })));
        assert!(matches!(
            parse_user("a:b:c"),
            Err(UserError::Malformed { .. })
        ));
        assert!(matches!(parse_user(":"), Err(UserError::Malformed { .. })));
    }
}
