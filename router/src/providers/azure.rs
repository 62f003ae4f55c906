//! Azure OpenAI: the OpenAI wire format at deployment URLs,
//! `{baseURL}/openai/deployments/{deployment}/chat/completions?api-version=...`, with the key in
//! the `api-key` header. The deployment is the Provider model's `name`. Requests and answers are
//! passed on as for `openai` (no translation).

use bytes::Bytes;
use http::header;

use super::{AttemptError, Call, Native, Reply, WireFormat, openai, upstream};

/// The provider's API key.
fn key(call: &Call<'_>) -> Result<switchboard_api::snapshot::SecretValue, AttemptError> {
    call.provider
        .credential
        .clone()
        .map_err(AttemptError::Credential)?
        .ok_or_else(|| AttemptError::Credential("the Azure OpenAI provider has no API key".into()))
}

async fn post(
    call: &Call<'_>,
    operation: &str,
    body: Vec<u8>,
) -> Result<reqwest::Response, AttemptError> {
    let p = call.provider;
    let key = key(call)?;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let api_version = p
        .config
        .azure
        .as_ref()
        .map_or("2024-10-21", |a| a.api_version.as_str());
    let deployment = percent_encode(call.upstream_model);
    let mut req = call
        .client
        .post(format!(
            "{base}/openai/deployments/{deployment}/{operation}?api-version={api_version}"
        ))
        .header(header::CONTENT_TYPE, "application/json")
        .header("api-key", key.expose())
        .body(body);
    if call.stream {
        req = req.header(header::ACCEPT, "text/event-stream");
    }
    upstream::send(call, req, upstream::same_status).await
}

/// Percent-encodes a path segment (deployment names are usually plain already).
pub fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A Responses request forwarded as the client sent it, to the v1 API,
/// `{baseURL}/openai/v1/responses`, where the deployment is the body's `model` (no api-version).
async fn responses(call: &Call<'_>, native: &Native) -> Result<Reply, AttemptError> {
    let key = key(call)?;
    let base = call.provider.config.base_url.as_deref().unwrap_or_default();
    let body = openai::native_body(native, call.upstream_model, call.stream);
    let mut req = call
        .client
        .post(format!("{base}/openai/v1/responses"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("api-key", key.expose())
        .body(body);
    for (name, value) in &native.headers {
        req = req.header(name, value);
    }
    if call.stream {
        req = req.header(header::ACCEPT, "text/event-stream");
    }
    let resp = upstream::send(call, req, upstream::same_status).await?;
    openai::native_reply(native.format, call.stream, resp).await
}

/// A chat completion attempt: a Responses request forwarded to the v1 API, else the chat
/// request at the deployment URL.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    if let Some(native) = call
        .native
        .filter(|n| n.format == WireFormat::OpenAiResponses)
    {
        return responses(&call, native).await;
    }
    let body = openai::upstream_body(
        call.request,
        call.upstream_model,
        call.stream,
        openai::output_cap(&call),
    );
    let resp = post(&call, "chat/completions", body).await?;
    openai::reply(call.stream, resp).await
}

/// An embeddings attempt.
pub async fn embeddings(call: Call<'_>) -> Result<Bytes, AttemptError> {
    let body = openai::upstream_body(call.request, call.upstream_model, false, None);
    let resp = post(&call, "embeddings", body).await?;
    upstream::body(resp).await
}
