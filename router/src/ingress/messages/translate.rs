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
use serde::de::DeserializeOwned;
use serde_json::{Number, Value, json};

use crate::{
    error::ApiError,
    json::RawObject,
    providers::{
        EXTENSION_FIELDS,
        anthropic::wire::{
            BlockDelta, ContentBlock, ErrorDetail, ImageSource, Message, MessageContent,
            MessageDelta, MessageParam, Metadata, Role, StreamEvent, ThinkingConfig, Tool,
            ToolChoice, ToolChoiceKind, Usage,
        },
    },
};

/// Format tag of Anthropic thinking blocks in `reasoning_details`.
const REASONING_FORMAT: &str = "anthropic-claude-v1";

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_param(param, message)
}

/// Field `name` of `body` as `T`: `Ok(None)` when it is absent or null.
fn field<T: DeserializeOwned>(
    body: &RawObject,
    name: &str,
) -> Result<Option<T>, serde_json::Error> {
    match body.get(name) {
        Some(raw) => serde_json::from_str::<Option<T>>(raw.get()),
        None => Ok(None),
    }
}

/// An optional field: one of another type is left out, as if absent.
fn optional<T: DeserializeOwned>(body: &RawObject, name: &str) -> Option<T> {
    field(body, name).ok().flatten()
}

/// The OpenAI text part of a text block.
fn text_part(block: &ContentBlock) -> Option<Value> {
    let ContentBlock::Text {
        text,
        cache_control,
    } = block
    else {
        return None;
    };
    let mut p = json!({"type": "text", "text": text});
    if let Some(cc) = cache_control {
        p["cache_control"] = cc.clone();
    }
    Some(p)
}

fn image_part(source: &ImageSource) -> Option<Value> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!(
            "data:{};base64,{data}",
            media_type.as_deref().unwrap_or("image/png")
        ),
        ImageSource::Url { url } => url.clone(),
        ImageSource::Unknown => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Text parts as OpenAI content: a plain string when there is one part without cache control.
fn openai_content(parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" && parts[0].get("cache_control").is_none() {
        return parts[0]["text"].clone();
    }
    Value::Array(parts)
}

fn tool_result_text(content: Option<&MessageContent>) -> String {
    match content {
        Some(MessageContent::Text(s)) => s.clone(),
        Some(MessageContent::Blocks(blocks)) => blocks
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect(),
        None => String::new(),
    }
}

