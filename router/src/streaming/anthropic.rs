//! The [`Relay`] of Anthropic Messages streams answered natively (an Anthropic target of an
//! Anthropic client). Pure: upstream events in, the client's SSE frames out.
//!
//! Every event passes through byte for byte, always with its `event:` line (written from the
//! data's `type` when the upstream left it out: Anthropic's SDKs dispatch on it, and Claude Code
//! repeats a call non-streamed when it is missing). Usage is read from `message_start` (input and
//! cache counts) and `message_delta` (output, cumulative), checked like every adapter's
//! ([`crate::pricing::reported`]); the `message_delta` gains `usage.cost` (USD) — or, when the
//! report is unusable, carries the billed usage and `clamped`. A stream cut before that ends with
//! a `message_delta` for what was relayed before its error. The stream commits on the first
//! content (a `content_block_delta`, a non-text block's start, or the end). A failure after that
//! ends the stream with an `error` event carrying the upstream's error type when it gave one,
//! never a clean-looking truncation.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use switchboard_api::snapshot::PriceTable;

use super::relay::{InBandError, Opening, Relay, StreamEnd};
use crate::{
    json::{Present, splice_fields},
    pricing::{
        Usage, estimate_tokens,
        reported::{Bill, UsageBounds, anthropic_usage_json, bill, bill_estimate},
    },
    providers::{
        AttemptError,
        anthropic::{
            translate::error_status,
            wire::{BlockDelta, ContentBlock, StreamEvent, Usage as AnthropicUsage},
        },
        native::SseEvent,
    },
};

/// The raw `usage` of an event, to splice the cost into.
#[derive(Deserialize)]
struct UsageView<'a> {
    #[serde(borrow, default)]
    usage: Present<'a>,
}

/// The parsed event, when its data is an Anthropic event.
fn parse(item: &SseEvent) -> Option<StreamEvent> {
    serde_json::from_str(&item.data).ok()
}

/// Relay state for one Anthropic stream.
pub struct AnthropicRelay {
    prices: PriceTable,
    bounds: UsageBounds,
    prompt_estimate: u64,
    id: Option<String>,
    usage: AnthropicUsage,
    /// What the last `message_delta` told the client it cost.
    bill: Option<Bill>,
    stop_reason: Option<String>,
    text: String,
    end: Option<StreamEnd>,
}

impl AnthropicRelay {
    /// A relay priced at `prices`, its usage checked against `bounds`; `prompt_estimate` is
    /// used only if the stream is cut before the upstream reports usage.
    pub fn new(prices: PriceTable, bounds: UsageBounds, prompt_estimate: u64) -> Self {
        AnthropicRelay {
            prices,
            bounds,
            prompt_estimate,
            id: None,
            usage: AnthropicUsage::default(),
            bill: None,
            stop_reason: None,
            text: String::new(),
            end: None,
        }
    }

    /// The bill of what was relayed so far: the input the upstream reported (else the prompt's
    /// estimate) and at least the text sent.
    fn estimate(&self) -> Bill {
        let reported = self.usage.reported().ok();
        let relayed = Usage {
            prompt_tokens: reported.map_or(self.prompt_estimate, |u| u.prompt_tokens),
            completion_tokens: estimate_tokens(&self.text)
                .max(reported.map_or(0, |u| u.completion_tokens)),
            ..Usage::default()
        };
        bill_estimate(relayed, &self.prices, &self.bounds)
    }

    /// `event` as a frame named after its `type` (the upstream's name when it had one).
    fn frame(item: &SseEvent, ev: Option<&StreamEvent>) -> Bytes {
        match ev {
            Some(ev) if item.event.is_empty() && !matches!(ev, StreamEvent::Unknown) => SseEvent {
                event: ev.name().into(),
                data: item.data.clone(),
            }
            .frame(),
            _ => item.frame(),
        }
    }

    /// The `message_delta` with the bill of the usage so far in its `usage` (`bill`, else the
    /// usage reported, checked).
    fn priced_delta(&mut self, item: &SseEvent, billed: Option<Bill>) -> Bytes {
        let bill =
            billed.unwrap_or_else(|| bill(self.usage.reported(), &self.prices, &self.bounds));
        self.bill = Some(bill);
        let data = match serde_json::from_str::<UsageView<'_>>(&item.data) {
            Ok(view) => {
                let usage = view.usage.0.filter(|u| u.get() != "null");
                let mut edits = [(view.usage, "usage", anthropic_usage_json(&bill, usage))];
                String::from_utf8_lossy(&splice_fields(item.data.as_bytes(), &mut edits))
                    .into_owned()
            }
            Err(_) => item.data.clone(),
        };
        SseEvent {
            event: "message_delta".into(),
            data,
        }
        .frame()
    }

    /// Ends a finished answer: the usage (with its cost) if no `message_delta` carried it, then
    /// `message_stop`.
    fn complete(&mut self, out: &mut Vec<Bytes>, stop_sent: bool) {
        if self.bill.is_none() {
            let stop = self.stop_reason.clone();
            out.push(self.usage_delta(Some(stop.as_deref().unwrap_or("end_turn")), None));
        }
        if !stop_sent {
            out.push(
                SseEvent {
                    event: "message_stop".into(),
                    data: r#"{"type":"message_stop"}"#.into(),
                }
                .frame(),
            );
        }
        self.end = Some(StreamEnd::Completed);
    }
}

