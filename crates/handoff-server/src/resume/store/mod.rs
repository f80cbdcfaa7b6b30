//! The storage behind resumable requests: one small async trait, two implementations.
//!
//! A [`Store`] holds, per [`ResourceId`], what docs/PROTOCOL.md part B needs to outlive a
//! connection: the request head, the owner and the resource's limits, the request-content
//! bytes received so far (with the complete length once known), and the recorded final
//! response. It is the resource core that every wire dialect shares: the resumable-request
//! front in this module today, the IETF resumable-upload protocol later.
//!
//! The trait is shaped for a store that a fleet of origins shares over the network:
//!
//! - every operation is async and returns a boxed future ([`StoreFuture`]), so
//!   `Arc<dyn Store>` works and an implementation can do I/O;
//! - [`append`](Store::append) is a compare-and-append: it succeeds only when `offset`
//!   equals the length held, so two writers can never interleave bytes, wherever they run;
//! - limits travel with the resource ([`NewResource::max_bytes`]) and quotas are checked by
//!   [`create`](Store::create) itself, atomically with the insertion;
//! - nothing assumes that the writer and the handler live in one process: the handler's body
//!   learns about new bytes through [`changed`](Store::changed), not through a local channel.
//!
//! [`MemoryStore`] is the default; [`DiskStore`] keeps everything in a directory and survives
//! a restart of the process, even `kill -9`.

#[cfg(test)]
mod contract;
mod disk;
mod memory;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

pub use self::disk::DiskStore;
pub use self::memory::{MemoryStore, DEFAULT_MEMORY_STORE_BYTES};
use super::{Owner, ResourceId};

/// The future every [`Store`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What a store keeps of the request that created a resource: enough to run the handler
/// again in another process (docs/PROTOCOL.md part B.3: the handler sees the original
/// request, with the body completed by later `PATCH`es).
#[derive(Debug, Clone)]
pub struct StoredHead {
    /// The request method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The protocol version of the original exchange.
    pub version: Version,
    /// The request headers.
    pub headers: HeaderMap,
}

impl StoredHead {
    /// The head of `parts`, without its extensions (they cannot be stored).
    pub fn from_parts(parts: &http::request::Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }

    /// A request with this head and `body`.
    pub fn to_request<B>(&self, body: B) -> http::Request<B> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// A resource to create: what the first request tells about it.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// The request head.
    pub head: StoredHead,
    /// Who may see and continue it.
    pub owner: Owner,
    /// The body's length, when the request announced it (`Content-Length`).
    pub complete_length: Option<u64>,
    /// The most body bytes this resource may hold.
    pub max_bytes: u64,
    /// `resume=save-incomplete` (true, the default) or `ignore-incomplete` (false): whether
    /// an interrupted body waits for a `PATCH` or ends the operation.
    pub keep_incomplete: bool,
}

/// The bounds a store checks when it creates a resource. They count *open* operations: those
/// with no recorded response yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Resources open at once (every owner together).
    pub max_open: usize,
    /// Resources open at once for one owner.
    pub max_open_per_owner: usize,
}

/// A snapshot of one resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its id.
    pub id: ResourceId,
    /// The request head.
    pub head: StoredHead,
    /// Who may see and continue it.
    pub owner: Owner,
    /// Body bytes received: the offset the next byte goes to. Never more than are stored.
    pub length: u64,
    /// The body's complete length, once known.
    pub complete_length: Option<u64>,
    /// The most body bytes the resource may hold.
    pub max_bytes: u64,
    /// See [`NewResource::keep_incomplete`].
    pub keep_incomplete: bool,
    /// The upload was given up (idle too long, or `ignore-incomplete` and cut): no more
    /// bytes are accepted; the handler's body ended with an error.
    pub abandoned: bool,
    /// When the final response was recorded, if it was.
    pub responded_at: Option<SystemTime>,
    /// When anything last changed.
    pub updated_at: SystemTime,
    /// Bumped by every change; see [`Store::changed`].
    pub version: u64,
}

impl Resource {
    /// Whether every body byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.complete_length == Some(self.length)
    }
}