/// A user turn: its tool results as `tool` messages, then the rest as one user message.
fn user_messages(blocks: &[ContentBlock], out: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for b in blocks {
        match b {
            ContentBlock::Text { .. } => parts.extend(text_part(b)),
            ContentBlock::Image { source } => parts.extend(image_part(source)),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut text = tool_result_text(content.as_ref());
                if *is_error == Some(true) && !text.starts_with("Error") {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
            }
            _ => {}
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": openai_content(parts)}));
    }
}

/// An assistant turn: text, tool calls, and thinking as `reasoning_details`.
fn assistant_message(blocks: &[ContentBlock]) -> Value {
    let mut text = String::new();
    let mut details = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b {
            ContentBlock::Text { text: t, .. } => text.push_str(t),
            ContentBlock::Thinking {
                thinking,
                signature,
            } => details.push(json!({"type": "reasoning.text", "text": thinking,
                "signature": signature, "format": REASONING_FORMAT, "index": details.len()})),
            ContentBlock::RedactedThinking { data } => details
                .push(json!({"type": "reasoning.encrypted", "data": data,
                    "format": REASONING_FORMAT, "index": details.len()})),
            ContentBlock::ToolUse { id, name, input } => calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": input.to_string()}})),
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut msg = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    if !details.is_empty() {
        msg["reasoning_details"] = Value::Array(details);
    }
    msg
}

/// The OpenAI messages: the system prompt, then each turn.
fn openai_messages(body: &RawObject) -> Result<Vec<Value>, ApiError> {
    let is_array = body
        .get("messages")
        .is_some_and(|m| m.get().starts_with('['));
    let turns = match field::<Vec<MessageParam>>(body, "messages") {
        Ok(Some(turns)) => turns,
        Err(e) if is_array => {
            return Err(bad(
                "messages",
                format!("`messages` holds a message the Messages API does not accept: {e}"),
            ));
        }
        _ => return Err(bad("messages", "`messages` must be an array of messages")),
    };
    let mut messages: Vec<Value> = Vec::new();
    match field::<MessageContent>(body, "system") {
        Ok(None) => {}
        Ok(Some(MessageContent::Text(s))) => messages.push(json!({"role": "system", "content": s})),
        Ok(Some(MessageContent::Blocks(blocks))) => {
            let parts: Vec<Value> = blocks.iter().filter_map(text_part).collect();
            messages.push(json!({"role": "system", "content": openai_content(parts)}));
        }
        Err(_) => return Err(bad("system", "`system` must be a string or text blocks")),
    }
    for (i, m) in turns.into_iter().enumerate() {
        let blocks = m.content.into_blocks();
        match m.role {
            Role::User => user_messages(&blocks, &mut messages),
            Role::Assistant => messages.push(assistant_message(&blocks)),
            Role::Unknown => {
                return Err(bad(
                    "messages",
                    format!("`messages[{i}].role` must be `user` or `assistant`"),
                ));
            }
        }
    }
    Ok(messages)
}

/// OpenAI function tools for Anthropic client tools; a server tool is a 400.
fn openai_tools(body: &RawObject) -> Result<Vec<Value>, ApiError> {
    let tools = field::<Vec<Tool>>(body, "tools")
        .map_err(|e| bad("tools", format!("`tools` must be an array of tools ({e})")))?
        .unwrap_or_default();
    tools
        .into_iter()
        .map(|t| {
            let Some(schema) = t.input_schema else {
                return Err(bad(
                    "tools",
                    format!(
                        "tool {} is an Anthropic server tool; only client tools (with \
                         `input_schema`) can be routed to other providers",
                        json!(t.name)
                    ),
                ));
            };
            let mut f = json!({"name": t.name, "parameters": schema});
            if let Some(d) = t.description {
                f["description"] = json!(d);
            }
            Ok(json!({"type": "function", "function": f}))
        })
        .collect()
}

/// `tool_choice`, `parallel_tool_calls`, `reasoning` and `user` for the tool choice, thinking and
/// metadata of `body`.
fn set_controls(body: &RawObject, out: &mut RawObject) {
    if let Some(choice) = optional::<ToolChoice>(body, "tool_choice") {
        let mapped = match choice.kind {
            ToolChoiceKind::Auto => Some(json!("auto")),
            ToolChoiceKind::Any => Some(json!("required")),
            ToolChoiceKind::None => Some(json!("none")),
            ToolChoiceKind::Tool => Some(json!({"type": "function",
                "function": {"name": choice.name.unwrap_or_default()}})),
            ToolChoiceKind::Unknown => None,
        };
        if let Some(m) = mapped {
            out.set("tool_choice", &m);
        }
        if choice.disable_parallel_tool_use == Some(true) {
            out.set("parallel_tool_calls", &false);
        }
    }
    match optional::<ThinkingConfig>(body, "thinking") {
        Some(ThinkingConfig::Enabled { budget_tokens }) => out.set(
            "reasoning",
            &json!({"max_tokens": budget_tokens.unwrap_or(1024)}),
        ),
        Some(ThinkingConfig::Adaptive) => out.set("reasoning", &json!({"enabled": true})),
        _ => {}
    }
    if let Some(user) = optional::<Metadata>(body, "metadata").and_then(|m| m.user_id) {
        out.set("user", &user);
    }
}

/// The OpenAI chat request for an Anthropic Messages request.
pub fn request(body: &RawObject) -> Result<RawObject, ApiError> {
    let model = match field::<String>(body, "model") {
        Ok(Some(m)) if !m.is_empty() => m,
        _ => return Err(bad("model", "`model` is required and must be a string")),
    };
    let Ok(Some(max_tokens)) = field::<u64>(body, "max_tokens") else {
        return Err(bad(
            "max_tokens",
            "`max_tokens` is required and must be a non-negative integer",
        ));
    };
    let messages = openai_messages(body)?;
    let mut out = RawObject::default();
    out.set("model", &model);
    out.set("messages", &messages);
    out.set("max_tokens", &max_tokens);
    if let Some(s) = optional::<bool>(body, "stream") {
        out.set("stream", &s);
    }
    for name in ["temperature", "top_p", "top_k"] {
        if let Some(v) = optional::<Number>(body, name) {
            out.set(name, &v);
        }
    }
    if let Some(stop) = optional::<Vec<String>>(body, "stop_sequences") {
        out.set("stop", &stop);
    }
    let tools = openai_tools(body)?;
    if !tools.is_empty() {
        out.set("tools", &tools);
    }
    set_controls(body, &mut out);
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
pub fn usage(u: Option<&Value>) -> Usage {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = n("/prompt_tokens_details/cached_tokens");
    let written = n("/prompt_tokens_details/cache_write_tokens");
    Usage {
        input_tokens: Some(n("/prompt_tokens").saturating_sub(cached + written)),
        output_tokens: Some(n("/completion_tokens")),
        cache_creation_input_tokens: Some(written),
        cache_read_input_tokens: Some(cached),
    }
}

fn message_id(id: Option<&str>) -> String {
    match id {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_switchboard".into(),
    }
}

fn str_of(v: &Value, key: &str) -> String {
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
        usage: usage(v.get("usage")),
        ..Message::default()
    };
    Ok(serde_json::to_value(&message).expect("wire types serialize"))
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

fn error_event(status: u16, message: &str) -> StreamEvent {
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

fn event(ev: &StreamEvent) -> Bytes {
    let data = serde_json::to_string(ev).expect("wire types serialize");
    Bytes::from(format!("event: {}\ndata: {data}\n\n", ev.name()))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunk payloads -> Anthropic stream events.
#[derive(Default)]
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

fn empty_thinking() -> ContentBlock {
    ContentBlock::Thinking {
        thinking: String::new(),
        signature: Some(String::new()),
    }
}

impl Stream {
    /// A translator for one stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        Stream {
            model: model.into(),
            ..Stream::default()
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = Message {
            id: message_id(id),
            model: self.model.clone(),
            usage: Usage {
                input_tokens: Some(0),
                output_tokens: Some(0),
                ..Usage::default()
            },
            ..Message::default()
        };
        out.push(event(&StreamEvent::MessageStart { message }));
        out.push(event(&StreamEvent::Ping));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((_, index)) = self.open.take() {
            out.push(event(&StreamEvent::ContentBlockStop { index }));
        }
    }

    fn open_block(&mut self, kind: Open, block: ContentBlock, out: &mut Vec<Bytes>) -> usize {
        if let Some((k, i)) = self.open
            && k == kind
        {
            return i;
        }
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(event(&StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        }));
        self.open = Some((kind, index));
        index
    }

    fn delta(index: usize, delta: BlockDelta) -> Bytes {
        event(&StreamEvent::ContentBlockDelta { index, delta })
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        self.start(None, out);
        self.close_block(out);
        let stop = stop_reason(self.finish_reason.as_deref(), self.native.as_deref());
        out.push(event(&StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop.into()),
                stop_sequence: None,
            },
            usage: usage(self.usage.as_ref()),
        }));
        out.push(event(&StreamEvent::MessageStop));
        self.ended = true;
    }

    /// Thinking text and signatures, and redacted thinking, of a chunk's delta.
    fn reasoning(&mut self, delta: &Value, out: &mut Vec<Bytes>) {
        let reasoning = delta.get("reasoning").and_then(Value::as_str).unwrap_or("");
        let details = delta
            .get("reasoning_details")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let thinking: String = if reasoning.is_empty() {
            details
                .iter()
                .filter(|d| d["type"] == "reasoning.text")
                .filter_map(|d| d["text"].as_str())
                .collect()
        } else {
            reasoning.to_string()
        };
        if !thinking.is_empty() {
            let i = self.open_block(Open::Thinking, empty_thinking(), out);
            out.push(Self::delta(i, BlockDelta::ThinkingDelta { thinking }));
        }
        for d in details {
            if let Some(sig) = d["signature"].as_str().filter(|s| !s.is_empty()) {
                let i = self.open_block(Open::Thinking, empty_thinking(), out);
                let signature = sig.to_string();
                out.push(Self::delta(i, BlockDelta::SignatureDelta { signature }));
            }
            if d["type"] == "reasoning.encrypted" && d["format"] == REASONING_FORMAT {
                self.close_block(out);
                let data = str_of(d, "data");
                self.open_block(Open::Thinking, ContentBlock::RedactedThinking { data }, out);
                self.close_block(out);
            }
        }
    }

    /// Text and tool calls of a chunk's delta.
    fn content(&mut self, delta: &Value, out: &mut Vec<Bytes>) {
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let i = self.open_block(Open::Text, ContentBlock::text(""), out);
            let text = text.to_string();
            out.push(Self::delta(i, BlockDelta::TextDelta { text }));
        }
        let Some(Value::Array(calls)) = delta.get("tool_calls") else {
            return;
        };
        for c in calls {
            let n = c["index"].as_u64().unwrap_or(0);
            let block = ContentBlock::ToolUse {
                id: str_of(c, "id"),
                name: str_of(&c["function"], "name"),
                input: json!({}),
            };
            let i = self.open_block(Open::Tool(n), block, out);
            if let Some(args) = c["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                let partial_json = args.to_string();
                out.push(Self::delta(i, BlockDelta::InputJsonDelta { partial_json }));
            }
        }
    }

    /// One `data` payload of the pipeline's stream; returns the events to send.
    pub fn on_payload(&mut self, payload: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if payload == "[DONE]" {
            self.finish(&mut out);
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
            out.push(event(&error_event(500, message)));
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
        self.reasoning(&choice["delta"], &mut out);
        self.content(&choice["delta"], &mut out);
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
