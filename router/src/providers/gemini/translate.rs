//! OpenAI Chat Completions <-> Gemini `generateContent`. Pure; shared by Google AI (`gemini`) and
//! Vertex AI (`vertex`, Gemini models).
//!
//! Request: `system`/`developer` messages become `systemInstruction`; `assistant` becomes role
//! `model`; tool results become `functionResponse` parts (the function name is looked up from the
//! assistant's tool call with that id); images become `inlineData` (data URLs) or `fileData`
//! (other URLs); tools become `functionDeclarations`, `tool_choice` becomes
//! `toolConfig.functionCallingConfig`; `response_format` becomes `responseMimeType:
//! application/json` with `responseSchema` (keywords Gemini's schema subset does not know are
//! dropped); reasoning knobs become `thinkingConfig`. Thought signatures travel in
//! `reasoning_details` (`{"type": "reasoning.encrypted", "format": "google-gemini-v1", "data":
//! <signature>, "id": <tool call id or null>}`) and go back on the part they came from.
//!
//! Response: text parts, `thought` parts (as `reasoning`), `functionCall` parts (as
//! `tool_calls`, with Gemini's id or a generated one), `finishReason` normalised, and
//! `usageMetadata` (cached, thoughts and tool-use prompt tokens included).

use crate::pricing::reported::TokenCount;
use serde_json::{Value, json};

use super::{
    super::{
        AttemptError,
        openai_wire::{
            CallOut, ChatRequest, ChunkWriter, Completion, Content as OpenAiContent, Image,
            Message, Thinking, UsageOut, image, now, tool_call_start,
        },
        turns::{self, Blocks, Role as TurnRole},
        upstream::StreamTranslate,
    },
    wire::{
        BatchEmbedContentsRequest, BatchEmbedContentsResponse, Blob, Content, EmbedContentRequest,
        FileData, FunctionCall, FunctionCallingConfig, FunctionCallingMode, FunctionDeclaration,
        FunctionResponse, GenerateContentRequest, GenerateContentResponse, GenerationConfig, Part,
        Role, ThinkingConfig, Tool, ToolConfig, UsageMetadata,
    },
};

/// Format tag of Gemini thought signatures in `reasoning_details`.
pub const REASONING_FORMAT: &str = "google-gemini-v1";

/// What response translation must know about the request.
#[derive(Debug, Default, Clone)]
pub struct Hints {
    /// Leave reasoning out of the response.
    pub exclude_reasoning: bool,
}

/// Schema keywords outside Gemini's OpenAPI subset, dropped from `responseSchema` and function
/// parameters.
const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &[
    "$schema",
    "$id",
    "additionalProperties",
    "strict",
    "examples",
    "default",
    "const",
    "patternProperties",
    "unevaluatedProperties",
];

/// A JSON schema with the keywords Gemini refuses removed, recursively.
pub fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !UNSUPPORTED_SCHEMA_KEYS.contains(&k.as_str()))
                .map(|(k, v)| {
                    let v = if k == "properties" {
                        match v {
                            Value::Object(props) => Value::Object(
                                props
                                    .iter()
                                    .map(|(name, s)| (name.clone(), gemini_schema(s)))
                                    .collect(),
                            ),
                            other => other.clone(),
                        }
                    } else {
                        gemini_schema(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".pdf") {
        "application/pdf"
    } else {
        "image/jpeg"
    }
}

fn media(url: &str) -> Part {
    match image(url) {
        Image::Inline { media_type, data } => Part {
            inline_data: Some(Blob {
                mime_type: media_type.into(),
                data: data.into(),
            }),
            ..Part::default()
        },
        Image::Url(url) => Part {
            file_data: Some(FileData {
                mime_type: mime_of(url).into(),
                file_uri: url.into(),
            }),
            ..Part::default()
        },
    }
}

/// Gemini parts of OpenAI messages; a tool result names its function, looked up in `req`.
struct Gemini<'a> {
    req: &'a ChatRequest,
}

impl Gemini<'_> {
    fn parts(content: Option<&OpenAiContent>) -> Vec<Part> {
        let Some(content) = content else {
            return vec![];
        };
        content
            .parts()
            .into_iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => p.text.filter(|t| !t.is_empty()).map(|text| Part {
                    text: Some(text),
                    ..Part::default()
                }),
                "image_url" => p.image_url.map(|i| media(&i.url)),
                _ => None,
            })
            .collect()
    }
}

