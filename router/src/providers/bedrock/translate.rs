//! OpenAI Chat Completions <-> Bedrock Converse / ConverseStream, and OpenAI embeddings <-> Titan
//! embeddings `InvokeModel`. Pure.
//!
//! Request: `system`/`developer` become `system` text blocks; messages become `text`, `image`
//! (`bytes`: Converse takes no image URLs, so a URL image is a 400), `toolUse` and `toolResult`
//! blocks, consecutive roles merged; `reasoning_details` of format `anthropic-claude-v1` become
//! `reasoningContent` blocks with their signatures; `max_tokens`, `temperature`, `top_p`, `stop`
//! go into `inferenceConfig`; tools into `toolConfig` (`tool_choice: none` has no Converse
//! equivalent: the tools are still sent, the model is just not forced). Reasoning knobs become
//! `additionalModelRequestFields.thinking` (Anthropic models on Bedrock). `response_format` is
//! emulated like for Anthropic: a forced tool whose input schema is the schema, returned as text.
//!
//! Response: `text`, `reasoningContent` (as `reasoning` + `reasoning_details`), `toolUse` (as
//! `tool_calls`), `stopReason` normalised, usage with `cacheReadInputTokens` and
//! `cacheWriteInputTokens` added to `inputTokens` (which excludes them).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::{
    AttemptError,
    anthropic::translate::{DEFAULT_MAX_TOKENS, REASONING_FORMAT},
    openai_wire::{
        CallOut, ChatRequest, ChunkWriter, Completion, Content, Image, Thinking, UsageOut,
        client_error, image, now, tool_call_arguments, tool_call_start,
    },
    upstream::StreamTranslate,
};

/// What response translation must know about the request.
#[derive(Debug, Default, Clone)]
pub struct Hints {
    /// Name of the tool emulating `response_format`.
    pub json_tool: Option<String>,
    /// Leave reasoning out of the response.
    pub exclude_reasoning: bool,
}

