//! The `RouterConfig` snapshot: everything a router needs to serve, compiled from the custom
//! resources. No Kubernetes types live here; money is exact [`Decimal`]; client keys appear only
//! as SHA-256 hashes. Provider credentials are inside (routers need them), so the snapshot travels
//! only over authenticated channels and is shown to people only through [`RouterConfig::redacted`].

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::identity::{IssuerConfig, KeySource, SubjectConfig};
pub use crate::resources::{
    BudgetAction, BudgetWindow, Capability, DataCollection, DataPolicy, FailureMode,
    ProviderPolicy, ProviderType, RateLimits, RouteSort,
};

/// Path of the operator's config stream (server-sent events, one `snapshot` event per version)
/// that routers started with `--operator-url` follow.
pub const CONFIG_STREAM_PATH: &str = "/v1/config/stream";

pub mod cache;
pub mod delta;
pub mod digest;
pub mod shards;
pub mod text;

pub use cache::{CacheMode, CachePolicy, CacheScope, SemanticPolicy};
pub use delta::{DeltaError, SnapshotDelta};
pub use digest::{EntryDigest, Section, SnapshotDigest};
pub use text::SnapshotText;

/// A compiled, versioned, content-hashed router configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterConfig {
    /// Monotonic version assigned by whoever publishes the snapshot (0 = never published).
    pub version: u64,
    /// The content hash (everything but `version` and `hash`; see [`digest`]): equal content,
    /// equal hash.
    pub hash: String,
    /// Providers by id (`namespace/name`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Routes by public model name.
    pub routes: BTreeMap<String, RouteConfig>,
    /// Client keys by hex SHA-256 of the key.
    #[serde(deserialize_with = "keys_by_hash")]
    pub api_keys: BTreeMap<String, ApiKeyConfig>,
    /// Budgets by id (`namespace/name`).
    pub budgets: BTreeMap<String, BudgetConfig>,
    /// Issuers whose tokens are trusted, by issuer URL (`iss`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issuers: BTreeMap<String, IssuerConfig>,
}

impl RouterConfig {
    /// The content hash of this snapshot, ignoring `version` and `hash`.
    pub fn content_hash(&self) -> String {
        SnapshotDigest::of(self).hash()
    }

    /// Recomputes `hash` from the content.
    pub fn seal(mut self) -> Self {
        self.hash = self.content_hash();
        self
    }

    /// Checks the snapshot is internally consistent: the hash matches and every route target names
    /// a provider and model that exist. Routers refuse a snapshot that fails this.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_digest().map(drop)
    }

    /// [`RouterConfig::validate`], returning the digest it computed (to apply deltas to).
    pub fn validate_digest(&self) -> Result<SnapshotDigest, String> {
        let digest = SnapshotDigest::of(self);
        if self.hash != digest.hash() {
            return Err("snapshot hash does not match its content".into());
        }
        for (name, route) in &self.routes {
            if route.model != *name {
                return Err(format!("route {name} is filed under the wrong name"));
            }
            for t in &route.targets {
                let provider = self.providers.get(&t.provider).ok_or_else(|| {
                    format!("route {name} targets unknown provider {}", t.provider)
                })?;
                if !provider.models.contains_key(&t.model) {
                    return Err(format!(
                        "route {name} targets model {} that provider {} does not offer",
                        t.model, t.provider
                    ));
                }
            }
        }
        Ok(digest)
    }

    /// A copy safe to show: every provider credential replaced by `<redacted>`.
    pub fn redacted(&self) -> RouterConfig {
        let mut copy = self.clone();
        for p in copy.providers.values_mut() {
            if let Some(CredentialSource::Value(v)) = &mut p.credential {
                *v = SecretValue::new("<redacted>");
            }
        }
        copy
    }
}

/// The Budgets (ids, in order) covering each key, by key id (`namespace/name`): built once per
/// snapshot version, so a request finds its budgets without testing every Budget.
pub fn budgets_by_key(config: &RouterConfig) -> std::collections::HashMap<String, Vec<Arc<str>>> {
    let mut out: std::collections::HashMap<String, Vec<Arc<str>>> =
        std::collections::HashMap::with_capacity(config.api_keys.len());
    for (id, budget) in &config.budgets {
        let id: Arc<str> = id.as_str().into();
        for key in &budget.api_keys {
            match out.get_mut(&**key) {
                Some(budgets) => budgets.push(id.clone()),
                None => {
                    out.insert(key.to_string(), vec![id.clone()]);
                }
            }
        }
    }
    out
}

