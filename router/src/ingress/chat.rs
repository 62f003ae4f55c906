//! `POST /v1/chat/completions`, streamed and not: the body is already the pipeline's chat view,
//! so it runs as sent ([`super::pipeline::run`]) and the answer is passed on.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    intake::{authenticated_json, begin, error_response, tag_generation},
    pipeline::{ChatOutput, run},
};
use crate::{error::ApiError, state::AppState, streaming::sse::sse_response};

/// Handles a chat completion request.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "chat", &headers);
    let generation_id = access.generation_id.clone();
    let intake = authenticated_json(&state, &headers, body, &mut access).await;
    let result = match intake {
        Ok((caller, body)) => run(&state, &caller, body, None, access).await,
        Err(e) => Err((e, access)),
    };
    let fitted = result.as_ref().map(|(_, f)| *f).unwrap_or_default();
    let mut response = match result.map(|(output, _)| output) {
        Ok(ChatOutput::Complete(bytes, access)) => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            access.finish_after_response();
            resp
        }
        Ok(ChatOutput::Stream(frames)) => sse_response(frames),
        // No original was handed over, so no adapter answers natively.
        Ok(ChatOutput::NativeComplete(format, _, access)) => error_response(
            ApiError::Internal(format!("a {} answer to a chat request", format.name())),
            access,
        ),
        Ok(ChatOutput::NativeStream(format, _)) => {
            ApiError::Internal(format!("a {} stream for a chat request", format.name()))
                .into_response()
        }
        Err((e, access)) => error_response(e, access),
    };
    fitted.tag(&mut response);
    tag_generation(&mut response, &generation_id);
    response
}
