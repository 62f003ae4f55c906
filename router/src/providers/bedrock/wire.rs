//! Bedrock Runtime wire types: the Converse / ConverseStream bodies and the `InvokeModel` bodies
//! of Titan and Cohere embedding models, named as in the Bedrock API reference (camelCase JSON).
//!
//! Converse unions (`ContentBlock`, `ToolChoice`, ...) are objects with exactly one member, which
//! names the variant: externally tagged enums here. Responses and stream events are read
//! leniently: a block or delta of a kind added later is skipped ([`Lenient`]), unknown fields are
//! ignored. Fields are declared in the order they are written.

use crate::pricing::reported::TokenCount;
use serde::{Deserialize, Serialize, de::IgnoredAny};
use serde_json::Value;

use super::super::anthropic::wire::ThinkingConfig;

/// The Converse (and ConverseStream) request body; the model is in the URL.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation: alternating user and assistant turns.
    pub messages: Vec<Message>,
    /// The system prompt.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<ContentBlock>,
    /// Output limit and sampling.
    pub inference_config: InferenceConfiguration,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfiguration>,
    /// Model-specific fields (Anthropic models' `thinking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<AdditionalModelRequestFields>,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (tool results included).
    User,
    /// The model.
    Assistant,
}

/// One message.
#[derive(Debug, Serialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: Role,
    /// Its blocks.
    pub content: Vec<ContentBlock>,
}

/// One content block.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    /// Text.
    Text(String),
    /// An image (inline bytes only: Converse takes no image URLs).
    Image(ImageBlock),
    /// A call of a tool.
    ToolUse(ToolUseBlock),
    /// The result of a tool call.
    ToolResult(ToolResultBlock),
    /// Reasoning (Anthropic models' thinking).
    ReasoningContent(ReasoningContentBlock),
    /// A prompt-cache checkpoint after the blocks before it.
    CachePoint(CachePointBlock),
}

/// An image.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: String,
    /// The image data.
    pub source: ImageSource,
}

/// Image data.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImageSource {
    /// Base64 of the image.
    pub bytes: String,
}

/// A tool call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    /// Call id.
    #[serde(default)]
    pub tool_use_id: String,
    /// Tool name.
    #[serde(default)]
    pub name: String,
    /// Arguments, a JSON object.
    #[serde(default = "empty_object")]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A tool result.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    /// The call answered.
    pub tool_use_id: String,
    /// The result.
    pub content: Vec<ToolResultContent>,
}

/// One piece of a tool result.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    /// A JSON object.
    Json(Value),
    /// Text.
    Text(String),
}

/// Reasoning content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContentBlock {
    /// Reasoning text and its signature.
    ReasoningText(ReasoningText),
    /// Reasoning flagged by safety systems, encrypted (base64).
    RedactedContent(String),
}

/// Reasoning text.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReasoningText {
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Signature over it, to send it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A cache checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct CachePointBlock {
    /// Always `default`.
    #[serde(rename = "type")]
    pub kind: CachePointType,
}

/// The `type` of a [`CachePointBlock`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePointType {
    /// `default`.
    Default,
}

/// Output limit and sampling.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfiguration {
    /// Output limit.
    pub max_tokens: u64,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Texts that end the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

/// Tools and how to use them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfiguration {
    /// The tools.
    pub tools: Vec<Tool>,
    /// How the model must use them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// A tool.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    /// A function the model may call.
    ToolSpec(ToolSpecification),
}

/// A tool's specification.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolSpecification {
    /// A client tool from the request.
    Client(FunctionSpec),
    /// The tool that emulates `response_format`; its input is the answer.
    Answer(AnswerSpec),
}

/// A client tool: name, input schema, then the description.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    /// Tool name.
    pub name: String,
    /// JSON schema of the input.
    pub input_schema: ToolInputSchema,
    /// What the tool does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The tool that emulates `response_format`, written description first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerSpec {
    /// Tool name (the JSON schema's name).
    pub name: String,
    /// What the tool is for.
    pub description: String,
    /// The schema the answer must match.
    pub input_schema: ToolInputSchema,
}

/// A tool's input schema.
#[derive(Debug, Serialize)]
pub struct ToolInputSchema {
    /// The JSON schema.
    pub json: Value,
}

/// How the model must use the tools (Converse has no "none").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice {
    /// The model decides.
    Auto {},
    /// Some tool must be called.
    Any {},
    /// The named tool must be called.
    Tool {
        /// Tool name.
        name: String,
    },
}

/// Model-specific request fields.
#[derive(Debug, Serialize)]
pub struct AdditionalModelRequestFields {
    /// Anthropic models' extended thinking.
    pub thinking: ThinkingConfig,
}

/// The Converse response body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConverseResponse {
    /// The answer.
    pub output: ConverseOutput,
    /// Why the answer ended.
    pub stop_reason: Option<String>,
    /// Token counts.
    pub usage: Option<TokenUsage>,
}

/// The output of a Converse call.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConverseOutput {
    /// The assistant's message.
    pub message: Option<OutputMessage>,
}