fn image_format(media_type: &str) -> Option<&'static str> {
    match media_type {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

fn blocks(content: Option<&Content>) -> Result<Vec<Value>, AttemptError> {
    let Some(content) = content else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for p in content.parts() {
        match p.kind.as_str() {
            "text" => {
                if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    out.push(json!({"text": t}));
                }
                if p.cache_control.is_some() {
                    out.push(json!({"cachePoint": {"type": "default"}}));
                }
            }
            "image_url" => {
                let url = p.image_url.as_ref().map(|i| i.url.as_str()).unwrap_or("");
                match image(url) {
                    Image::Inline { media_type, data } => {
                        let format = image_format(media_type).ok_or_else(|| {
                            client_error(format!(
                                "Bedrock accepts png, jpeg, gif and webp images, not {media_type}"
                            ))
                        })?;
                        out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
                    }
                    Image::Url(_) => {
                        return Err(client_error(
                            "Bedrock Converse takes images as data (data:image/...;base64,...), \
                             not as URLs",
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The Converse request body for `req`.
pub fn request(
    req: &ChatRequest,
    model_max_output: Option<u32>,
) -> Result<(Value, Hints), AttemptError> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    fn push(turns: &mut Vec<(String, Vec<Value>)>, role: &str, b: Vec<Value>) {
        if b.is_empty() {
            return;
        }
        match turns.last_mut() {
            Some((r, existing)) if r == role => existing.extend(b),
            _ => turns.push((role.to_string(), b)),
        }
    }
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.extend(blocks(m.content.as_ref())?),
            "user" => push(&mut turns, "user", blocks(m.content.as_ref())?),
            "assistant" => {
                let mut b = Vec::new();
                for d in &m.reasoning_details {
                    if d.format.as_deref().is_some_and(|f| f != REASONING_FORMAT) {
                        continue;
                    }
                    match d.kind.as_str() {
                        "reasoning.text" => {
                            let mut text = json!({"text": d.text.clone().unwrap_or_default()});
                            if let Some(s) = &d.signature {
                                text["signature"] = json!(s);
                            }
                            b.push(json!({"reasoningContent": {"reasoningText": text}}));
                        }
                        "reasoning.encrypted" => b.push(json!({"reasoningContent":
                            {"redactedContent": d.data.clone().unwrap_or_default()}})),
                        _ => {}
                    }
                }
                b.extend(blocks(m.content.as_ref())?);
                for c in &m.tool_calls {
                    b.push(
                        json!({"toolUse": {"toolUseId": c.id, "name": c.function.name,
                        "input": c.function.arguments_value()}}),
                    );
                }
                push(&mut turns, "assistant", b);
            }
            "tool" => {
                let text = m.content.as_ref().map(Content::text).unwrap_or_default();
                let content = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => json!([{"json": v}]),
                    _ => json!([{"text": text}]),
                };
                push(
                    &mut turns,
                    "user",
                    vec![json!({"toolResult": {
                        "toolUseId": m.tool_call_id.clone().unwrap_or_default(),
                        "content": content}})],
                );
            }
            other => return Err(client_error(format!("unsupported message role `{other}`"))),
        }
    }
    let mut body = Map::new();
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
    let mut max_tokens = req
        .max_output()
        .or(model_max_output.map(u64::from))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking = req.thinking().map(|t| {
        let budget = match t {
            Thinking::Budget(n) => n,
            Thinking::Share(s) => (max_tokens as f64 * s) as u64,
        }
        .max(1024);
        if budget >= max_tokens {
            max_tokens = budget + max_tokens.min(DEFAULT_MAX_TOKENS);
        }
        budget
    });
    let mut inference = Map::new();
    inference.insert("maxTokens".into(), json!(max_tokens));
    if thinking.is_none() {
        if let Some(t) = req.temperature {
            inference.insert("temperature".into(), json!(t));
        }
        if let Some(p) = req.top_p {
            inference.insert("topP".into(), json!(p));
        }
    }
    let stop = req.stop_sequences();
    if !stop.is_empty() {
        inference.insert("stopSequences".into(), json!(stop));
    }
    body.insert("inferenceConfig".into(), Value::Object(inference));
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut spec = json!({"name": t.function.name,
                "inputSchema": {"json": t.function.schema()}});
            if let Some(d) = &t.function.description {
                spec["description"] = json!(d);
            }
            json!({"toolSpec": spec})
        })
        .collect();
    let mut choice = match &req.tool_choice {
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"tool": {"name": n}})),
        _ => None,
    };
    let mut hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
        ..Hints::default()
    };
    if let Some(out) = req.json_output() {
        tools.push(json!({"toolSpec": {
            "name": out.name,
            "description": out.description.unwrap_or_else(|| "Respond with the answer as this tool's input.".into()),
            "inputSchema": {"json": out.schema.unwrap_or_else(|| json!({"type": "object"}))},
        }}));
        choice = Some(if thinking.is_some() {
            json!({"any": {}})
        } else {
            json!({"tool": {"name": out.name}})
        });
        hints.json_tool = Some(out.name);
    }
    if !tools.is_empty() {
        let mut config = json!({"tools": tools});
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        body.insert("toolConfig".into(), config);
    }
    if let Some(budget) = thinking {
        body.insert(
            "additionalModelRequestFields".into(),
            json!({"thinking": {"type": "enabled", "budget_tokens": budget}}),
        );
    }
    Ok((Value::Object(body), hints))
}

/// OpenAI's finish reason for a Converse `stopReason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default, rename_all = "camelCase")]
struct ConverseUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_read_input_tokens: u64,
    cache_write_input_tokens: u64,
}

