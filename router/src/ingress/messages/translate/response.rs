//! A `chat.completion` as an Anthropic `message` (thinking, text and tool_use blocks, the stop
//! reason — the provider's own when it is an Anthropic one — and usage with cache reads and
//! writes split out of the input tokens, with Switchboard's `cost`), and errors in Anthropic's
//! shape. Pure.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};

use super::request::REASONING_FORMAT;
use crate::{
    error::ApiError,
    providers::anthropic::wire::{ContentBlock, ErrorDetail, Message, StreamEvent, Usage},
};

#[derive(Deserialize)]
struct CostView<'a> {
    #[serde(borrow, default)]
    usage: Option<UsageCost<'a>>,
}

#[derive(Deserialize)]
struct UsageCost<'a> {
    #[serde(borrow, default)]
    cost: Option<&'a RawValue>,
}

/// The exact `usage.cost` of a chat completion or chunk (JSON text), as the pipeline wrote it.
pub fn cost_of(json: &[u8]) -> Option<Decimal> {
    let raw = serde_json::from_slice::<CostView<'_>>(json)
        .ok()?
        .usage?
        .cost?
        .get();
    Decimal::from_str(raw)
        .or_else(|_| Decimal::from_scientific(raw))
        .ok()
}

const ANTHROPIC_STOP_REASONS: &[&str] = &[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
];

/// Anthropic's stop reason: the provider's own when it is one, else from OpenAI's.
pub fn stop_reason(finish_reason: Option<&str>, native: Option<&str>) -> &'static str {
    if let Some(n) = native
        && let Some(r) = ANTHROPIC_STOP_REASONS.iter().find(|r| **r == n)
    {
        return r;
    }
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage from OpenAI's: cache reads and writes split out of the input tokens, and the
/// answer's `cost`.
pub fn usage(u: Option<&Value>, cost: Option<Decimal>) -> Usage {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = n("/prompt_tokens_details/cached_tokens");
    let written = n("/prompt_tokens_details/cache_write_tokens");
    Usage {
        input_tokens: Some(
            n("/prompt_tokens")
                .saturating_sub(cached.saturating_add(written))
                .into(),
        ),
        output_tokens: Some(n("/completion_tokens").into()),
        cache_creation_input_tokens: Some(written.into()),
        cache_read_input_tokens: Some(cached.into()),
        cost,
    }
}

/// An Anthropic message id (`msg_...`) for an OpenAI completion id.
pub fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_switchboard".into(),
    }
}

/// A string field of `v`, empty when absent.
pub fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Thinking blocks for an OpenAI message's `reasoning_details` (Anthropic ones keep their
/// signatures), else for its `reasoning` text.
fn thinking_blocks(message: &Value) -> Vec<ContentBlock> {
    let mut out = Vec::new();
    if let Some(Value::Array(details)) = message.get("reasoning_details") {
        for d in details {
            match d.get("type").and_then(Value::as_str) {
                Some("reasoning.text") => out.push(ContentBlock::Thinking {
                    thinking: str_of(d, "text"),
                    signature: Some(str_of(d, "signature")),
                }),
                Some("reasoning.encrypted")
                    if d.get("format").and_then(Value::as_str) == Some(REASONING_FORMAT) =>
                {
                    out.push(ContentBlock::RedactedThinking {
                        data: str_of(d, "data"),
                    })
                }
                _ => {}
            }
        }
    }
    if out.is_empty()
        && let Some(r) = message
            .get("reasoning")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
    {
        out.push(ContentBlock::Thinking {
            thinking: r.into(),
            signature: Some(String::new()),
        });
    }
    out
}

/// The Anthropic `message` (JSON text) for a `chat.completion` body. `model` is the model the
/// client asked for.
pub fn response(body: &[u8], model: &str) -> Result<String, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::Internal(format!("the pipeline answered invalid JSON: {e}")))?;
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut content = thinking_blocks(message);
    if let Some(t) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(ContentBlock::text(t));
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for c in calls {
            let args = c["function"]["arguments"].as_str().unwrap_or("{}");
            content.push(ContentBlock::ToolUse {
                id: str_of(c, "id"),
                name: str_of(&c["function"], "name"),
                input: serde_json::from_str::<Value>(args).unwrap_or(json!({})),
            });
        }
    }
    let stop = stop_reason(
        choice["finish_reason"].as_str(),
        choice["native_finish_reason"].as_str(),
    );
    let message = Message {
        id: message_id(v["id"].as_str()),
        model: model.into(),
        content,
        stop_reason: Some(stop.into()),
        usage: usage(v.get("usage"), cost_of(body)),
        ..Message::default()
    };
    Ok(serde_json::to_string(&message).expect("wire types serialize"))
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// Anthropic's `error` event (also the body of an error response).
pub fn error_event(status: u16, message: &str) -> StreamEvent {
    StreamEvent::Error {
        error: ErrorDetail {
            kind: error_type(status).into(),
            message: message.into(),
        },
    }
}

/// Anthropic's error body.
pub fn error_body(status: u16, message: &str) -> Value {
    serde_json::to_value(error_event(status, message)).expect("wire types serialize")
}
