//! Resumable requests, the origin side (docs/PROTOCOL.md part B).
//! (module docs are written below, once the layer exists)

mod id;
mod owner;
pub mod store;

pub use self::id::{InvalidResourceId, ResourceId};
pub use self::owner::{Owner, OwnerOf};
