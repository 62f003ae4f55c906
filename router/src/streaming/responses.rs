//! Relaying an OpenAI Responses event stream passed through from a provider that speaks it
//! (`openai`, `azureOpenAI`). Pure: upstream events in, SSE frames out. Every event passes on byte
//! for byte under its own `event:` name, except the terminal `response.completed` /
//! `response.incomplete`, whose `response.usage` gains `cost` (and every count the OpenAI SDK
//! requires; checked first, an unusable report replaced by what was billed, see
//! [`crate::pricing::reported`]) and whose `response` gains `provider`. A stream that breaks after
//! the first byte ends with `response.failed` (numbered after the last event) carrying the usage
//! of what was relayed, never a clean-looking truncation.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use switchboard_api::snapshot::PriceTable;

use super::relay::{InBandError, Opening, Relay, StreamEnd};
use crate::{
    json::RawObject,
    pricing::{
        Usage, estimate_tokens,
        reported::{Bill, UsageBounds, bill, bill_estimate, read_responses, responses_usage_json},
    },
    providers::{AttemptError, native::SseEvent},
};

/// The parts of an event the relay reads.
#[derive(Deserialize, Default)]
struct EventView<'a> {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    item: Option<ItemView>,
}

#[derive(Deserialize, Default)]
struct ItemView {
    #[serde(default, rename = "type")]
    kind: String,
}

/// The parts of a `response` object the relay reads.
#[derive(Deserialize, Default)]
struct ResponseView<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<IncompleteView>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorView>,
}

#[derive(Deserialize, Default)]
struct IncompleteView {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorView {
    #[serde(default)]
    message: Option<String>,
}

fn view(data: &str) -> EventView<'_> {
    serde_json::from_str(data).unwrap_or_default()
}

/// One SSE frame: `event: <name>` and `data: <data>`.
pub fn sse_frame(name: &str, data: &str) -> Bytes {
    SseEvent {
        event: name.to_string(),
        data: data.to_string(),
    }
    .frame()
}

/// A `response.failed` event numbered `sequence_number`: `base` (the last `response` object the
/// client saw, if any; else a minimal one for `id` and `model`) with status `failed`, the error
/// `message` (code `server_error`), and `usage` (JSON) when known.
pub fn failed_event(
    base: Option<&str>,
    id: &str,
    model: &str,
    message: &str,
    usage: Option<String>,
    sequence_number: u64,
) -> String {
    let mut response = base
        .and_then(|b| RawObject::parse(b.as_bytes()).ok())
        .unwrap_or_else(|| {
            let minimal = json!({
                "id": id, "object": "response", "created_at": 0, "model": model, "output": [],
                "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
            });
            RawObject::parse(minimal.to_string().as_bytes()).expect("an object")
        });
    response.set("status", &"failed");
    response.set(
        "error",
        &json!({"code": "server_error", "message": message}),
    );
    if let Some(usage) = usage {
        response.set_raw("usage", usage);
    }
    let response = String::from_utf8(response.to_vec()).expect("JSON is UTF-8");
    format!(
        r#"{{"type":"response.failed","response":{response},"sequence_number":{sequence_number}}}"#
    )
}

/// Relay state for one Responses stream.
pub struct ResponsesRelay {
    provider_name: String,
    prices: PriceTable,
    bounds: UsageBounds,
    prompt_estimate: u64,
    id: String,
    model: String,
    /// The last `response` object seen (from `response.created` / `.in_progress`), the base of a
    /// `response.failed` the relay writes.
    last_response: Option<String>,
    next_sequence: u64,
    text: String,
    finish: Option<String>,
    bill: Option<Bill>,
    end: Option<StreamEnd>,
}

impl ResponsesRelay {
    /// A relay for a stream from `provider_name`, priced at `prices`, its usage checked against
    /// `bounds`. `prompt_estimate` is used only if the stream is cut before the upstream reports
    /// usage.
    pub fn new(
        provider_name: &str,
        prices: PriceTable,
        bounds: UsageBounds,
        prompt_estimate: u64,
        model: &str,
    ) -> Self {
        ResponsesRelay {
            provider_name: provider_name.to_string(),
            prices,
            bounds,
            prompt_estimate,
            id: String::new(),
            model: model.to_string(),
            last_response: None,
            next_sequence: 0,
            text: String::new(),
            finish: None,
            bill: None,
            end: None,
        }
    }

    /// The terminal event's data with `usage.cost` and `provider` set on its `response`.
    fn priced(&mut self, data: &str, response: &RawValue) -> String {
        let view: ResponseView<'_> = serde_json::from_str(response.get()).unwrap_or_default();
        let raw = view.usage.filter(|u| u.get() != "null");
        let reported = raw.and_then(|u| serde_json::from_str::<serde_json::Value>(u.get()).ok());
        let bill = bill(
            read_responses(reported.as_ref()),
            &self.prices,
            &self.bounds,
        );
        self.bill = Some(bill);
        self.finish = view
            .incomplete_details
            .and_then(|d| d.reason)
            .or(view.status);
        let (Ok(mut event), Ok(mut obj)) = (
            RawObject::parse(data.as_bytes()),
            RawObject::parse(response.get().as_bytes()),
        ) else {
            return data.to_string();
        };
        obj.set_raw("usage", responses_usage_json(&bill, raw));
        obj.set("provider", &self.provider_name);
        event.set_raw(
            "response",
            String::from_utf8_lossy(&obj.to_vec()).into_owned(),
        );
        String::from_utf8_lossy(&event.to_vec()).into_owned()
    }

