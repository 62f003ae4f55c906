//! The OpenAI Chat Completions format as the translating adapters see it: a typed view of the
//! client's request, and the one writer of the `chat.completion` / `chat.completion.chunk` JSON
//! they answer with. Pure.
//!
//! Reasoning follows OpenRouter's shape: `message.reasoning` (text) plus
//! `message.reasoning_details`, a list of `{"type": "reasoning.text", "text", "signature",
//! "format", "index"}` and `{"type": "reasoning.encrypted", "data", "format", "index"}` entries. A
//! client sends the assistant message back with its `reasoning_details` unchanged on the next
//! turn, and the adapter that understands the `format` turns them back into the provider's
//! thinking blocks (with their signatures).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AttemptError;
use crate::{json::RawObject, pricing::reported::TokenCount};

/// The client's chat request, as far as translators read it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Output limit (legacy name).
    pub max_tokens: Option<u64>,
    /// Output limit.
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (an OpenRouter extension).
    pub top_k: Option<u64>,
    /// Stop sequences: a string or a list.
    pub stop: Option<Value>,
    /// Tool definitions.
    pub tools: Vec<Tool>,
    /// `auto`, `none`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// `false` asks for at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}`.
    pub response_format: Option<Value>,
    /// OpenRouter's reasoning knob: `{"effort", "max_tokens", "exclude", "enabled"}`.
    pub reasoning: Option<ReasoningRequest>,
    /// OpenAI's reasoning knob: `low`, `medium`, `high` (`minimal`, `none` accepted).
    pub reasoning_effort: Option<String>,
    /// End-user id.
    pub user: Option<String>,
    /// Random seed.
    pub seed: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
}

/// OpenRouter's `reasoning` request object.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct ReasoningRequest {
    /// `low`, `medium`, `high`.
    pub effort: Option<String>,
    /// A thinking budget in tokens.
    pub max_tokens: Option<u64>,
    /// Think, but leave the reasoning out of the response.
    pub exclude: Option<bool>,
    /// Turn reasoning on at the default effort.
    pub enabled: Option<bool>,
}

/// What a request asks of reasoning, resolved from `reasoning` and `reasoning_effort`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Thinking {
    /// A budget in tokens.
    Budget(u64),
    /// A share of the output limit (effort `low` 0.2, `medium` 0.5, `high` 0.8).
    Share(f64),
}

impl ChatRequest {
    /// Parses the client's body.
    pub fn parse(body: &RawObject) -> Result<ChatRequest, AttemptError> {
        serde_json::from_slice(&body.to_vec()).map_err(|e| client_error(format!("{e}")))
    }

    /// The request for the model `call` names: its output limit lowered to the model's declared
    /// `maxOutputTokens` (a vendor refuses more; clients such as Claude Code ask for 128000
    /// whatever the model).
    pub fn for_model(call: &super::Call<'_>) -> Result<ChatRequest, AttemptError> {
        let mut req = ChatRequest::parse(call.request)?;
        if let Some(cap) = super::openai::output_cap(call) {
            for limit in [&mut req.max_tokens, &mut req.max_completion_tokens] {
                *limit = limit.map(|n| n.min(cap));
            }
        }
        Ok(req)
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The stop sequences as a list.
    pub fn stop_sequences(&self) -> Vec<String> {
        match &self.stop {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    }

    /// The reasoning asked for, if any.
    pub fn thinking(&self) -> Option<Thinking> {
        let share = |effort: &str| match effort {
            "none" => None,
            "minimal" | "low" => Some(Thinking::Share(0.2)),
            "high" | "xhigh" => Some(Thinking::Share(0.8)),
            _ => Some(Thinking::Share(0.5)),
        };
        if let Some(r) = &self.reasoning {
            if r.enabled == Some(false) {
                return None;
            }
            if let Some(n) = r.max_tokens {
                return Some(Thinking::Budget(n));
            }
            if let Some(e) = &r.effort {
                return share(e);
            }
            if r.enabled == Some(true) || r.exclude.is_some() {
                return Some(Thinking::Share(0.5));
            }
        }
        self.reasoning_effort.as_deref().and_then(share)
    }

    /// Whether reasoning should be left out of the response.
    pub fn exclude_reasoning(&self) -> bool {
        self.reasoning
            .as_ref()
            .and_then(|r| r.exclude)
            .unwrap_or(false)
    }

    /// The JSON output the client asked for.
    pub fn json_output(&self) -> Option<JsonOutput> {
        let f = self.response_format.as_ref()?;
        match f.get("type").and_then(Value::as_str)? {
            "json_object" => Some(JsonOutput {
                name: "json_response".into(),
                description: None,
                schema: None,
            }),
            "json_schema" => {
                let js = f.get("json_schema")?;
                Some(JsonOutput {
                    name: js
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("json_response")
                        .to_string(),
                    description: js
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    schema: js.get("schema").cloned(),
                })
            }
            _ => None,
        }
    }

    /// The function name of the tool call with `id`, from the assistant messages so far.
    pub fn tool_name(&self, id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| m.tool_calls.iter())
            .find(|c| c.id == id)
            .map(|c| c.function.name.as_str())
    }
}

/// `response_format` JSON output: an object, or one matching `schema`.
#[derive(Debug, Clone)]
pub struct JsonOutput {
    /// Schema name (`json_response` for `json_object`).
    pub name: String,
    /// Schema description.
    pub description: Option<String>,
    /// The JSON schema (`None` for `json_object`).
    pub schema: Option<Value>,
}

/// One message.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool`.
    pub role: String,
    /// Text or parts.
    pub content: Option<Content>,
    /// Tool calls of an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    pub tool_call_id: Option<String>,
    /// Reasoning text of an earlier assistant turn.
    pub reasoning: Option<String>,
    /// Reasoning blocks of an earlier assistant turn, with signatures.
    pub reasoning_details: Vec<ReasoningDetail>,
}

