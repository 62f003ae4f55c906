//! `POST /v1/completions` (and `/api/v1/completions`): the legacy text completions API. A target
//! that speaks it (`openai`, `openaiCompatible`) gets the request as sent and its answer is passed
//! on with `usage.cost` added; any other serves the chat view ([`translate`]) through the same
//! pipeline as chat (routing, budgets, pricing, the access record, endpoint `completions`), and
//! its answer is translated back.

pub mod translate;

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;

use super::{
    intake::{authenticated_json, begin, error_response, tag_generation},
    pipeline::{ChatOutput, run},
};
use crate::{
    error::ApiError,
    panics::completions_panic_frame,
    providers::{Native, WireFormat},
    state::AppState,
    streaming::sse::{PayloadTranslator, sse_response_ending, translate_frames},
};

/// Handles `POST /v1/completions`.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "completions", &headers);
    let generation_id = access.generation_id.clone();
    let intake = async {
        let (caller, body) = authenticated_json(&state, &headers, body, &mut access).await?;
        let view = translate::chat_view(&body)?;
        Ok::<_, ApiError>((caller, body, view))
    }
    .await;
    let mut response = match intake {
        Ok((caller, body, view)) => {
            let mut native = Native::new(WireFormat::OpenAiCompletions, body, &headers);
            native.untranslatable = view.untranslatable;
            match run(&state, &caller, view.body, Some(native), access).await {
                Ok((out, fitted)) => {
                    let mut response = answer(out, view.echo);
                    fitted.tag(&mut response);
                    response
                }
                Err((e, access)) => error_response(e, access),
            }
        }
        Err(e) => error_response(e, access),
    };
    tag_generation(&mut response, &generation_id);
    response
}

fn json_response(body: Bytes) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn answer(out: ChatOutput, echo: Option<String>) -> Response {
    match out {
        ChatOutput::Complete(bytes, mut access) => {
            let resp = match translate::response(&bytes, echo.as_deref()) {
                Ok(v) => json_response(v.to_string().into()),
                Err(e) => {
                    access.status = e.status().as_u16();
                    e.into_response()
                }
            };
            access.finish_after_response();
            resp
        }
        ChatOutput::NativeComplete(_, bytes, access) => {
            access.finish_after_response();
            json_response(bytes)
        }
        ChatOutput::Stream(frames) => sse_response_ending(
            translate_frames(frames, Frames::new(echo)),
            completions_panic_frame(),
        ),
        ChatOutput::NativeStream(_, frames) => {
            sse_response_ending(frames, completions_panic_frame())
        }
    }
}

/// [`translate::Stream`] as SSE frames.
struct Frames {
    tr: translate::Stream,
    ended: bool,
}

impl Frames {
    fn new(echo: Option<String>) -> Self {
        Frames {
            tr: translate::Stream::new(echo),
            ended: false,
        }
    }
}

impl PayloadTranslator for Frames {
    fn on_payload(&mut self, payload: &str) -> Vec<Bytes> {
        let out: Vec<Bytes> = self
            .tr
            .on_payload(payload)
            .into_iter()
            .map(|p| Bytes::from(format!("data: {p}\n\n")))
            .collect();
        if payload == "[DONE]" {
            self.ended = true;
        } else if serde_json::from_str::<serde_json::Value>(payload)
            .is_ok_and(|v| v.get("error").is_some_and(|e| !e.is_null()))
        {
            // The pipeline ends a failed stream with its error chunk, without [DONE].
            self.ended = true;
        }
        out
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn on_cut(&mut self) -> Vec<Bytes> {
        self.ended = true;
        Vec::new()
    }
}
