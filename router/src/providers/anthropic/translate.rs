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

use crate::pricing::reported::TokenCount;
use serde_json::{Value, json};

use super::{
    super::{
        AttemptError,
        openai_wire::{
            CallOut, ChatRequest, ChunkWriter, Completion, Content, Image, JsonOutput, Message,
            ReasoningDetail, Thinking, UsageOut, image, now, tool_call_arguments, tool_call_start,
        },
        turns::{self, Blocks, Role as TurnRole},
        upstream::StreamTranslate,
    },
    wire::{
        AnswerTool, BlockDelta, ContentBlock, ImageSource, Message as AnthropicMessage,
        MessageContent, MessageParam, MessagesRequest, Metadata, Role, StreamEvent, ThinkingConfig,
        Tool, ToolChoice, ToolChoiceKind, ToolDefinition, Usage,
    },
};

/// Format tag of Anthropic thinking blocks in `reasoning_details`.
pub const REASONING_FORMAT: &str = "anthropic-claude-v1";

/// Output limit when neither the request nor the model sets one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Description of the tool that emulates `response_format` when the schema has none.
pub const ANSWER_TOOL_DESCRIPTION: &str = "Respond with the answer as this tool's input.";

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

/// An earlier Anthropic thinking block, from an assistant message's `reasoning_details`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Thought<'a> {
    /// Thinking text and its signature.
    Text {
        /// The reasoning text.
        text: &'a str,
        /// Signature over it.
        signature: Option<&'a str>,
    },
    /// Redacted thinking: opaque data.
    Redacted(&'a str),
}

/// The Anthropic thinking blocks among `details` (entries of format `anthropic-claude-v1`, or of
/// no format), in order. Anthropic models on Bedrock take them back too.
pub fn thoughts(details: &[ReasoningDetail]) -> impl Iterator<Item = Thought<'_>> {
    details
        .iter()
        .filter(|d| d.format.as_deref().is_none_or(|f| f == REASONING_FORMAT))
        .filter_map(|d| match d.kind.as_str() {
            "reasoning.text" => Some(Thought::Text {
                text: d.text.as_deref().unwrap_or_default(),
                signature: d.signature.as_deref(),
            }),
            "reasoning.encrypted" => Some(Thought::Redacted(d.data.as_deref().unwrap_or_default())),
            _ => None,
        })
}

/// `max_tokens` and the thinking budget for `req`: the request's output limit, else the model's
/// `maxOutputTokens`, else 4096; a budget of at least 1024 when reasoning is asked for, with
/// `max_tokens` raised above it (Anthropic wants the budget below `max_tokens`).
pub fn output_budget(req: &ChatRequest, model_max_output: Option<u32>) -> (u64, Option<u64>) {
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
            // Make room for the answer.
            max_tokens = budget.saturating_add(max_tokens.min(DEFAULT_MAX_TOKENS));
        }
        budget
    });
    (max_tokens, thinking)
}

/// The emulated `response_format` tool's name, description and input schema.
pub fn answer_tool(out: JsonOutput) -> (String, String, Value) {
    (
        out.name,
        out.description
            .unwrap_or_else(|| ANSWER_TOOL_DESCRIPTION.into()),
        out.schema.unwrap_or_else(|| json!({"type": "object"})),
    )
}

/// Anthropic content blocks of OpenAI messages.
struct Anthropic;

impl Anthropic {
    fn blocks(content: Option<&Content>) -> Vec<ContentBlock> {
        let Some(content) = content else {
            return vec![];
        };
        content
            .parts()
            .into_iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => p
                    .text
                    .filter(|t| !t.is_empty())
                    .map(|text| ContentBlock::Text {
                        text,
                        cache_control: p.cache_control,
                    }),
                "image_url" => p.image_url.map(|i| ContentBlock::Image {
                    source: image_source(&i.url),
                }),
                _ => None,
            })
            .collect()
    }
}

fn image_source(url: &str) -> ImageSource {
    match image(url) {
        Image::Inline { media_type, data } => ImageSource::Base64 {
            media_type: Some(media_type.into()),
            data: data.into(),
        },
        Image::Url(url) => ImageSource::Url { url: url.into() },
    }
}

