//! Pricing a complete answer: its usage read in the format it came in and checked against what
//! the request could use ([`crate::pricing::reported`]), its cost computed, and `usage.cost` (USD)
//! spliced in without re-serialising anything else — or, when the report was unusable, the
//! billed usage in its place. Pure.

use bytes::Bytes;
use rust_decimal::Decimal;
use serde_json::{Value, value::RawValue};

use crate::{
    json::{Present, splice_fields},
    observability::access::Access,
    pricing::{
        Usage,
        reported::{
            Anomaly, Expect, UsageBounds, anthropic_usage_json, bill, read_openai, read_responses,
            responses_usage_json, usage_json,
        },
    },
    providers::{AttemptError, WireFormat, anthropic::wire::Usage as AnthropicUsage},
    routing::Candidate,
};

/// A priced complete response.
pub struct Completed {
    /// The client's format when the upstream answered in it; `None` for a `chat.completion`.
    pub format: Option<WireFormat>,
    id: Option<String>,
    /// The raw answer (`choices`, `content`), kept only for content recording.
    choices: Option<String>,
    body: Bytes,
    /// What the answer used (as billed).
    pub usage: Usage,
    cost: Decimal,
    anomaly: Option<Anomaly>,
    finish_reason: Option<String>,
}

impl Completed {
    /// Puts what the answer says on the request's record, and gives up the body to send.
    pub fn record(self, access: &mut Access, trace_content: bool) -> Bytes {
        access.usage = Some(self.usage);
        access.cost = Some(self.cost);
        access.usage_anomaly = self.anomaly;
        access.finish_reason = self.finish_reason;
        access.response_id = self.id;
        if trace_content {
            access.span.record(
                "gen_ai.output.messages",
                self.choices.as_deref().unwrap_or(""),
            );
        }
        if access.keep_content {
            access.output_content = self.choices;
        }
        self.body
    }
}

#[derive(serde::Deserialize)]
struct FinishView {
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The top-level fields of an upstream `chat.completion` the router reads or sets, borrowed
/// from the body: the rest is skipped, never copied.
#[derive(serde::Deserialize)]
struct CompletionView<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Present<'a>,
    #[serde(borrow, default)]
    provider: Present<'a>,
    #[serde(borrow, default)]
    system_fingerprint: Present<'a>,
}

/// Prices a complete `chat.completion` (or legacy `text_completion`; its usage checked against
/// `bounds`) and sets `usage.cost` (with every usage count Switchboard promises) and `provider`,
/// and `system_fingerprint: null` when the upstream left it out (the OpenRouter SDK requires the
/// key), keeping every other byte; unusable usage is replaced by what was billed.
pub fn chat_body(
    bytes: &[u8],
    cand: &Candidate<'_>,
    bounds: &UsageBounds,
    keep_choices: bool,
) -> Result<Completed, AttemptError> {
    let view: CompletionView<'_> = serde_json::from_slice(bytes)
        .map_err(|e| AttemptError::Protocol(format!("upstream answered invalid JSON: {e}")))?;
    let Some(choices) = view.choices.filter(|c| c.get() != "null") else {
        let detail = view
            .error
            .map(|e| e.get().to_string())
            .unwrap_or_else(|| "no `choices` in the response".into());
        return Err(AttemptError::Protocol(format!(
            "upstream answered without choices: {detail}"
        )));
    };
    let usage_raw = view.usage.0.filter(|u| u.get() != "null");
    let reported = usage_raw.and_then(|u| serde_json::from_str::<Value>(u.get()).ok());
    let bill = bill(
        read_openai(reported.as_ref(), Expect::Chat),
        &cand.model.pricing,
        bounds,
    );
    let provider = Value::String(cand.provider.config.name.clone()).to_string();
    let mut edits = vec![
        (view.usage, "usage", usage_json(&bill, usage_raw)),
        (view.provider, "provider", provider),
    ];
    if view.system_fingerprint.0.is_none() {
        edits.push((view.system_fingerprint, "system_fingerprint", "null".into()));
    }
    let body = splice_fields(bytes, &mut edits);
    let finish_reason = serde_json::from_str::<Vec<FinishView>>(choices.get())
        .ok()
        .and_then(|c| c.into_iter().find_map(|c| c.finish_reason));
    let id = view
        .id
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    Ok(Completed {
        format: None,
        id,
        choices: keep_choices.then(|| choices.get().to_string()),
        body: Bytes::from(body),
        usage: bill.usage,
        cost: bill.usd(),
        anomaly: bill.anomaly,
        finish_reason,
    })
}

/// The top-level fields of an Anthropic `message` the router reads or sets.
#[derive(serde::Deserialize)]
struct MessageView<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(borrow, default)]
    usage: Present<'a>,
}

