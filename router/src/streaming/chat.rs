//! The [`Relay`] of OpenAI chat streams. Pure: upstream `data` payloads in, SSE frames
//! out. Content chunks pass through byte for byte; the usage chunk gains `usage.cost` and
//! `provider`; a usage chunk is synthesised when the upstream sent none, so every stream ends with
//! one usage chunk (`choices: []`) and `data: [DONE]`. A stream that breaks after content was sent
//! ends with an error chunk (`finish_reason: "error"`), never a clean-looking truncation.

use bytes::Bytes;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use switchboard_api::snapshot::PriceTable;

use super::relay::{InBandError, Opening, Relay, StreamEnd};
use crate::{
    json::{RawObject, usage_with_cost},
    pricing::{Usage, cost, estimate_tokens},
    providers::AttemptError,
};

/// The parts of a chunk the relay looks at.
#[derive(Deserialize, Default)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    choices: Vec<ChoiceView>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ChoiceView {
    #[serde(default)]
    delta: DeltaView,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct DeltaView {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<serde_json::Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
}

/// Whether a payload means the upstream is really answering: any content, tool-call, refusal or
/// reasoning delta, a finish reason, a usage chunk, or the end marker. Until one arrives the
/// router holds the stream back, so an upstream that fails earlier can be replaced invisibly.
pub fn is_committing(data: &str) -> bool {
    if data == "[DONE]" {
        return true;
    }
    let Ok(chunk) = serde_json::from_str::<ChunkView>(data) else {
        return false;
    };
    if chunk.error.is_some() {
        return false;
    }
    chunk.usage.is_some_and(|u| u.get() != "null")
        || chunk.choices.iter().any(|c| {
            c.finish_reason.is_some()
                || c.delta.content.as_deref().is_some_and(|s| !s.is_empty())
                || c.delta.tool_calls.is_some()
                || c.delta.refusal.as_deref().is_some_and(|s| !s.is_empty())
                || c.delta.reasoning.as_deref().is_some_and(|s| !s.is_empty())
                || c.delta
                    .reasoning_content
                    .as_deref()
                    .is_some_and(|s| !s.is_empty())
        })
}

/// If a payload is an in-band error (`{"error": ...}`), its text.
pub fn in_band_error(data: &str) -> Option<String> {
    let chunk = serde_json::from_str::<ChunkView>(data).ok()?;
    chunk.error.map(|e| e.get().to_string())
}

/// Relay state for one chat stream.
pub struct StreamRelay {
    provider_name: String,
    prices: PriceTable,
    prompt_estimate: u64,
    id: String,
    created: u64,
    model: String,
    completion_chars: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    usage_sent: bool,
    end: Option<StreamEnd>,
}

fn frame(payload: &str) -> Bytes {
    let mut b = Vec::with_capacity(payload.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(payload.as_bytes());
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

impl StreamRelay {
    /// A relay for a stream from `provider_name`, priced at `prices`. `prompt_estimate` is used
    /// only if the upstream reports no usage.
    pub fn new(provider_name: &str, prices: PriceTable, prompt_estimate: u64, model: &str) -> Self {
        StreamRelay {
            provider_name: provider_name.to_string(),
            prices,
            prompt_estimate,
            id: String::new(),
            created: 0,
            model: model.to_string(),
            completion_chars: String::new(),
            finish_reason: None,
            usage: None,
            usage_sent: false,
            end: None,
        }
    }

    /// Relays one upstream payload, pushing the frames to send.
    pub fn on_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if data == "[DONE]" {
            self.finish(out);
            return;
        }
        let Ok(view) = serde_json::from_str::<ChunkView>(data) else {
            // Not JSON: pass it on untouched rather than drop what the upstream said.
            out.push(frame(data));
            return;
        };
        if self.id.is_empty() {
            if let Some(id) = view
                .id
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            {
                self.id = id;
            }
            if let Some(model) = view
                .model
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            {
                self.model = model;
            }
            self.created = view.created.unwrap_or(0);
        }
        for c in &view.choices {
            if let Some(s) = &c.delta.content {
                self.completion_chars.push_str(s);
            }
            if let Some(f) = &c.finish_reason {
                self.finish_reason = Some(f.clone());
            }
        }
        let usage = view
            .usage
            .filter(|u| u.get() != "null")
            .and_then(|u| serde_json::from_str::<serde_json::Value>(u.get()).ok())
            .and_then(|u| Usage::from_openai(&u));
        match usage {
            Some(usage) if !self.usage_sent => {
                let cost = cost(&self.prices, &usage);
                self.usage = Some(usage);
                self.usage_sent = true;
                let mut obj = RawObject::parse(data.as_bytes()).unwrap_or_default();
                obj.set_raw("usage", usage_with_cost(view.usage, cost));
                obj.set("provider", &self.provider_name);
                out.push(frame(std::str::from_utf8(&obj.to_vec()).expect("UTF-8")));
            }
            _ => out.push(frame(data)),
        }
    }

    /// The upstream stream ended without `[DONE]`. Complete if it had finished, else fail.
    fn eof(&mut self, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if self.finish_reason.is_some() || self.usage_sent {
            self.finish(out);
        } else {
            self.fail_with(
                &json!({
                    "message": "The upstream stream ended before the response was complete",
                    "type": "upstream_error",
                    "code": "stream_truncated",
                    "param": null,
                    "metadata": {"provider_name": self.provider_name}
                }),
                out,
            );
        }
    }

    /// Ends the stream with an error chunk (`finish_reason: "error"`) carrying `error`.
    fn fail_with(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "provider": self.provider_name,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
            "error": error
        });
        out.push(frame(&chunk.to_string()));
        self.end = Some(StreamEnd::Failed);
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if !self.usage_sent {
            let usage = self.usage_or_estimate();
            let cost = cost(&self.prices, &usage);
            let chunk = format!(
                r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"cost":{}}},"provider":{}}}"#,
                json!(self.id),
                self.created,
                json!(self.model),
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens(),
                cost,
                json!(self.provider_name),
            );
            self.usage = Some(usage);
            self.usage_sent = true;
            out.push(frame(&chunk));
        }
        out.push(frame("[DONE]"));
        self.end = Some(StreamEnd::Completed);
    }

    /// Usage as reported, or estimated from what was relayed.
    fn usage_or_estimate(&self) -> Usage {
        self.usage.unwrap_or(Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: estimate_tokens(&self.completion_chars),
            ..Usage::default()
        })
    }
}

