//! Anthropic Messages API wire types (`POST /v1/messages`; Vertex AI's `rawPredict` takes the
//! same body), named as in Anthropic's API reference. Both directions use them: the adapter writes
//! [`MessagesRequest`] and reads [`Message`] and [`StreamEvent`]s; the `/v1/messages` ingress reads
//! the request's parts and writes [`Message`], [`StreamEvent`]s and errors.
//!
//! Fields are declared in the order they are written, which is the order Switchboard has always
//! sent them in. Reading is lenient where the vendor adds things: block, delta and event types
//! this router does not know deserialize as `Unknown`, unknown fields are ignored, and fields
//! Anthropic may leave out default.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::pricing::reported::TokenCount;

/// The request body.
#[derive(Debug, Serialize)]
pub struct MessagesRequest {
    /// The model (api.anthropic.com; Vertex AI names it in the URL instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `vertex-2023-10-16` on Vertex AI, which takes the API version in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<&'static str>,
    /// The conversation: alternating user and assistant turns.
    pub messages: Vec<MessageParam>,
    /// The system prompt, as text blocks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<ContentBlock>,
    /// Output limit, thinking included; required.
    pub max_tokens: u64,
    /// Texts that end the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Extended thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingConfig>,
    /// Sampling temperature, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// How the model must use the tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Request metadata (the end user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Answer as server-sent events.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (tool results included).
    User,
    /// The model; every response is the assistant's.
    #[default]
    Assistant,
    /// Instructions in the middle of the conversation (Claude Code sends them).
    System,
    /// A role the Messages API does not have (a client error at the ingress).
    #[serde(other)]
    Unknown,
}

/// One input message (`MessageParam`).
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageParam {
    /// `user` or `assistant`.
    #[serde(default = "Role::unknown")]
    pub role: Role,
    /// Plain text or content blocks.
    #[serde(default)]
    pub content: MessageContent,
}

impl Role {
    fn unknown() -> Role {
        Role::Unknown
    }
}

/// Message (and tool result) content: plain text, or blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text: one text block.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The content as blocks (plain text is one text block).
    pub fn into_blocks(self) -> Vec<ContentBlock> {
        match self {
            MessageContent::Text(text) => vec![ContentBlock::text(text)],
            MessageContent::Blocks(blocks) => blocks,
        }
    }
}

impl Default for MessageContent {
    fn default() -> Self {
        MessageContent::Blocks(Vec::new())
    }
}

/// One content block, in messages, the system prompt, responses and `content_block_start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text, with an optional cache breakpoint (`{"type": "ephemeral"}`) after it.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
        /// Prompt-cache breakpoint, passed through as the client wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
    },
    /// A call of a client tool.
    ToolUse {
        /// Call id, answered by a `tool_result` with the same `tool_use_id`.
        #[serde(default)]
        id: String,
        /// Tool name.
        #[serde(default)]
        name: String,
        /// Arguments, a JSON object.
        #[serde(default = "empty_object")]
        input: Value,
    },
    /// The result of a tool call (in a user message).
    ToolResult {
        /// The `tool_use` block answered.
        #[serde(default)]
        tool_use_id: String,
        /// The result: text or blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// Extended thinking, signed so it can be sent back.
    Thinking {
        /// The reasoning text.
        #[serde(default)]
        thinking: String,
        /// Signature over the thinking.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Thinking flagged by safety systems, encrypted.
    RedactedThinking {
        /// Opaque data.
        #[serde(default)]
        data: String,
    },
    /// A block type this router does not read (server tools, documents, search results, ...).
    #[serde(other)]
    Unknown,
}

impl ContentBlock {
    /// A text block without a cache breakpoint.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

fn empty_object() -> Value {
    json!({})
}

/// Where an image comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline data.
    Base64 {
        /// e.g. `image/png`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
        /// Base64 data.
        #[serde(default)]
        data: String,
    },
    /// A URL Anthropic fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A source this router does not translate (Files API, ...).
    #[serde(other)]
    Unknown,
}

/// A tool in the request's `tools`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolDefinition {
    /// A client tool from the request.
    Client(Tool),
    /// The tool that emulates `response_format`; its input is the answer.
    Answer(AnswerTool),
}

