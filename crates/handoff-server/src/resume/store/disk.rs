//! [`DiskStore`]: resources in a directory, surviving a restart of the process.

mod format;
mod resource;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use self::resource::{DiskResource, CREATING, REMOVING};
use super::{NewResource, Quota, RecordedResponse, Resource, Store, StoreError, StoreFuture};
use crate::resume::{Owner, ResourceId};

/// The lock file in the store's directory; its name is not a resource id.
const LOCK: &str = "lock";

/// Resources kept in a directory: they survive a restart of the process, even `kill -9`.
/// See the [module docs](super).
///
/// # Layout
///
/// ```text
/// <dir>/lock              held with an exclusive advisory lock while the store is open
/// <dir>/<id>/meta.json    head, owner, limits, flags, timestamps (JSON)
/// <dir>/<id>/body         the body bytes received, in order
/// <dir>/<id>/response     the recorded final response
/// ```
///
/// `<id>` is the [`ResourceId`]'s `Display`, 32 hex digits: always one plain path component,
/// so no id can reach outside `<dir>`. [`list`](Store::list) reports the resources found at
/// [`open`](Self::open) and created since; anything else in the directory (the lock file,
/// temporary files, a resource whose `meta.json` is missing or corrupt) is ignored, the last
/// with a warning.
///
/// # Durability
///
/// The length held is always the body file's size, read from the file system, never a
/// counter, so the store never reports bytes that are not in the file. An append writes at
/// the end of the file and, if the write fails halfway, cuts the file back before reporting
/// the error. Appends are not flushed to the device (that would cost a device round trip
/// per chunk): [`sync`](Store::sync) flushes the body and returns the length that is then
/// durable, the `Acknowledge` offset (docs/PROTOCOL.md part B.9). After a `kill -9` every
/// acknowledged byte is still there (the kernel's page cache outlives the process); after a
/// power loss, the length read back may be smaller than an append acknowledged, never
/// smaller than a `sync` returned.
///
/// `meta.json` and `response` are replaced atomically (a temporary file, flushed, renamed
/// over the old one, then the directory flushed): a crash leaves the old version or the
/// new one. Resources are created in a temporary directory renamed into place, and renamed
/// away before they are deleted, so a crash never leaves half a resource behind.
///
/// [`Resource::version`] is the number of metadata writes plus the length held, so a
/// reopened store continues from the versions the previous process reported.
///
/// The store keeps content ([`keeps_content`](Store::keeps_content) is `true`): every byte
/// held stays readable until the resource is abandoned or removed. It has no byte budget of
/// its own; bound each resource with [`NewResource::max_bytes`] and their count with the
/// [`Quota`].
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use handoff_server::resume::store::{DiskStore, NewResource, Quota, Store, StoredHead};
/// use handoff_server::resume::{Owner, ResourceId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("disk-store-example-{}", ResourceId::mint()?));
/// let store = DiskStore::open(&dir).await?;
/// // One directory, one store: a second one is refused while this one is open.
/// assert!(DiskStore::open(&dir).await.is_err());
///
/// let id = ResourceId::mint()?;
/// let (head, ()) = http::Request::post("/upload").body(())?.into_parts();
/// let resource = NewResource {
///     head: StoredHead::from_parts(&head),
///     owner: Owner::anonymous(),
///     complete_length: Some(5),
///     max_bytes: 1024,
///     keep_incomplete: true,
/// };
/// store.create(id, resource, Quota { max_open: 10, max_open_per_owner: 10 }).await?;
/// assert_eq!(store.append(id, 0, Bytes::from_static(b"hel")).await?, 3);
/// // Durable from here on, even across a power loss.
/// assert_eq!(store.sync(id).await?, 3);
///
/// // A restart: the next process finds the upload where this one left it.
/// drop(store);
/// let store = DiskStore::open(&dir).await?;
/// assert_eq!(store.list().await?, [id]);
/// assert_eq!(store.get(id).await?.length, 3);
/// assert_eq!(store.append(id, 3, Bytes::from_static(b"lo")).await?, 5);
/// assert_eq!(store.read(id, 1, 10).await?, "ello");
///
/// drop(store);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DiskStore {
    shared: Arc<Shared>,
}

