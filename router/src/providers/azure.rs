//! Azure OpenAI: the OpenAI wire format at deployment URLs,
//! `{baseURL}/openai/deployments/{deployment}/chat/completions?api-version=...`, with the key in
//! the `api-key` header. The deployment is the Provider model's `name`. Requests and answers are
//! passed on as for `openai` (no translation).

use bytes::Bytes;
use http::header;

use super::{AttemptError, Call, Reply, openai, upstream};

async fn post(
    call: &Call<'_>,
    operation: &str,
    body: Vec<u8>,
) -> Result<reqwest::Response, AttemptError> {
    let p = call.provider;
    let key = p
        .credential
        .clone()
        .map_err(AttemptError::Credential)?
        .ok_or_else(|| {
            AttemptError::Credential("the Azure OpenAI provider has no API key".into())
        })?;
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

/// A chat completion attempt.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
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
