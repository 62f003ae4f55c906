//! `POST /v1/responses` (and `/api/v1/responses`): OpenAI's Responses API for every provider.
//!
//! The request is translated into the chat view ([`request`]) and run through the same pipeline
//! as `/v1/chat/completions` ([`super::pipeline::run`]: routing, fallback, budgets, rate limits,
//! pricing, the access record), with the client's original beside it: a target that speaks
//! Responses (`openai`, `azureOpenAI`) gets that, with only the model rewritten, and its answer is
//! passed on with `usage.cost` added; any other gets the chat view, and its answer is translated
//! back ([`response`], [`stream`]). Built-in tools a translating target cannot serve are dropped
//! and named in `X-Switchboard-Dropped-Tools` (and a log line), unless the request asks for
//! strictness with `provider.require_parameters: true`: then such a target refuses it (400).
//!
//! State ([`stored`]): a response is stored unless `store: false`, for the key that created it;
//! `previous_response_id` continues from one (its conversation is resolved here, so any target
//! can continue any stored response).

pub mod request;
pub mod response;
pub mod stored;
pub mod stream;
pub mod tools;

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{
    intake::{authenticated_json, begin, error_response, tag_generation},
    pipeline::{ChatOutput, run},
};
use crate::{
    auth::Caller,
    error::ApiError,
    json::{RawObject, field},
    panics::responses_panic_frame,
    providers::{Native, WireFormat},
    response_store::{ResponseStore, StoredResponse},
    state::AppState,
    streaming::{frames::FrameStream, sse::sse_response_ending, sse::translate_frames},
};
use request::{ChatView, chat_view, input_items};
use response::{Context, answer_of, echo, response_object};

/// Header naming the built-in tools left out because the target that served cannot run them.
pub const DROPPED_TOOLS_HEADER: &str = "x-switchboard-dropped-tools";

/// A Responses request, ready for the pipeline.
struct Prepared {
    view: ChatView,
    /// The original, for a target that speaks Responses (taken when the request runs).
    native: Option<Native>,
    ctx: Context,
    /// Store the answer (`store`, default true).
    store: bool,
    /// The whole conversation (earlier turns included), as items with ids.
    conversation: Vec<Value>,
    key_id: String,
}

