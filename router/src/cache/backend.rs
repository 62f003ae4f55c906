//! Where cached answers live, behind one trait: in this process ([`MemoryBackend`], bounded in
//! bytes) or in the ledger's Redis ([`super::redis::RedisBackend`], shared by every replica).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use moka::{Expiry, notification::RemovalCause};

/// A backend operation that failed: the request goes on as a miss.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A backend operation in flight.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What an entry is filed under for metrics: its route and mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    /// Public model name of the route.
    pub route: Arc<str>,
    /// `exact` or `semantic`.
    pub mode: &'static str,
}

/// A store of cached answers by key, each kept for its TTL.
pub trait Backend: Send + Sync {
    /// `memory` or `redis` (logs, metrics).
    fn kind(&self) -> &'static str;
    /// The answer stored under `key`, if any and not expired.
    fn get(&self, key: &str) -> BackendFuture<'_, Option<Bytes>>;
    /// Stores `value` under `key` for `ttl`.
    fn put(&self, key: &str, value: Bytes, ttl: Duration, labels: Labels) -> BackendFuture<'_, ()>;
}

#[derive(Clone)]
struct Stored {
    value: Bytes,
    ttl: Duration,
    labels: Labels,
}

struct PerEntryTtl;

impl Expiry<String, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Stored, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Answers in this process: at most `max_bytes` of keys and answers; the least recently used go
/// first (each one counted by `evicted`), and each expires after its TTL.
pub struct MemoryBackend {
    entries: moka::future::Cache<String, Stored>,
}

impl MemoryBackend {
    /// An empty backend of `max_bytes`, telling `evicted` of each entry pushed out for room.
    pub fn new(max_bytes: u64, evicted: impl Fn(&Labels) + Send + Sync + 'static) -> MemoryBackend {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Stored| {
                u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_, v: Stored, cause| {
                if cause == RemovalCause::Size {
                    evicted(&v.labels);
                }
            })
            .build();
        MemoryBackend { entries }
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn get(&self, key: &str) -> BackendFuture<'_, Option<Bytes>> {
        let key = key.to_string();
        Box::pin(async move { Ok(self.entries.get(&key).await.map(|s| s.value)) })
    }

    fn put(&self, key: &str, value: Bytes, ttl: Duration, labels: Labels) -> BackendFuture<'_, ()> {
        let key = key.to_string();
        Box::pin(async move {
            self.entries
                .insert(key, Stored { value, ttl, labels })
                .await;
            // Evictions are counted when they happen, not at some later read.
            self.entries.run_pending_tasks().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn labels() -> Labels {
        Labels {
            route: "m".into(),
            mode: "exact",
        }
    }

    #[tokio::test]
    async fn entries_expire_and_the_oldest_make_room() {
        let evicted = Arc::new(AtomicUsize::new(0));
        let count = evicted.clone();
        let b = MemoryBackend::new(1000, move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let ttl = Duration::from_millis(150);
        b.put("a", Bytes::from(vec![b'x'; 100]), ttl, labels())
            .await
            .unwrap();
        assert_eq!(b.get("a").await.unwrap().unwrap().len(), 100);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(b.get("a").await.unwrap(), None, "expired");
        let long = Duration::from_secs(60);
        for i in 0..30 {
            b.put(
                &format!("k{i}"),
                Bytes::from(vec![b'y'; 100]),
                long,
                labels(),
            )
            .await
            .unwrap();
        }
        b.entries.run_pending_tasks().await;
        assert!(b.entries.weighted_size() <= 1000);
        assert!(evicted.load(Ordering::SeqCst) > 0, "evictions counted");
    }
}
