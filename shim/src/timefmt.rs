//! RFC 3339 timestamps for the CRI log records and the shim's own log: `corral_fsutil::time`,
//! named here for the shim's modules.

pub use corral_fsutil::time::{rfc3339_nano, unix_nanos};
