//! The client's original request, for the adapters that speak its format natively.
//!
//! Every ingress hands the pipeline the OpenAI chat view of its request: routing, budgets and the
//! translating adapters read that. An ingress whose format some provider speaks natively (the
//! Anthropic Messages API, the OpenAI Responses API) also hands over the original as a
//! [`Native`]: an adapter that speaks [`Native::format`] for its target forwards [`Native::body`]
//! with only the model rewritten (and Switchboard's extension fields stripped), plus the
//! allowlisted client headers, and answers with a [`super::Reply::Native`] in the same format.
//! Every other adapter ignores it — unless the ingress marked the request
//! [`Native::untranslatable`]: then a translating adapter refuses it. Pure.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{AttemptError, EXTENSION_FIELDS};
use crate::json::RawObject;

/// A client wire format some provider speaks natively (closed: one variant per format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
    /// OpenAI Responses (`POST /v1/responses`), spoken by `openai` and `azureOpenAI`.
    OpenAiResponses,
    /// OpenAI legacy text completions (`POST /v1/completions`), spoken by `openai` and
    /// `openaiCompatible`.
    OpenAiCompletions,
}

impl WireFormat {
    /// Short name, for logs and records.
    pub fn name(self) -> &'static str {
        match self {
            WireFormat::AnthropicMessages => "anthropic_messages",
            WireFormat::OpenAiResponses => "openai_responses",
            WireFormat::OpenAiCompletions => "openai_completions",
        }
    }

    /// The client headers forwarded upstream with a native request: the vendor's API version and
    /// beta flags. Never a credential, never a hop-by-hop or encoding header.
    pub fn forwarded_headers(self) -> &'static [&'static str] {
        match self {
            WireFormat::AnthropicMessages => &["anthropic-beta", "anthropic-version"],
            WireFormat::OpenAiResponses => &["openai-beta"],
            WireFormat::OpenAiCompletions => &[],
        }
    }

    /// The body field bounding the answer's length (what a fitted budget lowers).
    pub fn output_limit_field(self) -> &'static str {
        match self {
            WireFormat::AnthropicMessages | WireFormat::OpenAiCompletions => "max_tokens",
            WireFormat::OpenAiResponses => "max_output_tokens",
        }
    }
}

/// The client's original request, as it arrived.
#[derive(Debug)]
pub struct Native {
    /// Its format.
    pub format: WireFormat,
    /// Its body, every field as the client wrote it.
    pub body: RawObject,
    /// The allowlisted client headers to forward ([`WireFormat::forwarded_headers`]).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Why the chat view cannot stand in for this request, when it cannot (it uses what
    /// translation would drop and asks for strictness, or what chat cannot express at all): then
    /// only a target that speaks [`Native::format`] may serve it, and a translating one refuses
    /// it with a 400 saying this.
    pub untranslatable: Option<String>,
}

impl Native {
    /// The original of a request in `format`, keeping only the client headers the format
    /// forwards.
    pub fn new(format: WireFormat, body: RawObject, client_headers: &HeaderMap) -> Native {
        let headers = format
            .forwarded_headers()
            .iter()
            .flat_map(|name| {
                client_headers
                    .get_all(*name)
                    .iter()
                    .map(|v| (HeaderName::from_static(name), v.clone()))
            })
            .collect();
        Native {
            format,
            body,
            headers,
            untranslatable: None,
        }
    }

    /// The value of a forwarded header, when the client sent it as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// The body to forward: Switchboard's extension fields stripped, then `edits` applied
    /// (`Some(json)` sets a field in place or appends it, `None` removes it). Every other field
    /// keeps the client's bytes and order.
    pub fn forward(&self, edits: &[(&str, Option<String>)]) -> Vec<u8> {
        let mut body = RawObject(
            self.body
                .0
                .iter()
                .filter(|(k, _)| !EXTENSION_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        for (name, value) in edits {
            match value {
                Some(json) => body.set_raw(name, json.clone()),
                None => body.remove(name),
            }
        }
        body.to_vec()
    }

    /// Lowers the answer's length bound to `n` tokens (a fitted budget). An Anthropic thinking
    /// budget must stay below `max_tokens` (and at least 1024): one that would not is lowered to
    /// half of `n` (at least 1024), or thinking is turned off when `n` leaves no room for it.
    pub fn set_output_limit(&mut self, n: u64) {
        self.body.set(self.format.output_limit_field(), &n);
        if self.format != WireFormat::AnthropicMessages {
            return;
        }
        let Some(mut thinking) = self.body.get("thinking").and_then(|t| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t.get()).ok()
        }) else {
            return;
        };
        let budget = thinking
            .get("budget_tokens")
            .and_then(serde_json::Value::as_u64);
        if thinking.get("type").and_then(serde_json::Value::as_str) != Some("enabled")
            || budget.is_none_or(|b| b < n)
        {
            return;
        }
        if n > MIN_THINKING_BUDGET {
            thinking.insert(
                "budget_tokens".into(),
                (n / 2).max(MIN_THINKING_BUDGET).into(),
            );
            self.body.set("thinking", &thinking);
        } else {
            self.body
                .set("thinking", &serde_json::json!({"type": "disabled"}));
        }
    }
}

