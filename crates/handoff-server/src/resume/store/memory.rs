//! [`MemoryStore`]: resources in this process's memory, within a byte budget.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::watch;

use super::{NewResource, Quota, RecordedResponse, Resource, Store, StoreError, StoreFuture};
use crate::resume::ResourceId;

/// The default budget of a [`MemoryStore`]: 256 MiB of body and response bytes.
pub const DEFAULT_MEMORY_STORE_BYTES: u64 = 256 * 1024 * 1024;

/// Resources held in memory: the default store. See the [module docs](super).
///
/// Body bytes are kept only until the handler has consumed them
/// ([`keeps_content`](Store::keeps_content) is `false`), so an open upload costs the bytes
/// its handler has not read yet, plus its recorded response. Everything together stays
/// within the budget given to [`with_max_bytes`](Self::with_max_bytes); past it,
/// [`append`](Store::append) answers [`StoreError::Full`] until handlers catch up. Nothing
/// survives the process: use [`DiskStore`](super::DiskStore) for that.
///
/// ```
/// use bytes::Bytes;
/// use handoff_server::resume::store::{MemoryStore, NewResource, Quota, Store, StoredHead};
/// use handoff_server::resume::{Owner, ResourceId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let id = ResourceId::mint().unwrap();
/// let (head, ()) = http::Request::post("/upload").body(()).unwrap().into_parts();
/// let resource = NewResource {
///     head: StoredHead::from_parts(&head),
///     owner: Owner::anonymous(),
///     complete_length: Some(5),
///     max_bytes: 1024,
///     keep_incomplete: true,
/// };
/// store.create(id, resource, Quota { max_open: 10, max_open_per_owner: 10 }).await.unwrap();
///
/// assert_eq!(store.append(id, 0, Bytes::from_static(b"hel")).await.unwrap(), 3);
/// // Compare-and-append: only at the length held.
/// assert!(store.append(id, 1, Bytes::from_static(b"x")).await.is_err());
/// assert_eq!(store.append(id, 3, Bytes::from_static(b"lo")).await.unwrap(), 5);
/// assert!(store.get(id).await.unwrap().is_complete());
/// assert_eq!(store.read(id, 1, 2).await.unwrap(), "el");
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    max_bytes: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<ResourceId, Entry>,
    /// Body and response bytes held by every entry together.
    held: u64,
}

struct Entry {
    resource: Resource,
    /// Body bytes from `base` (everything below was released) to `resource.length`.
    chunks: VecDeque<Bytes>,
    base: u64,
    response: Option<RecordedResponse>,
    version: watch::Sender<u64>,
}

impl Entry {
    fn held(&self) -> u64 {
        self.resource.length - self.base + self.response.as_ref().map_or(0, |r| r.body.len() as u64)
    }

    fn touch(&mut self) {
        self.resource.version += 1;
        self.resource.updated_at = SystemTime::now();
        self.version.send_replace(self.resource.version);
    }

    fn free_content(&mut self) -> u64 {
        let freed = self.resource.length - self.base;
        self.chunks.clear();
        self.base = self.resource.length;
        freed
    }
}

