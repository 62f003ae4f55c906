//! An Anthropic Messages request as the pipeline's OpenAI chat view. Pure.
//!
//! `system` becomes a leading system message, and a `system` message in the middle of the
//! conversation (Claude Code sends one) a system message in place (text blocks keep
//! `cache_control`); `tool_result` blocks become `tool` messages placed before the rest of their
//! user turn; `image` blocks become `image_url` parts (base64 sources as data URLs); `tool_use`
//! becomes `tool_calls`; `thinking` / `redacted_thinking` blocks become the assistant's
//! `reasoning_details` (format `anthropic-claude-v1`, signatures kept) so they reach the next
//! turn; client `tools` become functions (their flags, such as `defer_loading` and
//! `cache_control`, have no counterpart), `tool_choice` (`disable_parallel_tool_use` →
//! `parallel_tool_calls: false`), `stop_sequences`, `thinking` (a budget → `reasoning.max_tokens`;
//! adaptive → `reasoning_effort`, from `output_config.effort` when given), `output_config.effort`
//! without thinking (→ `reasoning_effort`), `output_config.format` (→ `response_format`
//! json_schema) and `metadata.user_id` (→ `user`) are mapped; Switchboard/OpenRouter extensions
//! (`models`, `provider`, `session_id`, ...) pass through. What has no counterpart (server tools,
//! `context_management`, ...) is left out and named in [`ChatView::dropped`], never refused: a
//! target that speaks Messages gets the original anyway.

use serde::de::DeserializeOwned;
use serde_json::{Number, Value, json};

use crate::{
    error::ApiError,
    json::RawObject,
    providers::{
        EXTENSION_FIELDS,
        anthropic::wire::{
            ContentBlock, ImageSource, MessageContent, MessageParam, Metadata, Role,
            ThinkingConfig, Tool, ToolChoice, ToolChoiceKind,
        },
    },
};

/// Format tag of Anthropic thinking blocks in `reasoning_details`.
pub const REASONING_FORMAT: &str = "anthropic-claude-v1";

/// The chat view of a Messages request, and what it could not carry.
#[derive(Debug)]
pub struct ChatView {
    /// The OpenAI chat request.
    pub body: RawObject,
    /// The request's fields with no chat counterpart, as `field` or `tools[name]` (for a server
    /// tool): a translated answer names them in a header.
    pub dropped: Vec<String>,
}

/// The top-level request fields this translation reads (each mapped, at least in part).
const MAPPED: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
];

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
            Role::System => {
                let parts: Vec<Value> = blocks.iter().filter_map(text_part).collect();
                messages.push(json!({"role": "system", "content": openai_content(parts)}));
            }
            Role::Unknown => {
                return Err(bad(
                    "messages",
                    format!("`messages[{i}].role` must be `user`, `assistant` or `system`"),
                ));
            }
        }
    }
    Ok(messages)
}

/// OpenAI function tools for Anthropic client tools. A server tool (no `input_schema`: web
/// search, code execution, ...) runs at Anthropic only: it is left out and named in `dropped`.
fn openai_tools(body: &RawObject, dropped: &mut Vec<String>) -> Result<Vec<Value>, ApiError> {
    let tools = field::<Vec<Tool>>(body, "tools")
        .map_err(|e| bad("tools", format!("`tools` must be an array of tools ({e})")))?
        .unwrap_or_default();
    Ok(tools
        .into_iter()
        .filter_map(|t| {
            let Some(schema) = t.input_schema else {
                dropped.push(format!("tools[{}]", t.name));
                return None;
            };
            let mut f = json!({"name": t.name, "parameters": schema});
            if let Some(d) = t.description {
                f["description"] = json!(d);
            }
            Some(json!({"type": "function", "function": f}))
        })
        .collect())
}

/// `output_config`: the effort of the answer and the JSON schema it must match.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct OutputConfig {
    effort: Option<String>,
    format: Option<OutputFormat>,
}

#[derive(serde::Deserialize)]
struct OutputFormat {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    schema: Option<Value>,
}

/// OpenAI's `reasoning_effort` for an Anthropic effort (`max` and `xhigh` are beyond OpenAI's
/// `high`).
fn openai_effort(effort: &str) -> &'static str {
    match effort {
        "low" => "low",
        "high" | "xhigh" | "max" => "high",
        _ => "medium",
    }
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
    let output = optional::<OutputConfig>(body, "output_config").unwrap_or_default();
    match optional::<ThinkingConfig>(body, "thinking") {
        Some(ThinkingConfig::Enabled { budget_tokens }) => out.set(
            "reasoning",
            &json!({"max_tokens": budget_tokens.unwrap_or(1024)}),
        ),
        Some(ThinkingConfig::Adaptive) => out.set(
            "reasoning_effort",
            &openai_effort(output.effort.as_deref().unwrap_or("medium")),
        ),
        Some(ThinkingConfig::Disabled) => {}
        _ => {
            if let Some(effort) = &output.effort {
                out.set("reasoning_effort", &openai_effort(effort));
            }
        }
    }
    if let Some(f) = output.format.filter(|f| f.kind == "json_schema") {
        let schema = f.schema.unwrap_or_else(|| json!({"type": "object"}));
        out.set(
            "response_format",
            &json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
        );
    }
    if let Some(user) = optional::<Metadata>(body, "metadata").and_then(|m| m.user_id) {
        out.set("user", &user);
    }
}

/// The OpenAI chat view of an Anthropic Messages request.
pub fn request(body: &RawObject) -> Result<ChatView, ApiError> {
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
    let mut dropped = Vec::new();
    let tools = openai_tools(body, &mut dropped)?;
    if !tools.is_empty() {
        out.set("tools", &tools);
    }
    set_controls(body, &mut out);
    for name in EXTENSION_FIELDS.iter().filter(|n| **n != "usage") {
        if let Some(v) = body.get(name) {
            out.set_raw(name, v.get().to_string());
        }
    }
    dropped.extend(
        body.0
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !MAPPED.contains(k) && !EXTENSION_FIELDS.contains(k))
            .map(str::to_string),
    );
    Ok(ChatView { body: out, dropped })
}