impl Blocks for Anthropic {
    type Block = ContentBlock;

    fn content(&self, content: Option<&Content>) -> Result<Vec<ContentBlock>, AttemptError> {
        Ok(Self::blocks(content))
    }

    fn assistant(&self, m: &Message) -> Result<Vec<ContentBlock>, AttemptError> {
        let mut blocks: Vec<ContentBlock> = thoughts(&m.reasoning_details)
            .map(|t| match t {
                Thought::Text { text, signature } => ContentBlock::Thinking {
                    thinking: text.into(),
                    signature: Some(signature.unwrap_or_default().into()),
                },
                Thought::Redacted(data) => ContentBlock::RedactedThinking { data: data.into() },
            })
            .collect();
        blocks.extend(Self::blocks(m.content.as_ref()));
        blocks.extend(m.tool_calls.iter().map(|c| ContentBlock::ToolUse {
            id: c.id.clone(),
            name: c.function.name.clone(),
            input: c.function.arguments_value(),
        }));
        Ok(blocks)
    }

    fn tool_result(&self, m: &Message) -> Result<ContentBlock, AttemptError> {
        let content = match &m.content {
            Some(Content::Text(s)) => MessageContent::Text(s.clone()),
            other => MessageContent::Blocks(Self::blocks(other.as_ref())),
        };
        Ok(ContentBlock::ToolResult {
            tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
            content: Some(content),
            is_error: None,
        })
    }
}

/// The tool choice for OpenAI's `tool_choice`.
fn tool_choice(choice: Option<&Value>) -> Option<ToolChoice> {
    let (kind, name) = match choice? {
        Value::String(s) if s == "required" => (ToolChoiceKind::Any, None),
        Value::String(s) if s == "none" => (ToolChoiceKind::None, None),
        Value::String(s) if s == "auto" => (ToolChoiceKind::Auto, None),
        Value::Object(o) => {
            let name = o.get("function")?.get("name")?.as_str()?;
            (ToolChoiceKind::Tool, Some(name.to_string()))
        }
        _ => return None,
    };
    Some(ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: None,
    })
}

/// The tools and tool choice for `req`, with the tool that emulates `response_format`.
/// `sampling`: no thinking, so a tool can be forced.
fn tools(
    req: &ChatRequest,
    sampling: bool,
    hints: &mut Hints,
) -> (Vec<ToolDefinition>, Option<ToolChoice>) {
    let mut tools: Vec<ToolDefinition> = req
        .tools
        .iter()
        .map(|t| {
            ToolDefinition::Client(Tool {
                name: t.function.name.clone(),
                input_schema: Some(t.function.schema()),
                description: t.function.description.clone(),
            })
        })
        .collect();
    let mut choice = tool_choice(req.tool_choice.as_ref());
    if let Some(out) = req.json_output() {
        let (name, description, input_schema) = answer_tool(out);
        // A forced tool cannot be combined with thinking; then the model is only told to use it.
        choice = Some(ToolChoice {
            kind: if sampling {
                ToolChoiceKind::Tool
            } else {
                ToolChoiceKind::Any
            },
            name: sampling.then(|| name.clone()),
            disable_parallel_tool_use: None,
        });
        tools.push(ToolDefinition::Answer(AnswerTool {
            name: name.clone(),
            description,
            input_schema,
        }));
        hints.json_tool = Some(name);
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = choice.get_or_insert(ToolChoice {
            kind: ToolChoiceKind::Auto,
            name: None,
            disable_parallel_tool_use: None,
        });
        if choice.kind != ToolChoiceKind::None {
            choice.disable_parallel_tool_use = Some(true);
        }
    }
    (tools, choice)
}

