//! A Responses request in the chat view every adapter reads. Pure.
//!
//! - `instructions` is the first system message; `developer` and `system` messages become system
//!   messages where they stand (translating adapters move them to the system prompt).
//! - Message items (`input_text`, `output_text`, `refusal`, `input_image`, `input_file` parts) are
//!   chat messages; `function_call` / `custom_tool_call` items are the assistant's tool calls
//!   (merged into one assistant message), their `*_output` items `tool` messages.
//! - `reasoning` items this router wrote (their `encrypted_content` carries the provider's
//!   reasoning blocks, signatures included) go back as the next assistant message's
//!   `reasoning_details`; reasoning from elsewhere cannot reach another provider and is left out.
//! - `additional_tools` items (Codex) add tools; tools map as [`super::tools`] says.
//! - `text.format` is `response_format`, `reasoning.effort` is `reasoning_effort`,
//!   `max_output_tokens` is `max_tokens`; `temperature`, `top_p`, `user`, `parallel_tool_calls`,
//!   `text.verbosity` and Switchboard's extensions (`models`, `provider`, `session_id`, ...) carry
//!   over. What only OpenAI's own service acts on (`store`, `include`, `prompt_cache_key`,
//!   `client_metadata`, `metadata`, `truncation`, `service_tier`, `background`) is accepted and
//!   not forwarded to translating targets.

use serde_json::{Map, Value, json};

use super::{response::decode_reasoning, tools::ToolMap};
use crate::{error::ApiError, json::RawObject, providers::EXTENSION_FIELDS};

/// The chat view of a Responses request, and what the way back needs.
#[derive(Debug)]
pub struct ChatView {
    /// The chat completion request.
    pub body: RawObject,
    /// How tools map to the chat view and back.
    pub tools: ToolMap,
    /// Streaming requested.
    pub stream: bool,
    /// The request asks that nothing be dropped (`provider.require_parameters: true`).
    pub strict: bool,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_param(param, message)
}

fn get(body: &RawObject, name: &str) -> Option<Value> {
    body.get(name)
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
        .filter(|v| !v.is_null())
}

/// The request's `input` as items: a string is one user message; an item without a `type` but
/// with a `role` is a message. Each keeps what the client sent.
pub fn input_items(body: &RawObject) -> Result<Vec<Value>, ApiError> {
    let items = match get(body, "input") {
        Some(Value::String(text)) => vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(bad(
                "input",
                "`input` must be a string or an array of items",
            ));
        }
        None => return Err(bad("input", "`input` is required")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        let Some(obj) = item.as_object_mut() else {
            return Err(bad("input", format!("`input[{i}]` must be an object")));
        };
        if !obj.contains_key("type") && obj.contains_key("role") {
            obj.insert("type".into(), json!("message"));
        }
        if !obj.get("type").is_some_and(Value::is_string) {
            return Err(bad("input", format!("`input[{i}]` has no `type`")));
        }
        out.push(item);
    }
    Ok(out)
}

/// The text of a content value: a string, or the text of its text-like parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").or_else(|| p.get("refusal")))
            .filter_map(Value::as_str)
            .collect(),
        _ => String::new(),
    }
}

