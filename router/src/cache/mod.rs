//! Response caching (docs/caching.md): a request whose route (or key) caches is looked up before
//! budget admission; a hit is answered from the cache with no upstream call and no charge, a
//! miss goes on and its answer is stored once it is complete. The key and what may be cached are
//! pure ([`key`], [`entry`]); answers live in a [`backend::Backend`] (in process, or the ledger's
//! Redis shared by replicas); semantic lookups use this replica's [`semantic::Index`]. A backend
//! that fails makes misses, a WARN and `switchboard_cache_errors_total`, never an error.

pub mod backend;
pub mod entry;
pub mod key;
pub mod redis;
pub mod request;
pub mod semantic;

use std::sync::Arc;

use bytes::Bytes;
use prometheus::IntCounterVec;

use self::backend::{Backend, Labels, MemoryBackend};

pub use key::Directives;

/// Header saying what the cache did: `hit`, `miss` or `bypass` (absent when the route does not
/// cache).
pub const CACHE_HEADER: &str = "x-switchboard-cache";
/// Header with a semantic hit's cosine similarity.
pub const SIMILARITY_HEADER: &str = "x-switchboard-cache-similarity";

/// The process's cache settings.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// Bytes of answers kept in process when there is no Redis.
    pub max_bytes: u64,
    /// The ledger's Redis: answers are kept there, shared by replicas.
    pub redis_url: Option<String>,
    /// Bytes of this replica's semantic index.
    pub semantic_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_bytes: 256 << 20,
            redis_url: None,
            semantic_bytes: 64 << 20,
        }
    }
}

/// The counters a cache keeps, all by route and mode.
#[derive(Clone)]
pub struct CacheMetrics {
    /// Requests answered from the cache.
    pub hits: IntCounterVec,
    /// Requests looked up and not found.
    pub misses: IntCounterVec,
    /// Entries pushed out for room.
    pub evictions: IntCounterVec,
    /// What hits saved, nano-dollars (exposed in USD).
    pub saved_usd: IntCounterVec,
    /// Backend operations that failed, by backend and operation.
    pub errors: IntCounterVec,
}

/// The cache of one router process.
pub struct Cache {
    backend: Arc<dyn Backend>,
    index: semantic::Index,
    metrics: CacheMetrics,
}

impl Cache {
    /// A cache as `settings` say: in the Redis named, else in process.
    pub fn new(settings: &CacheSettings, metrics: CacheMetrics) -> Cache {
        let evictions = metrics.evictions.clone();
        let memory = || -> Arc<dyn Backend> {
            Arc::new(MemoryBackend::new(settings.max_bytes, move |l: &Labels| {
                evictions.with_label_values(&[&l.route, l.mode]).inc();
            }))
        };
        let backend = match settings.redis_url.as_deref().map(redis::RedisBackend::new) {
            Some(Ok(r)) => Arc::new(r) as Arc<dyn Backend>,
            Some(Err(e)) => {
                tracing::warn!("response cache kept in process: {e}");
                memory()
            }
            None => memory(),
        };
        Cache {
            backend,
            index: semantic::Index::new(settings.semantic_bytes, semantic::MAX_POINTS),
            metrics,
        }
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        match self.backend.get(key).await {
            Ok(v) => v,
            Err(e) => {
                self.failed("get", &e);
                None
            }
        }
    }

    fn failed(&self, op: &str, e: &backend::BackendError) {
        let kind = self.backend.kind();
        self.metrics.errors.with_label_values(&[kind, op]).inc();
        tracing::warn!(
            backend = kind,
            op,
            "response cache unavailable, served as a miss: {e}"
        );
    }
}

/// How a hit is recorded on the request's usage record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// `exact` or `semantic`.
    pub mode: &'static str,
    /// What the answer cost when it was made, nano-dollars.
    pub saved_nanos: i64,
}
