//! A chat answer as a Responses `response` object. Pure.
//!
//! Output items, in the order the answer gave them: `reasoning` (the reasoning text as its
//! summary; the provider's reasoning blocks, signatures included, in `encrypted_content` so a
//! client that replays the item carries them back), a `message` with `output_text` (or
//! `refusal`), then a `function_call` per tool call — or a `custom_tool_call` for a freeform tool,
//! with its `namespace` when it was declared in one. Usage is in the Responses shape with
//! `cost`; a length cut is `status: "incomplete"` with `incomplete_details`.

use std::str::FromStr;

use base64::Engine;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json, value::RawValue};

use super::tools::ToolMap;
use crate::{
    error::ApiError,
    json::RawObject,
    pricing::{
        Usage,
        reported::{Expect, read_openai, responses_usage_of},
    },
};

/// Marks an `encrypted_content` this router wrote (a base64url JSON list of `reasoning_details`).
pub const REASONING_PREFIX: &str = "sbr1.";

/// The `encrypted_content` carrying `details`.
pub fn encode_reasoning(details: &[Value]) -> Option<String> {
    if details.is_empty() {
        return None;
    }
    let json = serde_json::to_vec(details).expect("values serialise");
    Some(format!(
        "{REASONING_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    ))
}

/// The `reasoning_details` of an `encrypted_content` this router wrote; `None` for any other.
pub fn decode_reasoning(encrypted: &str) -> Option<Vec<Value>> {
    let data = encrypted.strip_prefix(REASONING_PREFIX)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// What the way back needs besides the answer.
#[derive(Debug, Clone)]
pub struct Context {
    /// The response id (`resp_...`); item ids derive from it.
    pub id: String,
    /// How tool names map back.
    pub tools: ToolMap,
    /// The request's fields the response repeats (`instructions`, `tools`, `tool_choice`, ...).
    pub echo: Map<String, Value>,
}

impl Context {
    /// The id of output item `index` of kind `prefix` (`msg`, `rs`, `fc`, `ctc`).
    pub fn item_id(&self, prefix: &str, index: usize) -> String {
        let base = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{base}{index}")
    }
}

/// The fields of a request a response repeats, with the API's defaults.
pub fn echo(body: &Map<String, Value>) -> Map<String, Value> {
    let defaults = [
        ("instructions", Value::Null),
        ("max_output_tokens", Value::Null),
        ("metadata", json!({})),
        ("parallel_tool_calls", json!(true)),
        ("previous_response_id", Value::Null),
        ("prompt_cache_key", Value::Null),
        ("reasoning", json!({"effort": null, "summary": null})),
        ("store", json!(true)),
        ("temperature", json!(1.0)),
        ("text", json!({"format": {"type": "text"}})),
        ("tool_choice", json!("auto")),
        ("tools", json!([])),
        ("top_p", json!(1.0)),
        ("truncation", json!("disabled")),
        ("user", Value::Null),
    ];
    defaults
        .into_iter()
        .map(|(k, default)| {
            let v = body.get(k).filter(|v| !v.is_null()).cloned();
            (k.to_string(), v.unwrap_or(default))
        })
        .collect()
}

/// One output item of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputItem {
    /// Reasoning: its text and the provider's blocks.
    Reasoning {
        /// Reasoning text (the summary).
        text: String,
        /// `reasoning_details` entries.
        details: Vec<Value>,
    },
    /// The assistant's text.
    Message {
        /// Text.
        text: String,
        /// Refusal text.
        refusal: String,
    },
    /// A tool call, by its chat view name.
    Call {
        /// Call id.
        call_id: String,
        /// The chat view's function name.
        flat: String,
        /// Arguments, a JSON text.
        arguments: String,
    },
}

impl OutputItem {
    /// The item as output item `index`, `status` being `completed`, `in_progress` or
    /// `incomplete`.
    pub fn to_json(&self, ctx: &Context, index: usize, status: &str) -> Value {
        match self {
            OutputItem::Reasoning { text, details } => {
                let summary = if text.is_empty() {
                    json!([])
                } else {
                    json!([{"type": "summary_text", "text": text}])
                };
                let mut item = json!({"type": "reasoning", "id": ctx.item_id("rs", index),
                                      "summary": summary});
                if let Some(e) = encode_reasoning(details) {
                    item["encrypted_content"] = json!(e);
                }
                item
            }
            OutputItem::Message { text, refusal } => {
                let part = if refusal.is_empty() {
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                } else {
                    json!({"type": "refusal", "refusal": refusal})
                };
                json!({"type": "message", "id": ctx.item_id("msg", index), "role": "assistant",
                       "status": status, "content": [part]})
            }
            OutputItem::Call {
                call_id,
                flat,
                arguments,
            } => {
                let entry = ctx.tools.by_flat(flat);
                let name = entry.map_or(flat.as_str(), |e| e.name.as_str());
                let mut item = if entry.is_some_and(|e| e.custom) {
                    let input = serde_json::from_str::<Value>(arguments)
                        .ok()
                        .and_then(|a| a["input"].as_str().map(str::to_string))
                        .unwrap_or_else(|| arguments.clone());
                    json!({"type": "custom_tool_call", "id": ctx.item_id("ctc", index),
                           "call_id": call_id, "name": name, "input": input})
                } else {
                    json!({"type": "function_call", "id": ctx.item_id("fc", index),
                           "call_id": call_id, "name": name, "arguments": arguments,
                           "status": status})
                };
                if let Some(ns) = entry.and_then(|e| e.namespace.as_deref()) {
                    item["namespace"] = json!(ns);
                }
                item
            }
        }
    }
}

/// A chat answer, assembled (from a `chat.completion`, or from a stream's chunks).
#[derive(Debug, Default, Clone)]
pub struct Answer {
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// Output items in order.
    pub items: Vec<OutputItem>,
    /// The chat finish reason.
    pub finish_reason: Option<String>,
    /// The usage and its cost, as the pipeline priced them.
    pub usage: Option<Priced>,
    /// Who served.
    pub provider: Option<Value>,
}

impl Answer {
    /// The response's `status` and `incomplete_details`.
    pub fn status(&self) -> (&'static str, Value) {
        match self.finish_reason.as_deref() {
            Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
            Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
            _ => ("completed", Value::Null),
        }
    }

    /// The Responses `usage`, with its `cost` (and `clamped` when the pipeline billed the worst
    /// case for an unusable report).
    pub fn responses_usage(&self) -> Value {
        let Some(priced) = &self.usage else {
            return Value::Null;
        };
        let mut usage: Value =
            serde_json::from_str(&responses_usage_of(&priced.usage, priced.cost))
                .unwrap_or(Value::Null);
        if let (Some(obj), Some(clamped)) = (usage.as_object_mut(), &priced.clamped) {
            obj.insert("clamped".into(), clamped.clone());
        }
        usage
    }
}

/// A chat `usage` object as the pipeline priced it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Priced {
    /// The billed counts.
    pub usage: Usage,
    /// Their cost in USD (read from its exact decimal text).
    pub cost: Decimal,
    /// Why an unusable report was replaced, and what it was.
    pub clamped: Option<Value>,
}

/// A chat `usage` object's counts, `cost` and `clamped`.
pub fn priced_usage(usage: &RawValue) -> Option<Priced> {
    let value: Value = serde_json::from_str(usage.get()).ok()?;
    let counts = read_openai(Some(&value), Expect::Chat).ok()?;
    let cost = RawObject::parse(usage.get().as_bytes())
        .ok()?
        .get("cost")
        .and_then(|c| Decimal::from_str(c.get()).ok())
        .unwrap_or_default();
    Some(Priced {
        usage: counts,
        cost,
        clamped: value.get("clamped").filter(|c| !c.is_null()).cloned(),
    })
}

/// The `response` object for `answer`, with status `status` (its own when `None`).
pub fn response_object(ctx: &Context, answer: &Answer, status: Option<&str>) -> Value {
    let (own, incomplete) = answer.status();
    let status = status.unwrap_or(own);
    let item_status = if status == "incomplete" {
        "incomplete"
    } else {
        "completed"
    };
    let output: Vec<Value> = answer
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| item.to_json(ctx, i, item_status))
        .collect();
    let mut r = Map::new();
    r.insert("id".into(), json!(ctx.id));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), json!(answer.created));
    r.insert("status".into(), json!(status));
    r.insert("background".into(), json!(false));
    r.insert(
        "completed_at".into(),
        if status == "in_progress" {
            Value::Null
        } else {
            json!(answer.created)
        },
    );
    r.insert("error".into(), Value::Null);
    r.insert(
        "incomplete_details".into(),
        if status == "incomplete" {
            incomplete
        } else {
            Value::Null
        },
    );
    r.insert("model".into(), json!(answer.model));
    r.insert("output".into(), Value::Array(output));
    r.extend(ctx.echo.clone());
    r.insert("service_tier".into(), Value::Null);
    r.insert("usage".into(), answer.responses_usage());
    if let Some(p) = &answer.provider {
        r.insert("provider".into(), p.clone());
    }
    Value::Object(r)
}

