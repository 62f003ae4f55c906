//! Anthropic Messages (client side) <-> OpenAI Chat Completions (the shared pipeline). Pure.
//!
//! Request: `system` becomes a system message (text blocks keep `cache_control`); `tool_result`
//! blocks become `tool` messages placed before the rest of their user turn; `image` blocks become
//! `image_url` parts (base64 sources as data URLs); `tool_use` becomes `tool_calls`; `thinking` /
//! `redacted_thinking` blocks become the assistant's `reasoning_details` (format
//! `anthropic-claude-v1`, signatures kept) so they reach the next turn; `tools`, `tool_choice`
//! (`disable_parallel_tool_use` → `parallel_tool_calls: false`), `stop_sequences`, `thinking`
//! (→ `reasoning.max_tokens`), `metadata.user_id` (→ `user`) are mapped; Switchboard/OpenRouter
//! extensions (`models`, `provider`, `session_id`, ...) pass through.
//!
//! Response: the `chat.completion` becomes a `message` (thinking, text and tool_use blocks, the
//! stop reason — the provider's own when it is an Anthropic one — and usage with cache reads and
//! writes split out of the input tokens); the stream becomes Anthropic's event sequence.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{error::ApiError, providers::EXTENSION_FIELDS, raw_json::RawObject};

/// Format tag of Anthropic thinking blocks in `reasoning_details`.
const REASONING_FORMAT: &str = "anthropic-claude-v1";

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_param(param, message)
}

fn get(body: &RawObject, name: &str) -> Option<Value> {
    body.get(name)
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
        .filter(|v| !v.is_null())
}

fn text_part(block: &Value) -> Value {
    let mut p = json!({"type": "text", "text": block.get("text").cloned().unwrap_or(json!(""))});
    if let Some(cc) = block.get("cache_control") {
        p["cache_control"] = cc.clone();
    }
    p
}

fn image_part(block: &Value) -> Option<Value> {
    let src = block.get("source")?;
    let url = match src.get("type").and_then(Value::as_str)? {
        "base64" => format!(
            "data:{};base64,{}",
            src.get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            src.get("data").and_then(Value::as_str).unwrap_or("")
        ),
        "url" => src.get("url").and_then(Value::as_str)?.to_string(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn blocks_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(items) => items.clone(),
        _ => vec![],
    }
}

/// Text parts as OpenAI content: a plain string when there is one part without cache control.
fn openai_content(parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" && parts[0].get("cache_control").is_none() {
        return parts[0]["text"].clone();
    }
    Value::Array(parts)
}