/// Handles `POST /v1/responses`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut access = begin(&state, "responses", &headers);
    let generation_id = access.generation_id.clone();
    let intake = async {
        let (caller, body) = authenticated_json(&state, &headers, body, &mut access).await?;
        let prepared = prepare(&state, &caller, &headers, body, &generation_id).await?;
        Ok::<_, ApiError>((caller, prepared))
    }
    .await;
    let mut response = match intake {
        Ok((caller, mut prepared)) => {
            let chat = std::mem::take(&mut prepared.view.body);
            let native = prepared.native.take();
            match run(&state, &caller, chat, native, access).await {
                Ok((out, fitted)) => {
                    let mut response = answer(&state, out, prepared);
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

/// The request resolved (its stored conversation, if it continues one) and translated.
async fn prepare(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    mut body: RawObject,
    generation_id: &str,
) -> Result<Prepared, ApiError> {
    let key_id = caller.key().id();
    let id = format!(
        "resp_{}",
        generation_id.strip_prefix("gen-").unwrap_or(generation_id)
    );
    let input = input_items(&body)?;
    let previous = field::<String>(&body, "previous_response_id", "a string")?;
    let mut conversation = match &previous {
        Some(prev) => history(&*state.responses, prev, &key_id).await?,
        None => Vec::new(),
    };
    let first_new = conversation.len();
    conversation.extend(input);
    with_ids(&mut conversation[first_new..], &id);
    let view = chat_view(&body, &conversation)?;
    let store = field::<bool>(&body, "store", "a boolean")?.unwrap_or(true);
    let echo =
        echo(&serde_json::from_slice::<Map<String, Value>>(&body.to_vec()).unwrap_or_default());
    let ours = |i: &Value| {
        i["type"] == "reasoning"
            && i["encrypted_content"]
                .as_str()
                .is_some_and(|e| e.starts_with(response::REASONING_PREFIX))
    };
    if previous.is_some() || conversation.iter().any(ours) {
        // Only Switchboard knows its stored responses: the target gets the whole conversation,
        // without the reasoning another provider wrote (only that provider can read it).
        body.remove("previous_response_id");
        let input: Vec<&Value> = conversation.iter().filter(|i| !ours(i)).collect();
        body.set("input", &input);
    }
    let untranslatable = (view.strict && !view.tools.dropped.is_empty()).then(|| {
        format!(
            "This request asks for strictness (provider.require_parameters) and uses built-in \
             tools ({}) that only a target speaking the Responses API can serve",
            view.tools.dropped.join(", ")
        )
    });
    let mut native = Native::new(WireFormat::OpenAiResponses, body, headers);
    native.untranslatable = untranslatable;
    let ctx = Context {
        id,
        tools: view.tools.clone(),
        echo,
    };
    Ok(Prepared {
        view,
        native: Some(native),
        ctx,
        store,
        conversation,
        key_id,
    })
}

/// The conversation of stored response `id` for `key_id`: its input items, then its output.
async fn history(
    store: &dyn ResponseStore,
    id: &str,
    key_id: &str,
) -> Result<Vec<Value>, ApiError> {
    let record = store
        .get(id, key_id)
        .await
        .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?
        .ok_or_else(|| ApiError::ResponseNotFound(id.to_string()))?;
    let mut items: Vec<Value> = serde_json::from_str(record.input_items.get()).unwrap_or_default();
    let response: Value = serde_json::from_str(record.response.get()).unwrap_or_default();
    items.extend(response["output"].as_array().cloned().unwrap_or_default());
    Ok(items)
}

/// Gives each item without an `id` one derived from the response id.
fn with_ids(items: &mut [Value], response_id: &str) {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    for (i, item) in items.iter_mut().enumerate() {
        if item.get("id").is_some_and(Value::is_string) {
            continue;
        }
        let prefix = match item["type"].as_str().unwrap_or("") {
            "message" => "msg",
            "function_call" => "fc",
            "function_call_output" => "fco",
            "custom_tool_call" => "ctc",
            "custom_tool_call_output" => "ctco",
            "reasoning" => "rs",
            _ => "item",
        };
        item["id"] = json!(format!("{prefix}_{base}in{i}"));
    }
}

/// The pipeline's answer as the client's response.
fn answer(state: &Arc<AppState>, out: ChatOutput, prepared: Prepared) -> Response {
    let Prepared {
        view,
        ctx,
        store,
        conversation,
        key_id,
        ..
    } = prepared;
    let keep = store.then(|| Keep {
        store: state.responses.clone(),
        key_id,
        conversation,
    });
    let translated = matches!(out, ChatOutput::Complete(..) | ChatOutput::Stream(_));
    let mut response = match out {
        ChatOutput::Complete(bytes, mut access) => {
            let resp = match answer_of(&bytes) {
                Ok(answer) => {
                    let object = response_object(&ctx, &answer, None);
                    if let Some(keep) = keep {
                        keep.spawn(&ctx.id, object.to_string());
                    }
                    json_response(object.to_string().into())
                }
                Err(e) => {
                    access.status = e.status().as_u16();
                    e.into_response()
                }
            };
            access.finish_after_response();
            resp
        }
        ChatOutput::NativeComplete(_, bytes, access) => {
            if let Some(keep) = keep
                && let Some(id) = response_id(&bytes)
            {
                keep.spawn(&id, String::from_utf8_lossy(&bytes).into_owned());
            }
            access.finish_after_response();
            json_response(bytes)
        }
        ChatOutput::Stream(frames) => {
            let events = translate_frames(frames, stream::Stream::new(ctx));
            sse_response_ending(kept_at_end(Box::pin(events), keep), responses_panic_frame())
        }
        ChatOutput::NativeStream(_, frames) => {
            sse_response_ending(kept_at_end(frames, keep), responses_panic_frame())
        }
    };
    if translated && !view.tools.dropped.is_empty() {
        let dropped = view.tools.dropped.join(", ");
        tracing::info!(tools = %dropped, "built-in tools dropped: the target that served does not run them");
        if let Ok(v) = HeaderValue::from_str(&dropped) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(DROPPED_TOOLS_HEADER), v);
        }
    }
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

fn response_id(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_slice::<Id>(bytes).ok().map(|i| i.id)
}

/// What storing an answer needs.
struct Keep {
    store: Arc<dyn ResponseStore>,
    key_id: String,
    conversation: Vec<Value>,
}

impl Keep {
    /// Stores `response` (JSON text) under `id`, in the background.
    fn spawn(self, id: &str, response: String) {
        let Ok(response) = serde_json::value::RawValue::from_string(response) else {
            return;
        };
        let record = StoredResponse {
            key_id: self.key_id,
            response,
            input_items: serde_json::value::to_raw_value(&self.conversation)
                .expect("values serialise"),
        };
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = self.store.put(&id, record).await {
                tracing::warn!(%id, "response not stored: {e}");
            }
        });
    }
}

/// `frames` as they are; when `keep`, the `response` of the terminal `response.completed` /
/// `response.incomplete` event is stored as it passes.
fn kept_at_end(
    frames: FrameStream,
    keep: Option<Keep>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let mut keep = keep;
    frames.map(move |frame| {
        if let (Ok(bytes), Some(_)) = (&frame, &keep)
            && let Some(response) = terminal_response(bytes)
            && let Some(k) = keep.take()
            && let Some(id) = response["id"].as_str()
        {
            k.spawn(id, response.to_string());
        }
        frame
    })
}

/// The `response` of a terminal event among the whole SSE frames in `bytes`.
fn terminal_response(bytes: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.split("\n\n").find_map(|frame| {
        let mut lines = frame.lines();
        let event = lines.next()?.strip_prefix("event: ")?;
        if !matches!(event, "response.completed" | "response.incomplete") {
            return None;
        }
        let data = lines.find_map(|l| l.strip_prefix("data: "))?;
        let mut v: Value = serde_json::from_str(data).ok()?;
        Some(v["response"].take())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_response_is_found_among_frames() {
        let frames = "event: response.output_item.done\ndata: {\"type\":\"x\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\"},\"sequence_number\":3}\n\n";
        assert_eq!(
            terminal_response(frames.as_bytes()),
            Some(json!({"id": "resp_1"}))
        );
        assert_eq!(
            terminal_response(b"event: response.created\ndata: {}\n\n"),
            None
        );
    }

    #[test]
    fn items_get_ids_from_the_response() {
        let mut items = vec![
            json!({"type": "message", "role": "user", "content": "hi"}),
            json!({"type": "function_call_output", "call_id": "c", "output": "x", "id": "keep"}),
            json!({"type": "custom_tool_call_output", "call_id": "c", "output": "x"}),
        ];
        with_ids(&mut items, "resp_abc");
        assert_eq!(items[0]["id"], "msg_abcin0");
        assert_eq!(items[1]["id"], "keep");
        assert_eq!(items[2]["id"], "ctco_abcin2");
    }
}
