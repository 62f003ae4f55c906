use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Response caching: answers to repeated requests served from a cache instead of the upstream
/// (docs/caching.md). On a ModelRoute it applies to every request for the route's model; on an
/// ApiKey it replaces the route's block for that key's requests (`mode: disabled` turns caching
/// off for the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.mode != 'semantic' || has(self.semantic)")
        .message("cache.semantic is required with mode: semantic"),
)]
pub struct CacheSpec {
    /// `exact` (a hash of the normalized request), `semantic` (exact first, then the nearest
    /// earlier question above `semantic.threshold`), or `disabled`.
    pub mode: CacheMode,
    /// How long an answer is served from the cache, as a duration (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Who may be served an answer cached for someone else: `key` (default: only the same
    /// ApiKey), `team` (keys of the same team), `namespace` (keys of this namespace), `shared`
    /// (every key that may call the model).
    #[serde(default)]
    pub scope: CacheScope,
    /// Semantic matching (with `mode: semantic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticCacheSpec>,
    /// Largest answer stored, in bytes (default 262144); larger answers are not cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxEntryBytes must be at least 1"))]
    pub max_entry_bytes: Option<u64>,
    /// Also cache requests that set `temperature` above 0 (sampled answers); off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
    /// Never cache a tool-loop turn (a request whose last message is a `tool` result).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_tool_turns: bool,
    /// Also cache answers that call tools (`finish_reason: tool_calls`); off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_tool_calls: bool,
    /// Also cache truncated answers (`finish_reason: length`) and refusals; off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_incomplete: bool,
}

/// How requests are matched to cached answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CacheMode {
    /// No caching (on an ApiKey: turns the route's caching off for this key). Not `off`,
    /// which YAML 1.1 (kubectl) reads as `false`.
    #[default]
    Disabled,
    /// The same normalized request.
    Exact,
    /// The same request, or one whose last user turn means the same.
    Semantic,
}

/// Whose cached answers a request may be served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CacheScope {
    /// Only answers cached for the same ApiKey.
    #[default]
    Key,
    /// Answers cached for any key of the same team (keys without a team: the key alone).
    Team,
    /// Answers cached for any key of the same namespace.
    Namespace,
    /// Answers cached for any key.
    Shared,
}

/// Semantic matching of a cache block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemanticCacheSpec {
    /// Least cosine similarity of the last user turns for a hit, above 0 and at most 1
    /// (e.g. `0.9`).
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0")
        .message("semantic.threshold must be above 0 and at most 1"))]
    pub threshold: f64,
    /// The public model name of an embeddings route that embeds the last user turn (the call is
    /// priced and recorded like any embeddings request of the caller).
    #[schemars(length(min = 1, max = 256))]
    pub embedding_model: String,
}
