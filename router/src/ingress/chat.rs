//! `POST /v1/chat/completions`, streamed and not.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use rust_decimal::Decimal;
use serde_json::{Value, value::RawValue};
use tracing::Instrument;

use super::intake::{authenticated_json, begin, tag_generation};
use crate::{
    auth::Caller,
    budgets::admission::admit,
    error::ApiError,
    json::{Present, RawObject, field, splice_fields, usage_with_cost},
    observability::access::Access,
    pricing::{Usage, cost, estimate_tokens},
    providers::{self, AttemptError, Call, ChunkStream, Reply},
    routing::{
        Candidate, Plan,
        attempts::{Attempts, Slot},
        request::plan_request,
    },
    state::AppState,
    streaming::{
        chat::StreamRelay,
        frames::{FrameStream, relay},
        hold_back::hold_back,
        sse::sse_response,
    },
};

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
        Ok((caller, body)) => run(&state, &caller, body, access).await,
        Err(e) => Err((e, access)),
    };
    let mut response = match result {
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
        Err((e, access)) => error_response(e, access),
    };
    tag_generation(&mut response, &generation_id);
    response
}

/// Records the error on the access record and renders it in the OpenAI shape.
fn error_response(e: ApiError, mut access: Access) -> Response {
    access.status = e.status().as_u16();
    access.outcome = Some(e.code().to_string());
    e.into_response()
}

/// What a chat completion produced, in OpenAI's wire format.
// Moved once per request: boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ChatOutput {
    /// A complete `chat.completion` JSON body, and the request's record, to finish once the
    /// response is on its way.
    Complete(Bytes, Access),
    /// SSE frames (`data: <chunk>\n\n` ... `data: [DONE]\n\n`, or an error chunk at the end).
    Stream(FrameStream),
}

/// The parts of a chat request the router itself reads; everything else goes upstream as sent.
struct ChatRequest {
    stream: bool,
    prompt_estimate: u64,
    prompt_bytes: u64,
    max_tokens: Option<u64>,
}

/// A message, as far as the router checks it: an object with a string `role`.
#[derive(serde::Deserialize)]
struct RoleView<'a> {
    #[serde(borrow, rename = "role")]
    _role: std::borrow::Cow<'a, str>,
}

fn parse_request(body: &RawObject) -> Result<ChatRequest, ApiError> {
    let messages = body
        .get("messages")
        .ok_or_else(|| ApiError::bad_param("messages", "`messages` is required"))?;
    // Borrowed views: the messages are checked, not copied.
    let list: Vec<&RawValue> = serde_json::from_str(messages.get()).map_err(|_| {
        ApiError::bad_param("messages", "`messages` must be an array of message objects")
    })?;
    if list.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must not be empty",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        if serde_json::from_str::<RoleView<'_>>(m.get()).is_err() {
            return Err(ApiError::bad_param(
                "messages",
                format!("`messages[{i}]` must be an object with a string `role`"),
            ));
        }
    }
    let stream = field::<bool>(body, "stream", "a boolean")?.unwrap_or(false);
    let mut max_tokens = None;
    for name in ["max_tokens", "max_completion_tokens"] {
        max_tokens = field::<u64>(body, name, "a non-negative integer")?.or(max_tokens);
    }
    if body
        .get("stream_options")
        .is_some_and(|o| o.get() != "null")
    {
        field::<serde_json::Map<String, Value>>(body, "stream_options", "an object")?;
    }
    Ok(ChatRequest {
        stream,
        prompt_estimate: estimate_tokens(messages.get()).max(1),
        prompt_bytes: messages.get().len() as u64,
        max_tokens,
    })
}

/// Runs an authenticated, parsed chat completion request (OpenAI shape) through routing and the
/// attempt loop. Shared by `/v1/chat/completions` and the other ingress formats, which translate
/// to and from it. The access record travels with the result and is written when it drops.
pub async fn run(
    state: &Arc<AppState>,
    caller: &Caller,
    body: RawObject,
    mut access: Access,
) -> Result<ChatOutput, (ApiError, Access)> {
    let (req, plan) = match prepare(state, caller, &body, &mut access).await {
        Ok(prepared) => prepared,
        Err(e) => return Err((e, access)),
    };
    let mut attempts = Attempts::new(state, plan);
    if !req.stream {
        return match complete(state, &mut attempts, &body, &mut access).await {
            Ok(bytes) => Ok(ChatOutput::Complete(bytes, access)),
            Err(e) => Err((e, access)),
        };
    }
    match open_first_stream(&mut attempts, &body, &mut access).await {
        Ok((cand, slot, opened)) => {
            record_first_token(state, &cand, &mut access);
            access.outcome = Some("client_disconnected".into());
            let relay_state = StreamRelay::new(
                &cand.provider.config.name,
                cand.model.pricing.clone(),
                req.prompt_estimate,
                cand.upstream_model,
            );
            let frames = relay(state, &cand, slot, access, relay_state, opened);
            Ok(ChatOutput::Stream(frames))
        }
        Err(e) => Err((e, access)),
    }
}

