//! validate
/// The namespace of objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";
