//! The one pipeline every generation ingress runs: on the OpenAI chat view of the request
//! (`RawObject`, what routing, budgets and the translating adapters read), with the client's
//! original alongside when its format is one some provider speaks natively ([`Native`]). Plan,
//! admission, the attempt loop, hold-back, relay and pricing happen here once; the ingress
//! handler only turns its request into the chat view and the output back into its format.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::{Value, value::RawValue};
use tracing::Instrument;

use super::{
    completion::{Completed, chat_body, native_body},
    embeddings::CacheEmbedder,
};
use crate::{
    auth::Caller,
    budgets::{admission::admit, bounds::RequestBounds},
    cache::request::{self as cache, Lookup, Served},
    error::ApiError,
    json::{RawObject, field},
    observability::access::Access,
    pricing::{estimate_tokens, reported::UsageBounds},
    providers::{
        self, AttemptError, Call, ChunkStream, Native, NativeBody, Reply, WireFormat,
        native::{EventStream, SseEvent},
    },
    routing::{
        Candidate, Plan,
        attempts::{Attempts, Slot},
        request::plan_request,
    },
    state::AppState,
    streaming::{
        anthropic::AnthropicRelay,
        chat::StreamRelay,
        frames::{FrameStream, relay},
        hold_back::hold_back,
        responses::ResponsesRelay,
    },
};

/// What a request produced: in OpenAI's chat format (a translating adapter, or an OpenAI
/// upstream, answered), or in the client's own format (an adapter forwarded the [`Native`]
/// original). A fallback can change which: the ingress handles both.
// Moved once per request: boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ChatOutput {
    /// A complete `chat.completion` JSON body, and the request's record, to finish once the
    /// response is on its way.
    Complete(Bytes, Access),
    /// SSE frames (`data: <chunk>\n\n` ... `data: [DONE]\n\n`, or an error chunk at the end).
    Stream(FrameStream),
    /// A complete body in the client's format, priced (`usage.cost`), and the record.
    NativeComplete(WireFormat, Bytes, Access),
    /// The client's format's SSE events, priced, ending with its error event on a failure.
    NativeStream(WireFormat, FrameStream),
}

/// Header naming the output limit a budget fitted the request to (`fitMaxTokens`).
pub const FITTED_HEADER: &str = "x-switchboard-max-tokens-fitted";

/// What the answer's headers say of how the request was served: the output limit a budget
/// fitted it to ([`FITTED_HEADER`]), and what the response cache did
/// ([`crate::cache::CACHE_HEADER`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fitted {
    /// The fitted output limit, if a budget fitted the request.
    pub max_tokens: Option<u64>,
    /// What the response cache did, when the request's route caches.
    pub cache: Option<cache::Tag>,
}

impl Fitted {
    /// Adds [`FITTED_HEADER`] when the request was fitted, and the cache's headers.
    pub fn tag(self, response: &mut axum::response::Response) {
        if let Some(n) = self.max_tokens {
            response
                .headers_mut()
                .insert(FITTED_HEADER, http::HeaderValue::from(n));
        }
        if let Some(tag) = self.cache {
            tag.apply(response);
        }
    }
}

/// The parts of a chat request the router itself reads; everything else goes upstream as sent.
struct ChatRequest {
    stream: bool,
    prompt_estimate: u64,
    /// What the request may use: its worst case, and the bounds of the usage reported for it.
    bounds: RequestBounds,
}

/// A message, as far as the router checks it: an object with a string `role`.
#[derive(serde::Deserialize)]
struct RoleView<'a> {
    #[serde(borrow, rename = "role")]
    _role: std::borrow::Cow<'a, str>,
}