/// The assistant's message in a response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OutputMessage {
    /// Its blocks.
    pub content: Vec<Lenient<ContentBlock>>,
}

/// A union member read from a response: a kind this router knows, or one added later (skipped).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Lenient<T> {
    /// A known kind.
    Known(T),
    /// Anything else.
    Unknown(IgnoredAny),
}

impl<T> Lenient<T> {
    /// The value, if its kind is known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Lenient::Known(t) => Some(t),
            Lenient::Unknown(_) => None,
        }
    }
}

/// Token counts. `inputTokens` excludes cache reads and writes.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: TokenCount,
    /// Output tokens.
    pub output_tokens: TokenCount,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: TokenCount,
    /// Input tokens written to the cache.
    pub cache_write_input_tokens: TokenCount,
}

/// The payload of a ConverseStream event; which members are set depends on the event type
/// (`messageStart`, `contentBlockStart`, `contentBlockDelta`, `contentBlockStop`, `messageStop`,
/// `metadata`), which the event-stream header names.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StreamEvent {
    /// The block a `contentBlock*` event is about.
    pub content_block_index: usize,
    /// `contentBlockStart`: what the block is.
    pub start: Option<Lenient<ContentBlockStart>>,
    /// `contentBlockDelta`: a piece of the block.
    pub delta: Option<Lenient<ContentBlockDelta>>,
    /// `messageStop`: why the answer ended.
    pub stop_reason: Option<String>,
    /// `metadata`: token counts.
    pub usage: Option<TokenUsage>,
}

/// The start of a block (only tool calls announce themselves).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockStart {
    /// A tool call begins.
    ToolUse(ToolUseStart),
}

/// A tool call's id and name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    /// Call id.
    #[serde(default)]
    pub tool_use_id: String,
    /// Tool name.
    #[serde(default)]
    pub name: String,
}

/// A piece of a block.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlockDelta {
    /// Text.
    Text(String),
    /// A piece of a tool call's input JSON.
    ToolUse(ToolUseDelta),
    /// A piece of reasoning.
    ReasoningContent(ReasoningDelta),
}

/// A piece of a tool call's input.
#[derive(Debug, Deserialize)]
pub struct ToolUseDelta {
    /// JSON text.
    #[serde(default)]
    pub input: String,
}

/// A piece of reasoning.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningDelta {
    /// Reasoning text.
    Text(String),
    /// The signature of the reasoning so far.
    Signature(String),
    /// Encrypted reasoning.
    RedactedContent(String),
}

/// A Titan embeddings `InvokeModel` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbeddingRequest<'a> {
    /// The text to embed.
    pub input_text: &'a str,
    /// Vector length (Titan v2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
}

/// A Titan embeddings response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbeddingResponse {
    /// The vector.
    pub embedding: Vec<f64>,
    /// Input tokens.
    #[serde(default)]
    pub input_text_token_count: u64,
}

/// A Cohere embeddings `InvokeModel` body.
#[derive(Debug, Serialize)]
pub struct CohereEmbeddingRequest<'a> {
    /// The texts to embed.
    pub texts: &'a [String],
    /// What the vectors are for (`search_document`).
    pub input_type: &'static str,
}

/// A Cohere embeddings response.
#[derive(Debug, Deserialize)]
pub struct CohereEmbeddingResponse {
    /// One vector per text.
    pub embeddings: Vec<Vec<f64>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unions_are_objects_of_one_member() {
        let blocks = vec![
            ContentBlock::Text("hi".into()),
            ContentBlock::CachePoint(CachePointBlock {
                kind: CachePointType::Default,
            }),
            ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: "t".into(),
                content: vec![ToolResultContent::Json(json!({"a": 1}))],
            }),
        ];
        assert_eq!(
            serde_json::to_string(&blocks).unwrap(),
            r#"[{"text":"hi"},{"cachePoint":{"type":"default"}},{"toolResult":{"toolUseId":"t","content":[{"json":{"a":1}}]}}]"#
        );
        let choices = [
            ToolChoice::Auto {},
            ToolChoice::Any {},
            ToolChoice::Tool { name: "f".into() },
        ];
        assert_eq!(
            serde_json::to_string(&choices).unwrap(),
            r#"[{"auto":{}},{"any":{}},{"tool":{"name":"f"}}]"#
        );
    }

    #[test]
    fn members_added_later_are_skipped() {
        let r: ConverseResponse = serde_json::from_str(
            r#"{"output": {"message": {"role": "assistant", "content": [
                {"citationsContent": {"citations": []}}, {"text": "hi"}]}},
               "stopReason": "end_turn", "metrics": {"latencyMs": 1}}"#,
        )
        .unwrap();
        let content = r.output.message.unwrap().content;
        assert!(content[0].known().is_none());
        assert!(matches!(content[1].known(), Some(ContentBlock::Text(t)) if t == "hi"));
        let ev: StreamEvent = serde_json::from_str(
            r#"{"contentBlockIndex": 3, "delta": {"citation": {"title": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(ev.content_block_index, 3);
        assert!(ev.delta.unwrap().known().is_none());
    }
}