/// The smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

/// One server-sent event: its `event:` name (empty when it had none) and its `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` line's value.
    pub event: String,
    /// The `data:` lines, joined.
    pub data: String,
}

impl SseEvent {
    /// The event as SSE text: `event: <name>` (when it has one) and `data: <data>`.
    pub fn frame(&self) -> Bytes {
        let mut b = Vec::with_capacity(self.event.len() + self.data.len() + 16);
        if !self.event.is_empty() {
            b.extend_from_slice(b"event: ");
            b.extend_from_slice(self.event.as_bytes());
            b.push(b'\n');
        }
        for line in self.data.split('\n') {
            b.extend_from_slice(b"data: ");
            b.extend_from_slice(line.as_bytes());
            b.push(b'\n');
        }
        b.push(b'\n');
        Bytes::from(b)
    }
}

/// A native answer's events, as the upstream sent them.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, AttemptError>> + Send>>;

/// A native answer.
pub enum NativeBody {
    /// The complete JSON body.
    Complete(Bytes),
    /// Its events.
    Stream(EventStream),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowlisted_headers_are_kept() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", HeaderValue::from_static("a-1,b-2"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        h.insert("x-api-key", HeaderValue::from_static("sk-client"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-client"),
        );
        h.insert("accept-encoding", HeaderValue::from_static("br, zstd"));
        h.insert(
            "anthropic-dangerous-direct-browser-access",
            HeaderValue::from_static("true"),
        );
        let n = Native::new(WireFormat::AnthropicMessages, RawObject::default(), &h);
        let names: Vec<&str> = n.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["anthropic-beta", "anthropic-version"]);
        assert_eq!(n.header("anthropic-beta"), Some("a-1,b-2"));
    }

    #[test]
    fn forwarding_rewrites_only_what_it_is_told_and_strips_extensions() {
        let body = RawObject::parse(
            br#"{"model":"pub/m","max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"models":["x"],"provider":{"order":["a"]},"unknown_field":[1, 2.50]}"#,
        )
        .unwrap();
        let mut n = Native::new(WireFormat::AnthropicMessages, body, &HeaderMap::new());
        n.set_output_limit(4000);
        let out = n.forward(&[("model", Some("\"claude-x\"".into())), ("stream", None)]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"claude-x","max_tokens":4000,"thinking":{"type":"adaptive","display":"omitted"},"unknown_field":[1, 2.50]}"#
        );
    }

    #[test]
    fn a_fitted_limit_keeps_an_anthropic_thinking_budget_below_it() {
        let with = |thinking: &str, n: u64| {
            let body = RawObject::parse(
                format!(r#"{{"max_tokens":32000,"thinking":{thinking}}}"#).as_bytes(),
            )
            .unwrap();
            let mut native = Native::new(WireFormat::AnthropicMessages, body, &HeaderMap::new());
            native.set_output_limit(n);
            String::from_utf8(native.forward(&[])).unwrap()
        };
        let enabled = r#"{"type":"enabled","budget_tokens":31999,"display":"omitted"}"#;
        assert_eq!(
            with(enabled, 10_000),
            r#"{"max_tokens":10000,"thinking":{"type":"enabled","budget_tokens":5000,"display":"omitted"}}"#
        );
        assert_eq!(
            with(enabled, 1500),
            r#"{"max_tokens":1500,"thinking":{"type":"enabled","budget_tokens":1024,"display":"omitted"}}"#
        );
        assert_eq!(
            with(enabled, 1024),
            r#"{"max_tokens":1024,"thinking":{"type":"disabled"}}"#
        );
        // A budget already below the limit, and adaptive thinking, are left alone.
        let small = r#"{"type":"enabled","budget_tokens":2000}"#;
        assert_eq!(
            with(small, 10_000),
            format!(r#"{{"max_tokens":10000,"thinking":{small}}}"#)
        );
        let adaptive = r#"{"type":"adaptive","display":"omitted"}"#;
        assert_eq!(
            with(adaptive, 1024),
            format!(r#"{{"max_tokens":1024,"thinking":{adaptive}}}"#)
        );
    }

    #[test]
    fn events_are_framed_with_their_name() {
        let e = SseEvent {
            event: "message_stop".into(),
            data: r#"{"type":"message_stop"}"#.into(),
        };
        assert_eq!(
            &e.frame()[..],
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }
}
