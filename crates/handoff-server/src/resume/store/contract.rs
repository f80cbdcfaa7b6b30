//! The contract every [`Store`] keeps, as tests each implementation runs on itself.

use bytes::Bytes;

use super::{NewResource, Quota, Store, StoreError, StoredHead};
use crate::resume::{Owner, ResourceId};

/// A resource of at most 100 bytes.
pub(super) fn new_resource(owner: Owner, complete_length: Option<u64>) -> NewResource {
    let (head, ()) = http::Request::post("/u").body(()).unwrap().into_parts();
    NewResource {
        head: StoredHead::from_parts(&head),
        owner,
        complete_length,
        max_bytes: 100,
        keep_incomplete: true,
    }
}

/// Three open operations, two per owner.
pub(super) const QUOTA: Quota = Quota {
    max_open: 3,
    max_open_per_owner: 2,
};

/// Room for every test.
pub(super) const ROOMY: Quota = Quota {
    max_open: 100,
    max_open_per_owner: 100,
};

/// Creates an anonymous resource with room.
pub(super) async fn created(store: &impl Store, complete_length: Option<u64>) -> ResourceId {
    let id = ResourceId::mint().unwrap();
    store
        .create(id, new_resource(Owner::anonymous(), complete_length), ROOMY)
        .await
        .unwrap();
    id
}

/// Quotas count every owner's open operations, and each owner's; a recorded response
/// closes an operation. Leaves alice with 2 and bob with 1 open operations.
pub(super) async fn quotas_count_total_and_per_owner(store: &impl Store) {
    let alice = Owner::from_credential(b"alice");
    for _ in 0..2 {
        let id = ResourceId::mint().unwrap();
        store
            .create(id, new_resource(alice, None), QUOTA)
            .await
            .unwrap();
    }
    let err = store
        .create(
            ResourceId::mint().unwrap(),
            new_resource(alice, None),
            QUOTA,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                per_owner: true,
                max: 2
            }
        ),
        "{err}"
    );
    let bob = Owner::from_credential(b"bob");
    let bobs = ResourceId::mint().unwrap();
    store
        .create(bobs, new_resource(bob, None), QUOTA)
        .await
        .unwrap();
    let err = store
        .create(ResourceId::mint().unwrap(), new_resource(bob, None), QUOTA)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QuotaExceeded {
                per_owner: false,
                max: 3
            }
        ),
        "{err}"
    );
    // A finished operation no longer counts.
    let response = super::RecordedResponse {
        status: http::StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
    };
    store.record_response(bobs, response).await.unwrap();
    let again = ResourceId::mint().unwrap();
    store
        .create(again, new_resource(bob, None), QUOTA)
        .await
        .unwrap();
}

/// Appends succeed only at the length held.
pub(super) async fn appends_compare_the_offset_with_the_length_held(
    store: &impl Store,
) -> ResourceId {
    let id = created(store, None).await;
    assert_eq!(
        store
            .append(id, 0, Bytes::from_static(b"abc"))
            .await
            .unwrap(),
        3
    );
    for offset in [0, 2, 4, 100] {
        assert!(matches!(
            store.append(id, offset, Bytes::from_static(b"x")).await,
            Err(StoreError::Conflict { held: 3 })
        ));
    }
    assert_eq!(
        store
            .append(id, 3, Bytes::from_static(b"de"))
            .await
            .unwrap(),
        5
    );
    assert_eq!(store.get(id).await.unwrap().length, 5);
    id
}

/// Complete lengths and the resource's limit are enforced.
pub(super) async fn lengths_are_checked(store: &impl Store) {
    let id = created(store, Some(4)).await;
    assert!(matches!(
        store.append(id, 0, Bytes::from_static(b"12345")).await,
        Err(StoreError::LengthMismatch { known: Some(4), .. })
    ));
    assert!(store.set_complete_length(id, 5).await.is_err());
    store.set_complete_length(id, 4).await.unwrap();
    store
        .append(id, 0, Bytes::from_static(b"1234"))
        .await
        .unwrap();
    assert!(store.get(id).await.unwrap().is_complete());

    let id = created(store, None).await;
    store
        .append(id, 0, Bytes::from_static(b"123"))
        .await
        .unwrap();
    assert!(store.set_complete_length(id, 2).await.is_err());
    assert!(matches!(
        store.set_complete_length(id, 101).await,
        Err(StoreError::TooLarge { max: 100 })
    ));
    assert!(matches!(
        store.append(id, 3, Bytes::from(vec![0; 98])).await,
        Err(StoreError::TooLarge { max: 100 })
    ));
    assert_eq!(store.get(id).await.unwrap().length, 3);
}

/// `changed` wakes on an append and fails once the resource is removed.
pub(super) async fn changed_wakes_on_append_and_fails_on_remove<S: Store + Clone>(store: &S) {
    let id = created(store, None).await;
    let seen = store.get(id).await.unwrap().version;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.changed(id, seen).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    store.append(id, 0, Bytes::from_static(b"x")).await.unwrap();
    let version = waiter.await.unwrap().unwrap();
    assert!(version > seen);
    assert_eq!(store.changed(id, seen).await.unwrap(), version);

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.changed(id, version).await })
    };
    tokio::task::yield_now().await;
    store.remove(id).await.unwrap();
    assert!(matches!(waiter.await.unwrap(), Err(StoreError::NotFound)));
}