fn tool_result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The OpenAI chat request for an Anthropic Messages request.
pub fn request(body: &RawObject) -> Result<RawObject, ApiError> {
    let model = match get(body, "model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err(bad("model", "`model` is required and must be a string")),
    };
    let max_tokens = match get(body, "max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n,
        _ => {
            return Err(bad(
                "max_tokens",
                "`max_tokens` is required and must be a non-negative integer",
            ));
        }
    };
    let Some(Value::Array(in_messages)) = get(body, "messages") else {
        return Err(bad("messages", "`messages` must be an array of messages"));
    };
    let mut messages: Vec<Value> = Vec::new();
    match get(body, "system") {
        None => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let parts: Vec<Value> = blocks.iter().map(text_part).collect();
            messages.push(json!({"role": "system", "content": openai_content(parts)}));
        }
        Some(_) => return Err(bad("system", "`system` must be a string or text blocks")),
    }
    for (i, m) in in_messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let blocks = blocks_of(m.get("content").unwrap_or(&Value::Null));
        match role {
            "user" => {
                let mut parts = Vec::new();
                for b in &blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => parts.push(text_part(b)),
                        "image" => parts.extend(image_part(b)),
                        "tool_result" => {
                            let mut text = tool_result_text(b.get("content"));
                            if b.get("is_error").and_then(Value::as_bool) == Some(true)
                                && !text.starts_with("Error")
                            {
                                text = format!("Error: {text}");
                            }
                            messages.push(json!({"role": "tool",
                                "tool_call_id": b.get("tool_use_id").cloned().unwrap_or(json!("")),
                                "content": text}));
                        }
                        _ => {}
                    }
                }
                if !parts.is_empty() {
                    messages.push(json!({"role": "user", "content": openai_content(parts)}));
                }
            }
            "assistant" => {
                let mut text = String::new();
                let mut details = Vec::new();
                let mut calls = Vec::new();
                for b in &blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => {
                            text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                        }
                        "thinking" => details.push(json!({"type": "reasoning.text",
                            "text": b.get("thinking").cloned().unwrap_or(json!("")),
                            "signature": b.get("signature").cloned().unwrap_or(Value::Null),
                            "format": REASONING_FORMAT, "index": details.len()})),
                        "redacted_thinking" => details.push(json!({"type": "reasoning.encrypted",
                            "data": b.get("data").cloned().unwrap_or(json!("")),
                            "format": REASONING_FORMAT, "index": details.len()})),
                        "tool_use" => calls.push(json!({
                        "id": b.get("id").cloned().unwrap_or(json!("")),
                        "type": "function",
                        "function": {
                            "name": b.get("name").cloned().unwrap_or(json!("")),
                            "arguments": b.get("input").cloned().unwrap_or(json!({})).to_string(),
                        }})),
                        _ => {}
                    }
                }
                let mut msg = json!({"role": "assistant",
                    "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                if !details.is_empty() {
                    msg["reasoning_details"] = Value::Array(details);
                }
                messages.push(msg);
            }
            _ => {
                return Err(bad(
                    "messages",
                    format!("`messages[{i}].role` must be `user` or `assistant`"),
                ));
            }
        }
    }
    let mut out = RawObject::default();
    out.set("model", &model);
    out.set("messages", &messages);
    out.set("max_tokens", &max_tokens);
    if let Some(s) = get(body, "stream") {
        out.set("stream", &s);
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("stop_sequences", "stop"),
    ] {
        if let Some(v) = get(body, from) {
            out.set(to, &v);
        }
    }
    if let Some(Value::Array(tools)) = get(body, "tools") {
        let mut converted = Vec::new();
        for t in &tools {
            let Some(schema) = t.get("input_schema") else {
                return Err(bad(
                    "tools",
                    format!(
                        "tool {} is an Anthropic server tool; only client tools (with \
                         `input_schema`) can be routed to other providers",
                        t.get("name").unwrap_or(&Value::Null)
                    ),
                ));
            };
            let mut f =
                json!({"name": t.get("name").cloned().unwrap_or(json!("")), "parameters": schema});
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            converted.push(json!({"type": "function", "function": f}));
        }
        if !converted.is_empty() {
            out.set("tools", &converted);
        }
    }
    if let Some(choice) = get(body, "tool_choice") {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => Some(json!("auto")),
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("tool") => Some(json!({"type": "function",
                "function": {"name": choice.get("name").cloned().unwrap_or(json!(""))}})),
            _ => None,
        };
        if let Some(m) = mapped {
            out.set("tool_choice", &m);
        }
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            out.set("parallel_tool_calls", &false);
        }
    }
    if let Some(t) = get(body, "thinking") {
        match t.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = t.get("budget_tokens").cloned().unwrap_or(json!(1024));
                out.set("reasoning", &json!({"max_tokens": budget}));
            }
            Some("adaptive") => out.set("reasoning", &json!({"enabled": true})),
            _ => {}
        }
    }
    if let Some(user) = get(body, "metadata")
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.set("user", &user);
    }
    for name in EXTENSION_FIELDS.iter().filter(|n| **n != "usage") {
        if let Some(v) = body.get(name) {
            out.set_raw(name, v.get().to_string());
        }
    }
    Ok(out)
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

/// Anthropic usage from OpenAI's: cache reads and writes split out of the input tokens.
pub fn usage(u: Option<&Value>) -> Value {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = n("/prompt_tokens_details/cached_tokens");
    let written = n("/prompt_tokens_details/cache_write_tokens");
    json!({
        "input_tokens": n("/prompt_tokens").saturating_sub(cached + written),
        "output_tokens": n("/completion_tokens"),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    })
}

fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_switchboard".into(),
    }
}