/// Everything before the first attempt: the request checked, its plan, its attributes on the
/// trace, and its worst case reserved.
async fn prepare<'c>(
    state: &AppState,
    caller: &'c Caller,
    body: &RawObject,
    access: &mut Access,
) -> Result<(ChatRequest, Plan<'c>), ApiError> {
    let req = parse_request(body)?;
    access.stream = req.stream;
    let plan = plan_request(state, caller, body, access)?;
    if let Some(n) = req.max_tokens {
        access.span.record("gen_ai.request.max_tokens", n);
    }
    if let Ok(Some(t)) = field::<f64>(body, "temperature", "a number") {
        access.span.record("gen_ai.request.temperature", t);
    }
    if state.settings.trace_content
        && let Some(messages) = body.get("messages")
    {
        access.span.record("gen_ai.input.messages", messages.get());
    }
    admit(
        state,
        caller,
        &plan,
        req.prompt_bytes,
        req.max_tokens,
        access,
    )
    .await?;
    Ok((req, plan))
}

/// The attempt loop of a non-streamed request: the first complete answer, priced, is the
/// response body.
async fn complete(
    state: &AppState,
    attempts: &mut Attempts<'_, '_>,
    body: &RawObject,
    access: &mut Access,
) -> Result<Bytes, ApiError> {
    while let Some((cand, slot)) = attempts.next(access).await {
        let started = Instant::now();
        let result = attempt_complete(state, attempts, &cand, &slot, body).await;
        drop(slot);
        match result {
            Ok(done) => {
                let elapsed = started.elapsed();
                let rate = done.usage.completion_tokens as f64 / elapsed.as_secs_f64().max(1e-6);
                attempts.succeeded(access, &cand, Some(elapsed), Some(rate));
                return Ok(done.record(access, state.settings.trace_content));
            }
            Err(e) => attempts.failed(access, &cand, e)?,
        }
    }
    Err(attempts.exhausted(access))
}

/// One non-streamed attempt on `cand`, within the provider's total timeout (and what is left of
/// the request's deadline).
async fn attempt_complete(
    state: &AppState,
    attempts: &Attempts<'_, '_>,
    cand: &Candidate<'_>,
    slot: &Slot,
    body: &RawObject,
) -> Result<Completed, AttemptError> {
    let timeouts = &cand.provider.config.timeouts;
    let call = call_for(
        cand,
        slot,
        body,
        false,
        attempts.remaining(ms(timeouts.first_token_ms)),
    );
    match tokio::time::timeout(
        attempts.remaining(ms(timeouts.total_ms)),
        providers::chat(call).instrument(attempts.span()),
    )
    .await
    {
        Err(_) => Err(AttemptError::Timeout("total")),
        Ok(Ok(Reply::Complete(bytes))) => complete_body(&bytes, cand, state.settings.trace_content),
        Ok(Ok(Reply::Stream(_))) => Err(AttemptError::Protocol("unexpected stream".into())),
        Ok(Err(e)) => Err(e),
    }
}

/// The attempt loop of a streamed request: the first stream that commits to an answer, with the
/// candidate that serves it and its slot, and the payloads held back.
async fn open_first_stream<'a>(
    attempts: &mut Attempts<'_, 'a>,
    body: &RawObject,
    access: &mut Access,
) -> Result<(Candidate<'a>, Slot, (Vec<String>, ChunkStream)), ApiError> {
    while let Some((cand, slot)) = attempts.next(access).await {
        let started = Instant::now();
        let first_token = attempts.remaining(ms(cand.provider.config.timeouts.first_token_ms));
        let opened = open_stream(&cand, &slot, body, first_token)
            .instrument(attempts.span())
            .await;
        match opened {
            Ok(opened) => {
                attempts.succeeded(access, &cand, Some(started.elapsed()), None);
                return Ok((cand, slot, opened));
            }
            Err(e) => {
                drop(slot);
                attempts.failed(access, &cand, e)?;
            }
        }
    }
    Err(attempts.exhausted(access))
}

