//! Provider adapters: one per wire format, behind the closed [`Adapter`] enum. Each turns the
//! client's OpenAI-shaped request into an upstream call and the upstream's answer back into
//! OpenAI-shaped JSON or SSE `data` payloads. Translation is pure; only `call_*` does I/O.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod clients;
pub mod gemini;
pub mod mock;
pub mod native;
pub mod openai;
pub mod openai_wire;
pub mod runtime;
pub mod turns;
pub mod upstream;
pub mod vertex;

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::Stream;

use switchboard_api::snapshot::{ProviderType, SecretValue};

use crate::json::RawObject;
pub use native::{Native, NativeBody, WireFormat};
pub use runtime::ProviderRuntime;

/// How a provider is spoken to: one variant per wire format.
#[derive(Clone, Debug)]
pub enum Adapter {
    /// OpenAI Chat Completions over HTTP (`openai`, `openaiCompatible`).
    OpenAi,
    /// OpenAI Chat Completions at Azure deployment URLs (`azureOpenAI`).
    Azure,
    /// Anthropic Messages (`anthropic`).
    Anthropic,
    /// Google AI generateContent (`gemini`).
    Gemini,
    /// Vertex AI: Gemini and Anthropic models, with the provider's OAuth2 token cache.
    Vertex(vertex::Auth),
    /// Bedrock Converse, with the provider's AWS credentials.
    Bedrock(bedrock::Auth),
    /// The built-in deterministic mock.
    Mock,
    /// A type whose adapter is not built: requests get a 501. Every type has one today; kept so
    /// a type added to the API before its adapter is refused cleanly.
    Unsupported(ProviderType),
}

impl Adapter {
    /// The adapter of a provider type; cloud-identity adapters keep the credential's auth state.
    pub fn for_provider(
        provider_type: ProviderType,
        credential: &Result<Option<SecretValue>, String>,
    ) -> Adapter {
        match provider_type {
            ProviderType::Openai | ProviderType::OpenaiCompatible => Adapter::OpenAi,
            ProviderType::AzureOpenAI => Adapter::Azure,
            ProviderType::Anthropic => Adapter::Anthropic,
            ProviderType::Gemini => Adapter::Gemini,
            ProviderType::Vertex => Adapter::Vertex(vertex::Auth::from_credential(credential)),
            ProviderType::Bedrock => Adapter::Bedrock(bedrock::Auth::from_credential(credential)),
            ProviderType::Mock => Adapter::Mock,
        }
    }
}

/// A stream of SSE `data` payloads in OpenAI chat-chunk format (the last one is `[DONE]`).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<String, AttemptError>> + Send>>;

/// What an upstream answered.
pub enum Reply {
    /// A complete OpenAI-shaped JSON body.
    Complete(Bytes),
    /// A stream of chunk payloads.
    Stream(ChunkStream),
    /// The upstream spoke the client's own format ([`Call::native`]): its answer as it came.
    Native(WireFormat, NativeBody),
}

/// Why one upstream attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// No connection could be made.
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    /// A timeout fired; the phase says which.
    #[error("upstream timed out ({0})")]
    Timeout(&'static str),
    /// The upstream answered with an error status.
    #[error("upstream answered HTTP {status}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Response body (not yet scrubbed).
        body: String,
        /// The upstream's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The upstream answered something that is not the protocol.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The provider's credential could not be resolved.
    #[error("{0}")]
    Credential(String),
}

impl AttemptError {
    /// Whether another target should be tried: connection problems, timeouts, 408/429/5xx and
    /// the provider's own auth failures (401/403/404 say nothing about the client's request).
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => {
                matches!(status, 401 | 403 | 404 | 408 | 409 | 425 | 429) || *status >= 500
            }
            _ => true,
        }
    }

    /// Short label for metrics and `metadata.attempts[].error_type`.
    pub fn label(&self) -> String {
        match self {
            AttemptError::Connect(_) => "connect".into(),
            AttemptError::Timeout(phase) => format!("timeout_{phase}"),
            AttemptError::Status { status, .. } => format!("status_{status}"),
            AttemptError::Protocol(_) => "protocol".into(),
            AttemptError::Credential(_) => "credential".into(),
        }
    }

    /// From a reqwest error during connect/send.
    pub fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            AttemptError::Timeout("total")
        } else if e.is_connect() {
            AttemptError::Connect(without_url(&e))
        } else {
            AttemptError::Protocol(without_url(&e))
        }
    }
}

