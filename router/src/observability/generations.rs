//! The generation records behind `GET /api/v1/generation?id=gen-...`: what happened to a recent
//! request — who served it, every attempt with its outcome and latency, tokens, cost, streamed or
//! not, finish reason. Recent records live in a bounded in-memory store on the replica that
//! served the request and, with the Redis ledger, in Redis for every replica ([`Stored`] is that
//! shared form); older ones, and those from before a restart, in the usage store.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::usage::record::UsageRecord;

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
    HashMap<String, Arc<UsageRecord>>,
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

    /// Keeps a record, evicting the oldest beyond capacity or age.
    pub fn insert(&self, stored: Arc<UsageRecord>) {
        let now = Instant::now();
        let mut guard = self.inner.lock().expect("generation store poisoned");
        let (map, order) = &mut *guard;
        order.push_back((now, stored.id.clone()));
        map.insert(stored.id.clone(), stored);
        while let Some((at, id)) = order.front() {
            if order.len() > self.capacity || now.duration_since(*at) > self.ttl {
                map.remove(id);
                order.pop_front();
            } else {
                break;
            }
        }
    }

    /// The record with this id, if still kept on this replica.
    pub fn get(&self, id: &str) -> Option<Arc<UsageRecord>> {
        let guard = self.inner.lock().expect("generation store poisoned");
        guard.0.get(id).cloned()
    }
}

impl From<&UsageRecord> for Stored {
    fn from(r: &UsageRecord) -> Stored {
        Stored {
            key_id: r.key_id.clone(),
            data: r.render(false),
        }
    }
}
