//! Field errors as the API server reports them: `spec.containers[1].name: Duplicate value: "web"`.

use std::fmt;

/// What is wrong with a field (the API server's `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The field is missing or empty.
    Required,
    /// The value is malformed.
    Invalid,
    /// The value appears twice where it must be unique.
    Duplicate,
    /// The value is not one of the supported values.
    NotSupported,
    /// The field names something that does not exist.
    NotFound,
    /// The field may not be set (in this combination).
    Forbidden,
    /// The value is too long.
    TooLong,
}

impl ErrorType {
    /// The text the API server prints for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::NotFound => "Not found",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
        }
    }
}

/// A value as the API server quotes it in an error: strings quoted, numbers bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// A string, printed Go-quoted (`"Foo_"`).
    Str(String),
    /// A number, printed bare (`70000`).
    Int(i64),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => write!(f, "{s:?}"),
            BadValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// One field error: which field, what kind of error, the bad value and a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: ErrorType,
    /// The field's path, as `spec.containers[0].image`.
    pub field: String,
    /// The offending value, for the kinds that print one.
    pub value: Option<BadValue>,
    /// Extra explanation (may be empty).
    pub detail: String,
}

impl FieldError {
    fn new(kind: ErrorType, field: &str, value: Option<BadValue>, detail: &str) -> Self {
        FieldError {
            kind,
            field: field.to_string(),
            value,
            detail: detail.to_string(),
        }
    }
    /// `field: Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(ErrorType::Required, field, None, detail)
    }
    /// `field: Invalid value: "v": detail`.
    pub fn invalid(field: &str, value: impl Into<BadValue>, detail: &str) -> Self {
        Self::new(ErrorType::Invalid, field, Some(value.into()), detail)
    }
    /// `field: Duplicate value: "v"`.
    pub fn duplicate(field: &str, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::Duplicate, field, Some(value.into()), "")
    }
    /// `field: Unsupported value: "v": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let detail = format!("supported values: {}", list.join(", "));
        Self::new(ErrorType::NotSupported, field, Some(value.into()), &detail)
    }
    /// `field: Not found: "v"`.
    pub fn not_found(field: &str, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::NotFound, field, Some(value.into()), "")
    }
    /// `field: Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(ErrorType::Forbidden, field, None, detail)
    }
    /// `field: Too long: may not be more than N bytes`.
    pub fn too_long(field: &str, max: usize) -> Self {
        let detail = format!("may not be more than {max} bytes");
        Self::new(ErrorType::TooLong, field, None, &detail)
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}
impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}
impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i64::from(i))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.as_str())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// Every field error of one object, printed as the API server does:
/// `Pod "web" is invalid: [a: ..., b: ...]` (brackets only when there are several).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} is invalid: {}", list(.errors))]
pub struct FieldErrors {
    /// The object's kind (`Pod`).
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The errors, in the order they were found.
    pub errors: Vec<FieldError>,
}

fn list(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if parts.len() == 1 {
        parts.join("")
    } else {
        format!("[{}]", parts.join(", "))
    }
}

/// Joins a field path and a child name: `child("spec", "containers")` is `spec.containers`.
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// Appends an index: `index("spec.containers", 0)` is `spec.containers[0]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Appends a map key: `key("metadata.labels", "a")` is `metadata.labels[a]`.
pub fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api_server() {
        assert_eq!(
            FieldError::duplicate("spec.containers[1].name", "web").to_string(),
            r#"spec.containers[1].name: Duplicate value: "web""#
        );
        assert_eq!(
            FieldError::required("spec.containers[0].image", "").to_string(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"])
                .to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never""#
        );
        assert_eq!(
            FieldError::invalid(
                "spec.containers[0].ports[0].containerPort",
                70000,
                "must be between 1 and 65535, inclusive"
            )
            .to_string(),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn lists_several_in_brackets() {
        let one = FieldErrors {
            kind: "Pod".into(),
            name: "web".into(),
            errors: vec![FieldError::required("spec.containers", "")],
        };
        assert_eq!(
            one.to_string(),
            r#"Pod "web" is invalid: spec.containers: Required value"#
        );
        let two = FieldErrors {
            errors: vec![
                FieldError::required("a", ""),
                FieldError::forbidden("b", "no"),
            ],
            ..one
        };
        assert_eq!(
            two.to_string(),
            r#"Pod "web" is invalid: [a: Required value, b: Forbidden: no]"#
        );
    }
}