/// reqwest's message without the URL (which may carry a key in its query string).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut parts = Vec::new();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "request failed".into()
    } else {
        parts.join(": ")
    }
}

/// Everything an adapter needs for one attempt.
pub struct Call<'a> {
    /// The provider.
    pub provider: &'a ProviderRuntime,
    /// The client leased for this attempt (see [`clients::ClientSet`]).
    pub client: &'a reqwest::Client,
    /// Upstream model id.
    pub upstream_model: &'a str,
    /// The client's request body.
    pub request: &'a RawObject,
    /// Streaming requested.
    pub stream: bool,
    /// Limit for headers (and, when streaming, the first chunk is guarded by the caller).
    pub first_token_timeout: Duration,
    /// The client's original request, for an adapter that speaks its format for this target;
    /// the others translate [`Call::request`].
    pub native: Option<&'a Native>,
}

/// Request fields that are Switchboard/OpenRouter extensions and never go upstream.
pub const EXTENSION_FIELDS: &[&str] = &[
    "models",
    "provider",
    "route",
    "transforms",
    "session_id",
    "usage",
];

/// Runs a chat completion attempt. An adapter that speaks the client's format forwards the
/// original ([`Call::native`]); a request the chat view cannot stand in for
/// ([`Native::untranslatable`]) is refused by a target that does not speak it.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    if let Some(native) = call.native
        && let Some(why) = &native.untranslatable
        && !call.provider.speaks(native.format)
    {
        return Err(openai_wire::client_error(why.clone()));
    }
    match &call.provider.adapter {
        Adapter::OpenAi => openai::chat(call).await,
        Adapter::Azure => azure::chat(call).await,
        Adapter::Anthropic => anthropic::chat(call).await,
        Adapter::Gemini => gemini::chat(call).await,
        Adapter::Vertex(auth) => vertex::chat(call, auth).await,
        Adapter::Bedrock(auth) => bedrock::chat(call, auth).await,
        Adapter::Mock => mock::chat(&call),
        Adapter::Unsupported(_) => unreachable!("filtered out when planning"),
    }
}

/// Counts the input tokens of `call.native` (an Anthropic Messages `count_tokens` body) with the
/// target's own counting API: `Ok(None)` when its wire format has none.
pub async fn count_tokens(call: Call<'_>) -> Result<Option<Bytes>, AttemptError> {
    if call
        .native
        .is_none_or(|n| n.format != WireFormat::AnthropicMessages)
    {
        return Ok(None);
    }
    match &call.provider.adapter {
        Adapter::Anthropic => anthropic::count_tokens(call).await.map(Some),
        Adapter::Vertex(auth) if vertex::is_anthropic(call.upstream_model) => {
            vertex::count_tokens(call, auth).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// Runs an embeddings attempt; the reply is always [`Reply::Complete`].
pub async fn embeddings(call: Call<'_>) -> Result<Bytes, AttemptError> {
    match &call.provider.adapter {
        Adapter::OpenAi => openai::embeddings(call).await,
        Adapter::Azure => azure::embeddings(call).await,
        Adapter::Gemini => gemini::embeddings(call).await,
        Adapter::Vertex(auth) => vertex::embeddings(call, auth).await,
        Adapter::Bedrock(auth) => bedrock::embeddings(call, auth).await,
        Adapter::Anthropic => Err(openai_wire::client_error(
            "Anthropic has no embeddings API; route embeddings to another provider",
        )),
        Adapter::Mock => mock::embeddings(&call),
        Adapter::Unsupported(_) => unreachable!("filtered out when planning"),
    }
}