struct Shared {
    root: PathBuf,
    /// Every resource, with its owner for the quotas. The std mutex is only held to look
    /// up, insert or remove an entry, never across I/O.
    index: Mutex<HashMap<ResourceId, Indexed>>,
    /// Holds the directory's advisory lock until the last clone of the store is dropped.
    _lock: File,
}

struct Indexed {
    owner: Owner,
    /// No response recorded yet: the quotas count open operations only, so finished ones
    /// waiting for their client to fetch them do not lock new uploads out.
    open: bool,
    slot: Slot,
}

/// One resource behind its async mutex: every operation on it runs with the mutex held, so
/// compare-and-append checks and writes cannot interleave (the directory lock keeps other
/// processes out). `None` while the resource is being created, or once it is removed.
type Slot = Arc<tokio::sync::Mutex<Option<DiskResource>>>;

impl DiskStore {
    /// Opens the store in `dir`, creating the directory if needed, and finds the resources a
    /// previous process left there.
    ///
    /// Fails with [`io::ErrorKind::WouldBlock`] while another store (in this process or
    /// another) has the same directory open.
    pub async fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let root = dir.into();
        blocking(move || Self::open_blocking(root)).await
    }

    /// The directory of this store.
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    fn open_blocking(root: PathBuf) -> io::Result<Self> {
        resource::private_dir(&root, true)?;
        let lock_path = root.join(LOCK);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "{} is in use by another DiskStore (it holds the lock on {})",
                        root.display(),
                        lock_path.display()
                    ),
                ))
            }
            Err(TryLockError::Error(error)) => return Err(error),
        }

        let mut index = HashMap::new();
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if let Ok(id) = name.parse::<ResourceId>() {
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                match DiskResource::load(&root, id) {
                    Ok(resource) => {
                        let owner = resource.owner();
                        let open = resource.is_open();
                        let slot = Arc::new(tokio::sync::Mutex::new(Some(resource)));
                        index.insert(id, Indexed { owner, open, slot });
                    }
                    Err(error) => {
                        tracing::warn!(%id, %error, "skipping a resource whose metadata cannot be read");
                    }
                }
            } else if name.starts_with(CREATING) || name.starts_with(REMOVING) {
                // A create or a remove that a crash interrupted: never a resource.
                if let Err(error) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(name, %error, "could not delete a leftover directory");
                }
            }
        }
        tracing::debug!(dir = %root.display(), resources = index.len(), "disk store opened");
        Ok(Self {
            shared: Arc::new(Shared {
                root,
                index: Mutex::new(index),
                _lock: lock,
            }),
        })
    }

    fn index(&self) -> MutexGuard<'_, HashMap<ResourceId, Indexed>> {
        self.shared.index()
    }

    fn slot(&self, id: ResourceId) -> Result<Slot, StoreError> {
        let index = self.index();
        let indexed = index.get(&id).ok_or(StoreError::NotFound)?;
        Ok(indexed.slot.clone())
    }

    /// Inserts `slot` for `id` if `quota` allows one more resource for `owner`.
    fn reserve(
        &self,
        id: ResourceId,
        owner: Owner,
        quota: Quota,
        slot: Slot,
    ) -> Result<(), StoreError> {
        let mut index = self.index();
        if index.values().filter(|other| other.open).count() >= quota.max_open {
            return Err(StoreError::QuotaExceeded {
                per_owner: false,
                max: quota.max_open,
            });
        }
        let owned = index
            .values()
            .filter(|other| other.open && other.owner == owner)
            .count();
        if owned >= quota.max_open_per_owner {
            return Err(StoreError::QuotaExceeded {
                per_owner: true,
                max: quota.max_open_per_owner,
            });
        }
        if index.contains_key(&id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the id is taken").into());
        }
        index.insert(
            id,
            Indexed {
                owner,
                open: true,
                slot,
            },
        );
        Ok(())
    }

    /// Runs `op` on the resource `id` on the blocking pool, with the resource's mutex held.
    ///
    /// The guard moves into the blocking task, so the mutex stays held until the file work
    /// is done even if the caller stops waiting: a dropped future never lets two writers at
    /// one file.
    fn run<'a, T, F>(&'a self, id: ResourceId, op: F) -> StoreFuture<'a, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DiskResource) -> Result<T, StoreError> + Send + 'static,
    {
        Box::pin(async move {
            let mut guard = self.slot(id)?.lock_owned().await;
            blocking(move || op(guard.as_mut().ok_or(StoreError::NotFound)?)).await
        })
    }
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, HashMap<ResourceId, Indexed>> {
        // Every critical section is a single map operation: a panic cannot leave the map
        // half-updated.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.shared.root)
            .field("resources", &self.index().len())
            .finish()
    }
}

