//! Google AI Gemini API over HTTP (`generateContent`, `streamGenerateContent?alt=sse`,
//! `batchEmbedContents`; key in `x-goog-api-key`). Translation lives in [`translate`].

pub mod translate;
pub mod wire;

use bytes::Bytes;
use http::header;

use super::{
    AttemptError, Call, Reply,
    openai_wire::{ChatRequest, embedding_inputs, embeddings_body, random_id},
    upstream,
};
use crate::pricing::estimate_tokens;

/// `models/<id>` for an upstream model id written with or without the prefix.
pub fn model_path(model: &str) -> String {
    if model.starts_with("models/") {
        model.to_string()
    } else {
        format!("models/{model}")
    }
}

fn key(call: &Call<'_>) -> Result<String, AttemptError> {
    call.provider
        .credential
        .clone()
        .map_err(AttemptError::Credential)?
        .map(|k| k.expose().to_string())
        .ok_or_else(|| AttemptError::Credential("the Gemini provider has no API key".into()))
}

/// A chat completion attempt.
pub async fn chat(call: Call<'_>) -> Result<Reply, AttemptError> {
    let req = ChatRequest::for_model(&call)?;
    let (body, hints) = translate::request(&req)?;
    let p = call.provider;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let path = model_path(call.upstream_model);
    let url = if call.stream {
        format!("{base}/{path}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/{path}:generateContent")
    };
    let req = call
        .client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-goog-api-key", key(&call)?)
        .body(body.to_string());
    let resp = upstream::send(&call, req, translate::map_status).await?;
    reply(call.stream, resp, hints, call.upstream_model).await
}

/// Translates a successful `generateContent` response (shared with Vertex AI).
pub async fn reply(
    stream: bool,
    resp: reqwest::Response,
    hints: translate::Hints,
    model: &str,
) -> Result<Reply, AttemptError> {
    let fallback_id = random_id();
    if stream {
        return Ok(Reply::Stream(upstream::translate(
            upstream::sse_events(resp),
            translate::Stream::new(hints, model, &fallback_id),
        )));
    }
    let bytes = upstream::body(resp).await?;
    let completion = translate::response(&bytes, &hints, model, &fallback_id)?;
    Ok(Reply::Complete(Bytes::from(completion.render())))
}

/// An embeddings attempt through `batchEmbedContents`. Gemini reports no token usage; it is
/// estimated at 4 characters a token.
pub async fn embeddings(call: Call<'_>) -> Result<Bytes, AttemptError> {
    let inputs = embedding_inputs(call.request)?;
    let dimensions = call
        .request
        .get("dimensions")
        .and_then(|d| d.get().parse::<u64>().ok());
    let p = call.provider;
    let base = p.config.base_url.as_deref().unwrap_or_default();
    let path = model_path(call.upstream_model);
    let body = translate::embeddings_request(&inputs, &path, dimensions);
    let req = call
        .client
        .post(format!("{base}/{path}:batchEmbedContents"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-goog-api-key", key(&call)?)
        .body(serde_json::to_vec(&body).expect("wire types serialize"));
    let resp = upstream::send(&call, req, translate::map_status).await?;
    let vectors = translate::embeddings_response(&upstream::body(resp).await?)?;
    let tokens = inputs.iter().map(|t| estimate_tokens(t).max(1)).sum();
    Ok(Bytes::from(embeddings_body(
        call.request,
        &vectors,
        call.upstream_model,
        tokens,
    )))
}