impl ConverseUsage {
    fn openai(self) -> UsageOut {
        UsageOut {
            prompt: self.input_tokens
                + self.cache_read_input_tokens
                + self.cache_write_input_tokens,
            completion: self.output_tokens,
            cached: self.cache_read_input_tokens,
            cache_write: self.cache_write_input_tokens,
            reasoning: 0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ConverseResponse {
    output: Value,
    stop_reason: Option<String>,
    usage: Option<ConverseUsage>,
}

/// The `chat.completion` for a Converse response.
pub fn response(
    body: &[u8],
    hints: &Hints,
    model: &str,
    id: &str,
) -> Result<Completion, AttemptError> {
    let r: ConverseResponse = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Protocol(format!("Bedrock answered unexpected JSON: {e}")))?;
    let mut out = Completion {
        id: id.into(),
        model: model.into(),
        created: now(),
        usage: r.usage.map(ConverseUsage::openai),
        ..Completion::default()
    };
    let mut json_answer = false;
    let empty = vec![];
    let content = r.output["message"]["content"].as_array().unwrap_or(&empty);
    for block in content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            out.text.push_str(t);
        } else if let Some(rc) = block.get("reasoningContent") {
            if hints.exclude_reasoning {
                continue;
            }
            let index = out.reasoning_details.len();
            if let Some(rt) = rc.get("reasoningText") {
                let text = rt.get("text").and_then(Value::as_str).unwrap_or("");
                out.reasoning.push_str(text);
                out.reasoning_details
                    .push(json!({"type": "reasoning.text", "text": text,
                    "signature": rt.get("signature").cloned().unwrap_or(Value::Null),
                    "format": REASONING_FORMAT, "index": index}));
            } else if let Some(data) = rc.get("redactedContent") {
                out.reasoning_details
                    .push(json!({"type": "reasoning.encrypted",
                    "data": data, "format": REASONING_FORMAT, "index": index}));
            }
        } else if let Some(tu) = block.get("toolUse") {
            let name = tu.get("name").and_then(Value::as_str).unwrap_or("");
            let input = tu.get("input").cloned().unwrap_or(json!({}));
            if hints.json_tool.as_deref() == Some(name) {
                out.text.push_str(&input.to_string());
                json_answer = true;
            } else {
                out.tool_calls.push(CallOut {
                    id: tu
                        .get("toolUseId")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                    name: name.into(),
                    arguments: input.to_string(),
                });
            }
        }
    }
    out.finish(
        r.stop_reason.unwrap_or_else(|| "end_turn".into()),
        json_answer,
        finish_reason,
    );
    Ok(out)
}