/// What is wrong with `messages` that are not an array of objects with a string `role`.
fn bad_messages(messages: &RawValue) -> ApiError {
    let Ok(list) = serde_json::from_str::<Vec<&RawValue>>(messages.get()) else {
        return ApiError::bad_param("messages", "`messages` must be an array of message objects");
    };
    let i = list
        .iter()
        .position(|m| serde_json::from_str::<RoleView<'_>>(m.get()).is_err())
        .unwrap_or(0);
    ApiError::bad_param(
        "messages",
        format!("`messages[{i}]` must be an object with a string `role`"),
    )
}

fn parse_request(body: &RawObject) -> Result<ChatRequest, ApiError> {
    let messages = body
        .get("messages")
        .ok_or_else(|| ApiError::bad_param("messages", "`messages` is required"))?;
    // Borrowed views, in one pass: the messages are checked, not copied. Only a request that
    // fails the check is read again, for the error to say which message.
    let roles = serde_json::from_str::<Vec<RoleView<'_>>>(messages.get())
        .map_err(|_| bad_messages(messages))?;
    if roles.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let stream = field::<bool>(body, "stream", "a boolean")?.unwrap_or(false);
    let bounds = RequestBounds::from_chat(body)?;
    if body
        .get("stream_options")
        .is_some_and(|o| o.get() != "null")
    {
        field::<serde_json::Map<String, Value>>(body, "stream_options", "an object")?;
    }
    Ok(ChatRequest {
        stream,
        prompt_estimate: estimate_tokens(messages.get()).max(1),
        bounds,
    })
}

/// Runs an authenticated request through routing and the attempt loop: `body` is its OpenAI chat
/// view (the chat ingress's body itself; the others translate theirs), `native` the client's
/// original when its format is one adapters may forward. The access record travels with the
/// result and is written when it drops. When a budget fitted the request, the lowered limit is
/// what goes upstream, and [`Fitted`] says so.
pub async fn run(
    state: &Arc<AppState>,
    caller: &Caller,
    mut body: RawObject,
    mut native: Option<Native>,
    mut access: Access,
) -> Result<(ChatOutput, Fitted), (ApiError, Access)> {
    let (req, plan, mut cached) = match prepare(state, caller, &body, &mut access).await {
        Ok(prepared) => prepared,
        Err(e) => return Err((e, access)),
    };
    let fitted = Fitted {
        max_tokens: access.fitted_max_tokens,
        cache: cached.tag,
    };
    match cached.serve(req.stream, &mut access) {
        Some(Served::Complete(bytes)) => return Ok((ChatOutput::Complete(bytes, access), fitted)),
        Some(Served::Stream(frames)) => {
            let frames = cache::replay_stream(frames, access);
            return Ok((ChatOutput::Stream(frames), fitted));
        }
        None => {}
    }
    cache::strip_directive(&mut body);
    if let Some(n) = fitted.max_tokens {
        set_output_limit(&mut body, n);
        if let Some(native) = &mut native {
            native.set_output_limit(n);
        }
    }
    let request = Request {
        body: &body,
        native: native.as_ref(),
    };
    let mut attempts = Attempts::new(state, plan);
    if !req.stream {
        return match complete(state, &mut attempts, request, &mut access).await {
            Ok((None, bytes)) => {
                cached.store_complete(state, &bytes);
                Ok((ChatOutput::Complete(bytes, access), fitted))
            }
            Ok((Some(format), bytes)) => {
                Ok((ChatOutput::NativeComplete(format, bytes, access), fitted))
            }
            Err(e) => Err((e, access)),
        };
    }
    match open_first_stream(&mut attempts, request, &mut access).await {
        Ok((cand, slot, opened)) => {
            record_first_token(state, &cand, &mut access);
            access.outcome = Some("client_disconnected".into());
            let prices = cand.model.pricing.clone();
            let bounds = access.usage_bounds(cand.model);
            let output = match opened {
                Opened::Chat(held, rest) => {
                    let r = StreamRelay::new(
                        &cand.provider.config.name,
                        prices,
                        bounds,
                        req.prompt_estimate,
                        cand.upstream_model,
                    );
                    let frames = relay(state, &cand, slot, access, r, (held, rest));
                    ChatOutput::Stream(cached.store_stream(state, frames))
                }
                Opened::Anthropic(held, rest) => {
                    let r = AnthropicRelay::new(prices, bounds, req.prompt_estimate);
                    let frames = relay(state, &cand, slot, access, r, (held, rest));
                    ChatOutput::NativeStream(WireFormat::AnthropicMessages, frames)
                }
                Opened::Responses(held, rest) => {
                    let r = ResponsesRelay::new(
                        &cand.provider.config.name,
                        prices,
                        bounds,
                        req.prompt_estimate,
                        cand.upstream_model,
                    );
                    let frames = relay(state, &cand, slot, access, r, (held, rest));
                    ChatOutput::NativeStream(WireFormat::OpenAiResponses, frames)
                }
                Opened::Completions(held, rest) => {
                    let r = StreamRelay::new(
                        &cand.provider.config.name,
                        prices,
                        bounds,
                        req.prompt_estimate,
                        cand.upstream_model,
                    )
                    .for_completions();
                    let frames = relay(state, &cand, slot, access, r, (held, rest));
                    ChatOutput::NativeStream(WireFormat::OpenAiCompletions, frames)
                }
            };
            Ok((output, fitted))
        }
        Err(e) => Err((e, access)),
    }
}

/// Writes a fitted output limit into the chat view: in `max_completion_tokens` and `max_tokens`,
/// whichever the client used (`max_tokens` when it used neither).
fn set_output_limit(body: &mut RawObject, n: u64) {
    let mut set = false;
    for name in ["max_tokens", "max_completion_tokens"] {
        if body.get(name).is_some_and(|v| v.get() != "null") {
            body.set(name, &n);
            set = true;
        }
    }
    if !set {
        body.set("max_tokens", &n);
    }
}

/// The request as the attempts send it: the chat view, and the original when there is one.
#[derive(Clone, Copy)]
struct Request<'r> {
    body: &'r RawObject,
    native: Option<&'r Native>,
}

