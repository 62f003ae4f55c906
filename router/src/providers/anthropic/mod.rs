//! Anthropic Messages API over HTTP (`x-api-key`, `anthropic-version: 2023-06-01`). Translation
//! lives in [`translate`]; this module only sends and receives.

pub mod translate;
pub mod wire;

use bytes::Bytes;
use http::header;

use super::{AttemptError, Call, Reply, openai_wire::ChatRequest, upstream};

/// The API version header every request carries.
pub const API_VERSION: &str = "2023-06-01";

/// The provider model's `maxOutputTokens`, the default for Anthropic's required `max_tokens`.
pub fn model_max_output(call: &Call<'_>) -> Option<u32> {
    call.provider
        .config
        .models
        .get(call.upstream_model)
        .and_then(|m| m.max_output_tokens)
}

/// A chat completion attempt.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    let req = ChatRequest::parse(call.request)?;
    let (body, hints) = translate::request(
        &req,
        translate::Dialect::Api(call.upstream_model),
        model_max_output(&call),
        call.stream,
    )?;
    let p = call.provider;
    let key = p
        .credential
        .clone()
        .map_err(AttemptError::Credential)?
        .ok_or_else(|| AttemptError::Credential("the Anthropic provider has no API key".into()))?;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let mut req = call
        .client
        .post(format!("{base}/messages"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", key.expose())
        .header("anthropic-version", API_VERSION)
        .body(body.to_string());
    if call.stream {
        req = req.header(header::ACCEPT, "text/event-stream");
    }
    let resp = upstream::send(&call, req, translate::map_status).await?;
    reply(call.stream, resp, hints).await
}

/// Translates a successful Messages response (shared with Vertex AI's `rawPredict`).
pub async fn reply(
    stream: bool,
    resp: reqwest::Response,
    hints: translate::Hints,
) -> Result<Reply, AttemptError> {
    if stream {
        return Ok(Reply::Stream(upstream::translate(
            upstream::sse_events(resp),
            translate::Stream::new(hints),
        )));
    }
    let bytes = upstream::body(resp).await?;
    let completion = translate::response(&bytes, &hints)?;
    Ok(Reply::Complete(Bytes::from(completion.render())))
}