impl Blocks for Gemini<'_> {
    type Block = Part;

    fn content(&self, content: Option<&OpenAiContent>) -> Result<Vec<Part>, AttemptError> {
        Ok(Self::parts(content))
    }

    /// Thought signatures go back on the part they came with: a tool call's on its
    /// `functionCall`, one without a call id on the first part.
    fn assistant(&self, m: &Message) -> Result<Vec<Part>, AttemptError> {
        let signatures: Vec<(Option<&str>, &str)> = m
            .reasoning_details
            .iter()
            .filter(|d| d.format.as_deref() == Some(REASONING_FORMAT))
            .filter_map(|d| {
                d.data
                    .as_deref()
                    .or(d.signature.as_deref())
                    .map(|s| (d.id.as_deref(), s))
            })
            .collect();
        let mut parts = Self::parts(m.content.as_ref());
        if let Some((_, sig)) = signatures.iter().find(|(id, _)| id.is_none())
            && let Some(first) = parts.first_mut()
        {
            first.thought_signature = Some(sig.to_string());
        }
        parts.extend(m.tool_calls.iter().map(|c| {
            Part {
                function_call: Some(FunctionCall {
                    id: None,
                    name: c.function.name.clone(),
                    args: c.function.arguments_value(),
                }),
                thought_signature: signatures
                    .iter()
                    .find(|(id, _)| *id == Some(&c.id))
                    .map(|(_, sig)| sig.to_string()),
                ..Part::default()
            }
        }));
        Ok(parts)
    }

    fn tool_result(&self, m: &Message) -> Result<Part, AttemptError> {
        let id = m.tool_call_id.as_deref().unwrap_or("");
        let name = self.req.tool_name(id).unwrap_or(id);
        let text = m
            .content
            .as_ref()
            .map(OpenAiContent::text)
            .unwrap_or_default();
        let response = match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(v) => json!({"result": v}),
            Err(_) => json!({"result": text}),
        };
        Ok(Part {
            function_response: Some(FunctionResponse {
                name: name.into(),
                response,
            }),
            ..Part::default()
        })
    }
}

/// The function calling mode for OpenAI's `tool_choice`.
fn tool_config(choice: Option<&Value>) -> Option<ToolConfig> {
    let (mode, allowed_function_names) = match choice? {
        Value::String(s) if s == "required" => (FunctionCallingMode::Any, vec![]),
        Value::String(s) if s == "none" => (FunctionCallingMode::None, vec![]),
        Value::String(s) if s == "auto" => (FunctionCallingMode::Auto, vec![]),
        Value::Object(o) => {
            let name = o.get("function")?.get("name")?.as_str()?;
            (FunctionCallingMode::Any, vec![name.to_string()])
        }
        _ => return None,
    };
    Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names,
        },
    })
}

/// The thinking budget: the one asked for, or a share of the output limit (of 24,576 without
/// one); 0 when reasoning is turned off.
fn thinking_config(req: &ChatRequest, hints: &Hints) -> Option<ThinkingConfig> {
    if let Some(t) = req.thinking() {
        let thinking_budget = match t {
            Thinking::Budget(n) => n,
            Thinking::Share(s) => match req.max_output() {
                Some(max) => (max as f64 * s) as u64,
                None => (24_576.0 * s) as u64,
            },
        };
        return Some(ThinkingConfig {
            thinking_budget,
            include_thoughts: Some(!hints.exclude_reasoning),
        });
    }
    let off = matches!(
        (&req.reasoning_effort, &req.reasoning),
        (Some(e), None) if e == "none"
    ) || req
        .reasoning
        .as_ref()
        .is_some_and(|r| r.enabled == Some(false));
    off.then_some(ThinkingConfig {
        thinking_budget: 0,
        include_thoughts: None,
    })
}

fn generation_config(req: &ChatRequest, hints: &Hints) -> Option<GenerationConfig> {
    let json = req.json_output();
    let config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_output_tokens: req.max_output(),
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        stop_sequences: req.stop_sequences(),
        response_mime_type: json.as_ref().map(|_| "application/json"),
        response_schema: json.and_then(|out| out.schema.as_ref().map(gemini_schema)),
        thinking_config: thinking_config(req, hints),
    };
    (!config.is_empty()).then_some(config)
}

/// The `generateContent` request body for `req`.
pub fn request(req: &ChatRequest) -> Result<(Value, Hints), AttemptError> {
    let conversation = turns::fold(&req.messages, &Gemini { req })?;
    let hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
    };
    let has_tools = !req.tools.is_empty();
    let body = GenerateContentRequest {
        contents: conversation
            .turns
            .into_iter()
            .map(|t| Content {
                role: Some(match t.role {
                    TurnRole::User => Role::User,
                    TurnRole::Assistant => Role::Model,
                }),
                parts: t.blocks,
            })
            .collect(),
        system_instruction: (!conversation.system.is_empty()).then_some(Content {
            role: None,
            parts: conversation.system,
        }),
        tools: if has_tools {
            vec![Tool {
                function_declarations: req
                    .tools
                    .iter()
                    .map(|t| FunctionDeclaration {
                        name: t.function.name.clone(),
                        parameters: gemini_schema(&t.function.schema()),
                        description: t.function.description.clone(),
                    })
                    .collect(),
            }]
        } else {
            vec![]
        },
        tool_config: tool_config(req.tool_choice.as_ref()).filter(|_| has_tools),
        generation_config: generation_config(req, &hints),
    };
    Ok((
        serde_json::to_value(&body).expect("wire types serialize"),
        hints,
    ))
}