/// Everything before the first attempt: the request checked, its plan, its attributes on the
/// trace, the response cache looked up, and (unless it hit) its worst case reserved.
async fn prepare<'c>(
    state: &Arc<AppState>,
    caller: &'c Caller,
    body: &RawObject,
    access: &mut Access,
) -> Result<(ChatRequest, Plan<'c>, Lookup), ApiError> {
    let req = parse_request(body)?;
    access.stream = req.stream;
    let plan = plan_request(state, caller, body, access)?;
    access.keep_content =
        caller.key().record_content || plan.models.first().is_some_and(|m| m.route.record_content);
    if let Some(n) = req.bounds.max_tokens {
        access.span.record("gen_ai.request.max_tokens", n);
    }
    if let Ok(Some(t)) = field::<f64>(body, "temperature", "a number") {
        access.span.record("gen_ai.request.temperature", t);
    }
    if let Some(messages) = body.get("messages") {
        if state.settings.trace_content {
            access.span.record("gen_ai.input.messages", messages.get());
        }
        if access.keep_content {
            access.input_content = Some(messages.get().to_string());
        }
    }
    let embedder = CacheEmbedder { state, caller };
    let cached = cache::lookup(state, caller, &plan, body, access, &embedder).await;
    if !cached.is_hit() {
        admit(state, caller, &plan, req.bounds.clone(), access).await?;
    }
    Ok((req, plan, cached))
}

/// The attempt loop of a non-streamed request: the first complete answer, priced, is the
/// response body; its format is the client's when an adapter forwarded the original.
async fn complete(
    state: &AppState,
    attempts: &mut Attempts<'_, '_>,
    request: Request<'_>,
    access: &mut Access,
) -> Result<(Option<WireFormat>, Bytes), ApiError> {
    while let Some((cand, slot)) = attempts.next(access).await {
        let started = Instant::now();
        let bounds = access.usage_bounds(cand.model);
        let keep = state.settings.trace_content || access.keep_content;
        let result = attempt_complete(attempts, &cand, &slot, request, &bounds, keep).await;
        drop(slot);
        match result {
            Ok(done) => {
                let elapsed = started.elapsed();
                let rate = done.usage.completion_tokens as f64 / elapsed.as_secs_f64().max(1e-6);
                attempts.succeeded(access, &cand, Some(elapsed), Some(rate));
                let format = done.format;
                return Ok((format, done.record(access, state.settings.trace_content)));
            }
            Err(e) => attempts.failed(access, &cand, e)?,
        }
    }
    Err(attempts.exhausted(access))
}

