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
pub mod semantic;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use prometheus::IntCounterVec;
use switchboard_api::{
    money::to_nanos,
    snapshot::{CacheMode, CachePolicy},
};

use self::{
    backend::{Backend, Labels, MemoryBackend},
    entry::Assembler,
};
use crate::{
    auth::Caller, json::RawObject, observability::access::Access, routing::Plan, state::AppState,
    streaming::frames::FrameStream,
};

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

/// Embeds a text with an embeddings route, on behalf of the request `parent` (the call is priced
/// and recorded as the caller's own embeddings request).
pub trait Embedder: Sync {
    /// The embedding of `text` by the public model `model`, or why there is none.
    fn embed<'a>(
        &'a self,
        parent: &'a Access,
        model: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<f32>, String>> + Send + 'a>>;
}

/// What the cache did, for the response's headers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tag {
    /// Served from the cache (with the similarity of a semantic hit).
    Hit(Option<f32>),
    /// Looked up, not found.
    Miss,
    /// Not looked up.
    Bypass,
}

impl Tag {
    /// Adds [`CACHE_HEADER`] (and [`SIMILARITY_HEADER`]) to `response`.
    pub fn apply(self, response: &mut axum::response::Response) {
        let h = response.headers_mut();
        let value = match self {
            Tag::Hit(similarity) => {
                if let Some(s) = similarity
                    && let Ok(v) = http::HeaderValue::from_str(&format!("{s:.4}"))
                {
                    h.insert(SIMILARITY_HEADER, v);
                }
                "hit"
            }
            Tag::Miss => "miss",
            Tag::Bypass => "bypass",
        };
        h.insert(CACHE_HEADER, http::HeaderValue::from_static(value));
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

/// What to store once a missed request's answer is complete.
pub struct Fill {
    key: String,
    semantic: Option<(String, Vec<f32>)>,
    policy: CachePolicy,
    labels: Labels,
}

/// The outcome of a lookup.
#[derive(Default)]
pub struct Lookup {
    /// What the response's headers say; `None` when caching is off for the request.
    pub tag: Option<Tag>,
    hit: Option<entry::Hit>,
    fill: Option<Fill>,
}

/// A hit, as it is sent.
pub enum Served {
    /// A complete `chat.completion` body.
    Complete(Bytes),
    /// The SSE frames of a chat stream.
    Stream(Vec<Bytes>),
}

/// The policy for a request: the caller's key's, else its model's route's; `None` when off.
fn policy_for<'p>(caller: &'p Caller, plan: &Plan<'p>) -> Option<(&'p CachePolicy, &'p str)> {
    let route = plan.models.first()?.route;
    let policy = caller.key().cache.as_ref().or(route.cache.as_ref())?;
    policy.is_on().then_some((policy, route.model.as_str()))
}

/// Looks the request up, before it is admitted: a hit to serve, or what to store after a miss.
pub async fn lookup(
    state: &AppState,
    caller: &Caller,
    plan: &Plan<'_>,
    body: &RawObject,
    access: &Access,
    embedder: &dyn Embedder,
) -> Lookup {
    let Some((policy, route)) = policy_for(caller, plan) else {
        return Lookup::default();
    };
    let cache = &state.cache;
    let scope = key::scope_of(policy.scope, caller.key());
    let mode = match policy.mode {
        CacheMode::Semantic => "semantic",
        _ => "exact",
    };
    let labels = Labels {
        route: route.into(),
        mode,
    };
    let Some(exact) = key::exact_key(&scope, access.endpoint, body) else {
        return Lookup {
            tag: Some(Tag::Bypass),
            ..Lookup::default()
        };
    };
    let mut fill = Fill {
        key: exact,
        semantic: None,
        policy: policy.clone(),
        labels,
    };
    let directives = access.cache_directives.with_body(body);
    if let Err(bypass) = key::admit(policy, body, directives) {
        return Lookup {
            tag: Some(Tag::Bypass),
            hit: None,
            fill: bypass.stores().then_some(fill),
        };
    }
    let count = |c: &IntCounterVec| c.with_label_values(&[route, mode]).inc();
    if let Some(hit) = cache.get(&fill.key).await.as_deref().and_then(entry::hit) {
        count(&cache.metrics.hits);
        return Lookup::hit(cache, &fill.labels, hit, None);
    }
    if let Some(semantic) = policy
        .semantic
        .as_ref()
        .filter(|_| policy.mode == CacheMode::Semantic)
        && let Some((partition, text)) = key::semantic_parts(&scope, access.endpoint, body)
    {
        match embedder
            .embed(access, &semantic.embedding_model, &text)
            .await
        {
            Ok(vector) => {
                let near = cache.index.nearest(&partition, &vector, Instant::now());
                if let Some((k, similarity)) = near.filter(|(_, s)| *s as f64 >= semantic.threshold)
                    && let Some(hit) = cache.get(&k).await.as_deref().and_then(entry::hit)
                {
                    count(&cache.metrics.hits);
                    return Lookup::hit(cache, &fill.labels, hit, Some(similarity));
                }
                fill.semantic = Some((partition, vector));
            }
            Err(e) => tracing::warn!(
                model = %semantic.embedding_model,
                "semantic cache lookup without an embedding, served as a miss: {e}"
            ),
        }
    }
    count(&cache.metrics.misses);
    Lookup {
        tag: Some(Tag::Miss),
        hit: None,
        fill: Some(fill),
    }
}

impl Lookup {
    fn hit(cache: &Cache, labels: &Labels, hit: entry::Hit, similarity: Option<f32>) -> Lookup {
        cache
            .metrics
            .saved_usd
            .with_label_values(&[&labels.route, labels.mode])
            .inc_by(u64::try_from(to_nanos(hit.saved)).unwrap_or(0));
        Lookup {
            tag: Some(Tag::Hit(similarity)),
            hit: Some(hit),
            fill: None,
        }
    }

