//! The generation records behind `GET /api/v1/generation?id=gen-...`: what happened to a recent
//! request — who served it, every attempt with its outcome and latency, tokens, cost, streamed or
//! not, finish reason. Records live in a bounded in-memory store on the replica that served the
//! request and, with the Redis ledger, in Redis for every replica ([`Stored`] is that shared form).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rust_decimal::Decimal;
use serde_json::json;

use crate::{error::AttemptReport, pricing::Usage};

/// What is kept about one request.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Generation id.
    pub id: String,
    /// ApiKey id that made the request.
    pub key_id: String,
    /// When it was recorded.
    pub created_at: SystemTime,
    /// Public model that served (or was asked for, if none did).
    pub model: String,
    /// Provider that served.
    pub provider: Option<String>,
    /// Upstream model id that served.
    pub upstream_model: Option<String>,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Streamed or not.
    pub streamed: bool,
    /// Finish reason.
    pub finish_reason: Option<String>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Cost in USD.
    pub cost: Option<Decimal>,
    /// Why the upstream's usage was not billed as reported (`<field> <kind>`), if it was not.
    pub usage_anomaly: Option<String>,
    /// Total latency.
    pub latency_ms: u64,
    /// Every upstream attempt.
    pub attempts: Vec<AttemptReport>,
    /// Outcome when not plain success.
    pub outcome: Option<String>,
}

/// A record as served: the key that may read it and the rendered `data`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    /// ApiKey id that made the request.
    pub key_id: String,
    /// The `data` object of the response.
    pub data: serde_json::Value,
}

/// Records by id, and ids in insertion order for eviction.
type Records = (
    HashMap<String, Arc<Generation>>,
    VecDeque<(Instant, String)>,
);

/// Recent generations, bounded in count and age.
pub struct GenerationStore {
    inner: Mutex<Records>,
    capacity: usize,
    ttl: Duration,
}

impl Default for GenerationStore {
    fn default() -> Self {
        GenerationStore {
            inner: Mutex::default(),
            capacity: 10_000,
            ttl: Duration::from_secs(3600),
        }
    }
}

impl GenerationStore {
    /// How long records are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keeps a record, evicting the oldest beyond capacity or age; returns it as stored.
    pub fn insert(&self, g: Generation) -> Arc<Generation> {
        let stored = Arc::new(g);
        let now = Instant::now();
        let mut guard = self.inner.lock().expect("generation store poisoned");
        let (map, order) = &mut *guard;
        order.push_back((now, stored.id.clone()));
        map.insert(stored.id.clone(), stored.clone());
        while let Some((at, id)) = order.front() {
            if order.len() > self.capacity || now.duration_since(*at) > self.ttl {
                map.remove(id);
                order.pop_front();
            } else {
                break;
            }
        }
        stored
    }

    /// The record with this id, if still kept on this replica.
    pub fn get(&self, id: &str) -> Option<Arc<Generation>> {
        let guard = self.inner.lock().expect("generation store poisoned");
        guard.0.get(id).cloned()
    }
}

impl From<&Generation> for Stored {
    fn from(g: &Generation) -> Stored {
        Stored {
            key_id: g.key_id.clone(),
            data: render(g),
        }
    }
}

fn render(g: &Generation) -> serde_json::Value {
    let created = g
        .created_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let usage = g.usage.unwrap_or_default();
    json!({
        "id": g.id,
        "created_at": created,
        "model": g.model,
        "provider_name": g.provider,
        "upstream_model": g.upstream_model,
        "status": g.status,
        "streamed": g.streamed,
        "finish_reason": g.finish_reason,
        "tokens_prompt": usage.prompt_tokens,
        "tokens_completion": usage.completion_tokens,
        "native_tokens_cached": usage.cached_tokens,
        "native_tokens_reasoning": usage.reasoning_tokens,
        "total_cost": g.cost.map(|c| c.normalize().to_string()),
        "usage_anomaly": g.usage_anomaly,
        "latency": g.latency_ms,
        "attempts": g.attempts,
        "outcome": g.outcome,
    })
}
