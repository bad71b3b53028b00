//! Where and why `apply -f` input does not parse: the document and `List` item, and every
//! problem of one input (kubectl's wording).

use super::*;

/// Where in the input a problem is: the document (from 0) and, inside a `List`, the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The document's index in the stream, from 0.
    pub document: usize,
    /// The item's index in a `List`'s `items`.
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(i) = self.item {
            write!(f, " item {i}")?;
        }
        Ok(())
    }
}

/// What is wrong with one document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is not YAML or JSON.
    #[error("error parsing input: {0}")]
    Syntax(String),
    /// `apiVersion` or `kind` is missing.
    #[error("{at}: error validating data: {} not set", .missing.join(" and "))]
    NotSet {
        /// Where.
        at: Location,
        /// `apiVersion`, `kind`, or both.
        missing: Vec<&'static str>,
    },
    /// A document that is not a JSON/YAML object.
    #[error("{at}: expected an object, found {found}")]
    NotAnObject {
        /// Where.
        at: Location,
        /// What was found (`a string`, `an array`...).
        found: &'static str,
    },
    /// A kind Corral does not run.
    #[error(
        "{at}: no matches for kind {kind:?} in version {api_version:?} (supported: v1 Pod, ConfigMap, Secret, Namespace, List)"
    )]
    Unsupported {
        /// Where.
        at: Location,
        /// The document's `apiVersion`.
        api_version: String,
        /// The document's `kind`.
        kind: String,
    },
    /// Fields the type does not have (strict decoding).
    #[error("{at}: {kind} in version \"v1\" cannot be handled as a {kind}: strict decoding error: {}",
        .fields.iter().map(|f| format!("unknown field {f:?}")).collect::<Vec<_>>().join(", "))]
    UnknownFields {
        /// Where.
        at: Location,
        /// The kind being decoded.
        kind: &'static str,
        /// Every unknown field's path, as `spec.containers[0].imagee`.
        fields: Vec<String>,
    },
    /// A value of the wrong type.
    #[error("{at}: {kind} in version \"v1\" cannot be handled as a {kind}: {path}: {msg}")]
    Decode {
        /// Where.
        at: Location,
        /// The kind being decoded.
        kind: &'static str,
        /// The path of the bad value.
        path: String,
        /// What was wrong.
        msg: String,
    },
}

impl Error {
    /// Where the problem is, for the errors that belong to one document.
    pub fn location(&self) -> Option<Location> {
        match self {
            Error::Syntax(_) => None,
            Error::NotSet { at, .. }
            | Error::NotAnObject { at, .. }
            | Error::Unsupported { at, .. }
            | Error::UnknownFields { at, .. }
            | Error::Decode { at, .. } => Some(*at),
        }
    }
}

/// Every problem of one input (all documents are checked, not just up to the first bad one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct Errors(pub Vec<Error>);
