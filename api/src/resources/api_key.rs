use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, FitMaxTokens, SecretKeyRef};

/// A client credential for the router, with what it may call and how fast.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "ApiKey",
    namespaced,
    derive = "PartialEq",
    status = "ApiKeyStatus",
    shortname = "sbkey",
    category = "switchboard",
    printcolumn = r#"{"name":"Prefix","type":"string","jsonPath":".status.prefix"}"#,
    printcolumn = r#"{"name":"Team","type":"string","jsonPath":".metadata.labels.team"}"#,
    printcolumn = r#"{"name":"Spend","type":"string","jsonPath":".status.spendUSD"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySpec {
    /// A key of a Secret in the same namespace holding the key clients send (at least 16
    /// characters). When unset and no `subjects` are listed, the operator generates a key and
    /// writes it to the Secret `switchboard-apikey-<name>`, key `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Callers who authenticate as this key with a token they already hold, instead of (or as
    /// well as) the key: a projected ServiceAccount token, an OIDC ID token. Everything else on
    /// this ApiKey applies to them. With subjects and no `secretRef`, no key is generated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t == s))")
        .message("subjects must not list the same subject twice"))]
    pub subjects: Vec<Subject>,
    /// Team this key belongs to, used by Budgets and metrics; defaults to the `team` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Public model names this key may call, as globs (`openai/*`, `*`). Empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(g, size(g) > 0)")
        .message("allowedModels must not contain an empty glob"))]
    pub allowed_models: Vec<String>,
    /// Public model names this key may never call, as globs; wins over `allowedModels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(g, size(g) > 0)")
        .message("deniedModels must not contain an empty glob"))]
    pub denied_models: Vec<String>,
    /// Rate limits for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// Provider preferences applied to every request of this key; a request may only tighten them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_policy: Option<ProviderPolicy>,
    /// Instant after which the key is refused, RFC 3339 (e.g. `2027-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Refuse the key without deleting it.
    #[serde(default)]
    pub disabled: bool,
    /// Fit this key's requests to every blocking budget in scope by lowering their `max_tokens`
    /// (down to `minTokens`) instead of refusing them, whatever each budget says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_max_tokens: Option<FitMaxTokens>,
    /// Keep the prompt and the completion of this key's generation requests in the usage store
    /// (off by default: records hold no content; docs/usage.md#privacy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_content: bool,
    /// Replaces the cache block of the routes this key calls (`mode: disabled` turns caching
    /// off for this key; docs/caching.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::CacheSpec>,
}

/// One caller identity: exactly one of `serviceAccount` or `oidc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.serviceAccount) != has(self.oidc)")
    .message("a subject must set exactly one of serviceAccount or oidc"))]
pub struct Subject {
    /// A Kubernetes ServiceAccount, calling with its projected token (`audience: switchboard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSubject>,
    /// An identity from an OpenID Connect issuer the routers trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSubject>,
}

/// A Kubernetes ServiceAccount: tokens whose `sub` is `system:serviceaccount:<namespace>:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountSubject {
    /// Namespace of the ServiceAccount.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("serviceAccount.namespace must not be empty"))]
    pub namespace: String,
    /// Name of the ServiceAccount.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("size(self) > 0")
        .message("serviceAccount.name must not be empty"))]
    pub name: String,
}

/// An OIDC identity: tokens from `issuer` with this `subject` and/or carrying these `claims`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.issuer.startsWith('https://') || self.issuer.startsWith('http://')")
        .message("oidc.issuer must be an http(s) URL, as tokens carry it in iss"),
    validation = Rule::new("has(self.subject) || (has(self.claims) && size(self.claims) > 0)")
        .message("oidc must set subject or claims (an issuer alone would admit everyone it issues tokens to)"),
)]
pub struct OidcSubject {
    /// The issuer URL, exactly as its tokens carry it in `iss`.
    #[schemars(length(max = 2048))]
    pub issuer: String,
    /// The token's `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("oidc.subject must not be empty"))]
    pub subject: Option<String>,
    /// Claims the token must carry: a string claim equal to the value, or a list claim (such as
    /// `groups`) containing it; booleans and numbers compare as their JSON text (`"true"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 256)))]
    pub claims: std::collections::BTreeMap<String, String>,
}

/// Rate limits of one key; unset fields are unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("requestsPerMinute must be at least 1 (leave it unset for no limit)"))]
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("tokensPerMinute must be at least 1 (leave it unset for no limit)"))]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("concurrentRequests must be at least 1 (leave it unset for no limit)"))]
    pub concurrent_requests: Option<u32>,
}

/// Default provider preferences of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderPolicy {
    /// `deny` sends this key's requests only to providers that declare they do not train on data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_collection: Option<DataCollection>,
    /// Send this key's requests only to providers that declare zero data retention.
    #[serde(default)]
    pub zdr: bool,
}

/// Whether providers that may train on prompts are acceptable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataCollection {
    /// Any provider.
    #[default]
    Allow,
    /// Only providers that declare `trainsOnData: false`.
    Deny,
}

/// Observed state of an ApiKey.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The first characters of the key, enough to recognise it (e.g. `sk-sb-abc1…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// USD spent by this key in the current UTC calendar month, as a decimal string (written by
    /// the operator from the shared ledger).
    #[serde(default, rename = "spendUSD", skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<String>,
    /// When the key was last used, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
}