/// A recorded final response (docs/PROTOCOL.md part B.5): what `GET` on the
/// response-message resource serves as `message/http`.
#[derive(Debug, Clone)]
pub struct RecordedResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Why a store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// No such resource (never created, removed, or expired).
    NotFound,
    /// [`Store::append`] at an offset other than the length held.
    Conflict {
        /// The length held.
        held: u64,
    },
    /// The bytes would take the resource past its [`Resource::max_bytes`].
    TooLarge {
        /// The resource's limit.
        max: u64,
    },
    /// A complete length that contradicts what is known (an earlier complete length, or
    /// bytes already held past it).
    LengthMismatch {
        /// The length held.
        held: u64,
        /// The complete length known before, if any.
        known: Option<u64>,
    },
    /// The store is out of room for now (the memory store's byte budget); retry once the
    /// handlers have consumed what they hold.
    Full {
        /// The store's budget.
        max_bytes: u64,
    },
    /// [`Store::create`] would exceed a [`Quota`].
    QuotaExceeded {
        /// Whether the per-owner bound (rather than the total) was hit.
        per_owner: bool,
        /// The bound.
        max: usize,
    },
    /// The bytes asked for were released and are not kept.
    NotKept,
    /// The upload was abandoned; it takes no more bytes.
    Abandoned,
    /// The storage itself failed.
    Io(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such resource"),
            Self::Conflict { held } => write!(f, "the resource holds {held} bytes"),
            Self::TooLarge { max } => write!(f, "the body would exceed its limit of {max} bytes"),
            Self::LengthMismatch { held, known } => match known {
                Some(known) => write!(f, "the complete length is {known} bytes ({held} held)"),
                None => write!(f, "{held} bytes are already held"),
            },
            Self::Full { max_bytes } => {
                write!(f, "the store holds its maximum of {max_bytes} bytes")
            }
            Self::QuotaExceeded {
                per_owner: true,
                max,
            } => {
                write!(f, "this party already has {max} open operations")
            }
            Self::QuotaExceeded {
                per_owner: false,
                max,
            } => {
                write!(f, "the server already has {max} open operations")
            }
            Self::NotKept => f.write_str("those bytes are not kept"),
            Self::Abandoned => f.write_str("the upload was abandoned"),
            Self::Io(error) => write!(f, "storage failed: {error}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// Waits until `versions` (a resource's version channel) passes `seen`: the in-process
/// half of [`Store::changed`] for stores that keep a `watch` per resource. A closed
/// channel (the resource was removed) is [`StoreError::NotFound`].
pub(crate) async fn newer_than(
    mut versions: tokio::sync::watch::Receiver<u64>,
    seen: u64,
) -> Result<u64, StoreError> {
    let version = versions
        .wait_for(|version| *version > seen)
        .await
        .map_err(|_| StoreError::NotFound)?;
    Ok(*version)
}

/// Where resumable operations live between connections. See the [module docs](self).
///
/// Every method names the resource by id and fails with [`StoreError::NotFound`] when it
/// does not exist. Every change bumps [`Resource::version`] and wakes
/// [`changed`](Self::changed).
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Creates a resource with no body bytes, unless that would exceed `quota`.
    fn create(&self, id: ResourceId, resource: NewResource, quota: Quota) -> StoreFuture<'_, ()>;

    /// A snapshot of the resource.
    fn get(&self, id: ResourceId) -> StoreFuture<'_, Resource>;

    /// Appends `data` at `offset`, only if `offset` is the length held
    /// ([`StoreError::Conflict`] otherwise), within the resource's `max_bytes` and the
    /// store's room. Returns the new length.
    fn append(&self, id: ResourceId, offset: u64, data: Bytes) -> StoreFuture<'_, u64>;

    /// Records the body's complete length ([`StoreError::LengthMismatch`] if it contradicts
    /// an earlier one or the bytes held, [`StoreError::TooLarge`] past `max_bytes`).
    fn set_complete_length(&self, id: ResourceId, length: u64) -> StoreFuture<'_, ()>;

    /// Up to `max` held bytes from `offset`: possibly fewer (a store may return what one
    /// of its chunks holds), but at least one unless `offset` is the length held (then
    /// empty). [`StoreError::NotKept`] for bytes that were released.
    fn read(&self, id: ResourceId, offset: u64, max: usize) -> StoreFuture<'_, Bytes>;

    /// Tells the store that the handler has consumed every byte below `upto`: a store that
    /// does not keep content may free them.
    fn release(&self, id: ResourceId, upto: u64) -> StoreFuture<'_, ()>;

    /// Whether consumed bytes stay readable ([`read`](Self::read) after
    /// [`release`](Self::release)). Decides between serving `GET` on the request-content
    /// resource and `405` (docs/PROTOCOL.md part B.8).
    fn keeps_content(&self) -> bool;

    /// Makes the bytes held durable, and returns how many are: the `Acknowledge` offset
    /// (docs/PROTOCOL.md part B.9), the bytes a client may free.
    fn sync(&self, id: ResourceId) -> StoreFuture<'_, u64>;

    /// Gives the upload up: no more bytes are accepted, and the held ones may be freed.
    fn abandon(&self, id: ResourceId) -> StoreFuture<'_, ()>;

    /// Records the final response, once.
    fn record_response(&self, id: ResourceId, response: RecordedResponse) -> StoreFuture<'_, ()>;

    /// The recorded final response, if there is one yet.
    fn response(&self, id: ResourceId) -> StoreFuture<'_, Option<RecordedResponse>>;

    /// Forgets the resource and everything it holds. Removing an unknown id is not an error.
    fn remove(&self, id: ResourceId) -> StoreFuture<'_, ()>;

    /// Resolves with the resource's version once it is greater than `seen` (at once if it
    /// already is); [`StoreError::NotFound`] if the resource is removed meanwhile. Callers
    /// bound the wait with their own deadline.
    fn changed(&self, id: ResourceId, seen: u64) -> StoreFuture<'_, u64>;

    /// Every resource id held, for expiry sweeps and for finding the operations a previous
    /// process left unfinished.
    fn list(&self) -> StoreFuture<'_, Vec<ResourceId>>;
}