/// Hex SHA-256 of a client key: the only form in which keys are stored or compared.
pub fn hash_api_key(key: &str) -> String {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(key.as_bytes()), &mut hex).expect("64 hex digits");
    String::from_utf8(hex.to_vec()).expect("hex is ASCII")
}

/// The recognisable start of a client key, safe to show (`sk-sb-abc1…`).
pub fn key_prefix(key: &str) -> String {
    let end = key.char_indices().nth(10).map_or(key.len(), |(i, _)| i);
    let mut out = String::with_capacity(end + '…'.len_utf8());
    out.push_str(&key[..end]);
    out.push('…');
    out
}

/// One upstream account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// Namespace of the Provider object.
    pub namespace: String,
    /// Name of the Provider object; shown to clients as the `provider` that served them.
    pub name: String,
    /// Wire format / vendor.
    pub provider_type: ProviderType,
    /// Base URL including the version path, without a trailing slash (`None` for `mock`).
    pub base_url: Option<String>,
    /// Where the credential comes from, if the upstream needs one.
    pub credential: Option<CredentialSource>,
    /// Extra headers sent upstream.
    pub headers: BTreeMap<String, String>,
    /// Models offered, by upstream model id.
    pub models: BTreeMap<String, ModelConfig>,
    /// Data policy of the provider, when it declares one.
    pub data_policy: Option<DataPolicy>,
    /// Most requests in flight at once per router replica.
    pub max_concurrent_requests: Option<u32>,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// Behaviour of the built-in mock (only for `mock`).
    pub mock: Option<MockConfig>,
    /// Azure OpenAI settings (only for `azureOpenAI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureConfig>,
    /// AWS Bedrock settings (only for `bedrock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockConfig>,
    /// Google Vertex AI settings (only for `vertex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexConfig>,
}

/// Azure OpenAI settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureConfig {
    /// The `api-version` query parameter.
    pub api_version: String,
}

/// AWS Bedrock settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BedrockConfig {
    /// Region requests are signed for.
    pub region: String,
}

/// Google Vertex AI settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VertexConfig {
    /// Project id; `None` means the service-account key's `project_id`.
    pub project: Option<String>,
    /// Location, e.g. `us-central1`.
    pub location: String,
}

/// A credential, resolved by the compiler from a Secret or left to the router's environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialSource {
    /// The credential itself, from a Secret.
    Value(SecretValue),
    /// The name of an environment variable the router reads when it loads the snapshot.
    Env(String),
}

/// A secret string: serialized as is (the snapshot must carry it), never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The secret itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A model a provider offers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// Prices in USD.
    pub pricing: PriceTable,
    /// Context window in tokens.
    pub context_length: Option<u32>,
    /// Maximum output tokens.
    pub max_output_tokens: Option<u32>,
    /// Capabilities.
    pub capabilities: BTreeSet<Capability>,
}

/// Exact USD prices; token prices are per million tokens, missing ones are zero or fall back as
/// documented on the Provider resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    /// Per million input tokens.
    pub input_per_million: Decimal,
    /// Per million output tokens.
    pub output_per_million: Decimal,
    /// Per million cached input tokens.
    pub cached_input_per_million: Decimal,
    /// Per million cache-write input tokens.
    pub cache_write_per_million: Decimal,
    /// Per million reasoning tokens.
    pub reasoning_per_million: Decimal,
    /// Per request.
    pub per_request: Decimal,
    /// Per input image.
    pub per_image: Decimal,
}

/// Upstream timeouts in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Connection establishment.
    pub connect_ms: u64,
    /// Until response headers and, when streaming, the first chunk.
    pub first_token_ms: u64,
    /// Longest gap between stream chunks.
    pub idle_ms: u64,
    /// Whole request.
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 10_000,
            first_token_ms: 60_000,
            idle_ms: 60_000,
            total_ms: 600_000,
        }
    }
}

/// Behaviour of the built-in mock upstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MockConfig {
    /// Fixed reply; `None` echoes the last user message.
    pub reply: Option<String>,
    /// Characters per streamed chunk.
    pub chunk_chars: u32,
    /// Delay between chunks in milliseconds.
    pub chunk_delay_ms: u64,
    /// Embedding vector dimension.
    pub embedding_dimensions: u32,
}

