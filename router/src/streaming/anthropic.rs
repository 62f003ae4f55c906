//! The [`Relay`] of Anthropic Messages streams answered natively (an Anthropic target of an
//! Anthropic client). Pure: upstream events in, the client's SSE frames out.
//!
//! Every event passes through byte for byte, always with its `event:` line (written from the
//! data's `type` when the upstream left it out: Anthropic's SDKs dispatch on it, and Claude Code
//! repeats a call non-streamed when it is missing). Usage is read from `message_start` (input and
//! cache counts) and `message_delta` (output, cumulative); the `message_delta` gains `usage.cost`
//! (USD). The stream commits on the first content (a `content_block_delta`, a non-text block's
//! start, or the end). A failure after that ends the stream with an `error` event carrying the
//! upstream's error type when it gave one, never a clean-looking truncation.

use bytes::Bytes;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use switchboard_api::snapshot::PriceTable;

use super::relay::{InBandError, Opening, Relay, StreamEnd};
use crate::{
    json::{Present, splice_fields, usage_with_cost},
    pricing::{Usage, cost, estimate_tokens},
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
    prompt_estimate: u64,
    id: Option<String>,
    usage: AnthropicUsage,
    usage_seen: bool,
    cost_sent: bool,
    stop_reason: Option<String>,
    text: String,
    end: Option<StreamEnd>,
}

impl AnthropicRelay {
    /// A relay priced at `prices`; `prompt_estimate` is used only if the upstream reports no
    /// usage.
    pub fn new(prices: PriceTable, prompt_estimate: u64) -> Self {
        AnthropicRelay {
            prices,
            prompt_estimate,
            id: None,
            usage: AnthropicUsage::default(),
            usage_seen: false,
            cost_sent: false,
            stop_reason: None,
            text: String::new(),
            end: None,
        }
    }

    fn usage_or_estimate(&self) -> Usage {
        if self.usage_seen {
            self.usage.priced()
        } else {
            Usage {
                prompt_tokens: self.prompt_estimate,
                completion_tokens: estimate_tokens(&self.text),
                ..Usage::default()
            }
        }
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

    /// The `message_delta` with the cost of the usage so far in its `usage`.
    fn priced_delta(&mut self, item: &SseEvent) -> Bytes {
        let cost = cost(&self.prices, &self.usage_or_estimate());
        self.cost_sent = true;
        let data = match serde_json::from_str::<UsageView<'_>>(&item.data) {
            Ok(view) => {
                let usage = view.usage.0.filter(|u| u.get() != "null");
                let mut edits = [(view.usage, "usage", usage_with_cost(usage, cost))];
                String::from_utf8(splice_fields(item.data.as_bytes(), &mut edits))
                    .expect("spliced JSON stays UTF-8")
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
        if !self.cost_sent {
            let usage = self.usage_or_estimate();
            let data = json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.as_deref().unwrap_or("end_turn"),
                    "stop_sequence": null},
                "usage": {"output_tokens": usage.completion_tokens}})
            .to_string();
            let item = SseEvent {
                event: "message_delta".into(),
                data,
            };
            out.push(self.priced_delta(&item));
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
                self.usage_seen |=
                    message.usage.input_tokens.is_some() || message.usage.output_tokens.is_some();
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
                self.usage_seen |= usage.output_tokens.is_some();
                out.push(self.priced_delta(&item));
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

    fn final_usage(&self) -> Usage {
        self.usage_or_estimate()
    }

    fn final_cost(&self) -> Decimal {
        cost(&self.prices, &self.usage_or_estimate())
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

    use super::*;

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
        let mut r = AnthropicRelay::new(prices(), 1);
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
        assert_eq!(r.final_cost(), Decimal::from_str(cost).unwrap());
        assert_eq!(r.finish_reason(), Some("tool_use"));
        assert_eq!(r.response_id(), Some("msg_1"));
    }

    #[test]
    fn events_without_an_event_line_get_one() {
        let mut r = AnthropicRelay::new(prices(), 1);
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
        let mut r = AnthropicRelay::new(prices(), 1);
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
        assert_eq!(r.final_usage().prompt_tokens, 6541);
    }

    #[test]
    fn a_finished_stream_without_message_stop_is_completed() {
        let mut r = AnthropicRelay::new(prices(), 1);
        let mut out = vec![];
        r.on_item(ev("message_start", START), &mut out);
        r.on_item(ev("content_block_start", TOOL), &mut out);
        r.on_item(ev("message_delta", DELTA), &mut out);
        r.on_eof(&mut out);
        assert!(text(&out).ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert_eq!(r.end(), Some(StreamEnd::Completed));
    }
}
