//! Usage as upstreams report it, checked before it is priced. An upstream is not trusted to
//! count: a self-hosted server, a proxy or a buggy adapter may report nothing, strings, negative,
//! fractional or absurd numbers, or more than the request could have used. Each of those is an
//! [`Anomaly`], and the request is then billed at its worst case for the model that served
//! (the same bound its reservation was made from, and never more than that reservation). Usage
//! that checks out is billed as reported, but never above the reservation either: so a block
//! budget's settled spend never exceeds its limit, whatever upstreams report.
//!
//! Every adapter's answer reaches this check in OpenAI's `usage` shape; translating adapters
//! carry a vendor's unusable count through unchanged ([`TokenCount`]), so the check sees what
//! the vendor sent.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, value::RawValue};
use switchboard_api::{money::from_nanos, snapshot::PriceTable};

use super::{Usage, cost_nanos};
use crate::json::{UsageCount, usage_normalised, usage_with_cost};

/// A token count as a vendor reported it: a count, or whatever it sent instead (kept so that
/// the check sees it). Absent counts are `Count(0)`.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenCount {
    /// A non-negative integer.
    Count(u64),
    /// Anything else: a negative, fractional or huge number, a string, an object.
    Invalid(Value),
}

impl Default for TokenCount {
    fn default() -> Self {
        TokenCount::Count(0)
    }
}

impl From<u64> for TokenCount {
    fn from(n: u64) -> Self {
        TokenCount::Count(n)
    }
}

impl TokenCount {
    /// The sum of two counts (saturating: a sum past `u64` is absurd and caught as such), or
    /// the first invalid one.
    pub fn plus(&self, other: &TokenCount) -> TokenCount {
        match (self, other) {
            (TokenCount::Count(a), TokenCount::Count(b)) => TokenCount::Count(a.saturating_add(*b)),
            (TokenCount::Invalid(v), _) | (_, TokenCount::Invalid(v)) => {
                TokenCount::Invalid(v.clone())
            }
        }
    }

    /// The count, or 0 when it is not one (for what is only displayed, never billed).
    pub fn or_zero(&self) -> u64 {
        match self {
            TokenCount::Count(n) => *n,
            TokenCount::Invalid(_) => 0,
        }
    }
}

impl<'de> Deserialize<'de> for TokenCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v.as_u64() {
            Some(n) => TokenCount::Count(n),
            None if v.is_null() => TokenCount::Count(0),
            None => TokenCount::Invalid(v),
        })
    }
}

impl Serialize for TokenCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TokenCount::Count(n) => s.serialize_u64(*n),
            TokenCount::Invalid(v) => v.serialize(s),
        }
    }
}

/// What is wrong with reported usage (the `kind` label of `switchboard_usage_anomalies_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    /// No usage, or a required count absent.
    Missing,
    /// A negative count.
    Negative,
    /// A count with a fractional part.
    Fractional,
    /// A string, boolean, object or array where a count belongs.
    NotANumber,
    /// More tokens than the request could have used, or a count past any price.
    TooLarge,
    /// Details that contradict the totals (more cached than prompt tokens).
    Inconsistent,
    /// Plausible counts that still cost more than the request's reservation.
    AboveReservation,
}

impl AnomalyKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            AnomalyKind::Missing => "missing",
            AnomalyKind::Negative => "negative",
            AnomalyKind::Fractional => "fractional",
            AnomalyKind::NotANumber => "not_a_number",
            AnomalyKind::TooLarge => "too_large",
            AnomalyKind::Inconsistent => "inconsistent",
            AnomalyKind::AboveReservation => "above_reservation",
        }
    }
}

/// An unusable usage report: which field, and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The field (`usage`, `prompt_tokens`, `completion_tokens_details.reasoning_tokens`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub kind: AnomalyKind,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.kind.label())
    }
}

fn anomaly(field: &'static str, kind: AnomalyKind) -> Anomaly {
    Anomaly { field, kind }
}

/// Which counts an answer must report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A chat completion: prompt and completion tokens.
    Chat,
    /// Embeddings: prompt tokens (completion tokens, if any, must be 0).
    Embeddings,
}

