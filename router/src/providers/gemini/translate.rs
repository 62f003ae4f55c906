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

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::{
    AttemptError,
    openai_wire::{
        CallOut, ChatRequest, ChunkWriter, Completion, Content, Image, Thinking, UsageOut,
        client_error, image, now, tool_call_start,
    },
    upstream::StreamTranslate,
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

fn parts(content: Option<&Content>) -> Vec<Value> {
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
                .map(|t| json!({"text": t})),
            "image_url" => p.image_url.as_ref().map(|i| match image(&i.url) {
                Image::Inline { media_type, data } => {
                    json!({"inlineData": {"mimeType": media_type, "data": data}})
                }
                Image::Url(url) => json!({"fileData": {"mimeType": mime_of(url), "fileUri": url}}),
            }),
            _ => None,
        })
        .collect()
}

/// The `generateContent` request body for `req`.
pub fn request(req: &ChatRequest) -> Result<(Value, Hints), AttemptError> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    let mut push = |role: &str, p: Vec<Value>| {
        if p.is_empty() {
            return;
        }
        match contents.last_mut() {
            Some((r, existing)) if r == role => existing.extend(p),
            _ => contents.push((role.to_string(), p)),
        }
    };
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => system.extend(parts(m.content.as_ref())),
            "user" => push("user", parts(m.content.as_ref())),
            "assistant" => {
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
                let mut p = parts(m.content.as_ref());
                if let Some((_, sig)) = signatures.iter().find(|(id, _)| id.is_none())
                    && let Some(first) = p.first_mut()
                {
                    first["thoughtSignature"] = json!(sig);
                }
                for c in &m.tool_calls {
                    let mut part = json!({"functionCall": {"name": c.function.name,
                        "args": c.function.arguments_value()}});
                    if let Some((_, sig)) = signatures.iter().find(|(id, _)| *id == Some(&c.id)) {
                        part["thoughtSignature"] = json!(sig);
                    }
                    p.push(part);
                }
                push("model", p);
            }
            "tool" => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let name = req.tool_name(id).unwrap_or(id);
                let text = m.content.as_ref().map(Content::text).unwrap_or_default();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(v) => json!({"result": v}),
                    Err(_) => json!({"result": text}),
                };
                push(
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            other => return Err(client_error(format!("unsupported message role `{other}`"))),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.function.name,
                    "parameters": gemini_schema(&t.function.schema())});
                if let Some(desc) = &t.function.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let config = match &req.tool_choice {
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(c) = config {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }
    let mut generation = Map::new();
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            generation.insert(k.into(), v);
        }
    };
    set("temperature", req.temperature.map(|v| json!(v)));
    set("topP", req.top_p.map(|v| json!(v)));
    set("topK", req.top_k.map(|v| json!(v)));
    set("maxOutputTokens", req.max_output().map(|v| json!(v)));
    set("seed", req.seed.map(|v| json!(v)));
    set("presencePenalty", req.presence_penalty.map(|v| json!(v)));
    set("frequencyPenalty", req.frequency_penalty.map(|v| json!(v)));
    let stop = req.stop_sequences();
    set("stopSequences", (!stop.is_empty()).then(|| json!(stop)));
    if let Some(out) = req.json_output() {
        set("responseMimeType", Some(json!("application/json")));
        set("responseSchema", out.schema.as_ref().map(gemini_schema));
    }
    let hints = Hints {
        exclude_reasoning: req.exclude_reasoning(),
    };
    let effort_on_reasoning_off = matches!(
        (&req.reasoning_effort, &req.reasoning),
        (Some(e), None) if e == "none"
    ) || req
        .reasoning
        .as_ref()
        .is_some_and(|r| r.enabled == Some(false));
    if let Some(t) = req.thinking() {
        let budget = match t {
            Thinking::Budget(n) => n,
            Thinking::Share(s) => match req.max_output() {
                Some(max) => (max as f64 * s) as u64,
                None => (24_576.0 * s) as u64,
            },
        };
        set(
            "thinkingConfig",
            Some(json!({"thinkingBudget": budget, "includeThoughts": !hints.exclude_reasoning})),
        );
    } else if effort_on_reasoning_off {
        set("thinkingConfig", Some(json!({"thinkingBudget": 0})));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok((Value::Object(body), hints))
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

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default, rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    cached_content_token_count: u64,
    thoughts_token_count: u64,
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// `promptTokenCount` includes cached tokens; `candidatesTokenCount` excludes thoughts.
    fn openai(self) -> UsageOut {
        UsageOut {
            prompt: self.prompt_token_count + self.tool_use_prompt_token_count,
            completion: self.candidates_token_count + self.thoughts_token_count,
            cached: self.cached_content_token_count,
            cache_write: 0,
            reasoning: self.thoughts_token_count,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct GenerateResponse {
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    response_id: Option<String>,
    prompt_feedback: Option<Value>,
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CandidateContent {
    parts: Vec<Value>,
}

/// What one response (or stream chunk) adds to the answer.
#[derive(Default)]
struct Pieces {
    text: String,
    reasoning: String,
    details: Vec<Value>,
    calls: Vec<CallOut>,
}

/// Tool-call ids: Gemini's own when it sends one, else `call_<response id>_<n>`.
fn pieces(parts: &[Value], hints: &Hints, call_prefix: &str, first_call: usize) -> Pieces {
    let mut out = Pieces::default();
    for part in parts {
        let signature = part.get("thoughtSignature").and_then(Value::as_str);
        if let Some(call) = part.get("functionCall") {
            let n = first_call + out.calls.len();
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{call_prefix}_{n}"));
            if let Some(sig) = signature {
                out.details
                    .push(json!({"type": "reasoning.encrypted", "data": sig,
                    "id": id, "format": REASONING_FORMAT}));
            }
            out.calls.push(CallOut {
                id,
                name: call
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
                arguments: call.get("args").cloned().unwrap_or(json!({})).to_string(),
            });
            continue;
        }
        if let Some(sig) = signature {
            out.details
                .push(json!({"type": "reasoning.encrypted", "data": sig,
                "id": null, "format": REASONING_FORMAT}));
        }
        let Some(text) = part.get("text").and_then(Value::as_str) else {
            continue;
        };
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            if !hints.exclude_reasoning {
                out.reasoning.push_str(text);
                out.details
                    .push(json!({"type": "reasoning.text", "text": text,
                    "format": REASONING_FORMAT}));
            }
        } else {
            out.text.push_str(text);
        }
    }
    if hints.exclude_reasoning {
        // Signatures still go back (the model needs them), only the text is left out.
        out.details.retain(|d| d["type"] == "reasoning.encrypted");
    }
    out
}

fn parse(body: &[u8]) -> Result<GenerateResponse, AttemptError> {
    let r: GenerateResponse = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Protocol(format!("Gemini answered unexpected JSON: {e}")))?;
    if let Some(err) = &r.error {
        return Err(AttemptError::Status {
            status: err
                .get("code")
                .and_then(Value::as_u64)
                .map_or(500, |c| c as u16),
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
                .and_then(|f| f.get("blockReason"))
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
                if let Some(u) = self.usage {
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
pub fn embeddings_request(inputs: &[String], model_path: &str, dimensions: Option<u64>) -> Value {
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut r = json!({"model": model_path, "content": {"parts": [{"text": text}]}});
            if let Some(d) = dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    json!({"requests": requests})
}

/// The vectors of a `batchEmbedContents` response.
pub fn embeddings_response(body: &[u8]) -> Result<Vec<Vec<f64>>, AttemptError> {
    #[derive(Deserialize)]
    struct Batch {
        embeddings: Vec<Embedding>,
    }
    #[derive(Deserialize)]
    struct Embedding {
        values: Vec<f64>,
    }
    let b: Batch = serde_json::from_slice(body).map_err(|e| {
        AttemptError::Protocol(format!("Gemini answered unexpected embeddings JSON: {e}"))
    })?;
    Ok(b.embeddings.into_iter().map(|e| e.values).collect())
}