/// One non-streamed attempt on `cand`, within the provider's total timeout (and what is left of
/// the request's deadline). `keep`: the answer's content is kept (for traces or the usage store).
async fn attempt_complete(
    attempts: &Attempts<'_, '_>,
    cand: &Candidate<'_>,
    slot: &Slot,
    request: Request<'_>,
    bounds: &UsageBounds,
    keep: bool,
) -> Result<Completed, AttemptError> {
    let timeouts = &cand.provider.config.timeouts;
    let call = call_for(
        cand,
        slot,
        request,
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
        Ok(Ok(Reply::Complete(bytes))) => chat_body(&bytes, cand, bounds, keep),
        Ok(Ok(Reply::Native(format, NativeBody::Complete(bytes)))) => {
            native_body(format, &bytes, cand, bounds, keep)
        }
        Ok(Ok(_)) => Err(AttemptError::Protocol("unexpected stream".into())),
        Ok(Err(e)) => Err(e),
    }
}

/// A stream that committed, with the items held back, in the format the upstream answered in.
enum Opened {
    /// OpenAI chat chunk payloads.
    Chat(Vec<String>, ChunkStream),
    /// Anthropic Messages events.
    Anthropic(Vec<SseEvent>, EventStream),
    /// OpenAI Responses events.
    Responses(Vec<SseEvent>, EventStream),
    /// Legacy completion chunk payloads.
    Completions(Vec<String>, ChunkStream),
}

/// The attempt loop of a streamed request: the first stream that commits to an answer, with the
/// candidate that serves it and its slot, and the items held back.
async fn open_first_stream<'a>(
    attempts: &mut Attempts<'_, 'a>,
    request: Request<'_>,
    access: &mut Access,
) -> Result<(Candidate<'a>, Slot, Opened), ApiError> {
    while let Some((cand, slot)) = attempts.next(access).await {
        let started = Instant::now();
        let first_token = attempts.remaining(ms(cand.provider.config.timeouts.first_token_ms));
        let opened = open_stream(&cand, &slot, request, first_token)
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
    request: Request<'_>,
    first_token: Duration,
) -> Result<Opened, AttemptError> {
    match providers::chat(call_for(cand, slot, request, true, first_token)).await? {
        Reply::Stream(s) => {
            let (held, rest) = hold_back::<StreamRelay>(s, first_token).await?;
            Ok(Opened::Chat(held, rest))
        }
        Reply::Native(WireFormat::AnthropicMessages, NativeBody::Stream(s)) => {
            let (held, rest) = hold_back::<AnthropicRelay>(s, first_token).await?;
            Ok(Opened::Anthropic(held, rest))
        }
        Reply::Native(WireFormat::OpenAiResponses, NativeBody::Stream(s)) => {
            let (held, rest) = hold_back::<ResponsesRelay>(s, first_token).await?;
            Ok(Opened::Responses(held, rest))
        }
        Reply::Native(WireFormat::OpenAiCompletions, NativeBody::Stream(s)) => {
            let payloads: ChunkStream =
                Box::pin(futures_util::StreamExt::map(s, |e| e.map(|e| e.data)));
            let (held, rest) = hold_back::<StreamRelay>(payloads, first_token).await?;
            Ok(Opened::Completions(held, rest))
        }
        Reply::Complete(_) | Reply::Native(_, NativeBody::Complete(_)) => {
            Err(AttemptError::Protocol("expected a stream".into()))
        }
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
    request: Request<'a>,
    stream: bool,
    first_token: Duration,
) -> Call<'a> {
    Call {
        provider: &cand.provider,
        client: slot.client(),
        upstream_model: cand.upstream_model,
        request: request.body,
        stream,
        first_token_timeout: first_token,
        native: request.native,
    }
}