/// One count: absent is `None`, a non-negative integer (an integral float too) its value.
fn count(v: Option<&Value>, field: &'static str) -> Result<Option<u64>, Anomaly> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(n) = v.as_u64() {
        return Ok(Some(n));
    }
    let Some(n) = v.as_number() else {
        return Err(anomaly(field, AnomalyKind::NotANumber));
    };
    if n.is_i64() {
        return Err(anomaly(field, AnomalyKind::Negative));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f < 0.0 {
        Err(anomaly(field, AnomalyKind::Negative))
    } else if f.fract() != 0.0 || !f.is_finite() {
        Err(anomaly(field, AnomalyKind::Fractional))
    } else if f < 9_007_199_254_740_992.0 {
        // An integral float such as `5.0` below 2^53: the value is a count, exactly.
        Ok(Some(f as u64))
    } else {
        Err(anomaly(field, AnomalyKind::TooLarge))
    }
}

/// Reads an OpenAI `usage` object (`prompt_tokens`, `completion_tokens`,
/// `prompt_tokens_details.cached_tokens` / `.cache_write_tokens`,
/// `completion_tokens_details.reasoning_tokens`), or says what makes it unusable.
pub fn read_openai(usage: Option<&Value>, expect: Expect) -> Result<Usage, Anomaly> {
    let Some(obj) = usage.and_then(Value::as_object) else {
        return Err(anomaly("usage", AnomalyKind::Missing));
    };
    let details = |parent: &str, name: &str| obj.get(parent).and_then(|d| d.get(name));
    let prompt = count(obj.get("prompt_tokens"), "prompt_tokens")?;
    let completion = count(obj.get("completion_tokens"), "completion_tokens")?;
    let usage = Usage {
        prompt_tokens: prompt.ok_or(anomaly("prompt_tokens", AnomalyKind::Missing))?,
        completion_tokens: match (completion, expect) {
            (Some(n), _) => n,
            (None, Expect::Embeddings) => 0,
            (None, Expect::Chat) => return Err(anomaly("completion_tokens", AnomalyKind::Missing)),
        },
        cached_tokens: count(
            details("prompt_tokens_details", "cached_tokens"),
            "prompt_tokens_details.cached_tokens",
        )?
        .unwrap_or(0),
        cache_write_tokens: count(
            details("prompt_tokens_details", "cache_write_tokens"),
            "prompt_tokens_details.cache_write_tokens",
        )?
        .unwrap_or(0),
        reasoning_tokens: count(
            details("completion_tokens_details", "reasoning_tokens"),
            "completion_tokens_details.reasoning_tokens",
        )?
        .unwrap_or(0),
    };
    Ok(usage)
}

/// Reads an OpenAI Responses `usage` object (`input_tokens`, `output_tokens`,
/// `input_tokens_details.cached_tokens` / `.cache_write_tokens`,
/// `output_tokens_details.reasoning_tokens`), or says what makes it unusable.
pub fn read_responses(usage: Option<&Value>) -> Result<Usage, Anomaly> {
    let Some(obj) = usage.and_then(Value::as_object) else {
        return Err(anomaly("usage", AnomalyKind::Missing));
    };
    let details = |parent: &str, name: &str| obj.get(parent).and_then(|d| d.get(name));
    Ok(Usage {
        prompt_tokens: count(obj.get("input_tokens"), "input_tokens")?
            .ok_or(anomaly("input_tokens", AnomalyKind::Missing))?,
        completion_tokens: count(obj.get("output_tokens"), "output_tokens")?
            .ok_or(anomaly("output_tokens", AnomalyKind::Missing))?,
        cached_tokens: count(
            details("input_tokens_details", "cached_tokens"),
            "input_tokens_details.cached_tokens",
        )?
        .unwrap_or(0),
        cache_write_tokens: count(
            details("input_tokens_details", "cache_write_tokens"),
            "input_tokens_details.cache_write_tokens",
        )?
        .unwrap_or(0),
        reasoning_tokens: count(
            details("output_tokens_details", "reasoning_tokens"),
            "output_tokens_details.reasoning_tokens",
        )?
        .unwrap_or(0),
    })
}