impl AnthropicRelay {
    /// A `message_delta` carrying only usage: `bill` (else the usage reported, checked).
    fn usage_delta(&mut self, stop_reason: Option<&str>, bill: Option<Bill>) -> Bytes {
        let data = json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": null})
        .to_string();
        let item = SseEvent {
            event: "message_delta".into(),
            data,
        };
        self.priced_delta(&item, bill)
    }
}

impl Relay for AnthropicRelay {
    type Item = SseEvent;

    fn opening(item: &SseEvent) -> Opening {
        match parse(item) {
            Some(StreamEvent::Error { error }) => Opening::Failed(AttemptError::Status {
                status: error_status(&error.kind),
                body: item.data.clone(),
                retry_after: None,
            }),
            Some(StreamEvent::ContentBlockDelta { .. })
            | Some(StreamEvent::MessageDelta { .. })
            | Some(StreamEvent::MessageStop) => Opening::Commit,
            Some(StreamEvent::ContentBlockStart { content_block, .. }) => match content_block {
                ContentBlock::Text { text, .. } if text.is_empty() => Opening::Wait,
                ContentBlock::Thinking { thinking, .. } if thinking.is_empty() => Opening::Wait,
                _ => Opening::Commit,
            },
            _ => Opening::Wait,
        }
    }

    fn in_band_error(item: &SseEvent) -> Option<InBandError> {
        match parse(item)? {
            StreamEvent::Error { error } => Some(InBandError {
                kind: (!error.kind.is_empty()).then_some(error.kind),
                detail: if error.message.is_empty() {
                    item.data.clone()
                } else {
                    error.message
                },
            }),
            _ => None,
        }
    }