impl Relay for StreamRelay {
    type Item = String;

    fn opening(item: &String) -> Opening {
        if let Some(err) = in_band_error(item) {
            return Opening::Failed(AttemptError::Protocol(format!("error in stream: {err}")));
        }
        if is_committing(item) {
            Opening::Commit
        } else {
            Opening::Wait
        }
    }

    fn in_band_error(item: &String) -> Option<InBandError> {
        in_band_error(item).map(|detail| InBandError { kind: None, detail })
    }

    fn on_item(&mut self, item: String, out: &mut Vec<Bytes>) {
        self.on_data(&item, out);
    }

    fn on_eof(&mut self, out: &mut Vec<Bytes>) {
        self.eof(out);
    }

    fn fail(&mut self, message: &str, _kind: Option<&str>, out: &mut Vec<Bytes>) {
        self.fail_with(
            &json!({
                "message": message,
                "type": "upstream_error",
                "code": "stream_interrupted",
                "param": null
            }),
            out,
        );
    }

    fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    fn final_usage(&self) -> Usage {
        self.usage_or_estimate()
    }

    fn final_cost(&self) -> Decimal {
        cost(&self.prices, &self.usage_or_estimate())
    }

    fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    fn response_id(&self) -> Option<&str> {
        (!self.id.is_empty()).then_some(self.id.as_str())
    }

    fn completion_text(&self) -> &str {
        &self.completion_chars
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn prices() -> PriceTable {
        PriceTable {
            input_per_million: Decimal::from_str("0.15").unwrap(),
            output_per_million: Decimal::from_str("0.60").unwrap(),
            ..PriceTable::default()
        }
    }

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect()
    }

    const CONTENT: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    const FINISH: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

    #[test]
    fn content_passes_through_and_usage_gains_cost_and_provider() {
        let mut r = StreamRelay::new("p", prices(), 1, "m");
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_data(FINISH, &mut out);
        r.on_data(
            r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#,
            &mut out,
        );
        r.on_data("[DONE]", &mut out);
        assert_eq!(
            text(&out),
            format!(
                "data: {CONTENT}\n\ndata: {FINISH}\n\ndata: {}\n\ndata: [DONE]\n\n",
                r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"cost":0.0000045},"provider":"p"}"#
            )
        );
        assert_eq!(r.end(), Some(StreamEnd::Completed));
        assert_eq!(r.final_cost(), Decimal::from_str("0.0000045").unwrap());
    }

    #[test]
    fn a_usage_chunk_is_synthesised_when_the_upstream_sends_none() {
        let mut r = StreamRelay::new("p", prices(), 3, "m");
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_data(FINISH, &mut out);
        r.on_data("[DONE]", &mut out);
        let t = text(&out);
        assert!(
            t.ends_with("\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4,\"cost\":0.00000105},\"provider\":\"p\"}\n\ndata: [DONE]\n\n"),
            "{t}"
        );
    }

    #[test]
    fn eof_before_finish_is_an_error_chunk_not_a_clean_end() {
        let mut r = StreamRelay::new("p", prices(), 3, "m");
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.eof(&mut out);
        let t = text(&out);
        assert!(t.contains(r#""finish_reason":"error""#), "{t}");
        assert!(t.contains("stream_truncated"), "{t}");
        assert!(!t.contains("[DONE]"));
        assert_eq!(r.end(), Some(StreamEnd::Failed));
    }

    #[test]
    fn eof_after_finish_completes_with_done() {
        let mut r = StreamRelay::new("p", prices(), 3, "m");
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_data(FINISH, &mut out);
        r.eof(&mut out);
        assert!(text(&out).ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn role_only_chunks_do_not_commit() {
        assert!(!is_committing(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
        ));
        assert!(is_committing(CONTENT));
        assert!(is_committing(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#
        ));
        assert!(is_committing("[DONE]"));
        assert!(!is_committing(r#"{"error":{"message":"overloaded"}}"#));
    }
}
