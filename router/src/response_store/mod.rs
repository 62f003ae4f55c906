//! Stored Responses (`store: true`, the OpenAI default): what `previous_response_id`,
//! `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and `DELETE /v1/responses/{id}`
//! read. Each record belongs to the ApiKey that created it: another key sees nothing (a 404).
//! Behind [`ResponseStore`]: in-process, bounded in bytes and by age ([`memory`]), standalone;
//! Redis with a TTL ([`redis`]), the ledger's Redis, when replicas share keys.

pub mod memory;
pub mod redis;

use std::{future::Future, pin::Pin, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// How long records are kept unless configured, and the in-process store's size.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// How long a record is kept.
    pub ttl: Duration,
    /// The in-process store's limit in bytes of stored JSON (the oldest records go first).
    pub max_bytes: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            ttl: Duration::from_secs(24 * 3600),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One stored response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The ApiKey (`namespace/name`) that created it: the only one that may read it.
    pub key_id: String,
    /// The `response` object as the client got it.
    pub response: Box<RawValue>,
    /// The whole conversation it answered, as input items with ids (earlier turns included).
    pub input_items: Box<RawValue>,
}

impl StoredResponse {
    /// The record's size, for the in-process store's limit.
    pub fn size(&self) -> usize {
        self.key_id.len() + self.response.get().len() + self.input_items.get().len()
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the response store is unavailable: {0}")]
pub struct StoreError(pub String);

/// A boxed store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where stored responses live.
pub trait ResponseStore: Send + Sync {
    /// Keeps `record` under `id` for the store's TTL.
    fn put(&self, id: &str, record: StoredResponse) -> StoreFuture<'_, ()>;

    /// The record `id`, if it exists and belongs to `key_id`.
    fn get(&self, id: &str, key_id: &str) -> StoreFuture<'_, Option<StoredResponse>>;

    /// Deletes record `id` if it belongs to `key_id`; whether it did.
    fn delete(&self, id: &str, key_id: &str) -> StoreFuture<'_, bool>;

    /// `memory` or `redis`, for logs.
    fn kind(&self) -> &'static str;
}
