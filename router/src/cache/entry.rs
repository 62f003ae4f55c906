//! Cached answers: which answers may be stored, what a hit sends (the stored `chat.completion`
//! with `usage.cost` 0 and the saved cost in `usage.cache_saved_cost`), a hit replayed as the
//! chunks a live stream has, and a streamed answer put back together into the body a complete
//! answer would have had. Pure.

use bytes::Bytes;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use switchboard_api::snapshot::CachePolicy;

use crate::{json::RawObject, pricing::Usage};

/// Whether a priced `chat.completion` may be stored under `policy`: every choice ended with
/// `stop` (or, as configured, with tool calls, `length` or a content filter) and refused nothing
/// (unless configured), and it fits `maxEntryBytes`.
pub fn storable(body: &[u8], policy: &CachePolicy) -> bool {
    if body.len() as u64 > policy.max_entry_bytes {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(choices) = v.get("choices").and_then(Value::as_array) else {
        return false;
    };
    !choices.is_empty()
        && choices.iter().all(|c| {
            let refused = c.pointer("/message/refusal").is_some_and(|r| !r.is_null());
            let finish_ok = match c.get("finish_reason").and_then(Value::as_str) {
                Some("stop") => true,
                Some("tool_calls" | "function_call") => policy.cache_tool_calls,
                Some("length" | "content_filter") => policy.cache_incomplete,
                _ => false,
            };
            finish_ok && (!refused || policy.cache_incomplete)
        })
}

/// What a hit sends and records.
#[derive(Debug)]
pub struct Hit {
    /// The `chat.completion` body with `usage.cost: 0` and `usage.cache_saved_cost`.
    pub body: Bytes,
    /// What the answer cost when it was made: what this hit saved.
    pub saved: Decimal,
    /// The answer's usage, as it was billed.
    pub usage: Usage,
    /// The first choice's finish reason.
    pub finish_reason: Option<String>,
}

/// The hit for a stored body; `None` when the stored bytes are not a priced answer (they are
/// then treated as a miss).
pub fn hit(stored: &[u8]) -> Option<Hit> {
    let mut body = RawObject::parse(stored).ok()?;
    let mut usage = RawObject::parse(body.get("usage")?.get().as_bytes()).ok()?;
    let saved: Decimal = usage.get("cost")?.get().parse().ok()?;
    let counts: Value = serde_json::from_str(body.get("usage")?.get()).ok()?;
    let n = |p: &str| counts.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let usage_counts = Usage {
        prompt_tokens: n("/prompt_tokens"),
        completion_tokens: n("/completion_tokens"),
        cached_tokens: n("/prompt_tokens_details/cached_tokens"),
        cache_write_tokens: n("/prompt_tokens_details/cache_write_tokens"),
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
    };
    usage.set_raw("cost", "0".into());
    usage.set_raw("cache_saved_cost", saved.normalize().to_string());
    body.set_raw(
        "usage",
        String::from_utf8(usage.to_vec()).expect("JSON is UTF-8"),
    );
    let finish_reason = body
        .get("choices")
        .and_then(|c| serde_json::from_str::<Value>(c.get()).ok())
        .and_then(|c| c.pointer("/0/finish_reason")?.as_str().map(str::to_string));
    Some(Hit {
        body: Bytes::from(body.to_vec()),
        saved,
        usage: usage_counts,
        finish_reason,
    })
}

fn frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// A hit's body as the SSE frames of a live chat stream: per choice a role chunk, its content
/// (and refusal, tool calls), its finish chunk; then the usage chunk (`choices: []`) and
/// `data: [DONE]`.
pub fn replay(body: &[u8]) -> Option<Vec<Bytes>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut head = Map::new();
    for field in ["id", "created", "model", "system_fingerprint"] {
        if let Some(x) = v.get(field) {
            head.insert(field.into(), x.clone());
        }
    }
    head.insert("object".into(), json!("chat.completion.chunk"));
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = head.clone();
        c.insert("choices".into(), choices);
        if let Some(u) = usage {
            c.insert("usage".into(), u.clone());
        }
        if let Some(p) = v.get("provider") {
            c.insert("provider".into(), p.clone());
        }
        frame(&Value::Object(c))
    };
    let mut frames = Vec::new();
    for (i, choice) in v.get("choices")?.as_array()?.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let message = choice.get("message")?;
        let delta = |d: Value, finish: Value| json!([{"index": index, "delta": d, "logprobs": null, "finish_reason": finish}]);
        let role = message.get("role").cloned().unwrap_or(json!("assistant"));
        frames.push(chunk(
            delta(json!({"role": role, "content": ""}), Value::Null),
            None,
        ));
        if let Some(text) = message.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            frames.push(chunk(delta(json!({"content": text}), Value::Null), None));
        }
        if let Some(refusal) = message.get("refusal").filter(|r| !r.is_null()) {
            frames.push(chunk(delta(json!({"refusal": refusal}), Value::Null), None));
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let mut c = c.clone();
                    if let Some(o) = c.as_object_mut() {
                        o.insert("index".into(), json!(j));
                    }
                    c
                })
                .collect();
            frames.push(chunk(
                delta(json!({"tool_calls": calls}), Value::Null),
                None,
            ));
        }
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        frames.push(chunk(delta(json!({}), finish), None));
    }
    frames.push(chunk(json!([]), v.get("usage")));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Some(frames)
}