    /// The bill of what was relayed so far: the prompt estimate and the text sent.
    fn estimate(&self) -> Bill {
        let relayed = Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: estimate_tokens(&self.text),
            ..Usage::default()
        };
        bill_estimate(relayed, &self.prices, &self.bounds)
    }
}

/// The error an event reports: an `error` event's message, or a `response.failed`'s.
fn error_of(item: &SseEvent) -> Option<String> {
    let v = view(&item.data);
    match v.kind.as_str() {
        "error" => Some(v.message.unwrap_or_else(|| item.data.clone())),
        "response.failed" => Some(
            v.response
                .and_then(|r| serde_json::from_str::<ResponseView<'_>>(r.get()).ok())
                .and_then(|r| r.error)
                .and_then(|e| e.message)
                .unwrap_or_else(|| "the response failed".into()),
        ),
        _ => None,
    }
}

/// Whether an event shows the upstream answering: a non-empty delta (text, reasoning summary,
/// arguments, custom tool input), a tool call added, an item done, or the terminal event.
fn is_committing(item: &SseEvent) -> bool {
    let v = view(&item.data);
    match v.kind.as_str() {
        "response.completed" | "response.incomplete" | "response.output_item.done" => true,
        "response.output_item.added" => v
            .item
            .is_some_and(|i| !matches!(i.kind.as_str(), "message" | "reasoning")),
        k if k.ends_with(".delta") => v.delta.is_some_and(|d| !d.is_empty()),
        _ => false,
    }
}

impl Relay for ResponsesRelay {
    type Item = SseEvent;

    fn opening(item: &SseEvent) -> Opening {
        if let Some(err) = error_of(item) {
            return Opening::Failed(AttemptError::Protocol(format!("error in stream: {err}")));
        }
        if is_committing(item) {
            Opening::Commit
        } else {
            Opening::Wait
        }
    }

    fn in_band_error(item: &SseEvent) -> Option<InBandError> {
        error_of(item).map(|detail| InBandError { kind: None, detail })
    }

    fn on_item(&mut self, item: SseEvent, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        let v = view(&item.data);
        if let Some(n) = v.sequence_number {
            self.next_sequence = self.next_sequence.max(n.saturating_add(1));
        }
        let name = if item.event.is_empty() {
            v.kind.as_str()
        } else {
            item.event.as_str()
        };
        let data = match v.kind.as_str() {
            "response.created" | "response.in_progress" => {
                if let Some(r) = v.response {
                    let rv: ResponseView<'_> = serde_json::from_str(r.get()).unwrap_or_default();
                    self.id = rv.id.unwrap_or_default();
                    if let Some(m) = rv.model {
                        self.model = m;
                    }
                    self.last_response = Some(r.get().to_string());
                }
                None
            }
            "response.output_text.delta" => {
                self.text.push_str(v.delta.as_deref().unwrap_or(""));
                None
            }
            "response.completed" | "response.incomplete" => {
                self.end = Some(StreamEnd::Completed);
                v.response.map(|r| self.priced(&item.data, r))
            }
            _ => None,
        };
        out.push(sse_frame(name, data.as_deref().unwrap_or(&item.data)));
    }

    fn on_eof(&mut self, out: &mut Vec<Bytes>) {
        if self.end.is_none() {
            self.fail(
                "The upstream stream ended before the response was complete",
                None,
                out,
            );
        }
    }

    fn fail(&mut self, message: &str, _kind: Option<&str>, out: &mut Vec<Bytes>) {
        if self.end.is_some() {
            return;
        }
        let bill = self.bill.unwrap_or_else(|| self.estimate());
        self.bill = Some(bill);
        let data = failed_event(
            self.last_response.as_deref(),
            &self.id,
            &self.model,
            message,
            Some(responses_usage_json(&bill, None)),
            self.next_sequence,
        );
        self.next_sequence = self.next_sequence.saturating_add(1);
        out.push(sse_frame("response.failed", &data));
        self.end = Some(StreamEnd::Failed);
    }

    fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    fn final_bill(&self) -> Bill {
        self.bill.unwrap_or_else(|| self.estimate())
    }

    fn finish_reason(&self) -> Option<&str> {
        self.finish.as_deref()
    }

    fn response_id(&self) -> Option<&str> {
        (!self.id.is_empty()).then_some(self.id.as_str())
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

    fn prices() -> PriceTable {
        PriceTable {
            input_per_million: Decimal::from_str("1").unwrap(),
            output_per_million: Decimal::from_str("2").unwrap(),
            ..PriceTable::default()
        }
    }

    fn bounds() -> UsageBounds {
        UsageBounds {
            prompt: Some(1000),
            completion: 100,
            cap_nanos: 10_000_000,
            worst: Usage {
                prompt_tokens: 1000,
                completion_tokens: 100,
                ..Usage::default()
            },
        }
    }

    fn relay() -> ResponsesRelay {
        ResponsesRelay::new("p", prices(), bounds(), 5, "m")
    }

    fn ev(data: &str) -> SseEvent {
        let kind = view(data).kind;
        SseEvent {
            event: kind,
            data: data.to_string(),
        }
    }

    fn text(frames: &[Bytes]) -> String {
        frames
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect()
    }

    const CREATED: &str = r#"{"type":"response.created","response":{"id":"resp_1","object":"response","created_at":1,"model":"gpt-x","output":[],"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"status":"in_progress","usage":null},"sequence_number":0}"#;
    const DELTA: &str = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":1}"#;

    #[test]
    fn events_pass_through_and_the_completed_usage_gains_cost() {
        let mut r = relay();
        let mut out = vec![];
        for d in [CREATED, DELTA] {
            r.on_item(ev(d), &mut out);
        }
        r.on_item(
            ev(r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":10,"output_tokens":4,"total_tokens":14, "input_tokens_details":{"cached_tokens":0}}},"sequence_number":2}"#),
            &mut out,
        );
        let t = text(&out);
        assert!(t.starts_with(&format!(
            "event: response.created\ndata: {CREATED}\n\nevent: response.output_text.delta\ndata: {DELTA}\n\n"
        )));
        assert!(
            t.ends_with(&(r#"data: {"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":10,"output_tokens":4,"total_tokens":14,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens_details":{"reasoning_tokens":0},"cost":0.000018},"provider":"p"},"sequence_number":2}"#.to_owned() + "\n\n")),
            "{t}"
        );
        assert_eq!(r.end(), Some(StreamEnd::Completed));
        assert_eq!(r.final_bill().usd(), Decimal::from_str("0.000018").unwrap());
        assert_eq!(r.finish_reason(), Some("completed"));
    }

    #[test]
    fn a_cut_stream_ends_with_response_failed_numbered_after_the_last_event() {
        let mut r = relay();
        let mut out = vec![];
        r.on_item(ev(CREATED), &mut out);
        r.on_item(ev(DELTA), &mut out);
        out.clear();
        r.on_eof(&mut out);
        let t = text(&out);
        assert!(t.starts_with("event: response.failed\ndata: "), "{t}");
        let data: serde_json::Value =
            serde_json::from_str(t.trim_end().split_once("data: ").unwrap().1).unwrap();
        assert_eq!(data["sequence_number"], 2);
        assert_eq!(data["response"]["id"], "resp_1");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["code"], "server_error");
        assert_eq!(data["response"]["usage"]["input_tokens"], 5);
        assert_eq!(r.end(), Some(StreamEnd::Failed));
    }

    /// #16: a terminal event without usable usage is billed at the worst case, and says so.
    #[test]
    fn unusable_usage_is_billed_at_the_worst_case_and_told() {
        let mut r = relay();
        let mut out = vec![];
        r.on_item(ev(CREATED), &mut out);
        out.clear();
        r.on_item(
            ev(r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":-3,"output_tokens":4}},"sequence_number":2}"#),
            &mut out,
        );
        let t = text(&out);
        let data: serde_json::Value =
            serde_json::from_str(t.trim_end().split_once("data: ").unwrap().1).unwrap();
        let usage = &data["response"]["usage"];
        assert_eq!(usage["input_tokens"], 1000, "{t}");
        assert_eq!(usage["output_tokens"], 100, "{t}");
        assert_eq!(usage["clamped"]["reason"], "input_tokens negative", "{t}");
        assert_eq!(usage["clamped"]["reported"]["input_tokens"], -3, "{t}");
        let bill = r.final_bill();
        // 1000 input tokens at $1/M, 100 output at $2/M.
        assert_eq!(bill.nanos, 1_200_000);
        assert!(bill.anomaly.is_some());
    }

    #[test]
    fn what_commits_and_what_is_an_error() {
        let opening = |d: &str| ResponsesRelay::opening(&ev(d));
        assert!(matches!(opening(CREATED), Opening::Wait));
        assert!(matches!(opening(DELTA), Opening::Commit));
        assert!(matches!(
            opening(r#"{"type":"response.output_item.added","item":{"type":"message"}}"#),
            Opening::Wait
        ));
        assert!(matches!(
            opening(r#"{"type":"response.output_item.added","item":{"type":"custom_tool_call"}}"#),
            Opening::Commit
        ));
        let error = r#"{"type":"error","message":"overloaded","sequence_number":1}"#;
        assert!(matches!(opening(error), Opening::Failed(_)));
        assert_eq!(
            ResponsesRelay::in_band_error(&ev(error)).map(|e| e.detail),
            Some("overloaded".to_string())
        );
        assert!(ResponsesRelay::in_band_error(&ev(DELTA)).is_none());
    }
}