/// Runs `f` on tokio's blocking pool. The task starts at once, not when the future is first
/// polled, and runs to its end even if the future is dropped.
fn blocking<T, E, F>(f: F) -> impl Future<Output = Result<T, E>>
where
    T: Send + 'static,
    E: From<io::Error> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    async move {
        match task.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(io::Error::other(error).into()),
        }
    }
}

impl Store for DiskStore {
    fn create(&self, id: ResourceId, new: NewResource, quota: Quota) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let slot = Slot::default();
            // Locked before anyone else can see it: operations on `id` wait for the files.
            let mut guard = slot
                .clone()
                .try_lock_owned()
                .expect("a new mutex is unlocked");
            self.reserve(id, new.owner, quota, slot)?;
            let shared = self.shared.clone();
            blocking(move || match DiskResource::create(&shared.root, id, &new) {
                Ok(resource) => {
                    *guard = Some(resource);
                    Ok(())
                }
                Err(error) => {
                    shared.index().remove(&id);
                    Err(error.into())
                }
            })
            .await
        })
    }

    fn get(&self, id: ResourceId) -> StoreFuture<'_, Resource> {
        self.run(id, move |resource| Ok(resource.snapshot(id)?))
    }

    fn append(&self, id: ResourceId, offset: u64, data: Bytes) -> StoreFuture<'_, u64> {
        self.run(id, move |resource| resource.append(offset, &data))
    }

    fn set_complete_length(&self, id: ResourceId, length: u64) -> StoreFuture<'_, ()> {
        self.run(id, move |resource| resource.set_complete_length(length))
    }

    fn read(&self, id: ResourceId, offset: u64, max: usize) -> StoreFuture<'_, Bytes> {
        self.run(id, move |resource| resource.read(offset, max))
    }

    fn release(&self, id: ResourceId, _upto: u64) -> StoreFuture<'_, ()> {
        // The bytes stay until the resource is abandoned or removed.
        let known = self.slot(id).map(drop);
        Box::pin(std::future::ready(known))
    }

    fn keeps_content(&self) -> bool {
        true
    }

    fn sync(&self, id: ResourceId) -> StoreFuture<'_, u64> {
        self.run(id, |resource| Ok(resource.sync()?))
    }

    fn abandon(&self, id: ResourceId) -> StoreFuture<'_, ()> {
        self.run(id, |resource| Ok(resource.abandon()?))
    }

    fn record_response(&self, id: ResourceId, response: RecordedResponse) -> StoreFuture<'_, ()> {
        let shared = self.shared.clone();
        self.run(id, move |resource| {
            resource.record_response(&response)?;
            if let Some(indexed) = shared.index().get_mut(&id) {
                indexed.open = false;
            }
            Ok(())
        })
    }

    fn response(&self, id: ResourceId) -> StoreFuture<'_, Option<RecordedResponse>> {
        self.run(id, |resource| Ok(resource.response()?))
    }

    fn remove(&self, id: ResourceId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let Ok(slot) = self.slot(id) else {
                return Ok(());
            };
            let mut guard = slot.lock_owned().await;
            let shared = self.shared.clone();
            blocking(move || {
                let Some(resource) = guard.as_ref() else {
                    return Ok(());
                };
                resource.remove_files(&shared.root, id)?;
                shared.index().remove(&id);
                // Drops the version sender: `changed` waiters fail with `NotFound`.
                *guard = None;
                Ok(())
            })
            .await
        })
    }

    fn changed(&self, id: ResourceId, seen: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let slot = self.slot(id)?;
            let receiver = slot
                .lock()
                .await
                .as_ref()
                .ok_or(StoreError::NotFound)?
                .subscribe();
            super::newer_than(receiver, seen).await
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<ResourceId>> {
        let ids = self.index().keys().copied().collect();
        Box::pin(std::future::ready(Ok(ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::store::contract::{self, new_resource, QUOTA, ROOMY};
    use crate::resume::store::StoredHead;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use proptest::prelude::*;
    use std::time::Duration;
    use tempfile::TempDir;

    async fn with_resource(complete_length: Option<u64>) -> (TempDir, DiskStore, ResourceId) {
        let dir = TempDir::new().unwrap();
        let store = DiskStore::open(dir.path()).await.unwrap();
        let id = ResourceId::mint().unwrap();
        store
            .create(id, new_resource(Owner::anonymous(), complete_length), ROOMY)
            .await
            .unwrap();
        (dir, store, id)
    }

    fn body_path(dir: &TempDir, id: ResourceId) -> PathBuf {
        dir.path().join(id.to_string()).join("body")
    }

    #[tokio::test]
    async fn keeps_the_store_contract() {
        let dir = TempDir::new().unwrap();
        let store = DiskStore::open(dir.path()).await.unwrap();
        contract::quotas_count_total_and_per_owner(&store).await;
        let id = contract::appends_compare_the_offset_with_the_length_held(&store).await;
        assert_eq!(fs::read(body_path(&dir, id)).unwrap(), b"abcde");
        contract::lengths_are_checked(&store).await;
        contract::changed_wakes_on_append_and_fails_on_remove(&store).await;
    }

    #[tokio::test]
    async fn quotas_count_what_was_found_at_open() {
        let dir = TempDir::new().unwrap();
        let store = DiskStore::open(dir.path()).await.unwrap();
        let alice = Owner::from_credential(b"alice");
        for _ in 0..3 {
            let id = ResourceId::mint().unwrap();
            store
                .create(id, new_resource(alice, None), ROOMY)
                .await
                .unwrap();
        }
        drop(store);
        let store = DiskStore::open(dir.path()).await.unwrap();
        let bob = Owner::from_credential(b"bob");
        let err = store
            .create(ResourceId::mint().unwrap(), new_resource(bob, None), QUOTA)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::QuotaExceeded {
                per_owner: false,
                max: 3
            }
        ));
        // A refused create leaves nothing behind.
        assert_eq!(store.list().await.unwrap().len(), 3);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
        // Removing frees a place.
        let first = store.list().await.unwrap()[0];
        store.remove(first).await.unwrap();
        store
            .create(ResourceId::mint().unwrap(), new_resource(bob, None), QUOTA)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn every_change_bumps_the_version() {
        let (_dir, store, id) = with_resource(None).await;
        let mut seen = store.get(id).await.unwrap().version;
        let mut check = async |store: &DiskStore| {
            let version = store.get(id).await.unwrap().version;
            assert!(version > seen, "{version} after {seen}");
            assert_eq!(store.changed(id, seen).await.unwrap(), version);
            seen = version;
        };
        store
            .append(id, 0, Bytes::from_static(b"ab"))
            .await
            .unwrap();
        check(&store).await;
        store.set_complete_length(id, 10).await.unwrap();
        check(&store).await;
        store.abandon(id).await.unwrap();
        check(&store).await;
        store.record_response(id, response(b"done")).await.unwrap();
        check(&store).await;
    }

    #[tokio::test]
    async fn a_waiter_in_a_reopened_store_wakes_on_the_next_change() {
        let (dir, store, id) = with_resource(None).await;
        store
            .append(id, 0, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        store.set_complete_length(id, 8).await.unwrap();
        let before = store.get(id).await.unwrap().version;
        drop(store);

        let store = DiskStore::open(dir.path()).await.unwrap();
        let seen = store.get(id).await.unwrap().version;
        assert_eq!(seen, before, "versions continue across a restart");
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.changed(id, seen).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        store.append(id, 3, Bytes::from_static(b"d")).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), seen + 1);
    }

    fn response(body: &'static [u8]) -> RecordedResponse {
        let mut headers = HeaderMap::new();
        headers.insert("location", HeaderValue::from_static("/items/7"));
        headers.append("x-raw", HeaderValue::from_bytes(b"\xffok").unwrap());
        RecordedResponse {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(body),
        }
    }

    #[tokio::test]
    async fn a_reopened_store_sees_everything() {
        let dir = TempDir::new().unwrap();
        let store = DiskStore::open(dir.path()).await.unwrap();
        let owner = Owner::from_credential(b"Bearer alice");
        let (head, ()) = http::Request::put("/files/a%20b?x=1")
            .version(http::Version::HTTP_2)
            .header("content-type", "application/octet-stream")
            .header("x-name", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .header("x-name", "second")
            .body(())
            .unwrap()
            .into_parts();
        let new = NewResource {
            head: StoredHead::from_parts(&head),
            owner,
            complete_length: Some(11),
            max_bytes: 64,
            keep_incomplete: false,
        };
        let id = ResourceId::mint().unwrap();
        store.create(id, new, ROOMY).await.unwrap();
        store
            .append(id, 0, Bytes::from_static(b"hello "))
            .await
            .unwrap();
        store
            .record_response(id, response(b"{\"id\":7}\n"))
            .await
            .unwrap();
        let abandoned = ResourceId::mint().unwrap();
        store
            .create(abandoned, new_resource(owner, None), ROOMY)
            .await
            .unwrap();
        store
            .append(abandoned, 0, Bytes::from_static(b"gone"))
            .await
            .unwrap();
        store.abandon(abandoned).await.unwrap();
        let before = store.get(id).await.unwrap();
        drop(store);

        let store = DiskStore::open(dir.path()).await.unwrap();
        let mut ids = store.list().await.unwrap();
        ids.sort();
        let mut expected = vec![id, abandoned];
        expected.sort();
        assert_eq!(ids, expected);

        let after = store.get(id).await.unwrap();
        assert_eq!(after.id, id);
        assert_eq!(after.head.method, http::Method::PUT);
        assert_eq!(after.head.uri, "/files/a%20b?x=1");
        assert_eq!(after.head.version, http::Version::HTTP_2);
        assert_eq!(after.head.headers, head.headers);
        assert_eq!(
            after
                .head
                .headers
                .get_all("x-name")
                .iter()
                .next()
                .unwrap()
                .as_bytes(),
            b"caf\xe9"
        );
        assert_eq!(after.owner, owner);
        assert_eq!(after.length, 6);
        assert_eq!(after.complete_length, Some(11));
        assert_eq!(after.max_bytes, 64);
        assert!(!after.keep_incomplete);
        assert!(!after.abandoned);
        assert!(after.responded_at.is_some());
        assert_eq!(after.responded_at, before.responded_at);
        assert_eq!(after.updated_at, before.updated_at);
        assert_eq!(after.version, before.version);

        let recorded = store.response(id).await.unwrap().unwrap();
        let original = response(b"{\"id\":7}\n");
        assert_eq!(recorded.status, original.status);
        assert_eq!(recorded.headers, original.headers);
        assert_eq!(recorded.body, original.body);

        let gone = store.get(abandoned).await.unwrap();
        assert!(gone.abandoned);
        assert_eq!(gone.length, 4);
        assert!(store.response(abandoned).await.unwrap().is_none());

        store
            .append(id, 6, Bytes::from_static(b"world"))
            .await
            .unwrap();
        assert!(store.get(id).await.unwrap().is_complete());
        assert_eq!(store.read(id, 0, 100).await.unwrap(), "hello world");
    }

    #[tokio::test]
    async fn the_length_is_what_the_body_file_holds() {
        let (dir, store, id) = with_resource(None).await;
        store
            .append(id, 0, Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        drop(store);
        // A crash that kept only part of the bytes.
        OpenOptions::new()
            .write(true)
            .open(body_path(&dir, id))
            .unwrap()
            .set_len(4)
            .unwrap();

        let store = DiskStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(id).await.unwrap().length, 4);
        assert_eq!(store.sync(id).await.unwrap(), 4);
        assert_eq!(store.read(id, 0, 100).await.unwrap(), "0123");
        assert!(matches!(
            store.append(id, 10, Bytes::from_static(b"x")).await,
            Err(StoreError::Conflict { held: 4 })
        ));
        assert_eq!(
            store
                .append(id, 4, Bytes::from_static(b"45"))
                .await
                .unwrap(),
            6
        );

        // Even behind the back of an open store.
        OpenOptions::new()
            .write(true)
            .open(body_path(&dir, id))
            .unwrap()
            .set_len(2)
            .unwrap();
        assert_eq!(store.get(id).await.unwrap().length, 2);
    }

    #[tokio::test]
    async fn a_resource_with_corrupt_metadata_is_skipped() {
        let dir = TempDir::new().unwrap();
        let store = DiskStore::open(dir.path()).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let id = ResourceId::mint().unwrap();
            store
                .create(id, new_resource(Owner::anonymous(), None), ROOMY)
                .await
                .unwrap();
            ids.push(id);
        }
        drop(store);
        let meta = |id: ResourceId| dir.path().join(id.to_string()).join("meta.json");
        fs::write(meta(ids[0]), b"{\"format\":1,").unwrap();
        fs::remove_file(meta(ids[1])).unwrap();

        let store = DiskStore::open(dir.path()).await.unwrap();
        assert_eq!(store.list().await.unwrap(), [ids[2]]);
        for id in &ids[..2] {
            assert!(matches!(store.get(*id).await, Err(StoreError::NotFound)));
        }
        // The skipped ones do not count against the quota: two more fit, not three.
        let quota = Quota {
            max_open: 3,
            max_open_per_owner: 3,
        };
        let create = || {
            store.create(
                ResourceId::mint().unwrap(),
                new_resource(Owner::anonymous(), None),
                quota,
            )
        };
        create().await.unwrap();
        create().await.unwrap();
        assert!(matches!(
            create().await,
            Err(StoreError::QuotaExceeded {
                per_owner: false,
                max: 3
            })
        ));
        // The corrupt directories are left for an operator to look at.
        assert!(dir.path().join(ids[0].to_string()).exists());
    }

    #[tokio::test]
    async fn one_directory_takes_one_store_at_a_time() {
        let dir = TempDir::new().unwrap();
        let first = DiskStore::open(dir.path().join("nested/store"))
            .await
            .unwrap();
        let clone = first.clone();
        let err = DiskStore::open(dir.path().join("nested/store"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(
            err.to_string().contains("in use by another DiskStore"),
            "{err}"
        );

        drop(first);
        // A clone keeps the lock.
        assert!(DiskStore::open(dir.path().join("nested/store"))
            .await
            .is_err());
        drop(clone);
        DiskStore::open(dir.path().join("nested/store"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn reads_return_the_asked_slice() {
        let (_dir, store, id) = with_resource(None).await;
        let content: Vec<u8> = (0..100).collect();
        store
            .append(id, 0, Bytes::from(content[..60].to_vec()))
            .await
            .unwrap();
        store
            .append(id, 60, Bytes::from(content[60..].to_vec()))
            .await
            .unwrap();
        for (offset, max) in [(0, 100), (0, 1), (13, 7), (55, 10), (99, 5), (50, 0)] {
            let end = (offset + max).min(100);
            assert_eq!(
                store.read(id, offset as u64, max).await.unwrap(),
                content[offset..end],
                "{offset}+{max}"
            );
        }
        assert!(store.read(id, 100, 10).await.unwrap().is_empty());
        assert!(store.read(id, 1000, 10).await.unwrap().is_empty());
        // Reads do not consume: the bytes stay after a release.
        assert!(store.keeps_content());
        store.release(id, 100).await.unwrap();
        assert_eq!(store.read(id, 0, 3).await.unwrap(), [0, 1, 2][..]);
    }

    #[tokio::test]
    async fn abandoning_frees_the_body_and_keeps_the_length() {
        let (dir, store, id) = with_resource(None).await;
        store
            .append(id, 0, Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        store.abandon(id).await.unwrap();
        store.abandon(id).await.unwrap();
        assert!(!body_path(&dir, id).exists());
        let resource = store.get(id).await.unwrap();
        assert!(resource.abandoned);
        assert_eq!(resource.length, 6);
        assert!(matches!(
            store.append(id, 6, Bytes::from_static(b"g")).await,
            Err(StoreError::Abandoned)
        ));
        assert!(matches!(
            store.read(id, 0, 10).await,
            Err(StoreError::NotKept)
        ));
        assert!(store.read(id, 6, 10).await.unwrap().is_empty());
        assert_eq!(store.sync(id).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn responses_are_recorded_once() {
        let (_dir, store, id) = with_resource(None).await;
        assert!(store.response(id).await.unwrap().is_none());
        store.record_response(id, response(b"first")).await.unwrap();
        store
            .record_response(id, response(b"second"))
            .await
            .unwrap();
        assert_eq!(store.response(id).await.unwrap().unwrap().body, "first");
        assert!(store.get(id).await.unwrap().responded_at.is_some());
    }

    #[tokio::test]
    async fn unknown_and_removed_ids_are_not_found() {
        let (dir, store, id) = with_resource(None).await;
        store.append(id, 0, Bytes::from_static(b"x")).await.unwrap();
        store.remove(id).await.unwrap();
        assert!(!dir.path().join(id.to_string()).exists());
        store.remove(id).await.unwrap();
        store.remove(ResourceId::mint().unwrap()).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
        drop(store);
        let store = DiskStore::open(dir.path()).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());

        let unknown = ResourceId::mint().unwrap();
        for id in [id, unknown] {
            let not_found = |result: Result<(), StoreError>| {
                assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}")
            };
            not_found(store.get(id).await.map(drop));
            not_found(
                store
                    .append(id, 0, Bytes::from_static(b"x"))
                    .await
                    .map(drop),
            );
            not_found(store.set_complete_length(id, 1).await);
            not_found(store.read(id, 0, 1).await.map(drop));
            not_found(store.release(id, 0).await);
            not_found(store.sync(id).await.map(drop));
            not_found(store.abandon(id).await);
            not_found(store.record_response(id, response(b"")).await);
            not_found(store.response(id).await.map(drop));
            not_found(store.changed(id, 0).await.map(drop));
        }
    }

    #[tokio::test]
    async fn only_resources_are_listed() {
        let (dir, store, id) = with_resource(None).await;
        store.set_complete_length(id, 3).await.unwrap();
        let root = dir.path();
        assert!(root.join("lock").is_file());
        // Debris of crashes and of other programs.
        let other = ResourceId::mint().unwrap();
        fs::create_dir(root.join(format!("{CREATING}{other}"))).unwrap();
        fs::create_dir(root.join(format!("{REMOVING}{other}"))).unwrap();
        fs::write(root.join(format!("{other}")), b"a file, not a directory").unwrap();
        fs::write(root.join("meta.json.tmp"), b"").unwrap();
        fs::create_dir(root.join("lost+found")).unwrap();
        fs::write(root.join(id.to_string()).join("meta.json.tmp"), b"{").unwrap();
        assert_eq!(store.list().await.unwrap(), [id]);
        drop(store);

        let store = DiskStore::open(root).await.unwrap();
        assert_eq!(store.list().await.unwrap(), [id]);
        assert!(!root.join(format!("{CREATING}{other}")).exists());
        assert!(!root.join(format!("{REMOVING}{other}")).exists());
        assert!(root.join("lost+found").exists());
        assert_eq!(store.get(id).await.unwrap().complete_length, Some(3));
    }

    /// Set in the child process of [`survives_kill_9`]: the directory to write into.
    #[cfg(unix)]
    const CHILD_DIR: &str = "HANDOFF_DISK_STORE_CHILD_DIR";

    /// A child process (this test binary, running only this test) opens a store, appends
    /// and is killed with SIGKILL while it holds the lock; the parent then finds the bytes.
    #[cfg(unix)]
    #[tokio::test]
    async fn survives_kill_9() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            let store = DiskStore::open(PathBuf::from(dir)).await.unwrap();
            let id = ResourceId::mint().unwrap();
            store
                .create(id, new_resource(Owner::anonymous(), None), ROOMY)
                .await
                .unwrap();
            store
                .append(id, 0, Bytes::from_static(b"abc"))
                .await
                .unwrap();
            println!("id={id}");
            // Wait to be killed; should the parent die first, its end of stdin closes.
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
            std::process::exit(0);
        }

        let dir = TempDir::new().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "resume::store::disk::tests::survives_kill_9"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let id = stdout
            .lines()
            .map_while(Result::ok)
            // The harness prints `test <name> ... ` before the line, without a newline.
            .find_map(|line| Some(line.split_once("id=")?.1.trim().to_owned()))
            .expect("the child reports its resource")
            .parse::<ResourceId>()
            .unwrap();
        let busy = DiskStore::open(dir.path()).await.unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);

        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = DiskStore::open(dir.path()).await.unwrap();
        assert_eq!(store.list().await.unwrap(), [id]);
        assert_eq!(store.get(id).await.unwrap().length, 3);
        assert_eq!(store.read(id, 0, 10).await.unwrap(), "abc");
        assert_eq!(
            store.append(id, 3, Bytes::from_static(b"d")).await.unwrap(),
            4
        );
    }

    #[tokio::test]
    async fn usable_as_a_shared_trait_object() {
        let dir = TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(DiskStore::open(dir.path()).await.unwrap());
        let id = ResourceId::mint().unwrap();
        store
            .create(id, new_resource(Owner::anonymous(), Some(2)), QUOTA)
            .await
            .unwrap();
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(id, 0, Bytes::from_static(b"ok")).await })
        };
        assert_eq!(writer.await.unwrap().unwrap(), 2);
        assert!(store.get(id).await.unwrap().is_complete());
        assert!(format!("{store:?}").contains("DiskStore"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Append at the length held (`None`) or at a given, maybe wrong, offset.
        Append(Option<u64>, Vec<u8>),
        Sync,
        Reopen,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            4 => (proptest::option::of(0u64..80), proptest::collection::vec(any::<u8>(), 0..24))
                .prop_map(|(offset, data)| Op::Append(offset, data)),
            1 => Just(Op::Sync),
            1 => Just(Op::Reopen),
        ];
        proptest::collection::vec(op, 1..24)
    }

    /// Opens the store again right after the last handle was dropped. Another test of this
    /// binary that spawns a process forks while our lock file is open: until the child
    /// execs, it shares the lock (flock follows the open file, `O_CLOEXEC` acts only at exec),
    /// so a reopen may briefly see `WouldBlock`.
    async fn reopen(dir: &Path) -> DiskStore {
        for _ in 0..100 {
            match DiskStore::open(dir).await {
                Ok(store) => return store,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("{err}"),
            }
        }
        panic!("the store's lock stayed held after its last handle was dropped");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn appends_and_reopens_keep_the_file_and_the_length_in_step(ops in ops()) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (dir, mut store, id) = with_resource(None).await;
                let mut model = Vec::new();
                for op in ops {
                    match op {
                        Op::Append(offset, data) => {
                            let offset = offset.unwrap_or(model.len() as u64);
                            let result = store.append(id, offset, Bytes::from(data.clone())).await;
                            let held = model.len() as u64;
                            if offset != held {
                                let conflict = matches!(result, Err(StoreError::Conflict { held: h }) if h == held);
                                prop_assert!(conflict, "{:?}", result);
                            } else if held + data.len() as u64 > 100 {
                                let too_large = matches!(result, Err(StoreError::TooLarge { max: 100 }));
                                prop_assert!(too_large, "{:?}", result);
                            } else {
                                model.extend_from_slice(&data);
                                prop_assert_eq!(result.unwrap(), model.len() as u64);
                            }
                        }
                        Op::Sync => {
                            prop_assert_eq!(store.sync(id).await.unwrap(), model.len() as u64);
                        }
                        Op::Reopen => {
                            drop(store);
                            store = reopen(dir.path()).await;
                        }
                    }
                    let on_disk = fs::read(body_path(&dir, id)).unwrap();
                    prop_assert_eq!(&on_disk, &model);
                    prop_assert_eq!(store.get(id).await.unwrap().length, model.len() as u64);
                    prop_assert_eq!(store.read(id, 0, 1000).await.unwrap(), &model[..]);
                }
                Ok(())
            })?;
        }
    }
}
