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

use crate::pricing::reported::TokenCount;
use serde_json::{Value, json};

use super::{
    super::{
        AttemptError,
        anthropic::{
            translate::{REASONING_FORMAT, Thought, answer_tool, output_budget, thoughts},
            wire::ThinkingConfig,
        },
        openai_wire::{
            CallOut, ChatRequest, ChunkWriter, Completion, Content, Image, Message, UsageOut,
            client_error, image, now, tool_call_arguments, tool_call_start,
        },
        turns::{self, Blocks, Role as TurnRole},
        upstream::StreamTranslate,
    },
    wire::{
        AdditionalModelRequestFields, AnswerSpec, CachePointBlock, CachePointType, ContentBlock,
        ContentBlockDelta, ContentBlockStart, ConverseRequest, ConverseResponse, FunctionSpec,
        ImageBlock, ImageSource, InferenceConfiguration, Message as ConverseMessage,
        ReasoningContentBlock, ReasoningDelta, ReasoningText, Role, StreamEvent,
        TitanEmbeddingRequest, TitanEmbeddingResponse, TokenUsage, Tool, ToolChoice,
        ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContent, ToolSpecification,
        ToolUseBlock,
    },
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

fn image_block(url: &str) -> Result<ContentBlock, AttemptError> {
    match image(url) {
        Image::Inline { media_type, data } => {
            let format = image_format(media_type).ok_or_else(|| {
                client_error(format!(
                    "Bedrock accepts png, jpeg, gif and webp images, not {media_type}"
                ))
            })?;
            Ok(ContentBlock::Image(ImageBlock {
                format: format.into(),
                source: ImageSource { bytes: data.into() },
            }))
        }
        Image::Url(_) => Err(client_error(
            "Bedrock Converse takes images as data (data:image/...;base64,...), not as URLs",
        )),
    }
}

/// Converse content blocks of OpenAI messages.
struct Converse;

impl Blocks for Converse {
    type Block = ContentBlock;

    fn content(&self, content: Option<&Content>) -> Result<Vec<ContentBlock>, AttemptError> {
        let Some(content) = content else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for p in content.parts() {
            match p.kind.as_str() {
                "text" => {
                    if let Some(t) = p.text.filter(|t| !t.is_empty()) {
                        out.push(ContentBlock::Text(t));
                    }
                    if p.cache_control.is_some() {
                        out.push(ContentBlock::CachePoint(CachePointBlock {
                            kind: CachePointType::Default,
                        }));
                    }
                }
                "image_url" => {
                    let url = p.image_url.as_ref().map(|i| i.url.as_str()).unwrap_or("");
                    out.push(image_block(url)?);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn assistant(&self, m: &Message) -> Result<Vec<ContentBlock>, AttemptError> {
        let mut blocks: Vec<ContentBlock> = thoughts(&m.reasoning_details)
            .map(|t| {
                ContentBlock::ReasoningContent(match t {
                    Thought::Text { text, signature } => {
                        ReasoningContentBlock::ReasoningText(ReasoningText {
                            text: text.into(),
                            signature: signature.map(str::to_string),
                        })
                    }
                    Thought::Redacted(data) => ReasoningContentBlock::RedactedContent(data.into()),
                })
            })
            .collect();
        blocks.extend(self.content(m.content.as_ref())?);
        blocks.extend(m.tool_calls.iter().map(|c| {
            ContentBlock::ToolUse(ToolUseBlock {
                tool_use_id: c.id.clone(),
                name: c.function.name.clone(),
                input: c.function.arguments_value(),
            })
        }));
        Ok(blocks)
    }

    fn tool_result(&self, m: &Message) -> Result<ContentBlock, AttemptError> {
        let text = m.content.as_ref().map(Content::text).unwrap_or_default();
        let content = match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => ToolResultContent::Json(v),
            _ => ToolResultContent::Text(text),
        };
        Ok(ContentBlock::ToolResult(ToolResultBlock {
            tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
            content: vec![content],
        }))
    }
}

/// The tool choice for OpenAI's `tool_choice` (`none` has no Converse equivalent).
fn tool_choice(choice: Option<&Value>) -> Option<ToolChoice> {
    match choice? {
        Value::String(s) if s == "required" => Some(ToolChoice::Any {}),
        Value::String(s) if s == "auto" => Some(ToolChoice::Auto {}),
        Value::Object(o) => Some(ToolChoice::Tool {
            name: o.get("function")?.get("name")?.as_str()?.to_string(),
        }),
        _ => None,
    }
}

/// The tools and tool choice for `req`, with the tool that emulates `response_format`.
fn tool_config(req: &ChatRequest, thinking: bool, hints: &mut Hints) -> Option<ToolConfiguration> {
    let mut tools: Vec<Tool> = req
        .tools
        .iter()
        .map(|t| {
            Tool::ToolSpec(ToolSpecification::Client(FunctionSpec {
                name: t.function.name.clone(),
                input_schema: ToolInputSchema {
                    json: t.function.schema(),
                },
                description: t.function.description.clone(),
            }))
        })
        .collect();
    let mut choice = tool_choice(req.tool_choice.as_ref());
    if let Some(out) = req.json_output() {
        let (name, description, schema) = answer_tool(out);
        tools.push(Tool::ToolSpec(ToolSpecification::Answer(AnswerSpec {
            name: name.clone(),
            description,
            input_schema: ToolInputSchema { json: schema },
        })));
        choice = Some(if thinking {
            ToolChoice::Any {}
        } else {
            ToolChoice::Tool { name: name.clone() }
        });
        hints.json_tool = Some(name);
    }
    (!tools.is_empty()).then_some(ToolConfiguration {
        tools,
        tool_choice: choice,
    })
}

/// The Converse request body for `req`.
pub fn request(
    req: &ChatRequest,
    model_max_output: Option<u32>,
) -> Result<(Value, Hints), AttemptError> {
    let conversation = turns::fold(&req.messages, &Converse)?;
    let (max_tokens, thinking) = output_budget(req, model_max_output);
    let sampling = thinking.is_none();
    let mut hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
        ..Hints::default()
    };
    let body = ConverseRequest {
        messages: conversation
            .turns
            .into_iter()
            .map(|t| ConverseMessage {
                role: match t.role {
                    TurnRole::User => Role::User,
                    TurnRole::Assistant => Role::Assistant,
                },
                content: t.blocks,
            })
            .collect(),
        system: conversation.system,
        inference_config: InferenceConfiguration {
            max_tokens,
            temperature: req.temperature.filter(|_| sampling),
            top_p: req.top_p.filter(|_| sampling),
            stop_sequences: req.stop_sequences(),
        },
        tool_config: tool_config(req, !sampling, &mut hints),
        additional_model_request_fields: thinking.map(|budget| AdditionalModelRequestFields {
            thinking: ThinkingConfig::Enabled {
                budget_tokens: Some(budget),
            },
        }),
    };
    Ok((
        serde_json::to_value(&body).expect("wire types serialize"),
        hints,
    ))
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

impl TokenUsage {
    /// In OpenAI's fields: cache reads and writes folded into the prompt.
    fn openai(self) -> UsageOut {
        UsageOut {
            prompt: self
                .input_tokens
                .plus(&self.cache_read_input_tokens)
                .plus(&self.cache_write_input_tokens),
            completion: self.output_tokens,
            cached: self.cache_read_input_tokens,
            cache_write: self.cache_write_input_tokens,
            reasoning: TokenCount::Count(0),
        }
    }
}

/// Adds a response's reasoning block to `out`.
fn reasoning(out: &mut Completion, block: &ReasoningContentBlock) {
    let index = out.reasoning_details.len();
    match block {
        ReasoningContentBlock::ReasoningText(rt) => {
            out.reasoning.push_str(&rt.text);
            out.reasoning_details
                .push(json!({"type": "reasoning.text", "text": rt.text,
                "signature": rt.signature, "format": REASONING_FORMAT, "index": index}));
        }
        ReasoningContentBlock::RedactedContent(data) => {
            out.reasoning_details
                .push(json!({"type": "reasoning.encrypted",
                "data": data, "format": REASONING_FORMAT, "index": index}));
        }
    }
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
        usage: r.usage.map(TokenUsage::openai),
        ..Completion::default()
    };
    let mut json_answer = false;
    let content = r.output.message.map(|m| m.content).unwrap_or_default();
    for block in content.iter().filter_map(|b| b.known()) {
        match block {
            ContentBlock::Text(t) => out.text.push_str(t),
            ContentBlock::ReasoningContent(rc) if !hints.exclude_reasoning => {
                reasoning(&mut out, rc)
            }
            ContentBlock::ToolUse(tu) => {
                if hints.json_tool.as_deref() == Some(&tu.name) {
                    out.text.push_str(&tu.input.to_string());
                    json_answer = true;
                } else {
                    out.tool_calls.push(CallOut {
                        id: tu.tool_use_id.clone(),
                        name: tu.name.clone(),
                        arguments: tu.input.to_string(),
                    });
                }
            }
            _ => {}
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
        if let Some(u) = &self.usage {
            out.push(self.w.usage(u));
        }
        out.push("[DONE]".into());
        out
    }
}

impl Stream {
    fn block_start(&mut self, i: usize, start: &ContentBlockStart) -> Option<String> {
        let ContentBlockStart::ToolUse(tu) = start;
        if self.hints.json_tool.as_deref() == Some(&tu.name) {
            self.json_only = true;
            self.set_block(i, Block::JsonTool);
            return None;
        }
        let n = self.tools;
        self.tools += 1;
        self.set_block(i, Block::Tool(n));
        Some(
            self.w
                .delta(tool_call_start(n, &tu.tool_use_id, &tu.name, "")),
        )
    }

    fn block_delta(&self, i: usize, delta: &ContentBlockDelta) -> Option<String> {
        let block = self.blocks.get(i).copied().unwrap_or(Block::Other);
        let delta = match delta {
            ContentBlockDelta::Text(t) => json!({"content": t}),
            ContentBlockDelta::ToolUse(tu) if tu.input.is_empty() => return None,
            ContentBlockDelta::ToolUse(tu) => match block {
                Block::Tool(n) => tool_call_arguments(n, &tu.input),
                Block::JsonTool => json!({"content": tu.input}),
                Block::Other => return None,
            },
            ContentBlockDelta::ReasoningContent(_) if self.hints.exclude_reasoning => return None,
            ContentBlockDelta::ReasoningContent(ReasoningDelta::Text(t)) => {
                json!({"reasoning": t, "reasoning_details": [{"type": "reasoning.text",
                    "text": t, "format": REASONING_FORMAT, "index": i}]})
            }
            ContentBlockDelta::ReasoningContent(ReasoningDelta::Signature(s)) => {
                json!({"reasoning": "", "reasoning_details": [{"type": "reasoning.text",
                    "text": "", "signature": s, "format": REASONING_FORMAT, "index": i}]})
            }
            ContentBlockDelta::ReasoningContent(ReasoningDelta::RedactedContent(data)) => {
                json!({"reasoning": "", "reasoning_details": [{"type": "reasoning.encrypted",
                    "data": data, "format": REASONING_FORMAT, "index": i}]})
            }
        };
        Some(self.w.delta(delta))
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
        let ev: StreamEvent = serde_json::from_str(data)
            .map_err(|e| AttemptError::Protocol(format!("Bedrock sent a bad event: {e}")))?;
        let i = ev.content_block_index;
        let mut out = Vec::new();
        match event {
            "messageStart" => out.push(self.w.delta(json!({"role": "assistant", "content": ""}))),
            "contentBlockStart" => {
                if let Some(start) = ev.start.as_ref().and_then(|s| s.known()) {
                    out.extend(self.block_start(i, start));
                }
            }
            "contentBlockDelta" => {
                if let Some(delta) = ev.delta.as_ref().and_then(|d| d.known()) {
                    out.extend(self.block_delta(i, delta));
                }
            }
            "messageStop" => self.stop_reason = ev.stop_reason,
            "metadata" => {
                if let Some(u) = ev.usage {
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
pub fn titan_request(text: &str, dimensions: Option<u64>) -> TitanEmbeddingRequest<'_> {
    TitanEmbeddingRequest {
        input_text: text,
        dimensions,
    }
}

/// The vector and token count of a Titan response.
pub fn titan_response(body: &[u8]) -> Result<(Vec<f64>, u64), AttemptError> {
    let t: TitanEmbeddingResponse = serde_json::from_slice(body).map_err(|e| {
        AttemptError::Protocol(format!("Bedrock answered unexpected embeddings JSON: {e}"))
    })?;
    Ok((t.embedding, t.input_text_token_count))
}
