use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, SecretKeyRef};
use crate::money::UsdAmount;

/// One upstream account: where it is, how to authenticate, and which models it offers at what price.
//
// The CEL rules repeat, for `kubectl apply`, the cross-field checks of `compile()` (which stays the
// source of truth); api/tests/crd_cel.rs checks that the two agree.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    derive = "PartialEq",
    status = "ProviderStatus",
    shortname = "sbprov",
    category = "switchboard",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Models","type":"integer","jsonPath":".status.models"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("has(self.baseURL) || self.type in ['openai', 'anthropic', 'gemini', 'mock']")
        .message("baseURL is required for type openaiCompatible, azureOpenAI, vertex or bedrock (they have no default endpoint)")
        .field_path(".baseURL"),
    validation = Rule::new("has(self.credentials) || !(self.type in ['openai', 'anthropic', 'gemini', 'azureOpenAI'])")
        .message("credentials are required for type openai, anthropic, gemini or azureOpenAI (set secretRef or env)")
        .field_path(".credentials"),
    validation = Rule::new("!has(self.credentials) || self.type != 'mock'")
        .message("credentials are not allowed with type mock")
        .field_path(".credentials"),
    validation = Rule::new("!has(self.mock) || self.type == 'mock'")
        .message("mock is only valid with type mock")
        .field_path(".mock"),
    validation = Rule::new("!has(self.azure) || self.type == 'azureOpenAI'")
        .message("azure is only valid with type azureOpenAI")
        .field_path(".azure"),
    validation = Rule::new("has(self.bedrock) == (self.type == 'bedrock')")
        .message("bedrock (with its region) is required for type bedrock and only valid with it")
        .field_path(".bedrock"),
    validation = Rule::new("has(self.vertex) == (self.type == 'vertex')")
        .message("vertex (with its location) is required for type vertex and only valid with it")
        .field_path(".vertex"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    /// Wire format and vendor of the upstream. `openai` and `openaiCompatible` (vLLM, Ollama, Groq,
    /// Together, Mistral, DeepSeek, OpenRouter, ...) speak the OpenAI Chat Completions API; `mock`
    /// is Switchboard's built-in deterministic upstream for demos and load tests.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// Base URL of the API, up to and including the version path, e.g. `https://api.openai.com/v1`.
    /// Defaults to the vendor's public endpoint where there is one; required for
    /// `openaiCompatible`. Ignored by `mock`.
    #[serde(default, rename = "baseURL", skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Where the upstream credential comes from. Credentials are never written inline. Required
    /// for `openai`, `anthropic`, `gemini` and `azureOpenAI`; optional for `openaiCompatible`
    /// (e.g. Ollama), `vertex` and `bedrock` (cloud identity); not allowed for `mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Extra HTTP headers sent with every upstream request. Not secret: credential headers
    /// (`Authorization`, `x-api-key`, `api-key`, ...) are refused, use `credentials` instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The models this account offers; ModelRoute targets refer to them by `name`.
    #[schemars(length(max = 256))]
    #[x_kube(
        validation = Rule::new("size(self) > 0").message("models must list at least one model"),
        validation = Rule::new("self.all(m, self.exists_one(n, n.name == m.name))")
            .message("models must not list the same name twice"),
    )]
    pub models: Vec<ProviderModel>,
    /// What the provider does with prompts; requests that ask for `data_collection: deny` or `zdr`
    /// only go to providers that declare a policy allowing it (a provider without `dataPolicy` is
    /// never chosen for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_policy: Option<DataPolicy>,
    /// Upstream timeouts, as durations such as `10s` or `1500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<ProviderTimeouts>,
    /// Most requests in flight to this provider at once, across all its models, per router
    /// replica; further requests go to other targets (or wait for none: they fail over). Unset
    /// means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("maxConcurrentRequests must be at least 1 (leave it unset for no limit)"))]
    pub max_concurrent_requests: Option<u32>,
    /// Behaviour of the built-in `mock` upstream; only valid with `type: mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockBehaviour>,
    /// Azure OpenAI settings; only valid with `type: azureOpenAI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSettings>,
    /// AWS Bedrock settings; required with `type: bedrock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockSettings>,
    /// Google Vertex AI settings; required with `type: vertex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexSettings>,
}

/// The wire format / vendor of a Provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProviderType {
    /// OpenAI's own API.
    Openai,
    /// Any server that speaks the OpenAI Chat Completions API.
    OpenaiCompatible,
    /// Anthropic Messages API.
    Anthropic,
    /// Google AI (Gemini) generateContent API.
    Gemini,
    /// Google Vertex AI.
    Vertex,
    /// Azure OpenAI deployments.
    AzureOpenAI,
    /// AWS Bedrock Converse API.
    Bedrock,
    /// Switchboard's built-in deterministic upstream (no network).
    Mock,
}