/// Prices a complete answer in the client's own `format` and sets its `usage.cost`, keeping
/// every other byte.
pub fn native_body(
    format: WireFormat,
    bytes: &[u8],
    cand: &Candidate<'_>,
    bounds: &UsageBounds,
    keep_content: bool,
) -> Result<Completed, AttemptError> {
    match format {
        WireFormat::AnthropicMessages => anthropic_body(bytes, cand, bounds, keep_content),
        WireFormat::OpenAiResponses => responses_body(bytes, cand, bounds, keep_content),
        WireFormat::OpenAiCompletions => {
            let mut done = chat_body(bytes, cand, bounds, keep_content)?;
            done.format = Some(format);
            Ok(done)
        }
    }
}

/// The top-level fields of a Responses `response` the router reads or sets.
#[derive(serde::Deserialize)]
struct ResponseView<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<Value>,
    #[serde(borrow, default)]
    usage: Present<'a>,
    #[serde(borrow, default)]
    provider: Present<'a>,
}

/// A Responses `response`: usage from `input_tokens`, `input_tokens_details.cached_tokens` and
/// `.cache_write_tokens`, `output_tokens` and `output_tokens_details.reasoning_tokens`; `usage`
/// gains `cost` (and every count the OpenAI SDK requires) and the response `provider`.
fn responses_body(
    bytes: &[u8],
    cand: &Candidate<'_>,
    bounds: &UsageBounds,
    keep_content: bool,
) -> Result<Completed, AttemptError> {
    let view: ResponseView<'_> = serde_json::from_slice(bytes)
        .map_err(|e| AttemptError::Protocol(format!("upstream answered invalid JSON: {e}")))?;
    let Some(output) = view.output.filter(|o| o.get() != "null") else {
        let detail = view
            .error
            .map(|e| e.get().to_string())
            .unwrap_or_else(|| "no `output` in the response".into());
        return Err(AttemptError::Protocol(format!(
            "upstream answered without output: {detail}"
        )));
    };
    let usage_raw = view.usage.0.filter(|u| u.get() != "null");
    let reported = usage_raw.and_then(|u| serde_json::from_str::<Value>(u.get()).ok());
    let bill = bill(
        read_responses(reported.as_ref()),
        &cand.model.pricing,
        bounds,
    );
    let provider = Value::String(cand.provider.config.name.clone()).to_string();
    let mut edits = [
        (view.usage, "usage", responses_usage_json(&bill, usage_raw)),
        (view.provider, "provider", provider),
    ];
    let finish_reason = view
        .incomplete_details
        .as_ref()
        .and_then(|d| d["reason"].as_str().map(str::to_string))
        .or(view.status);
    Ok(Completed {
        format: Some(WireFormat::OpenAiResponses),
        id: view.id,
        choices: keep_content.then(|| output.get().to_string()),
        body: Bytes::from(splice_fields(bytes, &mut edits)),
        usage: bill.usage,
        cost: bill.usd(),
        anomaly: bill.anomaly,
        finish_reason,
    })
}

/// An Anthropic `message`: usage from `input_tokens`, `cache_read_input_tokens`,
/// `cache_creation_input_tokens` and `output_tokens`, checked like every adapter's.
fn anthropic_body(
    bytes: &[u8],
    cand: &Candidate<'_>,
    bounds: &UsageBounds,
    keep_content: bool,
) -> Result<Completed, AttemptError> {
    let view: MessageView<'_> = serde_json::from_slice(bytes)
        .map_err(|e| AttemptError::Protocol(format!("upstream answered invalid JSON: {e}")))?;
    let Some(content) = view
        .content
        .filter(|_| view.kind.as_deref() == Some("message"))
    else {
        return Err(AttemptError::Protocol(format!(
            "upstream answered something other than a message: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        )));
    };
    let usage_raw = view.usage.0.filter(|u| u.get() != "null");
    let reported = usage_raw
        .and_then(|u| serde_json::from_str::<AnthropicUsage>(u.get()).ok())
        .unwrap_or_default()
        .reported();
    let bill = bill(reported, &cand.model.pricing, bounds);
    let mut edits = [(view.usage, "usage", anthropic_usage_json(&bill, usage_raw))];
    Ok(Completed {
        format: Some(WireFormat::AnthropicMessages),
        id: view.id,
        choices: keep_content.then(|| content.get().to_string()),
        body: Bytes::from(splice_fields(bytes, &mut edits)),
        usage: bill.usage,
        cost: bill.usd(),
        anomaly: bill.anomaly,
        finish_reason: view.stop_reason,
    })
}
