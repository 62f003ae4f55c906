//! The [`Relay`] of OpenAI chat streams. Pure: upstream `data` payloads in, SSE frames
//! out. Content chunks pass through byte for byte; the usage chunk gains `usage.cost` and
//! `provider` (its usage checked first: an unusable one is replaced by what was billed, see
//! [`crate::pricing::reported`]); a usage chunk is synthesised when the upstream sent none, so
//! every stream ends with one usage chunk (`choices: []`) and `data: [DONE]`. A stream that breaks
//! after content was sent ends with a usage chunk for what was relayed, then an error chunk
//! (`finish_reason: "error"`), never a clean-looking truncation. Legacy completion streams
//! (`text_completion` chunks, text in `choices[].text`) are relayed the same way
//! ([`StreamRelay::for_completions`]).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use switchboard_api::snapshot::PriceTable;

use super::relay::{DRAIN_CUT_MESSAGE, InBandError, Opening, Relay, StreamEnd};
use crate::{
    error::stream_error,
    json::RawObject,
    pricing::{
        Usage, estimate_tokens,
        reported::{Bill, Expect, UsageBounds, bill, bill_estimate, read_openai, usage_json},
    },
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
    /// A legacy completion chunk's text.
    #[serde(default)]
    text: Option<String>,
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
                || c.text.as_deref().is_some_and(|s| !s.is_empty())
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
    /// `chat.completion.chunk`, or `text_completion` for legacy completions.
    object: &'static str,
    provider_name: String,
    prices: PriceTable,
    bounds: UsageBounds,
    prompt_estimate: u64,
    id: String,
    created: u64,
    model: String,
    completion_chars: String,
    finish_reason: Option<String>,
    /// What was billed, once the usage chunk went out.
    bill: Option<Bill>,
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
    /// A relay for a stream from `provider_name`, priced at `prices`, its usage checked against
    /// `bounds`. `prompt_estimate` is used only if the stream is cut before the upstream
    /// reports usage.
    pub fn new(
        provider_name: &str,
        prices: PriceTable,
        bounds: UsageBounds,
        prompt_estimate: u64,
        model: &str,
    ) -> Self {
        StreamRelay {
            object: "chat.completion.chunk",
            provider_name: provider_name.to_string(),
            prices,
            bounds,
            prompt_estimate,
            id: String::new(),
            created: 0,
            model: model.to_string(),
            completion_chars: String::new(),
            finish_reason: None,
            bill: None,
            end: None,
        }
    }

    /// The same relay for a legacy completions stream (`text_completion` chunks).
    pub fn for_completions(mut self) -> Self {
        self.object = "text_completion";
        self
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
            if let Some(s) = c.delta.content.as_ref().or(c.text.as_ref()) {
                self.completion_chars.push_str(s);
            }
            if let Some(f) = &c.finish_reason {
                self.finish_reason = Some(f.clone());
            }
        }
        let usage = view.usage.filter(|u| u.get() != "null");
        match usage {
            Some(raw) if self.bill.is_none() => {
                let reported = serde_json::from_str::<serde_json::Value>(raw.get()).ok();
                let bill = bill(
                    read_openai(reported.as_ref(), Expect::Chat),
                    &self.prices,
                    &self.bounds,
                );
                self.bill = Some(bill);
                let mut obj = RawObject::parse(data.as_bytes()).unwrap_or_default();
                obj.set_raw("usage", usage_json(&bill, Some(raw)));
                obj.set("provider", &self.provider_name);
                out.push(frame(&String::from_utf8_lossy(&obj.to_vec())));
            }
            _ => out.push(frame(data)),
        }
    }

    /// The upstream stream ended without `[DONE]`. Complete if it had finished, else fail.
    fn eof(&mut self, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if self.finish_reason.is_some() || self.bill.is_some() {
            self.finish(out);
        } else {
            self.fail_with(
                &stream_error(
                    "The upstream stream ended before the response was complete".into(),
                    "stream_truncated",
                ),
                out,
            );
        }
    }

    /// Ends the stream with a usage chunk for what was relayed (unless the upstream's went out
    /// already), then an error chunk (`finish_reason: "error"`) carrying `error`.
    fn fail_with(&mut self, error: &serde_json::Value, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if self.bill.is_none() {
            let bill = self.estimate();
            self.usage_chunk(&bill, out);
        }
        let choice = if self.object == "text_completion" {
            json!({"index": 0, "text": "", "logprobs": null, "finish_reason": "error"})
        } else {
            json!({"index": 0, "delta": {}, "finish_reason": "error"})
        };
        let chunk = json!({
            "id": self.id, "object": self.object, "created": self.created,
            "model": self.model, "provider": self.provider_name,
            "choices": [choice],
            "error": error
        });
        out.push(frame(&chunk.to_string()));
        self.end = Some(StreamEnd::Failed);
    }

    /// A stream that completed without reporting usage is billed at its worst case (the
    /// upstream said nothing to bill by, see [`crate::pricing::reported`]).
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.bill.is_none() {
            let bill = bill(read_openai(None, Expect::Chat), &self.prices, &self.bounds);
            self.usage_chunk(&bill, out);
        }
        out.push(frame("[DONE]"));
        self.end = Some(StreamEnd::Completed);
    }

    /// Sends a usage chunk (`choices: []`) for `bill`, and records it as the stream's bill.
    fn usage_chunk(&mut self, bill: &Bill, out: &mut Vec<Bytes>) {
        let chunk = format!(
            r#"{{"id":{},"object":"{}","created":{},"model":{},"choices":[],"usage":{},"provider":{}}}"#,
            json!(self.id),
            self.object,
            self.created,
            json!(self.model),
            usage_json(bill, None),
            json!(self.provider_name),
        );
        self.bill = Some(*bill);
        out.push(frame(&chunk));
    }

    /// The bill of what was relayed so far: the prompt estimate and the text sent.
    fn estimate(&self) -> Bill {
        let relayed = Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: estimate_tokens(&self.completion_chars),
            ..Usage::default()
        };
        bill_estimate(relayed, &self.prices, &self.bounds)
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
        self.fail_with(&stream_error(message.into(), "stream_interrupted"), out);
    }

    fn drain_cut(&mut self, out: &mut Vec<Bytes>) {
        self.fail_with(
            &json!({
                "message": DRAIN_CUT_MESSAGE,
                "type": "api_error",
                "code": 503,
                "param": null,
                "metadata": {"error_code": "server_shutting_down"}
            }),
            out,
        );
    }

    fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    fn final_bill(&self) -> Bill {
        self.bill.unwrap_or_else(|| self.estimate())
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

    use rust_decimal::Decimal;

    use super::*;

    fn prices() -> PriceTable {
        PriceTable {
            input_per_million: Decimal::from_str("0.15").unwrap(),
            output_per_million: Decimal::from_str("0.60").unwrap(),
            ..PriceTable::default()
        }
    }

    /// A request reserved at 20 prompt + 10 completion tokens: 3 + 6 = 9 micro-dollars.
    fn bounds() -> UsageBounds {
        UsageBounds {
            prompt: Some(1000),
            completion: 10,
            cap_nanos: 9_000,
            worst: Usage {
                prompt_tokens: 20,
                completion_tokens: 10,
                ..Usage::default()
            },
        }
    }

    fn relay(prompt_estimate: u64) -> StreamRelay {
        StreamRelay::new("p", prices(), bounds(), prompt_estimate, "m")
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
        let mut r = relay(1);
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
                r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":0},"cost":0.0000045},"provider":"p"}"#
            )
        );
        assert_eq!(r.end(), Some(StreamEnd::Completed));
        assert_eq!(
            r.final_bill().usd(),
            Decimal::from_str("0.0000045").unwrap()
        );
    }

    /// A stream that completes without usage is billed at the worst case, and says so.
    #[test]
    fn a_usage_chunk_is_synthesised_when_the_upstream_sends_none() {
        let mut r = relay(3);
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_data(FINISH, &mut out);
        r.on_data("[DONE]", &mut out);
        let t = text(&out);
        assert!(
            t.ends_with("\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":10,\"total_tokens\":30,\"prompt_tokens_details\":{\"cached_tokens\":0,\"cache_write_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0},\"cost\":0.000009,\"clamped\":{\"reason\":\"usage missing\",\"reported\":null}},\"provider\":\"p\"}\n\ndata: [DONE]\n\n"),
            "{t}"
        );
        assert_eq!(r.final_bill().nanos, 9_000);
    }

    /// #16.5: a stream cut mid-way carried no usage chunk; now it carries one for what was
    /// relayed, before the error chunk.
    #[test]
    fn eof_before_finish_is_a_usage_chunk_then_an_error_chunk_not_a_clean_end() {
        let mut r = relay(3);
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_eof(&mut out);
        let t = text(&out);
        assert!(t.contains(r#""finish_reason":"error""#), "{t}");
        assert!(t.contains("stream_truncated"), "{t}");
        assert!(!t.contains("[DONE]"));
        assert_eq!(r.end(), Some(StreamEnd::Failed));
        let usage = t.find(r#""choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"#);
        let error = t.find(r#""finish_reason":"error""#);
        assert!(usage.is_some() && usage < error, "{t}");
        assert_eq!(r.final_bill().nanos, 1_050);
    }

    /// #16.3 and #16.1: what a hostile upstream reports is checked before it is priced.
    #[test]
    fn unusable_stream_usage_is_billed_at_the_worst_case_and_told() {
        for usage in [
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}"#,
            r#"{"prompt_tokens":10,"completion_tokens":1000000}"#,
            r#"{"prompt_tokens":-1,"completion_tokens":5}"#,
            r#"{"prompt_tokens":1.5,"completion_tokens":5}"#,
            r#"{"prompt_tokens":"5","completion_tokens":5}"#,
            r#"{}"#,
        ] {
            let mut r = relay(3);
            let mut out = vec![];
            r.on_data(CONTENT, &mut out);
            r.on_data(
                &format!(r#"{{"id":"c1","choices":[],"usage":{usage}}}"#),
                &mut out,
            );
            r.on_data("[DONE]", &mut out);
            let bill = r.final_bill();
            assert!(bill.anomaly.is_some(), "{usage}");
            assert_eq!(bill.nanos, 9_000, "{usage}");
            let t = text(&out);
            assert!(t.contains(r#""cost":0.000009,"clamped":{"reason":"#), "{t}");
            assert_eq!(t.matches("\"usage\"").count(), 1, "one usage chunk: {t}");
        }
    }

    #[test]
    fn eof_after_finish_completes_with_done() {
        let mut r = relay(3);
        let mut out = vec![];
        r.on_data(CONTENT, &mut out);
        r.on_data(FINISH, &mut out);
        r.on_eof(&mut out);
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
