//! Anthropic Messages API over HTTP (`x-api-key`, `anthropic-version: 2023-06-01`). A request
//! that came in as Messages is forwarded as the client sent it ([`native`]); any other is
//! translated ([`translate`]). This module only sends and receives.

pub mod native;
pub mod translate;
pub mod wire;

use bytes::Bytes;
use http::header;

use super::{
    AttemptError, Call, NativeBody, Reply, WireFormat, openai_wire::ChatRequest, upstream,
};

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

/// The provider's API key.
fn api_key(call: &Call<'_>) -> Result<switchboard_api::snapshot::SecretValue, AttemptError> {
    call.provider
        .credential
        .clone()
        .map_err(AttemptError::Credential)?
        .ok_or_else(|| AttemptError::Credential("the Anthropic provider has no API key".into()))
}

/// A chat completion attempt: the client's Messages request forwarded when there is one, else
/// the chat request translated.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    if call
        .native
        .is_some_and(|n| n.format == WireFormat::AnthropicMessages)
    {
        return forward(call).await;
    }
    let req = ChatRequest::for_model(&call)?;
    let (body, hints) = translate::request(
        &req,
        translate::Dialect::Api(call.upstream_model),
        model_max_output(&call),
        call.stream,
    )?;
    let key = api_key(&call)?;
    let base = call.provider.config.base_url.as_deref().unwrap_or_default();
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

/// Forwards the client's Messages request with only the model rewritten.
async fn forward(call: Call<'_>) -> Result<Reply, AttemptError> {
    let resp = send_native(&call, "messages").await?;
    native_reply(call.stream, resp).await
}

/// Forwards the client's `count_tokens` request with only the model rewritten; the answer is
/// `{"input_tokens": N}`.
pub async fn count_tokens(call: Call<'_>) -> Result<Bytes, AttemptError> {
    let resp = send_native(&call, "messages/count_tokens").await?;
    upstream::body(resp).await
}

/// Sends the client's original to `{baseURL}/{path}`.
async fn send_native(call: &Call<'_>, path: &str) -> Result<reqwest::Response, AttemptError> {
    let original = call
        .native
        .ok_or_else(|| AttemptError::Protocol("no Messages request to forward".into()))?;
    let envelope = native::Envelope::Api(call.upstream_model);
    let key = api_key(call)?;
    let base = call.provider.config.base_url.as_deref().unwrap_or_default();
    let mut req = call
        .client
        .post(format!("{base}/{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", key.expose())
        .body(native::body(original, envelope));
    for (name, value) in native::headers(original, envelope) {
        req = req.header(name, value);
    }
    if call.stream {
        req = req.header(header::ACCEPT, "text/event-stream");
    }
    upstream::send(call, req, translate::map_status).await
}

/// A successful Messages response as it came (shared with Vertex AI's `rawPredict`).
pub async fn native_reply(stream: bool, resp: reqwest::Response) -> Result<Reply, AttemptError> {
    let body = if stream {
        NativeBody::Stream(native::events(resp))
    } else {
        NativeBody::Complete(upstream::body(resp).await?)
    };
    Ok(Reply::Native(WireFormat::AnthropicMessages, body))
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