/// A streamed answer's chat chunks, put back together into the `chat.completion` a complete
/// answer would have been: to store it. Anything unexpected (an error, no usage chunk, no
/// `[DONE]`) leaves nothing to store.
#[derive(Default)]
pub struct Assembler {
    head: Option<Map<String, Value>>,
    choices: Vec<Choice>,
    usage: Option<Value>,
    done: bool,
    broken: bool,
}

#[derive(Default)]
struct Choice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Option<Value>,
}

impl Assembler {
    /// Takes one SSE `data` payload.
    pub fn push(&mut self, data: &str) {
        if self.broken {
            return;
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(data) else {
            self.broken = true;
            return;
        };
        if chunk.contains_key("error") {
            self.broken = true;
            return;
        }
        if self.head.is_none() {
            let mut head = Map::new();
            for f in ["id", "created", "model", "system_fingerprint", "provider"] {
                if let Some(x) = chunk.get(f) {
                    head.insert(f.into(), x.clone());
                }
            }
            self.head = Some(head);
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        for c in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.choice(c);
        }
    }

    fn choice(&mut self, c: &Value) {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        if index > 128 {
            self.broken = true;
            return;
        }
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, Choice::default);
        }
        let choice = &mut self.choices[index];
        if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
            if f == "error" {
                self.broken = true;
            }
            choice.finish_reason = Some(f.clone());
        }
        let Some(delta) = c.get("delta") else { return };
        if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
            choice.role = Some(r.clone());
        }
        for (field, slot) in [
            ("content", &mut choice.content),
            ("refusal", &mut choice.refusal),
        ] {
            if let Some(t) = delta.get(field).and_then(Value::as_str) {
                slot.get_or_insert_with(String::new).push_str(t);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let i = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if i > 128 {
                self.broken = true;
                return;
            }
            if choice.tool_calls.len() <= i {
                choice.tool_calls.resize_with(i + 1, Map::new);
            }
            merge_call(&mut choice.tool_calls[i], call);
        }
    }

    /// The `chat.completion` body, when the stream ended cleanly with its usage.
    pub fn finish(self) -> Option<Vec<u8>> {
        if self.broken || !self.done || self.choices.is_empty() {
            return None;
        }
        let mut body = self.head?;
        body.insert("object".into(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut message = Map::new();
                message.insert("role".into(), c.role.unwrap_or(json!("assistant")));
                message.insert("content".into(), json!(c.content));
                message.insert("refusal".into(), json!(c.refusal));
                if !c.tool_calls.is_empty() {
                    message.insert("tool_calls".into(), json!(c.tool_calls));
                }
                json!({"index": i, "message": message, "logprobs": null,
                       "finish_reason": c.finish_reason})
            })
            .collect();
        body.insert("choices".into(), json!(choices));
        body.insert("usage".into(), self.usage?);
        serde_json::to_vec(&Value::Object(body)).ok()
    }
}

/// Adds one streamed tool-call delta to the call it continues: `arguments` are concatenated,
/// the rest set once.
fn merge_call(call: &mut Map<String, Value>, delta: &Value) {
    for field in ["id", "type"] {
        if let Some(v) = delta.get(field).filter(|v| !v.is_null()) {
            call.insert(field.into(), v.clone());
        }
    }
    let Some(f) = delta.get("function") else {
        return;
    };
    let function = call
        .entry("function")
        .or_insert_with(|| json!({"name": "", "arguments": ""}));
    for field in ["name", "arguments"] {
        if let Some(part) = f.get(field).and_then(Value::as_str)
            && let Some(slot) = function.get_mut(field)
        {
            let joined = format!("{}{part}", slot.as_str().unwrap_or(""));
            *slot = Value::String(joined);
        }
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