/// Opens a streamed attempt and holds it back until the upstream commits to an answer.
async fn open_stream(
    cand: &Candidate<'_>,
    slot: &Slot,
    body: &RawObject,
    first_token: Duration,
) -> Result<(Vec<String>, ChunkStream), AttemptError> {
    match providers::chat(call_for(cand, slot, body, true, first_token)).await {
        Ok(Reply::Stream(s)) => hold_back::<StreamRelay>(s, first_token).await,
        Ok(Reply::Complete(_)) => Err(AttemptError::Protocol("expected a stream".into())),
        Err(e) => Err(e),
    }
}

/// The first content is about to be sent: the client's time to first token, and the router's own
/// share of it.
fn record_first_token(state: &AppState, cand: &Candidate<'_>, access: &mut Access) {
    let ttft = access.elapsed();
    access.time_to_first_token = Some(ttft);
    let m = &state.metrics;
    m.time_to_first_token
        .with_label_values(&[&access.model, &cand.provider.config.name])
        .observe(ttft.as_secs_f64());
    m.gateway_overhead
        .with_label_values(&[access.endpoint])
        .observe(ttft.saturating_sub(access.upstream_time).as_secs_f64());
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn call_for<'a>(
    cand: &'a Candidate<'_>,
    slot: &'a Slot,
    body: &'a RawObject,
    stream: bool,
    first_token: Duration,
) -> Call<'a> {
    Call {
        provider: &cand.provider,
        client: slot.client(),
        upstream_model: cand.upstream_model,
        request: body,
        stream,
        first_token_timeout: first_token,
    }
}

/// A priced complete response.
struct Completed {
    id: Option<String>,
    /// The raw `choices`, kept only for content recording.
    choices: Option<String>,
    body: Bytes,
    usage: Usage,
    cost: Decimal,
    finish_reason: Option<String>,
}

impl Completed {
    /// Puts what the answer says on the request's record, and gives up the body to send.
    fn record(self, access: &mut Access, trace_content: bool) -> Bytes {
        access.usage = Some(self.usage);
        access.cost = Some(self.cost);
        access.finish_reason = self.finish_reason;
        access.response_id = self.id;
        if trace_content {
            access.span.record(
                "gen_ai.output.messages",
                self.choices.as_deref().unwrap_or(""),
            );
        }
        self.body
    }
}

#[derive(serde::Deserialize)]
struct FinishView {
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The top-level fields of an upstream `chat.completion` the router reads or sets, borrowed
/// from the body: the rest is skipped, never copied.
#[derive(serde::Deserialize)]
struct CompletionView<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Present<'a>,
    #[serde(borrow, default)]
    provider: Present<'a>,
}

/// Prices a complete response and sets `usage.cost` and `provider`, keeping every other byte.
fn complete_body(
    bytes: &[u8],
    cand: &Candidate<'_>,
    keep_choices: bool,
) -> Result<Completed, AttemptError> {
    let view: CompletionView<'_> = serde_json::from_slice(bytes)
        .map_err(|e| AttemptError::Protocol(format!("upstream answered invalid JSON: {e}")))?;
    let Some(choices) = view.choices.filter(|c| c.get() != "null") else {
        let detail = view
            .error
            .map(|e| e.get().to_string())
            .unwrap_or_else(|| "no `choices` in the response".into());
        return Err(AttemptError::Protocol(format!(
            "upstream answered without choices: {detail}"
        )));
    };
    let usage_raw = view.usage.0.filter(|u| u.get() != "null");
    let usage = usage_raw
        .and_then(|u| serde_json::from_str::<Value>(u.get()).ok())
        .and_then(|u| Usage::from_openai(&u))
        .unwrap_or_else(|| Usage {
            prompt_tokens: 0,
            completion_tokens: estimate_tokens(choices.get()),
            ..Usage::default()
        });
    let cost = cost(&cand.model.pricing, &usage);
    let provider = serde_json::to_string(&cand.provider.config.name).expect("a string serialises");
    let mut edits = [
        (view.usage, "usage", usage_with_cost(usage_raw, cost)),
        (view.provider, "provider", provider),
    ];
    let body = splice_fields(bytes, &mut edits);
    let finish_reason = serde_json::from_str::<Vec<FinishView>>(choices.get())
        .ok()
        .and_then(|c| c.into_iter().find_map(|c| c.finish_reason));
    let id = view
        .id
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    Ok(Completed {
        id,
        choices: keep_choices.then(|| choices.get().to_string()),
        body: Bytes::from(body),
        usage,
        cost,
        finish_reason,
    })
}