/// A message's content as chat parts (a plain string when it is only text).
fn chat_content(content: &Value) -> Value {
    let Value::Array(parts) = content else {
        return content.clone();
    };
    let mut out = Vec::new();
    for p in parts {
        match p["type"].as_str().unwrap_or("") {
            "input_text" | "output_text" | "text" => {
                out.push(json!({"type": "text", "text": p["text"]}));
            }
            "refusal" => out.push(json!({"type": "text", "text": p["refusal"]})),
            "input_image" => {
                if let Some(url) = p["image_url"].as_str() {
                    let mut image = json!({"url": url});
                    if let Some(d) = p["detail"].as_str() {
                        image["detail"] = json!(d);
                    }
                    out.push(json!({"type": "image_url", "image_url": image}));
                }
            }
            "input_file" => {
                let mut file = Map::new();
                for k in ["file_data", "filename", "file_id"] {
                    if let Some(v) = p.get(k).filter(|v| v.is_string()) {
                        file.insert(k.into(), v.clone());
                    }
                }
                if !file.is_empty() {
                    out.push(json!({"type": "file", "file": file}));
                }
            }
            _ => {}
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        return json!(
            out.iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>()
        );
    }
    Value::Array(out)
}

/// Builds the chat messages of the input items.
struct Messages {
    out: Vec<Value>,
    /// Reasoning details waiting for the next assistant message.
    reasoning: Vec<Value>,
    /// Whether the last message is an assistant message built from this run of items (tool
    /// calls join it).
    open_assistant: bool,
}

impl Messages {
    fn push(&mut self, message: Value) {
        self.open_assistant = false;
        self.out.push(message);
    }

    fn assistant(&mut self, text: Option<String>) {
        let mut m = json!({"role": "assistant", "content": text});
        if !self.reasoning.is_empty() {
            m["reasoning_details"] = Value::Array(std::mem::take(&mut self.reasoning));
        }
        self.out.push(m);
        self.open_assistant = true;
    }

    fn tool_call(&mut self, id: &str, name: String, arguments: String) {
        if !self.open_assistant || !self.reasoning.is_empty() {
            self.assistant(None);
        }
        let last = self
            .out
            .last_mut()
            .expect("an assistant message was just ensured");
        let call = json!({"id": id, "type": "function",
                          "function": {"name": name, "arguments": arguments}});
        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(calls) => calls.push(call),
            None => last["tool_calls"] = json!([call]),
        }
    }

    fn item(&mut self, item: &Value, tools: &ToolMap) {
        let s = |k: &str| item[k].as_str().unwrap_or("");
        match s("type") {
            "message" => {
                let role = match s("role") {
                    "developer" | "system" => "system",
                    "assistant" => "assistant",
                    _ => "user",
                };
                if role == "assistant" {
                    let text = text_of(&item["content"]);
                    self.assistant(Some(text));
                } else {
                    self.push(json!({"role": role, "content": chat_content(&item["content"])}));
                }
            }
            "function_call" => {
                let name = tools.flat_name(item["namespace"].as_str(), s("name"));
                self.tool_call(s("call_id"), name, s("arguments").to_string());
            }
            "custom_tool_call" => {
                let name = tools.flat_name(item["namespace"].as_str(), s("name"));
                let arguments = json!({"input": s("input")}).to_string();
                self.tool_call(s("call_id"), name, arguments);
            }
            "function_call_output" | "custom_tool_call_output" => {
                let content = text_of(&item["output"]);
                self.push(
                    json!({"role": "tool", "tool_call_id": s("call_id"), "content": content}),
                );
            }
            "reasoning" => {
                if let Some(details) = item["encrypted_content"]
                    .as_str()
                    .and_then(decode_reasoning)
                {
                    self.reasoning.extend(details);
                }
            }
            // Tools (`additional_tools`), references and built-in tool calls carry no message.
            _ => {}
        }
    }
}

/// The chat view of a Responses request whose input items (history included) are `items`.
pub fn chat_view(body: &RawObject, items: &[Value]) -> Result<ChatView, ApiError> {
    let mut tools = ToolMap::default();
    match get(body, "tools") {
        Some(Value::Array(list)) => tools.add_all(&list),
        Some(_) => return Err(bad("tools", "`tools` must be an array")),
        None => {}
    }
    for item in items.iter().filter(|i| i["type"] == "additional_tools") {
        tools.add_all(item["tools"].as_array().map_or(&[][..], Vec::as_slice));
    }
    let mut messages = Messages {
        out: Vec::new(),
        reasoning: Vec::new(),
        open_assistant: false,
    };
    match get(body, "instructions") {
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(other @ Value::Array(_)) => {
            messages.push(json!({"role": "system", "content": text_of(&other)}));
        }
        Some(_) => return Err(bad("instructions", "`instructions` must be a string")),
        None => {}
    }
    for item in items {
        messages.item(item, &tools);
    }
    if messages.out.is_empty() {
        return Err(bad("input", "`input` has no message to answer"));
    }
    let mut chat = RawObject::default();
    for (key, value) in &body.0 {
        if key == "model" || EXTENSION_FIELDS.contains(&key.as_str()) {
            chat.0.push((key.clone(), value.clone()));
        }
    }
    chat.set("messages", &messages.out);
    let stream = get(body, "stream")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if stream {
        chat.set("stream", &true);
    }
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
        ("parallel_tool_calls", "parallel_tool_calls"),
    ] {
        if let Some(v) = get(body, from) {
            chat.set(to, &v);
        }
    }
    if !tools.chat_tools.is_empty() {
        chat.set("tools", &tools.chat_tools);
        if let Some(choice) = get(body, "tool_choice").and_then(|c| tools.tool_choice(&c)) {
            chat.set("tool_choice", &choice);
        }
    }
    if let Some(effort) = get(body, "reasoning").and_then(|r| r.get("effort").cloned())
        && effort.is_string()
    {
        chat.set("reasoning_effort", &effort);
    }
    if let Some(text) = get(body, "text") {
        if let Some(format) = response_format(&text["format"]) {
            chat.set("response_format", &format);
        }
        if let Some(v) = text.get("verbosity").filter(|v| v.is_string()) {
            chat.set("verbosity", v);
        }
    }
    let strict =
        get(body, "provider").is_some_and(|p| p.get("require_parameters") == Some(&json!(true)));
    Ok(ChatView {
        body: chat,
        tools,
        stream,
        strict,
    })
}

/// `text.format` as a chat `response_format`.
fn response_format(format: &Value) -> Option<Value> {
    match format["type"].as_str()? {
        "json_schema" => {
            let mut schema = json!({
                "name": format["name"].as_str().unwrap_or("response"),
                "schema": format["schema"],
            });
            for k in ["strict", "description"] {
                if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                    schema[k] = v.clone();
                }
            }
            Some(json!({"type": "json_schema", "json_schema": schema}))
        }
        "json_object" => Some(json!({"type": "json_object"})),
        _ => None,
    }
}