    /// Whether the request is answered from the cache.
    pub fn is_hit(&self) -> bool {
        self.hit.is_some()
    }

    /// The hit to send, if the lookup found one, with the request's record marked: no
    /// upstream, nothing charged, the saved cost noted.
    pub fn serve(&mut self, stream: bool, access: &mut Access) -> Option<Served> {
        let hit = self.hit.take()?;
        let mode = match self.tag {
            Some(Tag::Hit(Some(_))) => "semantic",
            _ => "exact",
        };
        access.cost = Some(rust_decimal::Decimal::ZERO);
        access.usage = Some(hit.usage);
        access.finish_reason = hit.finish_reason;
        access.cache = Some(Mark {
            mode,
            saved_nanos: to_nanos(hit.saved),
        });
        if !stream {
            return Some(Served::Complete(hit.body));
        }
        access.time_to_first_token = Some(access.elapsed());
        entry::replay(&hit.body).map(Served::Stream)
    }

    /// Stores a complete answer to a missed request (in the background), if it may be stored.
    pub fn store_complete(&mut self, state: &Arc<AppState>, body: &Bytes) {
        if let Some(fill) = self.fill.take() {
            fill.store(state, body.clone());
        }
    }

    /// Passes a missed request's chat stream on, storing the answer it made once it ended
    /// cleanly.
    pub fn store_stream(&mut self, state: &Arc<AppState>, frames: FrameStream) -> FrameStream {
        let Some(fill) = self.fill.take() else {
            return frames;
        };
        let state = state.clone();
        let mut buf = String::new();
        let mut assembler = Some(Assembler::default());
        let mut fill = Some(fill);
        let tee = frames.map(move |frame| {
            if let (Ok(bytes), Some(a)) = (&frame, assembler.as_mut()) {
                buf.push_str(&String::from_utf8_lossy(bytes));
                let mut done = false;
                for p in crate::streaming::sse::take_payloads(&mut buf) {
                    done |= p.trim() == "[DONE]";
                    a.push(&p);
                }
                if done
                    && let (Some(a), Some(fill)) = (assembler.take(), fill.take())
                    && let Some(body) = a.finish()
                {
                    fill.store(&state, Bytes::from(body));
                }
            }
            frame
        });
        Box::pin(tee)
    }
}

impl Fill {
    fn store(self, state: &Arc<AppState>, body: Bytes) {
        if !entry::storable(&body, &self.policy) {
            return;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let cache = &state.cache;
            let ttl = Duration::from_millis(self.policy.ttl_ms);
            let labels = self.labels.clone();
            if let Err(e) = cache.backend.put(&self.key, body, ttl, labels).await {
                cache.failed("put", &e);
                return;
            }
            if let Some((partition, vector)) = self.semantic {
                let expires = Instant::now() + ttl;
                let dropped = cache.index.insert(&partition, vector, self.key, expires);
                cache
                    .metrics
                    .evictions
                    .with_label_values(&[&self.labels.route, self.labels.mode])
                    .inc_by(dropped as u64);
            }
        });
    }
}

/// Takes a boolean `cache` (the client's directive to this cache) out of the body sent upstream,
/// which would not know it.
pub fn strip_directive(body: &mut RawObject) {
    if body
        .get("cache")
        .is_some_and(|v| matches!(v.get(), "true" | "false"))
    {
        body.remove("cache");
    }
}

/// A hit's frames as the response's stream; the request's record is written after the last.
pub fn replay_stream(frames: Vec<Bytes>, access: Access) -> FrameStream {
    let frames = stream::iter(frames.into_iter().map(Ok));
    let end = stream::once(async move {
        drop(access);
        None
    });
    Box::pin(frames.map(Some).chain(end).filter_map(std::future::ready))
}