/// What a request may be billed for on the model that served it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageBounds {
    /// Most prompt tokens an upstream may report: the model's context length plus slack, when
    /// it is known.
    pub prompt: Option<u64>,
    /// Most completion tokens: `n` × the output bound per choice (0 for embeddings).
    pub completion: u64,
    /// The request's reservation, in nano-dollars: nothing is billed above it.
    pub cap_nanos: i64,
    /// The worst case on this model: what an unusable report is billed as.
    pub worst: Usage,
}

/// What a request is billed: the usage the client is told, its cost, and why the upstream's
/// report was not used, if it was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bill {
    /// Billed usage.
    pub usage: Usage,
    /// Billed cost in nano-dollars.
    pub nanos: i64,
    /// Why the report was replaced by the worst case.
    pub anomaly: Option<Anomaly>,
}

impl Bill {
    /// The cost in USD.
    pub fn usd(&self) -> Decimal {
        from_nanos(self.nanos)
    }
}

/// Checks reported usage against the bounds and prices what passes; anything unusable is billed
/// at the worst case. The bill never exceeds the reservation.
pub fn bill(reported: Result<Usage, Anomaly>, prices: &PriceTable, bounds: &UsageBounds) -> Bill {
    let checked = reported.and_then(|u| {
        if u.cached_tokens.saturating_add(u.cache_write_tokens) > u.prompt_tokens {
            return Err(anomaly("prompt_tokens_details", AnomalyKind::Inconsistent));
        }
        if u.reasoning_tokens > u.completion_tokens {
            return Err(anomaly(
                "completion_tokens_details.reasoning_tokens",
                AnomalyKind::Inconsistent,
            ));
        }
        if u.completion_tokens > bounds.completion {
            return Err(anomaly("completion_tokens", AnomalyKind::TooLarge));
        }
        if bounds.prompt.is_some_and(|p| u.prompt_tokens > p) {
            return Err(anomaly("prompt_tokens", AnomalyKind::TooLarge));
        }
        let nanos = cost_nanos(prices, &u).map_err(|_| anomaly("usage", AnomalyKind::TooLarge))?;
        if nanos > bounds.cap_nanos {
            return Err(anomaly("usage", AnomalyKind::AboveReservation));
        }
        Ok(Bill {
            usage: u,
            nanos,
            anomaly: None,
        })
    });
    checked.unwrap_or_else(|a| worst(prices, bounds, Some(a)))
}

/// The worst case on the serving model, capped at the reservation.
fn worst(prices: &PriceTable, bounds: &UsageBounds, anomaly: Option<Anomaly>) -> Bill {
    Bill {
        usage: bounds.worst,
        nanos: cost_nanos(prices, &bounds.worst)
            .unwrap_or(bounds.cap_nanos)
            .min(bounds.cap_nanos),
        anomaly,
    }
}

/// The bill of a stream cut before the upstream reported usage (it failed, the client left, the
/// router shut down): the estimate of what was relayed, within the bounds and the reservation.
pub fn bill_estimate(estimate: Usage, prices: &PriceTable, bounds: &UsageBounds) -> Bill {
    let usage = Usage {
        prompt_tokens: estimate
            .prompt_tokens
            .min(bounds.prompt.unwrap_or(u64::MAX)),
        completion_tokens: estimate.completion_tokens.min(bounds.completion),
        ..Usage::default()
    };
    match cost_nanos(prices, &usage) {
        Ok(nanos) if nanos <= bounds.cap_nanos => Bill {
            usage,
            nanos,
            anomaly: None,
        },
        _ => worst(prices, bounds, None),
    }
}

/// Largest reported usage object repeated under `clamped.reported`.
const REPORTED_MAX: usize = 4096;

/// The chat (and legacy completions) counts Switchboard promises in every `usage` object.
fn chat_counts(u: &Usage) -> [UsageCount<'static>; 6] {
    [
        ("prompt_tokens", None, u.prompt_tokens),
        ("completion_tokens", None, u.completion_tokens),
        ("total_tokens", None, u.total_tokens()),
        (
            "prompt_tokens_details",
            Some("cached_tokens"),
            u.cached_tokens,
        ),
        (
            "prompt_tokens_details",
            Some("cache_write_tokens"),
            u.cache_write_tokens,
        ),
        (
            "completion_tokens_details",
            Some("reasoning_tokens"),
            u.reasoning_tokens,
        ),
    ]
}