/// HTTP status for a Bedrock exception name (`x-amzn-ErrorType`, stream `:exception-type`).
pub fn exception_status(exception: &str) -> u16 {
    let name = exception
        .split(':')
        .next()
        .unwrap_or(exception)
        .trim_end_matches("Exception")
        .to_ascii_lowercase();
    match name.as_str() {
        "throttling" | "modelnotready" => 429,
        "validation" | "modelerror" => 400,
        "accessdenied" | "unrecognizedclient" => 403,
        "resourcenotfound" => 404,
        "modeltimeout" => 408,
        "serviceunavailable" | "modelstreamerror" => 503,
        _ => 500,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Tool(usize),
    JsonTool,
    Other,
}

/// ConverseStream events -> OpenAI chunks.
pub struct Stream {
    hints: Hints,
    w: ChunkWriter,
    blocks: Vec<Block>,
    tools: usize,
    json_only: bool,
    stop_reason: Option<String>,
    usage: Option<UsageOut>,
    closed: bool,
}

impl Stream {
    /// A translator for one stream.
    pub fn new(hints: Hints, model: &str, id: &str) -> Self {
        Stream {
            hints,
            w: ChunkWriter {
                id: id.into(),
                model: model.into(),
                created: now(),
            },
            blocks: Vec::new(),
            tools: 0,
            json_only: false,
            stop_reason: None,
            usage: None,
            closed: false,
        }
    }

    fn set_block(&mut self, i: usize, b: Block) {
        if self.blocks.len() <= i {
            self.blocks.resize(i + 1, Block::Other);
        }
        self.blocks[i] = b;
    }

    fn close(&mut self) -> Vec<String> {
        if self.closed {
            return vec![];
        }
        self.closed = true;
        let mut out = Vec::new();
        let native = self
            .stop_reason
            .clone()
            .unwrap_or_else(|| "end_turn".into());
        let finish = if self.json_only && self.tools == 0 {
            "stop"
        } else {
            finish_reason(&native)
        };
        out.push(self.w.finish(finish, Some(&native)));
        if let Some(u) = self.usage {
            out.push(self.w.usage(u));
        }
        out.push("[DONE]".into());
        out
    }
}

impl StreamTranslate for Stream {
    /// `event` is the event-stream `:event-type` (or `exception:<type>` for exceptions).
    fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<String>, AttemptError> {
        if let Some(exception) = event.strip_prefix("exception:") {
            return Err(AttemptError::Status {
                status: exception_status(exception),
                body: data.to_string(),
                retry_after: None,
            });
        }
        let ev: Value = serde_json::from_str(data)
            .map_err(|e| AttemptError::Protocol(format!("Bedrock sent a bad event: {e}")))?;
        let i = ev["contentBlockIndex"].as_u64().unwrap_or(0) as usize;
        let mut out = Vec::new();
        match event {
            "messageStart" => out.push(self.w.delta(json!({"role": "assistant", "content": ""}))),
            "contentBlockStart" => {
                if let Some(tu) = ev["start"].get("toolUse") {
                    let name = tu["name"].as_str().unwrap_or("");
                    if self.hints.json_tool.as_deref() == Some(name) {
                        self.json_only = true;
                        self.set_block(i, Block::JsonTool);
                    } else {
                        let n = self.tools;
                        self.tools += 1;
                        out.push(self.w.delta(tool_call_start(
                            n,
                            tu["toolUseId"].as_str().unwrap_or(""),
                            name,
                            "",
                        )));
                        self.set_block(i, Block::Tool(n));
                    }
                }
            }
            "contentBlockDelta" => {
                let d = &ev["delta"];
                let block = self.blocks.get(i).copied().unwrap_or(Block::Other);
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    out.push(self.w.delta(json!({"content": t})));
                } else if let Some(tu) = d.get("toolUse") {
                    let part = tu["input"].as_str().unwrap_or("");
                    match block {
                        Block::Tool(n) if !part.is_empty() => {
                            out.push(self.w.delta(tool_call_arguments(n, part)))
                        }
                        Block::JsonTool if !part.is_empty() => {
                            out.push(self.w.delta(json!({"content": part})))
                        }
                        _ => {}
                    }
                } else if let Some(rc) = d.get("reasoningContent")
                    && !self.hints.exclude_reasoning
                {
                    if let Some(t) = rc.get("text").and_then(Value::as_str) {
                        out.push(self.w.delta(json!({"reasoning": t, "reasoning_details":
                            [{"type": "reasoning.text", "text": t, "format": REASONING_FORMAT,
                              "index": i}]})));
                    } else if let Some(s) = rc.get("signature") {
                        out.push(self.w.delta(json!({"reasoning": "", "reasoning_details":
                            [{"type": "reasoning.text", "text": "", "signature": s,
                              "format": REASONING_FORMAT, "index": i}]})));
                    } else if let Some(data) = rc.get("redactedContent") {
                        out.push(self.w.delta(json!({"reasoning": "", "reasoning_details":
                            [{"type": "reasoning.encrypted", "data": data,
                              "format": REASONING_FORMAT, "index": i}]})));
                    }
                }
            }
            "messageStop" => {
                self.stop_reason = ev["stopReason"].as_str().map(str::to_string);
            }
            "metadata" => {
                if let Ok(u) = serde_json::from_value::<ConverseUsage>(ev["usage"].clone()) {
                    self.usage = Some(u.openai());
                }
                if self.stop_reason.is_some() {
                    out.extend(self.close());
                }
            }
            // `contentBlockStop` and later additions carry nothing to relay.
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

// -------------------------------------------------------------------------------------------
// Titan embeddings

/// The Titan `InvokeModel` body for one text.
pub fn titan_request(text: &str, dimensions: Option<u64>) -> Value {
    let mut b = json!({"inputText": text});
    if let Some(d) = dimensions {
        b["dimensions"] = json!(d);
    }
    b
}

/// The vector and token count of a Titan response.
pub fn titan_response(body: &[u8]) -> Result<(Vec<f64>, u64), AttemptError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Titan {
        embedding: Vec<f64>,
        #[serde(default)]
        input_text_token_count: u64,
    }
    let t: Titan = serde_json::from_slice(body).map_err(|e| {
        AttemptError::Protocol(format!("Bedrock answered unexpected embeddings JSON: {e}"))
    })?;
    Ok((t.embedding, t.input_text_token_count))
}
