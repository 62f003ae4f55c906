//! Gemini API wire types (`generateContent`, `streamGenerateContent`, `batchEmbedContents`; Vertex
//! AI takes the same `generateContent` body) and Vertex AI's embedding `predict` body, named as in
//! Google's API references (camelCase JSON, except Vertex's `predict` statistics).
//!
//! A [`Part`] is one of its data members (`text`, `inlineData`, `fileData`, `functionCall`,
//! `functionResponse`, ...) plus metadata (`thought`, `thoughtSignature`), all optional as in the
//! API. Responses are read leniently: unknown members are ignored. Fields are declared in the
//! order they are written.

use crate::pricing::reported::TokenCount;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `generateContent` request body; the model is in the URL.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation: alternating user and model turns.
    pub contents: Vec<Content>,
    /// The system prompt (a content without a role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Tools the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// How the model must use the tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Sampling, limits, output format and thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
}

/// Who speaks a content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (function responses included).
    User,
    /// The model.
    Model,
}

/// One turn of the conversation, the system instruction, or a candidate's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Content {
    /// `user` or `model`; absent on the system instruction and embedding inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Its parts.
    pub parts: Vec<Part>,
}

/// One part of a content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Part {
    /// Text (with `thought`, reasoning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inline media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// Media by URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A function call by the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// The result of a function call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// Whether the text is reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// The signature of the reasoning behind this part, sent back on the same part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// Inline media.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// e.g. `image/png`.
    pub mime_type: String,
    /// Base64 data.
    pub data: String,
}

/// Media by URI.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// e.g. `image/jpeg`.
    pub mime_type: String,
    /// The URI.
    pub file_uri: String,
}

/// A function call.
#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Call id (newer models send one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    #[serde(default)]
    pub name: String,
    /// Arguments, a JSON object.
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The result of a function call.
#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionResponse {
    /// The function called.
    pub name: String,
    /// The result, a JSON object.
    pub response: Value,
}

/// A set of tools.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Functions the model may call.
    pub function_declarations: Vec<FunctionDeclaration>,
}

/// A function the model may call.
#[derive(Debug, Serialize)]
pub struct FunctionDeclaration {
    /// Function name.
    pub name: String,
    /// Schema of the arguments (Gemini's OpenAPI subset).
    pub parameters: Value,
    /// What the function does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How the model must use the tools.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// Function calling mode.
    pub function_calling_config: FunctionCallingConfig,
}

/// Function calling mode.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY` or `NONE`.
    pub mode: FunctionCallingMode,
    /// With `ANY`: the functions the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

/// A function calling mode.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FunctionCallingMode {
    /// The model decides.
    Auto,
    /// Some function must be called.
    Any,
    /// No function may be called.
    None,
}

/// Sampling, limits, output format and thinking.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Output limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Random seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Texts that end the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// `application/json` for JSON output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    /// The schema JSON output must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// Thinking budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    /// Whether nothing is set (then the request leaves `generationConfig` out).
    pub fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.max_output_tokens.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
            && self.thinking_config.is_none()
    }
}

/// Thinking budget.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Tokens the model may think for (0: none).
    pub thinking_budget: u64,
    /// Whether thought summaries come back as `thought` parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
}

/// The `generateContent` response body (and each `streamGenerateContent` chunk).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The answers (one: no `candidateCount`).
    pub candidates: Vec<Candidate>,
    /// Token counts.
    pub usage_metadata: Option<UsageMetadata>,
    /// The model that answered.
    pub model_version: Option<String>,
    /// Response id.
    pub response_id: Option<String>,
    /// Why the prompt was blocked, if it was.
    pub prompt_feedback: Option<PromptFeedback>,
    /// An error (some errors arrive with status 200, mid-stream).
    pub error: Option<Status>,
}

/// One answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Candidate {
    /// Its content.
    pub content: Option<Content>,
    /// Why it ended.
    pub finish_reason: Option<String>,
}