/// The Anthropic Messages request for `req`.
pub fn request(
    req: &ChatRequest,
    dialect: Dialect<'_>,
    model_max_output: Option<u32>,
    stream: bool,
) -> Result<(Value, Hints), AttemptError> {
    let conversation = turns::fold(&req.messages, &Anthropic)?;
    let (max_tokens, thinking) = output_budget(req, model_max_output);
    // Anthropic refuses sampling parameters together with thinking.
    let sampling = thinking.is_none();
    let mut hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
        ..Hints::default()
    };
    let (tools, choice) = tools(req, sampling, &mut hints);
    let (model, anthropic_version) = match dialect {
        Dialect::Api(model) => (Some(model.to_string()), None),
        Dialect::Vertex => (None, Some("vertex-2023-10-16")),
    };
    let body = MessagesRequest {
        model,
        anthropic_version,
        messages: conversation
            .turns
            .into_iter()
            .map(|t| MessageParam {
                role: match t.role {
                    TurnRole::User => Role::User,
                    TurnRole::Assistant => Role::Assistant,
                },
                content: MessageContent::Blocks(t.blocks),
            })
            .collect(),
        system: conversation.system,
        max_tokens,
        stop_sequences: req.stop_sequences(),
        thinking: thinking.map(|budget| ThinkingConfig::Enabled {
            budget_tokens: Some(budget),
        }),
        temperature: req.temperature.filter(|_| sampling).map(|t| t.min(1.0)),
        top_p: req.top_p.filter(|_| sampling),
        top_k: req.top_k.filter(|_| sampling),
        tools,
        tool_choice: choice,
        metadata: req.user.clone().map(|user| Metadata {
            user_id: Some(user),
        }),
        stream,
    };
    Ok((
        serde_json::to_value(&body).expect("wire types serialize"),
        hints,
    ))
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

impl Usage {
    /// Counts present in `other` replace these (stream events carry some counts each).
    pub fn merge(&mut self, other: &Usage) {
        let keep = |new: &Option<TokenCount>, old: &mut Option<TokenCount>| {
            if new.is_some() {
                old.clone_from(new);
            }
        };
        keep(&other.input_tokens, &mut self.input_tokens);
        keep(&other.output_tokens, &mut self.output_tokens);
        keep(
            &other.cache_read_input_tokens,
            &mut self.cache_read_input_tokens,
        );
        keep(
            &other.cache_creation_input_tokens,
            &mut self.cache_creation_input_tokens,
        );
    }

    /// The counts as reported, checked like every adapter's ([`crate::pricing::reported`]):
    /// every input token (uncached, cache reads, cache writes) in the prompt, thinking included
    /// in the output; a missing or unusable count is the anomaly.
    pub fn reported(&self) -> Result<crate::pricing::Usage, crate::pricing::reported::Anomaly> {
        crate::pricing::reported::read_openai(
            Some(&self.openai().to_json()),
            crate::pricing::reported::Expect::Chat,
        )
    }

    /// In OpenAI's fields: cache reads and writes folded into the prompt. Anthropic does not
    /// count thinking tokens apart from output. Input and output tokens are required: one left
    /// out is `null` (missing usage, billed at the worst case).
    pub fn openai(&self) -> UsageOut {
        let missing = || TokenCount::Invalid(Value::Null);
        let cached = self.cache_read_input_tokens.clone().unwrap_or_default();
        let cache_write = self.cache_creation_input_tokens.clone().unwrap_or_default();
        UsageOut {
            prompt: self
                .input_tokens
                .clone()
                .unwrap_or_else(missing)
                .plus(&cached)
                .plus(&cache_write),
            completion: self.output_tokens.clone().unwrap_or_else(missing),
            cached,
            cache_write,
            reasoning: TokenCount::Count(0),
        }
    }
}

/// The `reasoning_details` entry of a thinking block.
fn reasoning_detail(block: &ContentBlock, index: usize) -> Option<Value> {
    match block {
        ContentBlock::Thinking {
            thinking,
            signature,
        } => Some(
            json!({"type": "reasoning.text", "text": thinking, "signature": signature,
            "format": REASONING_FORMAT, "index": index}),
        ),
        ContentBlock::RedactedThinking { data } => Some(json!({"type": "reasoning.encrypted",
            "data": data, "format": REASONING_FORMAT, "index": index})),
        _ => None,
    }
}

