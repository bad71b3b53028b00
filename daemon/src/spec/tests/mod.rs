//! Tests of the spec module.
