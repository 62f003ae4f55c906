//! Legacy text completions <-> the chat view. Pure.
//!
//! Request: the `prompt` is one user message; `max_tokens` (16 when absent, the legacy API's
//! default), `temperature`, `top_p`, `n`, `stop`, penalties, `seed`, `user`, `logit_bias`,
//! `stream`, `stream_options` and Switchboard's extensions carry over. What chat cannot express
//! — several prompts, token prompts, `suffix`, `logprobs`, `best_of` — makes the request
//! untranslatable: only a target that speaks completions (`openai`, `openaiCompatible`) serves
//! it, and a translating one refuses it with a 400; its chat view then only describes the request
//! to admission ([`crate::budgets::bounds::RequestBounds`]), so it keeps the suffix in the prompt
//! and `best_of` (times the prompts).
//!
//! Answer: each chat choice's text (after the prompt when `echo`) is a `text_completion` choice;
//! a stream's chunks become `text_completion` chunks, its usage chunk and `[DONE]` kept.

use serde_json::{Value, json};

use crate::{error::ApiError, json::RawObject, providers::EXTENSION_FIELDS};

/// The chat view of a completions request, and what the answer needs.
#[derive(Debug)]
pub struct ChatView {
    /// The chat completion request.
    pub body: RawObject,
    /// Why only a target that speaks completions can serve it, if so.
    pub untranslatable: Option<String>,
    /// The prompt, when `echo` asks for it before the completion.
    pub echo: Option<String>,
}

fn get(body: &RawObject, name: &str) -> Option<Value> {
    body.get(name)
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
        .filter(|v| !v.is_null())
}

/// Fields that carry over to the chat view as they are.
const CARRIED: &[&str] = &[
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
    "logit_bias",
    "stream",
    "stream_options",
];

/// The chat view of a completions request.
pub fn chat_view(body: &RawObject) -> Result<ChatView, ApiError> {
    let bad = |m: &str| ApiError::bad_param("prompt", m);
    let mut why = Vec::new();
    let prompts: Vec<String> = match get(body, "prompt") {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_string) {
                items
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            } else if items.iter().all(|i| i.is_number() || i.is_array()) {
                why.push("token prompts");
                vec![format!("{items:?}")]
            } else {
                return Err(bad("`prompt` must be a string or an array of strings"));
            }
        }
        Some(_) => return Err(bad("`prompt` must be a string or an array of strings")),
        None => return Err(bad("`prompt` is required")),
    };
    if prompts.len() > 1 {
        why.push("several prompts in one request");
    }
    if get(body, "suffix").is_some_and(|s| s.as_str() != Some("")) {
        why.push("`suffix`");
    }
    if get(body, "logprobs").is_some_and(|l| l != json!(0)) {
        why.push("`logprobs`");
    }
    if get(body, "best_of").is_some_and(|b| b != json!(1)) {
        why.push("`best_of`");
    }
    let mut chat = RawObject::default();
    for (key, value) in &body.0 {
        if CARRIED.contains(&key.as_str()) || EXTENSION_FIELDS.contains(&key.as_str()) {
            chat.0.push((key.clone(), value.clone()));
        }
    }
    let prompt = prompts.join("\n");
    // A request only a completions target serves keeps its chat view for admission alone: the
    // suffix is prompt too, and `best_of` answers are generated (and billed) upstream.
    let suffix = get(body, "suffix")
        .and_then(|s| s.as_str().map(str::to_string))
        .filter(|_| !why.is_empty())
        .unwrap_or_default();
    chat.set(
        "messages",
        &json!([{"role": "user", "content": format!("{prompt}{suffix}")}]),
    );
    if get(body, "max_tokens").is_none() {
        chat.set("max_tokens", &16);
    }
    let per_prompt = u64::try_from(prompts.len()).unwrap_or(u64::MAX);
    if per_prompt > 1 {
        // One answer per prompt: admission reserves for all of them.
        let n = get(body, "n").and_then(|n| n.as_u64()).unwrap_or(1);
        chat.set("n", &n.saturating_mul(per_prompt));
    }
    if let Some(best_of) = get(body, "best_of")
        .and_then(|b| b.as_u64())
        .filter(|b| *b > 1)
    {
        chat.set("best_of", &best_of.saturating_mul(per_prompt));
    }
    Ok(ChatView {
        body: chat,
        untranslatable: (!why.is_empty()).then(|| {
            format!(
                "This completions request uses {}, which only a provider that speaks the \
                 completions API (openai, openaiCompatible) can serve",
                why.join(", ")
            )
        }),
        echo: get(body, "echo")
            .is_some_and(|e| e == json!(true))
            .then_some(prompt),
    })
}

/// A legacy completion's finish reason for a chat one.
fn finish_reason(chat: &Value) -> Value {
    match chat.as_str() {
        None => Value::Null,
        Some("length") => json!("length"),
        Some("content_filter") => json!("content_filter"),
        Some("error") => json!("error"),
        Some(_) => json!("stop"),
    }
}