/// The `chat.completion` for an Anthropic message.
pub fn response(body: &[u8], hints: &Hints) -> Result<Completion, AttemptError> {
    let m: AnthropicMessage = serde_json::from_slice(body)
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
        match block {
            ContentBlock::Text { text, .. } => out.text.push_str(text),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {
                if hints.exclude_reasoning {
                    continue;
                }
                if let ContentBlock::Thinking { thinking, .. } = block {
                    out.reasoning.push_str(thinking);
                }
                let index = out.reasoning_details.len();
                out.reasoning_details.extend(reasoning_detail(block, index));
            }
            ContentBlock::ToolUse { id, name, input } => {
                if hints.json_tool.as_deref() == Some(name) {
                    out.text.push_str(&input.to_string());
                    json_answer = true;
                } else {
                    out.tool_calls.push(CallOut {
                        id: id.clone(),
                        name: name.clone(),
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
    usage: Usage,
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
            usage: Usage::default(),
            stop_reason: None,
            finished: false,
        }
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
            self.w.usage(&self.usage.openai()),
            "[DONE]".into(),
        ]
    }

    fn message_start(&mut self, m: &AnthropicMessage) -> String {
        self.w = ChunkWriter {
            id: m.id.clone(),
            model: m.model.clone(),
            created: now(),
        };
        self.usage.merge(&m.usage);
        self.w.delta(json!({"role": "assistant", "content": ""}))
    }

    fn block_start(&mut self, i: usize, cb: &ContentBlock, out: &mut Vec<String>) {
        let block = match cb {
            ContentBlock::Text { text, .. } => {
                if !text.is_empty() {
                    out.push(self.w.delta(json!({"content": text})));
                }
                Block::Text
            }
            ContentBlock::Thinking { .. } => Block::Thinking,
            ContentBlock::RedactedThinking { .. } => {
                if !self.hints.exclude_reasoning {
                    out.push(self.w.delta(json!({"reasoning": "",
                        "reasoning_details": [reasoning_detail(cb, i)]})));
                }
                Block::Other
            }
            ContentBlock::ToolUse { id, name, .. } => {
                if self.hints.json_tool.as_deref() == Some(name) {
                    Block::JsonTool
                } else {
                    let n = self.tools;
                    self.tools += 1;
                    out.push(self.w.delta(tool_call_start(n, id, name, "")));
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

    fn block_delta(&self, i: usize, delta: &BlockDelta) -> Option<String> {
        let block = self.blocks.get(i).copied().unwrap_or(Block::Other);
        let reasoning = !self.hints.exclude_reasoning;
        let delta = match (delta, block) {
            (BlockDelta::TextDelta { text }, _) => json!({"content": text}),
            (BlockDelta::ThinkingDelta { thinking }, _) if reasoning => {
                json!({"reasoning": thinking, "reasoning_details": [{"type": "reasoning.text",
                    "text": thinking, "format": REASONING_FORMAT, "index": i}]})
            }
            (BlockDelta::SignatureDelta { signature }, _) if reasoning => {
                json!({"reasoning": "", "reasoning_details": [{"type": "reasoning.text",
                    "text": "", "signature": signature, "format": REASONING_FORMAT, "index": i}]})
            }
            (BlockDelta::InputJsonDelta { partial_json }, Block::Tool(n))
                if !partial_json.is_empty() =>
            {
                tool_call_arguments(n, partial_json)
            }
            (BlockDelta::InputJsonDelta { partial_json }, Block::JsonTool)
                if !partial_json.is_empty() =>
            {
                json!({"content": partial_json})
            }
            _ => return None,
        };
        Some(self.w.delta(delta))
    }
}

impl StreamTranslate for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<String>, AttemptError> {
        let ev: StreamEvent = serde_json::from_str(data)
            .map_err(|e| AttemptError::Protocol(format!("Anthropic sent a bad event: {e}")))?;
        let mut out = Vec::new();
        match &ev {
            StreamEvent::MessageStart { message } => out.push(self.message_start(message)),
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(*index, content_block, &mut out),
            StreamEvent::ContentBlockDelta { index, delta } => {
                out.extend(self.block_delta(*index, delta))
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(r) = &delta.stop_reason {
                    self.stop_reason = Some(r.clone());
                }
                self.usage.merge(usage);
            }
            StreamEvent::MessageStop => out.extend(self.close()),
            StreamEvent::Error { error } => {
                return Err(AttemptError::Status {
                    status: error_status(&error.kind),
                    body: data.to_string(),
                    retry_after: None,
                });
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to relay.
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Unknown => {}
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
