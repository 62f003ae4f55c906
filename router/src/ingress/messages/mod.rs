//! `POST /v1/messages` (and `/api/v1/messages`): Anthropic's Messages API as an ingress, so
//! Anthropic SDKs and coding agents can use any routed model. The request is translated into an
//! OpenAI chat request and run through the same pipeline as `/v1/chat/completions`
//! ([`super::chat::run`]: routing, fallback, pricing, records); the answer, streamed or not, and
//! every error are translated back into Anthropic's format ([`translate`]).

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
    chat::{ChatOutput, run},
    intake::{authenticated_json, begin, tag_generation},
};
use crate::{
    error::ApiError,
    state::AppState,
    streaming::{frames::FrameStream, sse::sse_response},
};

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
        let openai = translate::request(&body)?;
        Ok::<_, ApiError>((caller, openai, model))
    }
    .await;
    let result = match intake {
        Ok((caller, body, model)) => run(&state, &caller, body, access)
            .await
            .map(|out| (out, model)),
        Err(e) => Err((e, access)),
    };
    let mut response = match result {
        Ok((ChatOutput::Complete(bytes, mut access), model)) => {
            let resp = match translate::response(&bytes, &model) {
                Ok(message) => {
                    let mut resp = (StatusCode::OK, message.to_string()).into_response();
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    resp
                }
                Err(e) => {
                    access.status = e.status().as_u16();
                    access.outcome = Some(e.code().to_string());
                    error_response(&e)
                }
            };
            access.finish_after_response();
            resp
        }
        Ok((ChatOutput::Stream(frames), model)) => sse_response(events(frames, &model)),
        Err((e, mut access)) => {
            access.status = e.status().as_u16();
            access.outcome = Some(e.code().to_string());
            error_response(&e)
        }
    };
    tag_generation(&mut response, &generation_id);
    // Anthropic's SDKs read the request id from `request-id`.
    if let Ok(id) = HeaderValue::from_str(&format!("req_{generation_id}")) {
        response.headers_mut().insert("request-id", id);
    }
    response
}

/// An error in Anthropic's shape, with the status (and `Retry-After`) the OpenAI endpoint gives.
fn error_response(e: &ApiError) -> Response {
    if let ApiError::Internal(detail) = e {
        tracing::error!(%detail, "internal error");
    }
    let status = e.status();
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        translate::error_body(status.as_u16(), &e.to_string()).to_string(),
    )
        .into_response();
    if let ApiError::RateLimited { retry_after, .. } = e {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    resp
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
                        let out: Vec<Bytes> = translate::take_payloads(&mut buf)
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