impl MemoryStore {
    /// A store with the [`DEFAULT_MEMORY_STORE_BYTES`] budget.
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MEMORY_STORE_BYTES)
    }

    /// A store that holds at most `max_bytes` of body and response bytes at once.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_bytes,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Body and response bytes held right now.
    pub fn held_bytes(&self) -> u64 {
        self.lock().held
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the store, so keep going with what is there.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_entry<T>(
        &self,
        id: ResourceId,
        f: impl FnOnce(&mut Entry, &mut u64, u64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        let State { entries, held } = &mut *state;
        let entry = entries.get_mut(&id).ok_or(StoreError::NotFound)?;
        f(entry, held, self.shared.max_bytes)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("max_bytes", &self.shared.max_bytes)
            .field("held", &state.held)
            .field("resources", &state.entries.len())
            .finish()
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl Store for MemoryStore {
    fn create(&self, id: ResourceId, new: NewResource, quota: Quota) -> StoreFuture<'_, ()> {
        let mut state = self.lock();
        // Open operations only: finished ones waiting to be fetched lock nobody out.
        let open = |entry: &&Entry| entry.resource.responded_at.is_none();
        if state.entries.values().filter(open).count() >= quota.max_open {
            return ready(Err(StoreError::QuotaExceeded {
                per_owner: false,
                max: quota.max_open,
            }));
        }
        let owned = state
            .entries
            .values()
            .filter(open)
            .filter(|entry| entry.resource.owner == new.owner)
            .count();
        if owned >= quota.max_open_per_owner {
            return ready(Err(StoreError::QuotaExceeded {
                per_owner: true,
                max: quota.max_open_per_owner,
            }));
        }
        let now = SystemTime::now();
        let resource = Resource {
            id,
            head: new.head,
            owner: new.owner,
            length: 0,
            complete_length: new.complete_length,
            max_bytes: new.max_bytes,
            keep_incomplete: new.keep_incomplete,
            abandoned: false,
            responded_at: None,
            updated_at: now,
            version: 0,
        };
        state.entries.insert(
            id,
            Entry {
                resource,
                chunks: VecDeque::new(),
                base: 0,
                response: None,
                version: watch::Sender::new(0),
            },
        );
        ready(Ok(()))
    }

    fn get(&self, id: ResourceId) -> StoreFuture<'_, Resource> {
        ready(self.with_entry(id, |entry, _, _| Ok(entry.resource.clone())))
    }

    fn append(&self, id: ResourceId, offset: u64, data: Bytes) -> StoreFuture<'_, u64> {
        ready(self.with_entry(id, |entry, held, max_held| {
            let resource = &entry.resource;
            if resource.abandoned {
                return Err(StoreError::Abandoned);
            }
            if offset != resource.length {
                return Err(StoreError::Conflict {
                    held: resource.length,
                });
            }
            let end = resource.length + data.len() as u64;
            let limit = resource
                .complete_length
                .unwrap_or(u64::MAX)
                .min(resource.max_bytes);
            if end > limit {
                return Err(match resource.complete_length {
                    Some(known) if known < resource.max_bytes => StoreError::LengthMismatch {
                        held: resource.length,
                        known: Some(known),
                    },
                    _ => StoreError::TooLarge {
                        max: resource.max_bytes,
                    },
                });
            }
            if *held + data.len() as u64 > max_held {
                return Err(StoreError::Full {
                    max_bytes: max_held,
                });
            }
            if !data.is_empty() {
                *held += data.len() as u64;
                entry.resource.length = end;
                entry.chunks.push_back(data);
                entry.touch();
            }
            Ok(end)
        }))
    }

    fn set_complete_length(&self, id: ResourceId, length: u64) -> StoreFuture<'_, ()> {
        ready(self.with_entry(id, |entry, _, _| {
            let resource = &entry.resource;
            match resource.complete_length {
                Some(known) if known == length => return Ok(()),
                Some(known) => {
                    return Err(StoreError::LengthMismatch {
                        held: resource.length,
                        known: Some(known),
                    })
                }
                None if length < resource.length => {
                    return Err(StoreError::LengthMismatch {
                        held: resource.length,
                        known: None,
                    })
                }
                None if length > resource.max_bytes => {
                    return Err(StoreError::TooLarge {
                        max: resource.max_bytes,
                    })
                }
                None => {}
            }
            entry.resource.complete_length = Some(length);
            entry.touch();
            Ok(())
        }))
    }

    fn read(&self, id: ResourceId, offset: u64, max: usize) -> StoreFuture<'_, Bytes> {
        ready(self.with_entry(id, |entry, _, _| {
            if offset < entry.base {
                return Err(StoreError::NotKept);
            }
            let mut start = entry.base;
            for chunk in &entry.chunks {
                let end = start + chunk.len() as u64;
                if offset < end {
                    let from = (offset - start) as usize;
                    let to = chunk.len().min(from.saturating_add(max));
                    return Ok(chunk.slice(from..to));
                }
                start = end;
            }
            Ok(Bytes::new())
        }))
    }

    fn release(&self, id: ResourceId, upto: u64) -> StoreFuture<'_, ()> {
        ready(self.with_entry(id, |entry, held, _| {
            let upto = upto.min(entry.resource.length);
            while entry.base < upto {
                let Some(front) = entry.chunks.front_mut() else {
                    break;
                };
                let drop = (upto - entry.base).min(front.len() as u64);
                if drop == front.len() as u64 {
                    entry.chunks.pop_front();
                } else {
                    *front = front.slice(drop as usize..);
                }
                entry.base += drop;
                *held -= drop;
            }
            Ok(())
        }))
    }

    fn keeps_content(&self) -> bool {
        false
    }

    fn sync(&self, id: ResourceId) -> StoreFuture<'_, u64> {
        // Memory is as durable as this store gets.
        ready(self.with_entry(id, |entry, _, _| Ok(entry.resource.length)))
    }

    fn abandon(&self, id: ResourceId) -> StoreFuture<'_, ()> {
        ready(self.with_entry(id, |entry, held, _| {
            if !entry.resource.abandoned {
                *held -= entry.free_content();
                entry.resource.abandoned = true;
                entry.touch();
            }
            Ok(())
        }))
    }

    fn record_response(&self, id: ResourceId, response: RecordedResponse) -> StoreFuture<'_, ()> {
        ready(self.with_entry(id, |entry, held, max_held| {
            if entry.response.is_some() {
                return Ok(());
            }
            let len = response.body.len() as u64;
            if *held + len > max_held {
                return Err(StoreError::Full {
                    max_bytes: max_held,
                });
            }
            *held += len;
            entry.response = Some(response);
            entry.resource.responded_at = Some(SystemTime::now());
            entry.touch();
            Ok(())
        }))
    }

    fn response(&self, id: ResourceId) -> StoreFuture<'_, Option<RecordedResponse>> {
        ready(self.with_entry(id, |entry, _, _| Ok(entry.response.clone())))
    }

    fn remove(&self, id: ResourceId) -> StoreFuture<'_, ()> {
        let mut state = self.lock();
        if let Some(entry) = state.entries.remove(&id) {
            state.held -= entry.held();
        }
        ready(Ok(()))
    }

    fn changed(&self, id: ResourceId, seen: u64) -> StoreFuture<'_, u64> {
        let receiver = self.with_entry(id, |entry, _, _| Ok(entry.version.subscribe()));
        Box::pin(async move { super::newer_than(receiver?, seen).await })
    }

    fn list(&self) -> StoreFuture<'_, Vec<ResourceId>> {
        ready(Ok(self.lock().entries.keys().copied().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::store::contract::{self, new_resource, QUOTA};
    use crate::resume::Owner;

    #[tokio::test]
    async fn the_budget_counts_unreleased_bytes_and_responses() {
        let store = MemoryStore::with_max_bytes(10);
        let id = ResourceId::mint().unwrap();
        store
            .create(id, new_resource(Owner::anonymous(), None), QUOTA)
            .await
            .unwrap();
        store
            .append(id, 0, Bytes::from_static(b"12345678"))
            .await
            .unwrap();
        assert!(matches!(
            store.append(id, 8, Bytes::from_static(b"abc")).await,
            Err(StoreError::Full { max_bytes: 10 })
        ));
        store.release(id, 6).await.unwrap();
        assert_eq!(store.held_bytes(), 2);
        assert!(matches!(
            store.read(id, 5, 10).await,
            Err(StoreError::NotKept)
        ));
        assert_eq!(store.read(id, 6, 10).await.unwrap(), "78");
        store
            .append(id, 8, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let response = RecordedResponse {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"123456"),
        };
        assert!(matches!(
            store.record_response(id, response.clone()).await,
            Err(StoreError::Full { .. })
        ));
        store.abandon(id).await.unwrap();
        assert_eq!(store.held_bytes(), 0);
        store.record_response(id, response).await.unwrap();
        assert_eq!(store.held_bytes(), 6);
        store.remove(id).await.unwrap();
        assert_eq!(store.held_bytes(), 0);
    }

    #[tokio::test]
    async fn keeps_the_store_contract() {
        let store = MemoryStore::new();
        contract::quotas_count_total_and_per_owner(&store).await;
        contract::appends_compare_the_offset_with_the_length_held(&store).await;
        contract::lengths_are_checked(&store).await;
        contract::changed_wakes_on_append_and_fails_on_remove(&store).await;
    }
}