/// OpenAI's finish reason for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

impl UsageMetadata {
    /// In OpenAI's fields: tool-use prompt tokens added to the prompt, thoughts to the
    /// completion.
    fn openai(self) -> UsageOut {
        UsageOut {
            prompt: self
                .prompt_token_count
                .plus(&self.tool_use_prompt_token_count),
            completion: self.candidates_token_count.plus(&self.thoughts_token_count),
            cached: self.cached_content_token_count,
            cache_write: TokenCount::Count(0),
            reasoning: self.thoughts_token_count,
        }
    }
}

/// What one response (or stream chunk) adds to the answer.
#[derive(Default)]
struct Pieces {
    text: String,
    reasoning: String,
    details: Vec<Value>,
    calls: Vec<CallOut>,
}

/// Tool-call ids: Gemini's own when it sends one, else `call_<response id>_<n>`. Signatures go
/// into the details even when reasoning is excluded (the model needs them back); thought text
/// does not.
fn pieces(parts: &[Part], hints: &Hints, call_prefix: &str, first_call: usize) -> Pieces {
    let mut out = Pieces::default();
    for part in parts {
        let signature = part.thought_signature.as_deref();
        if let Some(call) = &part.function_call {
            let n = first_call + out.calls.len();
            let id = call
                .id
                .clone()
                .unwrap_or_else(|| format!("call_{call_prefix}_{n}"));
            if let Some(sig) = signature {
                out.details
                    .push(json!({"type": "reasoning.encrypted", "data": sig,
                    "id": id, "format": REASONING_FORMAT}));
            }
            out.calls.push(CallOut {
                id,
                name: call.name.clone(),
                arguments: call.args.to_string(),
            });
            continue;
        }
        if let Some(sig) = signature {
            out.details
                .push(json!({"type": "reasoning.encrypted", "data": sig,
                "id": null, "format": REASONING_FORMAT}));
        }
        let Some(text) = &part.text else {
            continue;
        };
        if part.thought != Some(true) {
            out.text.push_str(text);
        } else if !hints.exclude_reasoning {
            out.reasoning.push_str(text);
            out.details
                .push(json!({"type": "reasoning.text", "text": text,
                "format": REASONING_FORMAT}));
        }
    }
    out
}

fn parse(body: &[u8]) -> Result<GenerateContentResponse, AttemptError> {
    let r: GenerateContentResponse = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Protocol(format!("Gemini answered unexpected JSON: {e}")))?;
    if let Some(err) = &r.error {
        return Err(AttemptError::Status {
            status: err.code.map_or(500, |c| c as u16),
            body: String::from_utf8_lossy(body).into_owned(),
            retry_after: None,
        });
    }
    Ok(r)
}

/// The `chat.completion` for a `generateContent` response. `fallback_id` names the response when
/// Gemini sends no `responseId`.
pub fn response(
    body: &[u8],
    hints: &Hints,
    model: &str,
    fallback_id: &str,
) -> Result<Completion, AttemptError> {
    let r = parse(body)?;
    let id = r.response_id.clone().unwrap_or_else(|| fallback_id.into());
    let cand = r.candidates.first();
    let parts = cand
        .and_then(|c| c.content.as_ref())
        .map(|c| c.parts.as_slice())
        .unwrap_or(&[]);
    let p = pieces(parts, hints, &id, 0);
    let native = cand
        .and_then(|c| c.finish_reason.clone())
        .or_else(|| {
            r.prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_ref())
                .map(|_| "SAFETY".to_string())
        })
        .unwrap_or_else(|| "STOP".into());
    let mut details = p.details;
    for (i, d) in details.iter_mut().enumerate() {
        d["index"] = json!(i);
    }
    Ok(Completion {
        finish_reason: finish_reason(&native, !p.calls.is_empty()).into(),
        native_finish_reason: Some(native),
        id: format!("gen-{id}"),
        model: r.model_version.unwrap_or_else(|| model.to_string()),
        created: now(),
        text: p.text,
        reasoning: p.reasoning,
        reasoning_details: details,
        tool_calls: p.calls,
        usage: r.usage_metadata.map(UsageMetadata::openai),
    })
}