/// A client tool (server tools, e.g. `web_search_20250305`, have no `input_schema`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Tool {
    /// Tool name.
    #[serde(default)]
    pub name: String,
    /// JSON schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The tool that emulates `response_format`, written description first.
#[derive(Debug, Serialize)]
pub struct AnswerTool {
    /// Tool name (the JSON schema's name).
    pub name: String,
    /// What the tool is for.
    pub description: String,
    /// The schema the answer must match.
    pub input_schema: Value,
}

/// How the model must use the tools.
#[derive(Debug, Serialize, Deserialize)]
pub struct ToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: ToolChoiceKind,
    /// The tool to call, for `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one tool call per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// The `type` of a [`ToolChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceKind {
    /// The model decides.
    Auto,
    /// Some tool must be called.
    Any,
    /// The named tool must be called.
    Tool,
    /// No tool may be called.
    None,
    /// A kind this router does not know.
    #[serde(other)]
    Unknown,
}

/// Extended thinking (`thinking`; also Anthropic models' field on Bedrock).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingConfig {
    /// Think with this budget.
    Enabled {
        /// Tokens the model may think for, below `max_tokens`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget_tokens: Option<u64>,
    },
    /// The model decides how long to think.
    Adaptive,
    /// No thinking.
    Disabled,
    /// A mode this router does not know.
    #[serde(other)]
    Unknown,
}

/// Request metadata.
#[derive(Debug, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque id of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The response body (and the `message` of `message_start`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Message id, `msg_...`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Always `assistant`.
    pub role: Role,
    /// The model that answered.
    pub model: String,
    /// The answer's blocks.
    pub content: Vec<ContentBlock>,
    /// Why the answer ended (`null` in `message_start`).
    pub stop_reason: Option<String>,
    /// The stop sequence that ended it.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
}

/// The `type` of a [`Message`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// `message`.
    #[default]
    Message,
}

/// Token counts. `input_tokens` excludes cache reads and writes. Stream events carry some of the
/// counts; absent ones are left out when written.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<TokenCount>,
    /// Output tokens, thinking included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<TokenCount>,
    /// Input tokens written to the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<TokenCount>,
    /// Input tokens read from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<TokenCount>,
    /// Switchboard's price of the answer in USD, written as an exact decimal (never read from
    /// an upstream).
    #[serde(
        skip_deserializing,
        skip_serializing_if = "Option::is_none",
        serialize_with = "exact_decimal"
    )]
    pub cost: Option<rust_decimal::Decimal>,
}

/// A decimal as a JSON number with every digit (no exponent, no float rounding).
fn exact_decimal<S: serde::Serializer>(
    d: &Option<rust_decimal::Decimal>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let text = d.map(|d| d.normalize().to_string()).unwrap_or_default();
    serde_json::value::RawValue::from_string(text)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

/// One server-sent event of a streamed answer; its `type` is also the SSE event name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message begins (empty content, input usage).
    MessageStart {
        /// The message so far.
        message: Message,
    },
    /// A content block begins.
    ContentBlockStart {
        /// Block index.
        #[serde(default)]
        index: usize,
        /// The block, empty.
        content_block: ContentBlock,
    },
    /// A piece of a block.
    ContentBlockDelta {
        /// Block index.
        #[serde(default)]
        index: usize,
        /// The piece.
        delta: BlockDelta,
    },
    /// A content block ends.
    ContentBlockStop {
        /// Block index.
        #[serde(default)]
        index: usize,
    },
    /// The stop reason and final output usage.
    MessageDelta {
        /// Stop reason and sequence.
        #[serde(default)]
        delta: MessageDelta,
        /// Cumulative usage.
        #[serde(default)]
        usage: Usage,
    },
    /// The message ends.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// An error mid-stream (also the body of an HTTP error response).
    Error {
        /// What went wrong.
        #[serde(default)]
        error: ErrorDetail,
    },
    /// An event type this router does not relay.
    #[serde(other)]
    Unknown,
}

