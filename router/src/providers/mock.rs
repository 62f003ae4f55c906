//! The built-in `mock` provider: a deterministic upstream with no network, for demos, tests and
//! load tests. It answers in exactly the OpenAI wire format, so everything downstream of the
//! adapter is exercised as with a real provider.
//!
//! Chat: replies with the configured text, or `echo: <last user message>`; honours `max_tokens`
//! (cutting the reply at 4 characters a token, `finish_reason: "length"`); streams the reply in
//! chunks of `chunkChars` characters, `chunkDelay` apart. Usage counts 4 characters a token.
//! Embeddings: unit vectors derived from a SHA-256 of each input, in float or base64 encoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AttemptError, Call, Reply};
use crate::pricing::estimate_tokens;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

struct Completion {
    id: String,
    text: String,
    finish_reason: &'static str,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn complete(call: &Call<'_>) -> Completion {
    let reply = call
        .provider
        .config
        .mock
        .as_ref()
        .and_then(|m| m.reply.clone());
    let messages: Vec<Value> = call
        .request
        .get("messages")
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .unwrap_or_default();
    let prompt: String = messages
        .iter()
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join("\n");
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let mut text = reply.unwrap_or_else(|| format!("echo: {last_user}"));
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| {
            call.request
                .get(k)
                .and_then(|v| v.get().parse::<u64>().ok())
        });
    let mut finish_reason = "stop";
    if let Some(max) = max_tokens {
        let limit = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
        if text.chars().count() > limit {
            text = text.chars().take(limit).collect();
            finish_reason = "length";
        }
    }
    let digest = Sha256::digest(call.request.to_vec());
    Completion {
        id: format!("chatcmpl-mock-{}", &hex::encode(digest)[..24]),
        prompt_tokens: estimate_tokens(&prompt).max(1),
        completion_tokens: estimate_tokens(&text),
        text,
        finish_reason,
    }
}

fn usage_json(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens.saturating_add(c.completion_tokens),
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
    })
}

/// A chat completion from the mock.
pub fn chat(call: &Call<'_>) -> Result<Reply, AttemptError> {
    let c = complete(call);
    let model = call.upstream_model.to_string();
    let created = now();
    if !call.stream {
        let body = json!({
            "id": c.id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": c.text, "refusal": null},
                "logprobs": null,
                "finish_reason": c.finish_reason
            }],
            "usage": usage_json(&c),
            "system_fingerprint": null
        });
        return Ok(Reply::Complete(Bytes::from(body.to_string())));
    }
    let mock = call.provider.config.mock.clone();
    let chunk_chars = mock.as_ref().map_or(8, |m| m.chunk_chars.max(1)) as usize;
    let delay = Duration::from_millis(mock.as_ref().map_or(0, |m| m.chunk_delay_ms));
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": c.id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        })
        .to_string()
    };
    let mut payloads = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let chars: Vec<char> = c.text.chars().collect();
    for piece in chars.chunks(chunk_chars) {
        payloads.push(chunk(
            json!({"content": piece.iter().collect::<String>()}),
            None,
        ));
    }
    payloads.push(chunk(json!({}), Some(c.finish_reason)));
    payloads.push(
        json!({
            "id": c.id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": null, "choices": [], "usage": usage_json(&c)
        })
        .to_string(),
    );
    payloads.push("[DONE]".to_string());
    let events = stream::unfold(
        (payloads.into_iter(), true),
        move |(mut it, first)| async move {
            let next = it.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(next), (it, false)))
        },
    );
    Ok(Reply::Stream(Box::pin(events)))
}

/// Deterministic unit vector for one input.
fn vector(input: &str, dims: u32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims)
        .map(|i| {
            let h = Sha256::new()
                .chain_update(input.as_bytes())
                .chain_update(i.to_le_bytes())
                .finalize();
            let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            (n as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Embeddings from the mock. `input` may be a string, an array of strings, or token arrays.
pub fn embeddings(call: &Call<'_>) -> Result<Bytes, AttemptError> {
    let dims = call
        .provider
        .config
        .mock
        .as_ref()
        .map_or(8, |m| m.embedding_dimensions);
    let input: Value = call
        .request
        .get("input")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .unwrap_or(Value::Null);
    let inputs: Vec<String> = match &input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) => vec![input.to_string()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => vec![],
    };
    let base64 = call
        .request
        .get("encoding_format")
        .is_some_and(|f| f.get() == "\"base64\"");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = vector(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| estimate_tokens(t).max(1)).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": call.upstream_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    });
    Ok(Bytes::from(body.to_string()))
}