/// The answer of a `chat.completion` body.
pub fn answer_of(bytes: &[u8]) -> Result<Answer, ApiError> {
    #[derive(serde::Deserialize)]
    struct UsageView<'a> {
        #[serde(borrow, default)]
        usage: Option<&'a RawValue>,
    }
    let invalid = |e: serde_json::Error| {
        ApiError::Internal(format!("the pipeline answered invalid JSON: {e}"))
    };
    let c: Value = serde_json::from_slice(bytes).map_err(invalid)?;
    let usage = serde_json::from_slice::<UsageView<'_>>(bytes)
        .map_err(invalid)?
        .usage
        .and_then(priced_usage);
    let choice = &c["choices"][0];
    let message = &choice["message"];
    let mut items = Vec::new();
    let reasoning = message["reasoning"]
        .as_str()
        .or(message["reasoning_content"].as_str())
        .unwrap_or("");
    let details = message["reasoning_details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !reasoning.is_empty() || !details.is_empty() {
        items.push(OutputItem::Reasoning {
            text: reasoning.to_string(),
            details,
        });
    }
    let text = message["content"].as_str().unwrap_or("");
    let refusal = message["refusal"].as_str().unwrap_or("");
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !text.is_empty() || !refusal.is_empty() || calls.is_empty() {
        items.push(OutputItem::Message {
            text: text.to_string(),
            refusal: refusal.to_string(),
        });
    }
    for call in calls {
        items.push(OutputItem::Call {
            call_id: call["id"].as_str().unwrap_or("").to_string(),
            flat: call["function"]["name"].as_str().unwrap_or("").to_string(),
            arguments: call["function"]["arguments"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(Answer {
        created: c["created"].as_u64().unwrap_or(0),
        model: c["model"].as_str().unwrap_or("").to_string(),
        items,
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        usage,
        provider: c.get("provider").filter(|p| !p.is_null()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_round_trips_through_encrypted_content() {
        let details = vec![json!({"type": "reasoning.text", "text": "t", "signature": "sig"})];
        let e = encode_reasoning(&details).unwrap();
        assert!(e.starts_with(REASONING_PREFIX));
        assert_eq!(decode_reasoning(&e), Some(details));
        assert_eq!(decode_reasoning("gAAAAB-openai-opaque"), None);
        assert_eq!(encode_reasoning(&[]), None);
    }
}