    fn on_item(&mut self, item: SseEvent, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        let ev = parse(&item);
        match &ev {
            Some(StreamEvent::MessageStart { message }) => {
                if !message.id.is_empty() {
                    self.id = Some(message.id.clone());
                }
                self.usage.merge(&message.usage);
            }
            Some(StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
                ..
            }) => self.text.push_str(text),
            Some(StreamEvent::MessageDelta { delta, usage }) => {
                if let Some(r) = &delta.stop_reason {
                    self.stop_reason = Some(r.clone());
                }
                self.usage.merge(usage);
                out.push(self.priced_delta(&item, None));
                return;
            }
            Some(StreamEvent::MessageStop) => {
                out.push(Self::frame(&item, ev.as_ref()));
                self.complete(out, true);
                return;
            }
            _ => {}
        }
        out.push(Self::frame(&item, ev.as_ref()));
    }

    fn on_eof(&mut self, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if self.stop_reason.is_some() {
            self.complete(out, false);
        } else {
            self.fail(
                "The upstream stream ended before the response was complete",
                None,
                out,
            );
        }
    }

    fn fail(&mut self, message: &str, kind: Option<&str>, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        if self.bill.is_none() {
            let relayed = self.estimate();
            out.push(self.usage_delta(None, Some(relayed)));
        }
        let data = json!({"type": "error",
            "error": {"type": kind.unwrap_or("api_error"), "message": message}});
        out.push(
            SseEvent {
                event: "error".into(),
                data: data.to_string(),
            }
            .frame(),
        );
        self.end = Some(StreamEnd::Failed);
    }

    fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    fn final_bill(&self) -> Bill {
        self.bill.unwrap_or_else(|| self.estimate())
    }

    fn finish_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    fn response_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn completion_text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;

    /// Bounds that let the reported usage through: 10k prompt, 100 output tokens, $1 reserved.
    fn bounds() -> UsageBounds {
        UsageBounds {
            prompt: Some(10_000),
            completion: 100,
            cap_nanos: 1_000_000_000,
            worst: Usage {
                prompt_tokens: 10_000,
                completion_tokens: 100,
                ..Usage::default()
            },
        }
    }

    fn prices() -> PriceTable {
        PriceTable {
            input_per_million: Decimal::from_str("5").unwrap(),
            output_per_million: Decimal::from_str("25").unwrap(),
            cached_input_per_million: Decimal::from_str("0.5").unwrap(),
            cache_write_per_million: Decimal::from_str("6.25").unwrap(),
            ..PriceTable::default()
        }
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    const START: &str = r#"{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 4441, "output_tokens": 1, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "service_tier": "standard"}}}"#;
    const TOOL: &str = r#"{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}}"#;
    const DELTA: &str = r#"{"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens": 4441, "output_tokens": 34, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000}}"#;

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn events_pass_through_and_the_message_delta_gains_the_cost() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        for (name, data) in [
            ("message_start", START),
            ("ping", r#"{"type": "ping"}"#),
            ("content_block_start", TOOL),
            (
                "content_block_delta",
                r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type": "content_block_stop", "index": 0}"#,
            ),
            ("message_delta", DELTA),
            ("message_stop", r#"{"type": "message_stop"}"#),
        ] {
            r.on_item(ev(name, data), &mut out);
        }
        let t = text(&out);
        assert!(t.starts_with(&format!("event: message_start\ndata: {START}\n\n")));
        // 4441 uncached input at 5, 2000 cache reads at 0.5, 100 writes at 6.25, 34 out at 25.
        let cost = "0.02468";
        let priced = r#"{"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens":4441,"output_tokens":34,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cost":0.02468}}"#;
        assert!(
            t.contains(&format!("event: message_delta\ndata: {priced}\n\n")),
            "{t}"
        );
        assert!(t.ends_with("event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n"));
        assert_eq!(r.end(), Some(StreamEnd::Completed));
        assert_eq!(r.final_bill().usd(), Decimal::from_str(cost).unwrap());
        assert_eq!(r.finish_reason(), Some("tool_use"));
        assert_eq!(r.response_id(), Some("msg_1"));
    }

    #[test]
    fn events_without_an_event_line_get_one() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        r.on_item(ev("", START), &mut out);
        assert!(text(&out).starts_with("event: message_start\ndata: "));
    }

    #[test]
    fn the_stream_commits_on_content_not_on_its_opening() {
        assert!(matches!(
            AnthropicRelay::opening(&ev("message_start", START)),
            Opening::Wait
        ));
        let empty_text =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        assert!(matches!(
            AnthropicRelay::opening(&ev("content_block_start", empty_text)),
            Opening::Wait
        ));
        assert!(matches!(
            AnthropicRelay::opening(&ev("content_block_start", TOOL)),
            Opening::Commit
        ));
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            AnthropicRelay::opening(&ev("error", overloaded)),
            Opening::Failed(AttemptError::Status { status: 503, .. })
        ));
        assert_eq!(
            AnthropicRelay::in_band_error(&ev("error", overloaded)),
            Some(InBandError {
                kind: Some("overloaded_error".into()),
                detail: "Overloaded".into()
            })
        );
    }

    #[test]
    fn a_cut_stream_ends_with_an_error_event() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        r.on_item(ev("message_start", START), &mut out);
        r.on_item(ev("content_block_start", TOOL), &mut out);
        r.on_eof(&mut out);
        let t = text(&out);
        assert!(
            t.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The upstream stream ended before the response was complete\"}}\n\n"),
            "{t}"
        );
        assert_eq!(r.end(), Some(StreamEnd::Failed));
        // Input was reported: it is what is charged.
        assert_eq!(r.final_bill().usage.prompt_tokens, 6541);
    }

    #[test]
    fn a_finished_stream_without_message_stop_is_completed() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        r.on_item(ev("message_start", START), &mut out);
        r.on_item(ev("content_block_start", TOOL), &mut out);
        r.on_item(ev("message_delta", DELTA), &mut out);
        r.on_eof(&mut out);
        assert!(text(&out).ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert_eq!(r.end(), Some(StreamEnd::Completed));
    }

    /// The usage of a native answer is checked like every adapter's: a string output count is
    /// billed at the worst case and the client told so in the `message_delta`.
    #[test]
    fn unusable_usage_is_billed_at_the_worst_case_and_told() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        r.on_item(ev("message_start", START), &mut out);
        r.on_item(ev("content_block_start", TOOL), &mut out);
        let hostile = DELTA.replace(r#""output_tokens": 34"#, r#""output_tokens": "34""#);
        r.on_item(ev("message_delta", &hostile), &mut out);
        r.on_item(ev("message_stop", r#"{"type": "message_stop"}"#), &mut out);
        let bill = r.final_bill();
        assert_eq!(
            bill.anomaly.map(|a| a.to_string()).as_deref(),
            Some("completion_tokens not_a_number")
        );
        // 10000 × $5/M + 100 × $25/M.
        assert_eq!(bill.usd(), Decimal::from_str("0.0525").unwrap());
        let t = text(&out);
        assert!(
            t.contains(r#""usage": {"input_tokens":10000,"output_tokens":100,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cost":0.0525,"clamped":{"reason":"completion_tokens not_a_number","#),
            "{t}"
        );
    }

    /// A stream cut before its `message_delta` tells the client what was billed before the error.
    #[test]
    fn a_cut_stream_carries_its_usage_before_the_error() {
        let mut r = AnthropicRelay::new(prices(), bounds(), 1);
        let mut out = vec![];
        r.on_item(ev("message_start", START), &mut out);
        r.on_item(ev("content_block_start", TOOL), &mut out);
        r.on_eof(&mut out);
        let t = text(&out);
        let usage = t.find("event: message_delta");
        let error = t.find("event: error");
        assert!(usage.is_some() && usage < error, "{t}");
        // The input the upstream reported (6541 tokens, priced as reported), one output token.
        assert_eq!(r.final_bill().usage.prompt_tokens, 6541);
    }
}