/// Message content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<Part>),
}

impl Content {
    /// The text of all text parts, joined.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(""),
        }
    }

    /// The content as parts (plain text becomes one text part).
    pub fn parts(&self) -> Vec<Part> {
        match self {
            Content::Text(s) => vec![Part {
                kind: "text".into(),
                text: Some(s.clone()),
                ..Part::default()
            }],
            Content::Parts(p) => p.clone(),
        }
    }
}

/// One content part.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Part {
    /// `text`, `image_url`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Text of a text part.
    pub text: Option<String>,
    /// Image of an image part.
    pub image_url: Option<ImageUrl>,
    /// Anthropic-style cache breakpoint (`{"type": "ephemeral"}`), as OpenRouter accepts it.
    pub cache_control: Option<Value>,
}

/// An image part's URL (`https://...` or `data:<mime>;base64,<data>`).
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct ImageUrl {
    /// The URL.
    pub url: String,
}

/// An image as a provider wants it.
#[derive(Debug, PartialEq)]
pub enum Image<'a> {
    /// Inline: media type and base64 data.
    Inline {
        /// e.g. `image/png`.
        media_type: &'a str,
        /// Base64 data.
        data: &'a str,
    },
    /// A URL the provider fetches.
    Url(&'a str),
}

/// Splits a `data:` URL; other URLs are passed on.
pub fn image(url: &str) -> Image<'_> {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return Image::Inline { media_type, data };
    }
    Image::Url(url)
}

/// A tool call of an assistant message.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct ToolCall {
    /// Call id.
    pub id: String,
    /// The function and its JSON arguments.
    pub function: FunctionCall,
}

/// A called function.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments, a JSON text.
    pub arguments: String,
}

impl FunctionCall {
    /// The arguments as a JSON object (`{}` when empty or not JSON).
    pub fn arguments_value(&self) -> Value {
        serde_json::from_str::<Value>(&self.arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}))
    }
}

/// A tool definition.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function definition.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct FunctionDef {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// JSON schema of the arguments.
    pub parameters: Option<Value>,
}

impl FunctionDef {
    /// The parameters schema, `{"type": "object"}` when absent.
    pub fn schema(&self) -> Value {
        self.parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
    }
}

/// One entry of `reasoning_details`.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct ReasoningDetail {
    /// `reasoning.text`, `reasoning.encrypted`, `reasoning.summary`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reasoning text.
    pub text: Option<String>,
    /// Signature over the text (Anthropic), or Gemini's thought signature.
    pub signature: Option<String>,
    /// Opaque data of redacted reasoning.
    pub data: Option<String>,
    /// Which provider family wrote it, e.g. `anthropic-claude-v1`.
    pub format: Option<String>,
    /// The tool call a Gemini thought signature belongs to.
    pub id: Option<String>,
}

/// A 400 from translation: the request cannot be expressed for this provider.
pub fn client_error(message: impl Into<String>) -> AttemptError {
    AttemptError::Status {
        status: 400,
        body: json!({"error": {"message": message.into(), "type": "invalid_request_error"}})
            .to_string(),
        retry_after: None,
    }
}

// -------------------------------------------------------------------------------------------
// Writing OpenAI responses

/// Normalised usage in OpenAI's fields. Counts are as the vendor sent them ([`TokenCount`]):
/// one it sent unusable (or a required one it left out, `null`) reaches the pipeline's usage
/// check as it was, which bills it at the worst case.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UsageOut {
    /// All input tokens, cached and cache-write included.
    pub prompt: TokenCount,
    /// All output tokens, reasoning included.
    pub completion: TokenCount,
    /// Input tokens read from the cache.
    pub cached: TokenCount,
    /// Input tokens written to the cache.
    pub cache_write: TokenCount,
    /// Output tokens spent reasoning.
    pub reasoning: TokenCount,
}

impl UsageOut {
    /// OpenAI's `usage` object.
    pub fn to_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt.plus(&self.completion),
            "prompt_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": self.cache_write},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning}
        })
    }
}

/// A tool call in a response.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOut {
    /// Call id.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

