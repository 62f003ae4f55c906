//! OpenAI Chat Completions <-> Anthropic Messages. Pure.
//!
//! Request: `system`/`developer` messages become `system`; consecutive messages of one role are
//! merged (tool results, which OpenAI sends as `tool` messages, become `tool_result` blocks of one
//! user turn); images become `image` blocks (base64 or URL source); tool calls become `tool_use`
//! blocks; an assistant's `reasoning_details` of format `anthropic-claude-v1` become `thinking` /
//! `redacted_thinking` blocks with their signatures. `max_tokens` is required by Anthropic: the
//! request's, else the model's `maxOutputTokens`, else 4096. `response_format` has no native
//! counterpart and is emulated by a forced tool whose `input_schema` is the schema; its input comes
//! back as the message text.
//!
//! Response and stream: text, `thinking` (as `reasoning` + `reasoning_details`), `tool_use` (as
//! `tool_calls`), stop reasons normalised (`native_finish_reason` keeps Anthropic's), usage with
//! `cache_read_input_tokens` / `cache_creation_input_tokens` folded into `prompt_tokens`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::{
    AttemptError,
    openai_wire::{
        CallOut, ChatRequest, ChunkWriter, Completion, Content, Image, JsonOutput, Thinking,
        UsageOut, client_error, image, now, tool_call_arguments, tool_call_start,
    },
    upstream::StreamTranslate,
};

/// Format tag of Anthropic thinking blocks in `reasoning_details`.
pub const REASONING_FORMAT: &str = "anthropic-claude-v1";

/// Output limit when neither the request nor the model sets one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// What response translation must know about the request.
#[derive(Debug, Default, Clone)]
pub struct Hints {
    /// Name of the tool emulating `response_format`; its input is the answer text.
    pub json_tool: Option<String>,
    /// Leave reasoning out of the response (`reasoning.exclude`).
    pub exclude_reasoning: bool,
}

/// Where the request goes: the Anthropic API names the model in the body; Vertex AI names it in
/// the URL and wants `anthropic_version` in the body instead.
#[derive(Debug, Clone, Copy)]
pub enum Dialect<'a> {
    /// api.anthropic.com: `model` in the body.
    Api(&'a str),
    /// Vertex AI `rawPredict`: `anthropic_version: vertex-2023-10-16`.
    Vertex,
}

fn text_block(text: &str, cache_control: Option<&Value>) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if let Some(cc) = cache_control {
        b["cache_control"] = cc.clone();
    }
    b
}

