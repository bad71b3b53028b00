//! Corral image management: references, registries, content store, unpacking, snapshots.
//!
//! [`ImageManager`] is the entry point: it pulls images through [`registry`] (endpoints from
//! [`hosts`], credentials from [`auth`]), stores blobs in the [`content`] store, unpacks layers
//! with [`unpack`] into [`snapshot`]s, and keeps an [`store::ImageRecord`] per image.

pub mod auth;
pub mod content;
pub mod digest;
pub mod error;
mod fsutil;
pub mod hosts;
pub mod manager;
mod pull;
mod reclaim;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;
pub mod user;

pub use auth::{Credentials, CredentialsFile};
pub use digest::Digest;
pub use error::ImageError;
pub use hosts::HostsConfig;
pub use manager::{ImageConfig, ImageManager, MinRate, Platform, Usage};
pub use reference::ImageRef;
pub use store::{ConfigSummary, ImageRecord};
