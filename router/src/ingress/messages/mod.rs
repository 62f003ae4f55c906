//! `POST /v1/messages` (and `/api/v1/messages`): Anthropic's Messages API as an ingress, so
//! Anthropic SDKs and coding agents can use any routed model. The request runs through the same
//! pipeline as `/v1/chat/completions` ([`super::pipeline::run`]: routing, budgets, fallback,
//! pricing, records) on its OpenAI chat view ([`translate`]), with the original alongside: a
//! target that speaks Messages (Anthropic, Claude on Vertex AI and Bedrock) gets the original as
//! the client sent it and its answer is passed back as it came, with `usage.cost` added; any other
//! target's answer, streamed or not, is translated back. Every error is in Anthropic's shape.

pub mod count_tokens;
pub mod translate;

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::{
    intake::{authenticated_json, begin, tag_generation},
    pipeline::{ChatOutput, run},
};
use crate::{
    error::ApiError,
    observability::access::Access,
    panics::anthropic_panic_frame,
    providers::{Native, WireFormat},
    state::AppState,
    streaming::{frames::FrameStream, sse::sse_response_ending},
};

/// Names the request fields a translated answer had no counterpart for (`context_management`,
/// `tools[web_search]`, ...): left out rather than refused.
pub const DROPPED_HEADER: &str = "x-switchboard-dropped";

/// Handles a Messages request.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "messages", &headers);
    let generation_id = access.generation_id.clone();
    let intake = async {
        let (caller, body) = authenticated_json(&state, &headers, body, &mut access).await?;
        let model = body
            .get("model")
            .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
            .unwrap_or_default();
        let view = translate::request(&body)?;
        let native = Native::new(WireFormat::AnthropicMessages, body, &headers);
        Ok::<_, ApiError>((caller, view, native, model))
    }
    .await;
    let (result, model, dropped) = match intake {
        Ok((caller, view, native, model)) => (
            run(&state, &caller, view.body, Some(native), access).await,
            model,
            view.dropped,
        ),
        Err(e) => (Err((e, access)), String::new(), Vec::new()),
    };
    let translated_answer = matches!(
        result,
        Ok((ChatOutput::Complete(..), _)) | Ok((ChatOutput::Stream(_), _))
    );
    let fitted = result.as_ref().map(|(_, f)| *f).unwrap_or_default();
    let mut response = match result.map(|(output, _)| output) {
        Ok(ChatOutput::NativeComplete(_, bytes, access)) => {
            access.finish_after_response();
            json_response(bytes.into())
        }
        Ok(ChatOutput::NativeStream(_, frames)) => {
            sse_response_ending(frames, anthropic_panic_frame())
        }
        Ok(ChatOutput::Complete(bytes, access)) => translated(&bytes, &model, access),
        Ok(ChatOutput::Stream(frames)) => {
            sse_response_ending(events(frames, &model), anthropic_panic_frame())
        }
        Err((e, mut access)) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            error_response(&e)
        }
    };
    if translated_answer && !dropped.is_empty() {
        let dropped = dropped.join(", ");
        tracing::debug!(%generation_id, %dropped, "fields the target cannot express were left out");
        if let Ok(v) = HeaderValue::from_str(&dropped) {
            response.headers_mut().insert(DROPPED_HEADER, v);
        }
    }
    fitted.tag(&mut response);
    tag_generation(&mut response, &generation_id);
    // Anthropic's SDKs read the request id from `request-id`.
    if let Ok(id) = HeaderValue::from_str(&format!("req_{generation_id}")) {
        response.headers_mut().insert("request-id", id);
    }
    response
}

/// A `200 application/json` response.
pub fn json_response(body: Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `chat.completion` answer as an Anthropic `message`.
fn translated(bytes: &[u8], model: &str, mut access: Access) -> Response {
    let resp = match translate::response(bytes, model) {
        Ok(message) => json_response(message.into()),
        Err(e) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            error_response(&e)
        }
    };
    access.finish_after_response();
    resp
}

/// An error in Anthropic's shape, with the status (and `Retry-After`) the OpenAI endpoint gives.
pub fn error_response(e: &ApiError) -> Response {
    if let ApiError::Internal(detail) = e {
        tracing::error!(%detail, "internal error");
    }
    let mut resp = error_with(e.status(), &e.to_string());
    if let ApiError::RateLimited { retry_after, .. } = e {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
}

/// `404` in Anthropic's shape, for a path under `/v1/messages` no endpoint serves (batches, ...).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_with(
        StatusCode::NOT_FOUND,
        &format!("No endpoint at {}", uri.path()),
    )
}

/// `405` in Anthropic's shape, for a method a `/v1/messages` endpoint does not take.
pub async fn method_not_allowed() -> Response {
    error_with(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint",
    )
}

/// `{"type": "error", "error": {"type", "message"}}` with `status`.
fn error_with(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        translate::error_body(status.as_u16(), message).to_string(),
    )
        .into_response()
}

/// The pipeline's OpenAI SSE frames as Anthropic events.
fn events(
    frames: FrameStream,
    model: &str,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let tr = translate::Stream::new(model);
    stream::unfold(
        (frames, tr, String::new()),
        |(mut frames, mut tr, mut buf)| async move {
            loop {
                if tr.ended() {
                    return None;
                }
                match frames.next().await {
                    Some(Ok(bytes)) => {
                        buf.push_str(&String::from_utf8_lossy(&bytes));
                        let out: Vec<Bytes> = crate::streaming::sse::take_payloads(&mut buf)
                            .iter()
                            .flat_map(|p| tr.on_payload(p))
                            .collect();
                        if !out.is_empty() {
                            let joined: Vec<u8> = out.concat();
                            return Some((Ok(Bytes::from(joined)), (frames, tr, buf)));
                        }
                    }
                    Some(Err(never)) => match never {},
                    None => {
                        // The pipeline always ends with [DONE] or an error chunk; if not, say so.
                        let out = tr
                            .on_payload(r#"{"error":{"message":"The stream ended unexpectedly"}}"#);
                        return Some((Ok(Bytes::from(out.concat())), (frames, tr, buf)));
                    }
                }
            }
        },
    )
}
