//! Images: references, the content-addressed store, the registry client (pull and push),
//! load/import/save, and safe layer unpacking.
//!
//! The store lives under `StateRoot::images_dir()` (see [`store`] for the layout). Other modules
//! open it with [`ImageStore::open`], resolve a reference or id with [`ImageStore::resolve`], and
//! mount an image's layers from [`ImageStore::layer_dirs`] (or the short links of
//! [`ImageStore::layer_links`], relative to [`ImageStore::dir`]).

pub mod archive;
pub mod auth;
pub mod change;
pub mod digest;
pub mod error;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::ImageError;
pub use platform::Platform;
pub use progress::{Progress, ProgressMode};
pub use pull::{PullItem, PullOptions, PullPolicy, pull, pull_many};
pub use push::{PushOptions, push};
pub use reference::Reference;
pub use store::{Image, ImageStore, Layer};
