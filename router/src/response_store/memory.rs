//! The in-process response store: a map bounded in bytes (the oldest records are dropped first)
//! whose records expire after the TTL.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Instant,
};

use super::{ResponseStore, StoreFuture, StoreSettings, StoredResponse};

struct Entry {
    record: StoredResponse,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Ids in insertion order (an id may appear again after a replacement; stale ones are
    /// skipped).
    order: VecDeque<(String, Instant)>,
    bytes: usize,
}

/// An in-process store.
pub struct MemoryStore {
    settings: StoreSettings,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store with these limits.
    pub fn new(settings: StoreSettings) -> MemoryStore {
        MemoryStore {
            settings,
            inner: Mutex::default(),
        }
    }

    fn put_now(&self, id: &str, record: StoredResponse, now: Instant) {
        let size = record.size();
        if size > self.settings.max_bytes {
            tracing::warn!(
                id,
                size,
                "a response is larger than the response store; not stored"
            );
            return;
        }
        let mut inner = self.inner.lock().expect("not poisoned");
        let expires = now + self.settings.ttl;
        if let Some(old) = inner.map.insert(id.to_string(), Entry { record, expires }) {
            inner.bytes -= old.record.size();
        }
        inner.bytes += size;
        inner.order.push_back((id.to_string(), expires));
        // Drop expired records, then the oldest until the store fits.
        while let Some((oldest, at)) = inner.order.front().cloned() {
            let current = inner.map.get(&oldest).map(|e| e.expires);
            let stale = current != Some(at);
            if !(stale || at <= now || inner.bytes > self.settings.max_bytes) {
                break;
            }
            inner.order.pop_front();
            if !stale && let Some(e) = inner.map.remove(&oldest) {
                inner.bytes -= e.record.size();
            }
        }
    }

    fn get_now(&self, id: &str, key_id: &str, now: Instant) -> Option<StoredResponse> {
        let inner = self.inner.lock().expect("not poisoned");
        inner
            .map
            .get(id)
            .filter(|e| e.expires > now && e.record.key_id == key_id)
            .map(|e| e.record.clone())
    }
}

impl ResponseStore for MemoryStore {
    fn put(&self, id: &str, record: StoredResponse) -> StoreFuture<'_, ()> {
        self.put_now(id, record, Instant::now());
        Box::pin(async { Ok(()) })
    }

    fn get(&self, id: &str, key_id: &str) -> StoreFuture<'_, Option<StoredResponse>> {
        let found = self.get_now(id, key_id, Instant::now());
        Box::pin(async { Ok(found) })
    }

    fn delete(&self, id: &str, key_id: &str) -> StoreFuture<'_, bool> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let mine = inner
            .map
            .get(id)
            .is_some_and(|e| e.record.key_id == key_id && e.expires > Instant::now());
        if mine && let Some(e) = inner.map.remove(id) {
            inner.bytes -= e.record.size();
        }
        Box::pin(async move { Ok(mine) })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::value::RawValue;

    use super::*;

    fn record(key: &str, payload: &str) -> StoredResponse {
        StoredResponse {
            key_id: key.into(),
            response: RawValue::from_string(format!("{{\"p\":\"{payload}\"}}")).unwrap(),
            input_items: RawValue::from_string("[]".into()).unwrap(),
        }
    }

    #[test]
    fn records_are_scoped_to_their_key_and_expire() {
        let store = MemoryStore::new(StoreSettings {
            ttl: Duration::from_secs(10),
            max_bytes: 1 << 20,
        });
        let t0 = Instant::now();
        store.put_now("resp_1", record("ns/a", "x"), t0);
        assert!(store.get_now("resp_1", "ns/a", t0).is_some());
        assert!(
            store.get_now("resp_1", "ns/b", t0).is_none(),
            "another key sees nothing"
        );
        assert!(
            store
                .get_now("resp_1", "ns/a", t0 + Duration::from_secs(11))
                .is_none()
        );
    }

    #[test]
    fn the_oldest_records_go_when_the_store_is_full() {
        let one = record("k", "0123456789").size();
        let store = MemoryStore::new(StoreSettings {
            ttl: Duration::from_secs(60),
            max_bytes: one * 2,
        });
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            store.put_now(id, record("k", "0123456789"), t0);
        }
        assert!(store.get_now("a", "k", t0).is_none());
        assert!(store.get_now("b", "k", t0).is_some());
        assert!(store.get_now("c", "k", t0).is_some());
        assert_eq!(store.inner.lock().unwrap().bytes, one * 2);
    }

    #[tokio::test]
    async fn only_the_owner_deletes() {
        let store = MemoryStore::new(StoreSettings::default());
        store.put("r", record("k", "x")).await.unwrap();
        assert!(!store.delete("r", "other").await.unwrap());
        assert!(store.delete("r", "k").await.unwrap());
        assert!(store.get("r", "k").await.unwrap().is_none());
    }
}
