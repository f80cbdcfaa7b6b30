//! [`Owner`]: the party a resumable operation is bound to (docs/PROTOCOL.md part B.7).
//!
//! The server should check that the party resuming an operation is the party that started
//! it. Every resource records the [`Owner`] of the request that created it; a request from
//! another owner is answered exactly like a request for an unknown id (`404`), so the
//! existence of an operation leaks nothing.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use sha2::{Digest, Sha256};

/// An opaque, fixed-size identity: the SHA-256 of a credential, never the credential
/// itself, so a store (on disk, or shared by a fleet) holds nothing an attacker could
/// replay.
///
/// ```
/// use handoff_server::resume::Owner;
///
/// let alice = Owner::from_credential(b"Bearer alice");
/// assert_eq!(alice, Owner::from_credential(b"Bearer alice"));
/// assert_ne!(alice, Owner::from_credential(b"Bearer bob"));
/// assert_ne!(alice, Owner::anonymous());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner([u8; 32]);

impl Owner {
    /// The owner named by `credential` (an `Authorization` value, a session id, a client
    /// certificate fingerprint...), hashed.
    pub fn from_credential(credential: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"tower-handoff owner\0");
        hasher.update(credential);
        Self(hasher.finalize().into())
    }

    /// The owner of requests that carry no credential. All of them share it: without a
    /// credential, the 128 random bits of the location are the only protection.
    pub fn anonymous() -> Self {
        Self([0; 32])
    }

    /// Rebuilds an owner from [`as_bytes`](Self::as_bytes) (for stores).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes that identify this owner (for stores).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell owners apart in logs.
        write!(
            f,
            "Owner({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// How the layer tells who sent a request: a closure over the request head.
///
/// The default, [`OwnerOf::authorization`], hashes the `Authorization` header value;
/// requests without one are [`Owner::anonymous`]. The layer runs before your router's own
/// authentication, so it cannot tell a valid credential from an invented one: the owner
/// keeps one party out of another's operations, and the per-owner quota counts per
/// credential value. Where that matters, name the owner from an identity an outer layer
/// has verified (a request extension it sets), as in the example below.
///
/// ```
/// use handoff_server::resume::{Owner, OwnerOf};
///
/// let by_tenant = OwnerOf::new(|head: &http::request::Parts| {
///     head.headers
///         .get("x-tenant")
///         .map(|v| Owner::from_credential(v.as_bytes()))
///         .unwrap_or_else(Owner::anonymous)
/// });
/// let (head, ()) = http::Request::post("/").header("x-tenant", "7").body(()).unwrap().into_parts();
/// assert_eq!(by_tenant.owner(&head), Owner::from_credential(b"7"));
/// ```
#[derive(Clone)]
pub struct OwnerOf {
    f: Arc<dyn Fn(&Parts) -> Owner + Send + Sync>,
}

impl OwnerOf {
    /// Uses `f` to name the owner of each request.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&Parts) -> Owner + Send + Sync + 'static,
    {
        Self { f: Arc::new(f) }
    }

    /// The default: the `Authorization` header value, hashed.
    ///
    /// ```
    /// use handoff_server::resume::{Owner, OwnerOf};
    ///
    /// let (head, ()) = http::Request::get("/").header("authorization", "Bearer t").body(()).unwrap().into_parts();
    /// assert_eq!(OwnerOf::authorization().owner(&head), Owner::from_credential(b"Bearer t"));
    /// let (head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    /// assert_eq!(OwnerOf::authorization().owner(&head), Owner::anonymous());
    /// ```
    pub fn authorization() -> Self {
        Self::new(|head: &Parts| {
            head.headers
                .get(http::header::AUTHORIZATION)
                .map(|value| Owner::from_credential(value.as_bytes()))
                .unwrap_or_else(Owner::anonymous)
        })
    }

    /// The owner of the request with this head.
    pub fn owner(&self, head: &Parts) -> Owner {
        (self.f)(head)
    }
}

impl Default for OwnerOf {
    fn default() -> Self {
        Self::authorization()
    }
}

impl fmt::Debug for OwnerOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerOf").finish_non_exhaustive()
    }
}
