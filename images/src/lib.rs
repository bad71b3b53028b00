//! Corral image management: references, registries, content store, unpacking, snapshots.

pub mod unpack;