/// A complete answer, provider-neutral, written as a `chat.completion`.
#[derive(Debug, Default)]
pub struct Completion {
    /// Response id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// Text.
    pub text: String,
    /// Reasoning text.
    pub reasoning: String,
    /// `reasoning_details` entries.
    pub reasoning_details: Vec<Value>,
    /// Tool calls.
    pub tool_calls: Vec<CallOut>,
    /// Normalised finish reason.
    pub finish_reason: String,
    /// The provider's own finish reason.
    pub native_finish_reason: Option<String>,
    /// Usage, when reported.
    pub usage: Option<UsageOut>,
}

impl Completion {
    /// Sets the finish reason from the provider's native one (kept as `native_finish_reason`),
    /// mapped by `map`. An answer given through the emulated JSON tool (`json_answer`) and no
    /// other tool call is a plain `stop`.
    pub fn finish(&mut self, native: String, json_answer: bool, map: fn(&str) -> &'static str) {
        self.finish_reason = if json_answer && self.tool_calls.is_empty() {
            "stop".into()
        } else {
            map(&native).into()
        };
        self.native_finish_reason = Some(native);
    }
}

impl Completion {
    /// The `chat.completion` JSON text.
    pub fn render(&self) -> String {
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert(
            "content".into(),
            if self.text.is_empty() && !self.tool_calls.is_empty() {
                Value::Null
            } else {
                json!(self.text)
            },
        );
        message.insert("refusal".into(), Value::Null);
        if !self.reasoning.is_empty() || !self.reasoning_details.is_empty() {
            message.insert("reasoning".into(), json!(self.reasoning));
            message.insert(
                "reasoning_details".into(),
                Value::Array(self.reasoning_details.clone()),
            );
        }
        if !self.tool_calls.is_empty() {
            message.insert(
                "tool_calls".into(),
                Value::Array(
                    self.tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect(),
                ),
            );
        }
        let mut out = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            // Unknown for a translated answer; the OpenRouter SDK requires the key.
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason,
                "native_finish_reason": self.native_finish_reason,
            }],
        });
        if let Some(u) = &self.usage {
            out["usage"] = u.to_json();
        }
        out.to_string()
    }
}

/// Writes the chunks of one streamed answer.
#[derive(Debug, Default, Clone)]
pub struct ChunkWriter {
    /// Response id.
    pub id: String,
    /// Model.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

impl ChunkWriter {
    /// A chunk with one choice carrying `delta`.
    pub fn delta(&self, delta: Value) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]
        })
        .to_string()
    }

    /// The chunk carrying the finish reason (and the provider's own).
    pub fn finish(&self, finish_reason: &str, native: Option<&str>) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": {}, "logprobs": null,
                         "finish_reason": finish_reason, "native_finish_reason": native}]
        })
        .to_string()
    }

    /// The usage chunk (`choices: []`).
    pub fn usage(&self, usage: &UsageOut) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": usage.to_json()
        })
        .to_string()
    }
}

/// A tool-call delta opening call `index`.
pub fn tool_call_start(index: usize, id: &str, name: &str, arguments: &str) -> Value {
    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                           "function": {"name": name, "arguments": arguments}}]})
}

/// A tool-call delta adding argument text to call `index`.
pub fn tool_call_arguments(index: usize, arguments: &str) -> Value {
    json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
}

/// Unix seconds now (for `created`).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// -------------------------------------------------------------------------------------------
// Embeddings

/// The texts of an OpenAI embeddings request (`input`: a string or a list of strings).
pub fn embedding_inputs(body: &RawObject) -> Result<Vec<String>, AttemptError> {
    let input: Value = body
        .get("input")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .unwrap_or(Value::Null);
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect()),
        _ => Err(client_error(
            "this provider embeds text only: `input` must be a string or a list of strings",
        )),
    }
}

/// An OpenAI embeddings response for `vectors`, in the encoding the request asked for.
pub fn embeddings_body(body: &RawObject, vectors: &[Vec<f64>], model: &str, tokens: u64) -> String {
    use base64::Engine;
    let base64 = body
        .get("encoding_format")
        .is_some_and(|f| f.get() == "\"base64\"");
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    .to_string()
}

/// A random id suffix, for responses whose provider sends no id.
pub fn random_id() -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_into_media_type_and_data() {
        assert_eq!(
            image("data:image/png;base64,AAAA"),
            Image::Inline {
                media_type: "image/png",
                data: "AAAA"
            }
        );
        assert_eq!(image("https://x/y.png"), Image::Url("https://x/y.png"));
    }

    #[test]
    fn reasoning_knobs_resolve() {
        let r = |s: &str| {
            ChatRequest::parse(&RawObject::parse(s.as_bytes()).unwrap())
                .unwrap()
                .thinking()
        };
        assert_eq!(
            r(r#"{"reasoning":{"max_tokens":2000}}"#),
            Some(Thinking::Budget(2000))
        );
        assert_eq!(
            r(r#"{"reasoning_effort":"high"}"#),
            Some(Thinking::Share(0.8))
        );
        assert_eq!(r(r#"{"reasoning":{"enabled":false}}"#), None);
        assert_eq!(r(r#"{}"#), None);
    }
}