/// Gemini's status for an error body: an invalid API key is a 400 `INVALID_ARGUMENT` with reason
/// `API_KEY_INVALID`, which is the provider's credential failing, not the request: 401.
pub fn map_status(status: u16, body: &str) -> u16 {
    if status == 400 && body.contains("API_KEY_INVALID") {
        401
    } else {
        status
    }
}

/// `streamGenerateContent?alt=sse` chunks -> OpenAI chunks.
pub struct Stream {
    hints: Hints,
    model: String,
    fallback_id: String,
    w: Option<ChunkWriter>,
    opened: bool,
    calls: usize,
    details: usize,
    usage: Option<UsageOut>,
    finished: bool,
}

impl Stream {
    /// A translator for one stream.
    pub fn new(hints: Hints, model: &str, fallback_id: &str) -> Self {
        Stream {
            hints,
            model: model.into(),
            fallback_id: fallback_id.into(),
            w: None,
            opened: false,
            calls: 0,
            details: 0,
            usage: None,
            finished: false,
        }
    }
}

impl StreamTranslate for Stream {
    fn on_event(&mut self, _event: &str, data: &str) -> Result<Vec<String>, AttemptError> {
        let r = parse(data.as_bytes())?;
        let mut out = Vec::new();
        let w = self.w.get_or_insert_with(|| ChunkWriter {
            id: format!(
                "gen-{}",
                r.response_id.as_deref().unwrap_or(&self.fallback_id)
            ),
            model: r
                .model_version
                .clone()
                .unwrap_or_else(|| self.model.clone()),
            created: now(),
        });
        if !self.opened {
            // The role first, as OpenAI opens a stream.
            self.opened = true;
            out.push(w.delta(json!({"role": "assistant", "content": ""})));
        }
        let call_prefix = r
            .response_id
            .clone()
            .unwrap_or_else(|| self.fallback_id.clone());
        if let Some(u) = r.usage_metadata {
            self.usage = Some(u.openai());
        }
        let Some(cand) = r.candidates.first() else {
            return Ok(out);
        };
        let parts = cand
            .content
            .as_ref()
            .map(|c| c.parts.as_slice())
            .unwrap_or(&[]);
        let p = pieces(parts, &self.hints, &call_prefix, self.calls);
        if !p.reasoning.is_empty() || !p.details.is_empty() {
            let details: Vec<Value> = p
                .details
                .into_iter()
                .map(|mut d| {
                    d["index"] = json!(self.details);
                    self.details += 1;
                    d
                })
                .collect();
            out.push(w.delta(json!({"reasoning": p.reasoning,
                "reasoning_details": details})));
        }
        if !p.text.is_empty() {
            out.push(w.delta(json!({"content": p.text})));
        }
        for c in &p.calls {
            out.push(w.delta(tool_call_start(self.calls, &c.id, &c.name, &c.arguments)));
            self.calls += 1;
        }
        if let Some(native) = &cand.finish_reason {
            self.finished = true;
            out.push(w.finish(finish_reason(native, self.calls > 0), Some(native)));
        }
        Ok(out)
    }

    fn on_end(&mut self) -> Vec<String> {
        match (&self.w, self.finished) {
            (Some(w), true) => {
                let mut out = Vec::new();
                if let Some(u) = &self.usage {
                    out.push(w.usage(u));
                }
                out.push("[DONE]".into());
                out
            }
            _ => vec![],
        }
    }
}

// -------------------------------------------------------------------------------------------
// Embeddings

/// The `batchEmbedContents` body for an OpenAI embeddings request. `model_path` is
/// `models/<id>`.
pub fn embeddings_request(
    inputs: &[String],
    model_path: &str,
    dimensions: Option<u64>,
) -> BatchEmbedContentsRequest {
    BatchEmbedContentsRequest {
        requests: inputs
            .iter()
            .map(|text| EmbedContentRequest {
                model: model_path.into(),
                content: Content {
                    role: None,
                    parts: vec![Part {
                        text: Some(text.clone()),
                        ..Part::default()
                    }],
                },
                output_dimensionality: dimensions,
            })
            .collect(),
    }
}

/// The vectors of a `batchEmbedContents` response.
pub fn embeddings_response(body: &[u8]) -> Result<Vec<Vec<f64>>, AttemptError> {
    let b: BatchEmbedContentsResponse = serde_json::from_slice(body).map_err(|e| {
        AttemptError::Protocol(format!("Gemini answered unexpected embeddings JSON: {e}"))
    })?;
    Ok(b.embeddings.into_iter().map(|e| e.values).collect())
}