impl StreamEvent {
    /// The SSE event name (the `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Unknown => "unknown",
        }
    }
}

/// A piece of a content block.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Text of a text block.
    TextDelta {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// Text of a thinking block.
    ThinkingDelta {
        /// The text.
        #[serde(default)]
        thinking: String,
    },
    /// The signature of a thinking block.
    SignatureDelta {
        /// The signature.
        #[serde(default)]
        signature: String,
    },
    /// A piece of a tool call's input JSON.
    InputJsonDelta {
        /// The piece of JSON text.
        #[serde(default)]
        partial_json: String,
    },
    /// A delta type this router does not relay (citations, ...).
    #[serde(other)]
    Unknown,
}

/// The `delta` of `message_delta`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageDelta {
    /// Why the answer ended.
    pub stop_reason: Option<String>,
    /// The stop sequence that ended it.
    pub stop_sequence: Option<String>,
}

/// An error's `type` and message.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    /// e.g. `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_added_later_read_as_unknown() {
        let block: ContentBlock =
            serde_json::from_str(r#"{"type": "server_tool_use", "id": "s", "input": {}}"#).unwrap();
        assert!(matches!(block, ContentBlock::Unknown));
        let ev: StreamEvent = serde_json::from_str(
            r#"{"type": "content_block_delta", "index": 2,
                "delta": {"type": "citations_delta", "citation": {}}}"#,
        )
        .unwrap();
        assert!(matches!(
            ev,
            StreamEvent::ContentBlockDelta {
                index: 2,
                delta: BlockDelta::Unknown
            }
        ));
        let ev: StreamEvent = serde_json::from_str(r#"{"type": "later_event"}"#).unwrap();
        assert!(matches!(ev, StreamEvent::Unknown));
        let m: Vec<MessageParam> = serde_json::from_str(
            r#"[{"role": "system", "content": "x"}, {"content": "y"}, {"role": "tool", "content": "z"}]"#,
        )
        .unwrap();
        assert_eq!(
            [m[0].role, m[1].role, m[2].role],
            [Role::System, Role::Unknown, Role::Unknown]
        );
    }

    #[test]
    fn a_response_with_missing_fields_reads_with_defaults() {
        let m: Message = serde_json::from_str(
            r#"{"content": [{"type": "tool_use", "id": "t", "name": "f"},
                {"type": "text", "text": "hi", "citations": []}]}"#,
        )
        .unwrap();
        assert!(
            matches!(&m.content[0], ContentBlock::ToolUse { input, .. } if *input == json!({}))
        );
        assert!(matches!(&m.content[1], ContentBlock::Text { text, .. } if text == "hi"));
        assert_eq!(m.stop_reason, None);
        assert_eq!(m.usage.input_tokens, None);
    }

    #[test]
    fn written_in_the_declared_order() {
        let tools = vec![
            ToolDefinition::Client(Tool {
                name: "f".into(),
                input_schema: Some(json!({"type": "object"})),
                description: Some("d".into()),
            }),
            ToolDefinition::Answer(AnswerTool {
                name: "out".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
            }),
        ];
        assert_eq!(
            serde_json::to_string(&tools).unwrap(),
            r#"[{"name":"f","input_schema":{"type":"object"},"description":"d"},{"name":"out","description":"d","input_schema":{"type":"object"}}]"#
        );
        let start = StreamEvent::MessageStart {
            message: Message {
                id: "msg_1".into(),
                model: "m".into(),
                usage: Usage {
                    input_tokens: Some(0.into()),
                    output_tokens: Some(0.into()),
                    ..Usage::default()
                },
                ..Message::default()
            },
        };
        assert_eq!(start.name(), "message_start");
        assert_eq!(
            serde_json::to_string(&start).unwrap(),
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#
        );
    }
}