/// A `text_completion` for a `chat.completion` body.
pub fn response(bytes: &[u8], echo: Option<&str>) -> Result<Value, ApiError> {
    let c: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Internal(format!("the pipeline answered invalid JSON: {e}")))?;
    let choices: Vec<Value> = c["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ch| {
            let text = ch["message"]["content"].as_str().unwrap_or("");
            json!({
                "text": format!("{}{text}", echo.unwrap_or("")),
                "index": ch["index"],
                "logprobs": null,
                "finish_reason": finish_reason(&ch["finish_reason"]),
            })
        })
        .collect();
    let mut out = json!({
        "id": c["id"], "object": "text_completion", "created": c["created"], "model": c["model"],
        "choices": choices, "system_fingerprint": c.get("system_fingerprint").cloned().unwrap_or(Value::Null),
    });
    for k in ["usage", "provider"] {
        if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    Ok(out)
}

/// Translates a chat stream's payloads into legacy completion chunks.
pub struct Stream {
    echo: Option<String>,
}

impl Stream {
    /// A translator; `echo` is sent as the first text.
    pub fn new(echo: Option<String>) -> Self {
        Stream { echo }
    }

    /// One chat payload as the completion payloads to send (none for a chunk without text).
    pub fn on_payload(&mut self, payload: &str) -> Vec<String> {
        if payload == "[DONE]" {
            return vec![payload.to_string()];
        }
        let Ok(c) = serde_json::from_str::<Value>(payload) else {
            return vec![];
        };
        let head = |choices: Value| {
            let mut v = json!({"id": c["id"], "object": "text_completion", "created": c["created"],
                               "model": c["model"], "choices": choices});
            for k in ["usage", "provider", "error", "system_fingerprint"] {
                if let Some(x) = c.get(k).filter(|x| !x.is_null()) {
                    v[k] = x.clone();
                }
            }
            v.to_string()
        };
        let mut choices = Vec::new();
        for ch in c["choices"].as_array().into_iter().flatten() {
            let mut text = ch["delta"]["content"].as_str().unwrap_or("").to_string();
            if let Some(prompt) = self.echo.take() {
                text.insert_str(0, &prompt);
            }
            let finish = finish_reason(&ch["finish_reason"]);
            if !text.is_empty() || !finish.is_null() {
                choices.push(json!({"text": text, "index": ch["index"], "logprobs": null,
                                    "finish_reason": finish}));
            }
        }
        let is_tail = c["choices"].as_array().is_some_and(Vec::is_empty)
            || c.get("error").is_some_and(|e| !e.is_null());
        if choices.is_empty() && !is_tail {
            return vec![];
        }
        vec![head(Value::Array(choices))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: &str) -> ChatView {
        chat_view(&RawObject::parse(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn the_prompt_is_a_user_message_and_max_tokens_defaults_to_16() {
        let v = view(
            r#"{"model":"m","prompt":"Say hi","temperature":0.5,"provider":{"sort":"price"},"echo":true}"#,
        );
        assert_eq!(
            String::from_utf8(v.body.to_vec()).unwrap(),
            r#"{"model":"m","temperature":0.5,"provider":{"sort":"price"},"messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}"#
        );
        assert!(v.untranslatable.is_none());
        assert_eq!(v.echo.as_deref(), Some("Say hi"));
    }

    #[test]
    fn what_chat_cannot_express_is_untranslatable() {
        let v = view(r#"{"model":"m","prompt":["a","b"],"suffix":"z","max_tokens":5,"n":2}"#);
        let why = v.untranslatable.unwrap();
        assert!(
            why.contains("several prompts") && why.contains("`suffix`"),
            "{why}"
        );
        let body: Value = serde_json::from_slice(&v.body.to_vec()).unwrap();
        assert_eq!(body["n"], 4, "admission reserves for every answer");
        assert_eq!(
            body["messages"][0]["content"], "a\nbz",
            "the suffix is prompt too"
        );
        assert!(chat_view(&RawObject::parse(br#"{"prompt":{}}"#).unwrap()).is_err());
        let v = view(r#"{"model":"m","prompt":"a","best_of":3,"n":2}"#);
        assert!(v.untranslatable.unwrap().contains("`best_of`"));
        let body: Value = serde_json::from_slice(&v.body.to_vec()).unwrap();
        assert_eq!(
            body["best_of"], 3,
            "admission reserves for every answer generated"
        );
    }

    #[test]
    fn chunks_carry_text_and_the_usage_chunk_stays() {
        let mut s = Stream::new(Some("Q: ".into()));
        assert!(
            s.on_payload(r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#)
                [0]
                .contains(r#""text":"Q: ""#)
        );
        assert!(s.on_payload(r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#).is_empty());
        let done = s.on_payload(r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#);
        assert!(done[0].contains(r#""finish_reason":"stop""#));
        let usage = s.on_payload(
            r#"{"id":"c","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1}}"#,
        );
        assert!(usage[0].contains(r#""object":"text_completion""#) && usage[0].contains("usage"));
        assert_eq!(s.on_payload("[DONE]"), ["[DONE]"]);
    }
}