/// A public model name and the targets that serve it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    /// Public model name.
    pub model: String,
    /// Namespace of the ModelRoute object.
    pub namespace: String,
    /// Name of the ModelRoute object.
    pub name: String,
    /// Targets that resolved, in declared order.
    pub targets: Vec<TargetConfig>,
    /// Public model names to try after every target failed.
    pub fallback_models: Vec<String>,
    /// Explicit ordering, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<RouteSort>,
    /// Retry passes after all targets failed transiently.
    pub retry: RetryConfig,
    /// Deadline for a whole request in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Requests for this model keep their content in the usage store.
    #[serde(default, skip_serializing_if = "is_default")]
    pub record_content: bool,
    /// Response caching for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
}

/// Retry passes over a route's targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Extra passes.
    pub attempts: u32,
    /// First backoff in milliseconds (doubled each pass, full jitter).
    pub backoff_ms: u64,
    /// Cap on the backoff in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 1,
            backoff_ms: 200,
            max_backoff_ms: 2_000,
        }
    }
}

/// A provider model serving a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetConfig {
    /// Provider id (`namespace/name`), a key of [`RouterConfig::providers`].
    pub provider: String,
    /// Upstream model id, a key of that provider's `models`.
    pub model: String,
    /// Relative weight among equal priorities.
    pub weight: u32,
    /// Lower first.
    pub priority: i32,
}

/// A client key. Fields at their default are left out of the JSON: a snapshot holds one of these
/// per key, so every byte counts a hundred thousand times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyConfig {
    /// Namespace of the ApiKey object.
    pub namespace: String,
    /// Name of the ApiKey object (what logs and metrics show; never the key).
    pub name: String,
    /// Team, from `spec.team` or the `team` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Hex SHA-256 of the key. Not in the JSON: the key is filed under it, and a map of keys is
    /// read back with [`keys_by_hash`].
    #[serde(default, skip_serializing)]
    pub key_hash: String,
    /// Recognisable prefix of the key.
    pub prefix: String,
    /// Allowed model globs (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Denied model globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_models: Vec<String>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rate_limits: RateLimits,
    /// Provider preferences applied to every request of the key.
    #[serde(default, skip_serializing_if = "is_default")]
    pub provider_policy: ProviderPolicy,
    /// Expiry as Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Refused when true.
    #[serde(default, skip_serializing_if = "is_default")]
    pub disabled: bool,
    /// With `fitMaxTokens` on: the lowest output limit a request of this key is fitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_min_tokens: Option<u64>,
    /// This key's requests keep their content in the usage store.
    #[serde(default, skip_serializing_if = "is_default")]
    pub record_content: bool,
    /// Replaces the cache policy of the routes this key calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// Callers who authenticate as this key with a token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<SubjectConfig>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Reads a map of keys by hash, setting each key's `key_hash` from the hash it is filed under.
pub fn keys_by_hash<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, ApiKeyConfig>, D::Error> {
    let mut keys = BTreeMap::<String, ApiKeyConfig>::deserialize(deserializer)?;
    for (hash, key) in &mut keys {
        key.key_hash.clone_from(hash);
    }
    Ok(keys)
}

impl ApiKeyConfig {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this key may call `model`: not denied by any glob, and allowed by one (or no allow
    /// list).
    pub fn may_use(&self, model: &str) -> bool {
        let hit = |globs: &[String]| globs.iter().any(|g| glob_matches(g, model));
        !hit(&self.denied_models) && (self.allowed_models.is_empty() || hit(&self.allowed_models))
    }
}

/// A budget with its scope resolved to concrete keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetConfig {
    /// Namespace of the Budget object.
    pub namespace: String,
    /// Name of the Budget object.
    pub name: String,
    /// Limit per window in USD.
    pub limit_usd: Decimal,
    /// Window.
    pub window: BudgetWindow,
    /// Ids (`namespace/name`) of the ApiKeys in scope.
    pub api_keys: BTreeSet<Arc<str>>,
    /// Model globs in scope (empty = all).
    pub models: Vec<String>,
    /// Soft limit percentage.
    pub soft_limit_percent: Option<u8>,
    /// Action when exceeded.
    pub action: BudgetAction,
    /// Behaviour when the spend store is unreachable.
    pub failure_mode: FailureMode,
    /// With `fitMaxTokens` on: the lowest output limit a request this budget refuses is fitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_min_tokens: Option<u64>,
}

/// Glob match for model names: `*` any run of characters, `?` one character.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    wildmatch::WildMatch::new(glob).matches(name)
}

/// Whether `glob` is a valid model-name glob: non-empty, printable, no spaces or brackets.
pub fn validate_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("empty model glob".into());
    }
    if let Some(c) = glob
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']' | '{' | '}'))
    {
        return Err(format!(
            "model glob {glob:?} contains {c:?}; only `*` and `?` are wildcards"
        ));
    }
    Ok(())
}