/// The counts the OpenAI SDK's `ResponseUsage` requires (and the cache writes Switchboard adds).
fn responses_counts(u: &Usage) -> [UsageCount<'static>; 6] {
    [
        ("input_tokens", None, u.prompt_tokens),
        (
            "input_tokens_details",
            Some("cached_tokens"),
            u.cached_tokens,
        ),
        (
            "input_tokens_details",
            Some("cache_write_tokens"),
            u.cache_write_tokens,
        ),
        ("output_tokens", None, u.completion_tokens),
        (
            "output_tokens_details",
            Some("reasoning_tokens"),
            u.reasoning_tokens,
        ),
        ("total_tokens", None, u.total_tokens()),
    ]
}

/// `billed` (a usage object ending in `}`) with `clamped: {"reason": "<field> <kind>",
/// "reported": <what the upstream sent, or null>}` added.
fn with_clamped(billed: &str, anomaly: Anomaly, reported: Option<&RawValue>) -> String {
    let billed = billed.strip_suffix('}').unwrap_or(billed);
    let reported = reported
        .map(RawValue::get)
        .filter(|r| r.len() <= REPORTED_MAX && *r != "null")
        .unwrap_or("null");
    format!(
        r#"{billed},"clamped":{{"reason":{},"reported":{reported}}}}}"#,
        Value::String(anomaly.to_string()),
    )
}

/// The `usage` object the client receives for `bill`: the upstream's own (`reported`) with
/// `cost` set (and every count Switchboard promises added where it left one out) when it was
/// used; else the billed counts with `cost`, and, when the report was unusable, `clamped`
/// ([`with_clamped`]).
pub fn usage_json(bill: &Bill, reported: Option<&RawValue>) -> String {
    let counts = chat_counts(&bill.usage);
    if let (None, Some(raw)) = (bill.anomaly, reported) {
        return usage_normalised(Some(raw), &counts, bill.usd());
    }
    let billed = usage_normalised(None, &counts, bill.usd());
    match bill.anomaly {
        None => billed,
        Some(anomaly) => with_clamped(&billed, anomaly, reported),
    }
}

/// The Responses `usage` object for `usage` billed at `cost` (a translated answer's, priced by
/// the chat pipeline).
pub fn responses_usage_of(usage: &Usage, cost: Decimal) -> String {
    usage_normalised(None, &responses_counts(usage), cost)
}

/// [`usage_json`] in the Responses API's `usage` fields.
pub fn responses_usage_json(bill: &Bill, reported: Option<&RawValue>) -> String {
    let counts = responses_counts(&bill.usage);
    match bill.anomaly {
        None => usage_normalised(reported, &counts, bill.usd()),
        Some(anomaly) => with_clamped(
            &usage_normalised(None, &counts, bill.usd()),
            anomaly,
            reported,
        ),
    }
}

/// [`usage_json`] in Anthropic's `usage` fields (`input_tokens` uncached, `output_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`), for answers passed through natively.
pub fn anthropic_usage_json(bill: &Bill, reported: Option<&RawValue>) -> String {
    if let (None, Some(raw)) = (bill.anomaly, reported) {
        return usage_with_cost(Some(raw), bill.usd());
    }
    let u = &bill.usage;
    let uncached = u
        .prompt_tokens
        .saturating_sub(u.cached_tokens)
        .saturating_sub(u.cache_write_tokens);
    let billed = format!(
        r#"{{"input_tokens":{uncached},"output_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{},"cost":{}"#,
        u.completion_tokens,
        u.cache_write_tokens,
        u.cached_tokens,
        bill.usd().normalize(),
    );
    match bill.anomaly {
        None => format!("{billed}}}"),
        Some(anomaly) => with_clamped(&format!("{billed}}}"), anomaly, reported),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
#[path = "reported_tests.rs"]
mod tests;