impl ProviderType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Openai => "openai",
            ProviderType::OpenaiCompatible => "openaiCompatible",
            ProviderType::Anthropic => "anthropic",
            ProviderType::Gemini => "gemini",
            ProviderType::Vertex => "vertex",
            ProviderType::AzureOpenAI => "azureOpenAI",
            ProviderType::Bedrock => "bedrock",
            ProviderType::Mock => "mock",
        }
    }

    /// The vendor's public endpoint, where one exists.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderType::Openai => Some("https://api.openai.com/v1"),
            ProviderType::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderType::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            _ => None,
        }
    }
}

/// Where a Provider's credential comes from: exactly one of `secretRef` or `env`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.env)")
    .message("credentials must set exactly one of secretRef or env"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// A key of a Secret in the Provider's namespace holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The name of an environment variable of the router process holding the API key, e.g.
    /// `OPENAI_API_KEY`. Read by each router when it loads the config; useful standalone or when
    /// the key is injected into router pods by other means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// A model a Provider offers, with its price and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderModel {
    /// The upstream's model id, sent as `model` to the provider (e.g. `gpt-4o-mini`).
    #[schemars(length(max = 256))]
    pub name: String,
    /// USD prices; every field is a decimal string.
    #[serde(default)]
    pub pricing: Pricing,
    /// Maximum context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// Maximum tokens the model can generate in one response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// What the model can do; requests needing a capability go only to models that list it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

/// USD prices of a model. Token prices are per million tokens; all are decimal strings. Unset
/// input and output prices are zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pricing {
    /// USD per million input (prompt) tokens.
    #[serde(
        default,
        rename = "inputUSDPerMillion",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_usd_per_million: Option<UsdAmount>,
    /// USD per million output (completion) tokens.
    #[serde(
        default,
        rename = "outputUSDPerMillion",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_usd_per_million: Option<UsdAmount>,
    /// USD per million input tokens read from the provider's prompt cache (defaults to the input
    /// price).
    #[serde(
        default,
        rename = "cachedInputUSDPerMillion",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_input_usd_per_million: Option<UsdAmount>,
    /// USD per million input tokens written to the provider's prompt cache (defaults to the input
    /// price).
    #[serde(
        default,
        rename = "cacheWriteUSDPerMillion",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_write_usd_per_million: Option<UsdAmount>,
    /// USD per million reasoning tokens (defaults to the output price).
    #[serde(
        default,
        rename = "reasoningUSDPerMillion",
        skip_serializing_if = "Option::is_none"
    )]
    pub reasoning_usd_per_million: Option<UsdAmount>,
    /// USD charged per request, on top of token prices.
    #[serde(
        default,
        rename = "perRequestUSD",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_request_usd: Option<UsdAmount>,
    /// USD per input image.
    #[serde(
        default,
        rename = "perImageUSD",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_image_usd: Option<UsdAmount>,
}

/// Something a model can do.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Capability {
    /// Function / tool calling.
    Tools,
    /// Image input.
    Vision,
    /// Structured output with a JSON schema (`response_format: json_schema`).
    JsonSchema,
    /// Reasoning / extended thinking.
    Reasoning,
    /// The embeddings endpoint.
    Embeddings,
}

/// What a provider does with the data it is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataPolicy {
    /// The provider may train on prompts and completions.
    #[serde(default)]
    pub trains_on_data: bool,
    /// The provider retains prompts and completions; `false` means zero data retention (ZDR).
    #[serde(default)]
    pub retains_data: bool,
}

/// Upstream timeouts, each a duration string such as `10s`, `1500ms` or `2m`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderTimeouts {
    /// Time to establish a connection (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// Time until the response headers and, when streaming, the first chunk arrive (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<String>,
    /// Longest silence between two stream chunks (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
    /// Whole-request limit (default `600s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
}

/// How the built-in `mock` upstream answers. It never touches the network and is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MockBehaviour {
    /// Fixed reply text. When unset the mock echoes the last user message, prefixed with `echo: `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Characters per streamed chunk (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_chars: Option<u32>,
    /// Delay between streamed chunks, as a duration (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay: Option<String>,
    /// Dimension of the vectors returned by the embeddings endpoint (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dimensions: Option<u32>,
}

/// Azure OpenAI settings. The deployment name is the model `name`; requests go to
/// `{baseURL}/openai/deployments/{name}/chat/completions?api-version={apiVersion}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureSettings {
    /// The `api-version` query parameter (default `2024-10-21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// AWS Bedrock settings. `baseURL` is the runtime endpoint, e.g.
/// `https://bedrock-runtime.us-east-1.amazonaws.com`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BedrockSettings {
    /// The AWS region requests are signed for (SigV4), e.g. `us-east-1`.
    pub region: String,
}

/// Google Vertex AI settings. `baseURL` is the regional endpoint, e.g.
/// `https://us-central1-aiplatform.googleapis.com/v1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VertexSettings {
    /// The Google Cloud project id (default: `project_id` of the service-account key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The Vertex AI location, e.g. `us-central1`, `us-east5` or `global`.
    pub location: String,
}

/// Observed state of a Provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of models this provider offers in the running config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<u32>,
}