fn thinking_blocks(message: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(Value::Array(details)) = message.get("reasoning_details") {
        for d in details {
            match d.get("type").and_then(Value::as_str) {
                Some("reasoning.text") => out.push(json!({"type": "thinking",
                    "thinking": d.get("text").cloned().unwrap_or(json!("")),
                    "signature": d.get("signature").filter(|s| !s.is_null()).cloned().unwrap_or(json!(""))})),
                Some("reasoning.encrypted")
                    if d.get("format").and_then(Value::as_str) == Some(REASONING_FORMAT) =>
                {
                    out.push(json!({"type": "redacted_thinking",
                        "data": d.get("data").cloned().unwrap_or(json!(""))}))
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
        out.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    out
}

/// The Anthropic `message` for a `chat.completion` body. `model` is the model the client asked
/// for.
pub fn response(body: &[u8], model: &str) -> Result<Value, ApiError> {
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
        content.push(json!({"type": "text", "text": t}));
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for c in calls {
            let args = c["function"]["arguments"].as_str().unwrap_or("{}");
            content.push(
                json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"],
                "input": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}),
            );
        }
    }
    Ok(json!({
        "id": message_id(v["id"].as_str()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str(), choice["native_finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": usage(v.get("usage")),
    }))
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

/// Anthropic's error body.
pub fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

fn event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunk payloads -> Anthropic stream events.
pub struct Stream {
    model: String,
    started: bool,
    open: Option<(Open, usize)>,
    next_index: usize,
    finish_reason: Option<String>,
    native: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl Stream {
    /// A translator for one stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        Stream {
            model: model.into(),
            started: false,
            open: None,
            next_index: 0,
            finish_reason: None,
            native: None,
            usage: None,
            ended: false,
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ));
        out.push(event("ping", &json!({"type": "ping"})));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((_, index)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) -> usize {
        if let Some((k, i)) = self.open
            && k == kind
        {
            return i;
        }
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        self.open = Some((kind, index));
        index
    }

    fn delta(index: usize, delta: Value) -> Bytes {
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    /// One `data` payload of the pipeline's stream; returns the events to send.
    pub fn on_payload(&mut self, payload: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if payload == "[DONE]" {
            self.start(None, &mut out);
            self.close_block(&mut out);
            out.push(event(
                "message_delta",
                &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref(), self.native.as_deref()),
                              "stop_sequence": null},
                    "usage": usage(self.usage.as_ref())}),
            ));
            out.push(event("message_stop", &json!({"type": "message_stop"})));
            self.ended = true;
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(payload) else {
            return out;
        };
        if let Some(err) = chunk.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream failed mid-stream");
            out.push(event("error", &error_body(500, message)));
            self.ended = true;
            return out;
        }
        self.start(chunk["id"].as_str(), &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return out;
        };
        let delta = &choice["delta"];
        let reasoning = delta.get("reasoning").and_then(Value::as_str).unwrap_or("");
        let details = delta
            .get("reasoning_details")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let detail_text: String = details
            .iter()
            .filter(|d| d["type"] == "reasoning.text")
            .filter_map(|d| d["text"].as_str())
            .collect();
        let thinking = if reasoning.is_empty() {
            detail_text
        } else {
            reasoning.to_string()
        };
        if !thinking.is_empty() {
            let i = self.open_block(
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                &mut out,
            );
            out.push(Self::delta(
                i,
                json!({"type": "thinking_delta", "thinking": thinking}),
            ));
        }
        for d in &details {
            if let Some(sig) = d["signature"].as_str().filter(|s| !s.is_empty()) {
                let i = self.open_block(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    &mut out,
                );
                out.push(Self::delta(
                    i,
                    json!({"type": "signature_delta", "signature": sig}),
                ));
            }
            if d["type"] == "reasoning.encrypted" && d["format"] == REASONING_FORMAT {
                self.close_block(&mut out);
                self.open_block(
                    Open::Thinking,
                    json!({"type": "redacted_thinking", "data": d["data"]}),
                    &mut out,
                );
                self.close_block(&mut out);
            }
        }
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let i = self.open_block(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            out.push(Self::delta(i, json!({"type": "text_delta", "text": text})));
        }
        if let Some(Value::Array(calls)) = delta.get("tool_calls") {
            for c in calls {
                let n = c["index"].as_u64().unwrap_or(0);
                let i = self.open_block(
                    Open::Tool(n),
                    json!({"type": "tool_use", "id": c.get("id").cloned().unwrap_or(json!("")),
                        "name": c["function"].get("name").cloned().unwrap_or(json!("")), "input": {}}),
                    &mut out,
                );
                if let Some(args) = c["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    out.push(Self::delta(
                        i,
                        json!({"type": "input_json_delta", "partial_json": args}),
                    ));
                }
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(f.to_string());
            self.native = choice["native_finish_reason"].as_str().map(str::to_string);
        }
        out
    }

    /// Whether the stream has sent its last event.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

/// Splits SSE text into complete `data` payloads, keeping an incomplete tail in `buf`.
pub fn take_payloads(buf: &mut String) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let frame: String = buf.drain(..end + 2).collect();
        let data: Vec<&str> = frame
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}