/// Token counts. `promptTokenCount` includes cached tokens; `candidatesTokenCount` excludes
/// thoughts.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens, cached included.
    pub prompt_token_count: TokenCount,
    /// Answer tokens, thoughts excluded.
    pub candidates_token_count: TokenCount,
    /// Prompt tokens read from the cache.
    pub cached_content_token_count: TokenCount,
    /// Thinking tokens.
    pub thoughts_token_count: TokenCount,
    /// Tokens of tool results fed back to the model.
    pub tool_use_prompt_token_count: TokenCount,
}

/// Why a prompt was blocked.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PromptFeedback {
    /// The reason, when it was blocked.
    pub block_reason: Option<String>,
}

/// A Google API error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The HTTP status.
    pub code: Option<u64>,
}

/// The `batchEmbedContents` request body.
#[derive(Debug, Serialize)]
pub struct BatchEmbedContentsRequest {
    /// One request per text.
    pub requests: Vec<EmbedContentRequest>,
}

/// One text to embed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedContentRequest {
    /// `models/<id>`.
    pub model: String,
    /// The text, as a content of one text part.
    pub content: Content,
    /// Vector length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u64>,
}

/// The `batchEmbedContents` response body.
#[derive(Debug, Deserialize)]
pub struct BatchEmbedContentsResponse {
    /// One vector per text.
    pub embeddings: Vec<ContentEmbedding>,
}

/// A vector.
#[derive(Debug, Deserialize)]
pub struct ContentEmbedding {
    /// Its values.
    pub values: Vec<f64>,
}

/// Vertex AI's embedding `predict` request body.
#[derive(Debug, Serialize)]
pub struct PredictRequest<'a> {
    /// One instance per text.
    pub instances: Vec<EmbeddingInstance<'a>>,
    /// Vector length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<EmbeddingParameters>,
}

/// One text to embed.
#[derive(Debug, Serialize)]
pub struct EmbeddingInstance<'a> {
    /// The text.
    pub content: &'a str,
}

/// Embedding parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingParameters {
    /// Vector length.
    pub output_dimensionality: u64,
}

/// Vertex AI's embedding `predict` response body.
#[derive(Debug, Deserialize)]
pub struct PredictResponse {
    /// One prediction per instance.
    pub predictions: Vec<Prediction>,
}

/// One prediction.
#[derive(Debug, Deserialize)]
pub struct Prediction {
    /// The vector and its statistics.
    pub embeddings: Embedding,
}

/// A vector and its statistics.
#[derive(Debug, Deserialize)]
pub struct Embedding {
    /// Its values.
    pub values: Vec<f64>,
    /// Token count.
    #[serde(default)]
    pub statistics: Option<Statistics>,
}

/// Embedding statistics (snake_case in Vertex's `predict`).
#[derive(Debug, Deserialize)]
pub struct Statistics {
    /// Input tokens.
    #[serde(default)]
    pub token_count: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_writes_only_its_members() {
        let part = Part {
            text: Some("hi".into()),
            thought_signature: Some("sig".into()),
            ..Part::default()
        };
        assert_eq!(
            serde_json::to_string(&part).unwrap(),
            r#"{"text":"hi","thoughtSignature":"sig"}"#
        );
        assert!(GenerationConfig::default().is_empty());
    }

    #[test]
    fn parts_with_members_added_later_read() {
        let r: GenerateContentResponse = serde_json::from_str(
            r#"{"candidates": [{"content": {"role": "model", "parts": [
                {"executableCode": {"code": "1"}}, {"text": "t", "thought": true}]},
                "finishReason": "STOP", "safetyRatings": []}]}"#,
        )
        .unwrap();
        let parts = &r.candidates[0].content.as_ref().unwrap().parts;
        assert!(parts[0].text.is_none() && parts[0].function_call.is_none());
        assert_eq!(parts[1].text.as_deref(), Some("t"));
        assert_eq!(parts[1].thought, Some(true));
    }
}
