//! A compiled cache block: what the router's cache reads of a route's (or a key's) `cache`.

use serde::{Deserialize, Serialize};

pub use crate::resources::{CacheMode, CacheScope};

/// How one route (or one key) caches answers; see docs/caching.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachePolicy {
    /// `disabled`, `exact` or `semantic`.
    pub mode: CacheMode,
    /// How long an answer is served, milliseconds.
    pub ttl_ms: u64,
    /// Whose answers a request may be served.
    pub scope: CacheScope,
    /// Semantic matching, with `mode: semantic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticPolicy>,
    /// Largest answer stored, bytes.
    pub max_entry_bytes: u64,
    /// Requests with `temperature` above 0 are cached too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
    /// Tool-loop turns (last message a `tool` result) are never cached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_tool_turns: bool,
    /// Answers that call tools are cached too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_tool_calls: bool,
    /// Truncated answers and refusals are cached too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_incomplete: bool,
}

impl CachePolicy {
    /// TTL when a block sets none: one hour.
    pub const DEFAULT_TTL_MS: u64 = 3_600_000;
    /// `maxEntryBytes` when a block sets none.
    pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 256 * 1024;

    /// Whether this policy caches anything.
    pub fn is_on(&self) -> bool {
        self.mode != CacheMode::Disabled
    }
}

/// Semantic matching of a compiled cache block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemanticPolicy {
    /// Least cosine similarity for a hit, in (0, 1].
    pub threshold: f64,
    /// Public model name of the embeddings route.
    pub embedding_model: String,
}