fn image_block(url: &str) -> Value {
    match image(url) {
        Image::Inline { media_type, data } => json!({"type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}}),
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn content_blocks(content: Option<&Content>) -> Vec<Value> {
    let Some(content) = content else {
        return vec![];
    };
    content
        .parts()
        .iter()
        .filter_map(|p| match p.kind.as_str() {
            "text" => p
                .text
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| text_block(t, p.cache_control.as_ref())),
            "image_url" => p.image_url.as_ref().map(|i| image_block(&i.url)),
            _ => None,
        })
        .collect()
}

/// The Anthropic Messages request for `req`.
pub fn request(
    req: &ChatRequest,
    dialect: Dialect<'_>,
    model_max_output: Option<u32>,
    stream: bool,
) -> Result<(Value, Hints), AttemptError> {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| {
        if blocks.is_empty() {
            return;
        }
        match turns.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    };
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.extend(content_blocks(m.content.as_ref())),
            "user" => push("user", content_blocks(m.content.as_ref())),
            "assistant" => {
                let mut blocks = Vec::new();
                for d in &m.reasoning_details {
                    if d.format.as_deref().is_some_and(|f| f != REASONING_FORMAT) {
                        continue;
                    }
                    match d.kind.as_str() {
                        "reasoning.text" => blocks.push(json!({"type": "thinking",
                            "thinking": d.text.clone().unwrap_or_default(),
                            "signature": d.signature.clone().unwrap_or_default()})),
                        "reasoning.encrypted" => blocks.push(json!({"type": "redacted_thinking",
                            "data": d.data.clone().unwrap_or_default()})),
                        _ => {}
                    }
                }
                blocks.extend(content_blocks(m.content.as_ref()));
                for c in &m.tool_calls {
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.function.name,
                        "input": c.function.arguments_value()}),
                    );
                }
                push("assistant", blocks);
            }
            "tool" => {
                let content: Value = match &m.content {
                    Some(Content::Text(s)) => json!(s),
                    other => Value::Array(content_blocks(other.as_ref())),
                };
                push(
                    "user",
                    vec![json!({"type": "tool_result",
                        "tool_use_id": m.tool_call_id.clone().unwrap_or_default(),
                        "content": content})],
                );
            }
            other => return Err(client_error(format!("unsupported message role `{other}`"))),
        }
    }
    let mut max_tokens = req
        .max_output()
        .or(model_max_output.map(u64::from))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = Map::new();
    if let Dialect::Api(model) = dialect {
        body.insert("model".into(), json!(model));
    } else {
        body.insert("anthropic_version".into(), json!("vertex-2023-10-16"));
    }
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let thinking = req.thinking().map(|t| {
        let budget = match t {
            Thinking::Budget(n) => n,
            Thinking::Share(s) => (max_tokens as f64 * s) as u64,
        }
        .max(1024);
        if budget >= max_tokens {
            // Anthropic wants the budget below max_tokens: make room for the answer.
            max_tokens = budget + max_tokens.min(DEFAULT_MAX_TOKENS);
        }
        budget
    });
    body.insert("max_tokens".into(), json!(max_tokens));
    let stop = req.stop_sequences();
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), json!(stop));
    }
    if let Some(budget) = thinking {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    } else {
        // Anthropic refuses sampling parameters together with thinking.
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), json!(t.min(1.0)));
        }
        if let Some(p) = req.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(k) = req.top_k {
            body.insert("top_k".into(), json!(k));
        }
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut tool = json!({"name": t.function.name, "input_schema": t.function.schema()});
            if let Some(d) = &t.function.description {
                tool["description"] = json!(d);
            }
            tool
        })
        .collect();
    let mut tool_choice: Option<Value> = match &req.tool_choice {
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    };
    let mut hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
        ..Hints::default()
    };
    if let Some(JsonOutput {
        name,
        description,
        schema,
    }) = req.json_output()
    {
        tools.push(json!({
            "name": name,
            "description": description.unwrap_or_else(|| "Respond with the answer as this tool's input.".into()),
            "input_schema": schema.unwrap_or_else(|| json!({"type": "object"})),
        }));
        // A forced tool cannot be combined with thinking; then the model is only told to use it.
        tool_choice = Some(if thinking.is_some() {
            json!({"type": "any"})
        } else {
            json!({"type": "tool", "name": name})
        });
        hints.json_tool = Some(name);
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = tool_choice {
        body.insert("tool_choice".into(), c);
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Ok((Value::Object(body), hints))
}

/// OpenAI's finish reason for an Anthropic stop reason.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `usage` in OpenAI's fields: `input_tokens` excludes cache reads and writes.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default)]
pub struct AnthropicUsage {
    /// Uncached input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the cache.
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    fn merge(&mut self, other: &AnthropicUsage) {
        self.input_tokens = other.input_tokens.or(self.input_tokens);
        self.output_tokens = other.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = other
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = other
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
    }

    /// In OpenAI's fields. Anthropic does not count thinking tokens apart from output.
    pub fn openai(&self) -> UsageOut {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        UsageOut {
            prompt: self.input_tokens.unwrap_or(0) + cached + cache_write,
            completion: self.output_tokens.unwrap_or(0),
            cached,
            cache_write,
            reasoning: 0,
        }
    }
}

#[derive(Deserialize)]
struct MessageView {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

fn reasoning_detail(block: &Value, index: usize) -> Option<Value> {
    match block.get("type").and_then(Value::as_str)? {
        "thinking" => Some(json!({"type": "reasoning.text",
            "text": block.get("thinking").cloned().unwrap_or(json!("")),
            "signature": block.get("signature").cloned().unwrap_or(Value::Null),
            "format": REASONING_FORMAT, "index": index})),
        "redacted_thinking" => Some(json!({"type": "reasoning.encrypted",
            "data": block.get("data").cloned().unwrap_or(json!("")),
            "format": REASONING_FORMAT, "index": index})),
        _ => None,
    }
}

/// The `chat.completion` for an Anthropic message.
pub fn response(body: &[u8], hints: &Hints) -> Result<Completion, AttemptError> {
    let m: MessageView = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Protocol(format!("Anthropic answered unexpected JSON: {e}")))?;
    let mut out = Completion {
        id: m.id,
        model: m.model,
        created: now(),
        usage: Some(m.usage.openai()),
        ..Completion::default()
    };
    let mut json_answer = false;
    for block in &m.content {
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => out
                .text
                .push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "thinking" | "redacted_thinking" => {
                if hints.exclude_reasoning {
                    continue;
                }
                if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                    out.reasoning.push_str(t);
                }
                let index = out.reasoning_details.len();
                out.reasoning_details.extend(reasoning_detail(block, index));
            }
            "tool_use" => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or(json!({}));
                if hints.json_tool.as_deref() == Some(name) {
                    out.text.push_str(&input.to_string());
                    json_answer = true;
                } else {
                    out.tool_calls.push(CallOut {
                        id: block.get("id").and_then(Value::as_str).unwrap_or("").into(),
                        name: name.into(),
                        arguments: input.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    out.finish(
        m.stop_reason.unwrap_or_else(|| "end_turn".into()),
        json_answer,
        finish_reason,
    );
    Ok(out)
}

/// HTTP status for an Anthropic error `type` (in error bodies and stream `error` events).
pub fn error_status(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        // 529 `overloaded_error`: a 503 everywhere downstream, so it is retried and can carry
        // Retry-After like any overload.
        "overloaded_error" => 503,
        _ => 500,
    }
}

/// Maps Anthropic's HTTP status: 529 (overloaded) becomes 503.
pub fn map_status(status: u16, _body: &str) -> u16 {
    if status == 529 { 503 } else { status }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    Tool(usize),
    JsonTool,
    Other,
}

/// Anthropic stream events -> OpenAI chunks.
pub struct Stream {
    hints: Hints,
    w: ChunkWriter,
    blocks: Vec<Block>,
    tools: usize,
    usage: AnthropicUsage,
    stop_reason: Option<String>,
    finished: bool,
}

impl Stream {
    /// A translator for one stream.
    pub fn new(hints: Hints) -> Self {
        Stream {
            hints,
            w: ChunkWriter::default(),
            blocks: Vec::new(),
            tools: 0,
            usage: AnthropicUsage::default(),
            stop_reason: None,
            finished: false,
        }
    }

    fn block(&self, ev: &Value) -> (usize, Block) {
        let i = ev.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        (i, self.blocks.get(i).copied().unwrap_or(Block::Other))
    }

    fn close(&mut self) -> Vec<String> {
        if self.finished {
            return vec![];
        }
        self.finished = true;
        let native = self
            .stop_reason
            .clone()
            .unwrap_or_else(|| "end_turn".into());
        let json_only = self.blocks.contains(&Block::JsonTool) && self.tools == 0;
        let finish = if json_only {
            "stop"
        } else {
            finish_reason(&native)
        };
        vec![
            self.w.finish(finish, Some(&native)),
            self.w.usage(self.usage.openai()),
            "[DONE]".into(),
        ]
    }
}

impl StreamTranslate for Stream {
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<String>, AttemptError> {
        let ev: Value = serde_json::from_str(data)
            .map_err(|e| AttemptError::Protocol(format!("Anthropic sent a bad event: {e}")))?;
        let kind = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event)
            .to_string();
        let mut out = Vec::new();
        match kind.as_str() {
            "message_start" => {
                let m = &ev["message"];
                self.w = ChunkWriter {
                    id: m["id"].as_str().unwrap_or("").into(),
                    model: m["model"].as_str().unwrap_or("").into(),
                    created: now(),
                };
                if let Ok(u) = serde_json::from_value::<AnthropicUsage>(m["usage"].clone()) {
                    self.usage.merge(&u);
                }
                out.push(self.w.delta(json!({"role": "assistant", "content": ""})));
            }
            "content_block_start" => {
                let i = ev["index"].as_u64().unwrap_or(0) as usize;
                let cb = &ev["content_block"];
                let block = match cb["type"].as_str().unwrap_or("") {
                    "text" => {
                        if let Some(t) = cb["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(self.w.delta(json!({"content": t})));
                        }
                        Block::Text
                    }
                    "thinking" => Block::Thinking,
                    "redacted_thinking" => {
                        if !self.hints.exclude_reasoning {
                            out.push(self.w.delta(json!({"reasoning": "",
                                "reasoning_details": [reasoning_detail(cb, i)]})));
                        }
                        Block::Other
                    }
                    "tool_use" => {
                        let name = cb["name"].as_str().unwrap_or("");
                        if self.hints.json_tool.as_deref() == Some(name) {
                            Block::JsonTool
                        } else {
                            let n = self.tools;
                            self.tools += 1;
                            out.push(self.w.delta(tool_call_start(
                                n,
                                cb["id"].as_str().unwrap_or(""),
                                name,
                                "",
                            )));
                            Block::Tool(n)
                        }
                    }
                    _ => Block::Other,
                };
                if self.blocks.len() <= i {
                    self.blocks.resize(i + 1, Block::Other);
                }
                self.blocks[i] = block;
            }
            "content_block_delta" => {
                let (i, block) = self.block(&ev);
                let d = &ev["delta"];
                match (d["type"].as_str().unwrap_or(""), block) {
                    ("text_delta", _) => {
                        out.push(self.w.delta(json!({"content": d["text"]})));
                    }
                    ("thinking_delta", _) if !self.hints.exclude_reasoning => {
                        out.push(self.w.delta(json!({"reasoning": d["thinking"],
                            "reasoning_details": [{"type": "reasoning.text", "text": d["thinking"],
                                "format": REASONING_FORMAT, "index": i}]})));
                    }
                    ("signature_delta", _) if !self.hints.exclude_reasoning => {
                        out.push(self.w.delta(json!({"reasoning": "",
                            "reasoning_details": [{"type": "reasoning.text", "text": "",
                                "signature": d["signature"], "format": REASONING_FORMAT,
                                "index": i}]})));
                    }
                    ("input_json_delta", Block::Tool(n)) => {
                        let part = d["partial_json"].as_str().unwrap_or("");
                        if !part.is_empty() {
                            out.push(self.w.delta(tool_call_arguments(n, part)));
                        }
                    }
                    ("input_json_delta", Block::JsonTool) => {
                        let part = d["partial_json"].as_str().unwrap_or("");
                        if !part.is_empty() {
                            out.push(self.w.delta(json!({"content": part})));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = ev["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(r.to_string());
                }
                if let Ok(u) = serde_json::from_value::<AnthropicUsage>(ev["usage"].clone()) {
                    self.usage.merge(&u);
                }
            }
            "message_stop" => out.extend(self.close()),
            "error" => {
                let error_type = ev["error"]["type"].as_str().unwrap_or("api_error");
                return Err(AttemptError::Status {
                    status: error_status(error_type),
                    body: data.to_string(),
                    retry_after: None,
                });
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to relay.
            _ => {}
        }
        Ok(out)
    }

    fn on_end(&mut self) -> Vec<String> {
        if self.stop_reason.is_some() {
            self.close()
        } else {
            vec![]
        }
    }
}
