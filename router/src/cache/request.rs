//! A request's part in the cache: the lookup before admission ([`lookup`]), serving a hit,
//! storing a miss's answer once complete ([`Fill`]) and replaying a streamed hit. Kept apart from
//! the cache itself so that the process state, which holds a [`super::Cache`], is not a
//! dependency of the cache.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use switchboard_api::{
    money::to_nanos,
    snapshot::{CacheMode, CachePolicy},
};

use prometheus::IntCounterVec;

use super::{
    CACHE_HEADER, Cache, Mark, SIMILARITY_HEADER,
    backend::Labels,
    entry::{self, Assembler},
    key,
};
use crate::{
    auth::Caller, json::RawObject, observability::access::Access, routing::Plan, state::AppState,
    streaming::frames::FrameStream,
};

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
