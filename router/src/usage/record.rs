//! The usage record: one per generation request (chat, messages, embeddings and every endpoint
//! that starts its record with `ingress::intake::begin`), built once from the access record when
//! it drops and shared, behind an `Arc`, by the in-memory generation store and the usage store's
//! writer. It carries no prompt or completion content unless a key or route opts in, and of a
//! caller with a token only who it is (issuer and subject), never the token.

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_api::money::from_nanos;

use crate::{error::AttemptReport, pricing::Usage};

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;

/// What is kept about one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Generation id (`X-Generation-Id`); the store's key.
    pub id: String,
    /// When the request arrived, Unix milliseconds.
    pub created_at_ms: i64,
    /// Endpoint label (`chat`, `messages`, `embeddings`, ...).
    pub endpoint: String,
    /// ApiKey id, `namespace/name`.
    pub key_id: String,
    /// The key's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// End user (`user` in the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Tags (`X-Switchboard-Tags`, `metadata.tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Calling app (`X-Title`, else `HTTP-Referer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Who called, when it called with a token: the token's issuer (`iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_issuer: Option<String>,
    /// Who called, when it called with a token: the token's subject (`sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_subject: Option<String>,
    /// Public model asked for (`unknown` when the request named none that is configured).
    pub model: String,
    /// Public model that served (differs from `model` after a model fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<String>,
    /// Provider that served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Upstream model id that served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Every upstream attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptReport>,
    /// Tokens by kind (zero when none were reported).
    #[serde(default)]
    pub tokens: Usage,
    /// Cost in nano-dollars, the ledger's exact unit.
    pub cost_nanos: i64,
    /// HTTP status sent.
    pub status: u16,
    /// Error code or how the request ended when it is not plain success (`client_disconnected`,
    /// `stream_error`, `upstream_failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Finish reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Why the upstream's usage was not billed as reported (`<field> <kind>`), if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_anomaly: Option<String>,
    /// The request's messages (JSON), only when its key or model route opted in to keeping
    /// content ([`content::bounded`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The answer (a complete answer's choices as JSON, a stream's text), only when opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Streamed or not.
    pub streamed: bool,
    /// Total latency, milliseconds.
    pub latency_ms: u64,
    /// Time to first token (streams), milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Answered from the response cache: `exact` or `semantic` (`cost_nanos` is then 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit: Option<String>,
    /// What a cache hit saved: the cost of the answer when it was made, nano-dollars.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_saved_nanos: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl UsageRecord {
    /// The public model the request is billed to: the one that served, else the one asked for.
    pub fn billed_model(&self) -> &str {
        self.served_model.as_deref().unwrap_or(&self.model)
    }

    /// UTC day of the request, in days since 1970-01-01.
    pub fn day(&self) -> i64 {
        self.created_at_ms.div_euclid(DAY_MS)
    }

    /// Hours since 1970-01-01 00:00 UTC when the request arrived.
    pub fn hour(&self) -> i64 {
        self.created_at_ms.div_euclid(HOUR_MS)
    }

    /// The `data` object of `GET /api/v1/generation` (field names as OpenRouter's where they
    /// exist). `admin` adds who made the request (key, team) and the model asked for.
    pub fn render(&self, admin: bool) -> serde_json::Value {
        let t = &self.tokens;
        let mut data = json!({
            "id": self.id,
            "created_at": self.created_at_ms.div_euclid(1000),
            "endpoint": self.endpoint,
            "model": self.billed_model(),
            "provider_name": self.provider,
            "upstream_model": self.upstream_model,
            "status": self.status,
            "streamed": self.streamed,
            "finish_reason": self.finish_reason,
            "tokens_prompt": t.prompt_tokens,
            "tokens_completion": t.completion_tokens,
            "native_tokens_cached": t.cached_tokens,
            "native_tokens_cache_write": t.cache_write_tokens,
            "native_tokens_reasoning": t.reasoning_tokens,
            "total_cost": from_nanos(self.cost_nanos).normalize().to_string(),
            "usage_anomaly": self.usage_anomaly,
            "latency": self.latency_ms,
            "time_to_first_token": self.ttft_ms,
            "attempts": self.attempts,
            "outcome": self.error_code,
            "user": self.user,
            "tags": self.tags,
            "app": self.app,
        });
        // Who called with a token; the field is absent for a static key.
        if let Some(subject) = &self.caller_subject {
            data["identity"] = json!({"issuer": self.caller_issuer, "subject": subject});
        }
        // Content only when the key or route opted in: the field is absent otherwise.
        if let Some(input) = &self.input {
            data["input"] = json!(input);
        }
        if let Some(output) = &self.output {
            data["output"] = json!(output);
        }
        if let Some(mode) = &self.cache_hit {
            data["cache"] = json!(mode);
            data["cache_saved_cost"] =
                json!(from_nanos(self.cache_saved_nanos).normalize().to_string());
        }
        if admin {
            data["api_key"] = json!(self.key_id);
            data["team"] = json!(self.team);
            data["requested_model"] = json!(self.model);
        }
        data
    }
}

/// Content kept in a record (opted in by an ApiKey's or ModelRoute's `recordContent`).
pub mod content {
    /// Most bytes of each of a record's input and output: a record is a row of a batch insert and
    /// a line of the spill file, so one huge prompt must not make either unbounded.
    pub const MAX_BYTES: usize = 256 * 1024;

    /// What a cut text ends with.
    pub const CUT: &str = "…[truncated]";

    /// `text` within [`MAX_BYTES`]: cut at a character boundary and marked with [`CUT`] when
    /// longer.
    pub fn bounded(mut text: String) -> String {
        if text.len() <= MAX_BYTES {
            return text;
        }
        let mut end = MAX_BYTES.saturating_sub(CUT.len());
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        text.truncate(end);
        text.push_str(CUT);
        text
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with every field set, for tests across the usage modules.
    pub(crate) fn sample(id: &str, created_at_ms: i64) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            created_at_ms,
            endpoint: "chat".into(),
            key_id: "default/main".into(),
            team: Some("ml".into()),
            user: Some("alice".into()),
            tags: vec!["prod".into(), "batch".into()],
            app: Some("Support Bot".into()),
            caller_issuer: Some("https://kubernetes.default.svc".into()),
            caller_subject: Some("system:serviceaccount:ml:trainer".into()),
            model: "smart".into(),
            served_model: Some("openai/gpt-4o".into()),
            provider: Some("openai".into()),
            upstream_model: Some("gpt-4o-2024-08-06".into()),
            attempts: vec![AttemptReport {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                ok: true,
                error_type: None,
                status: Some(200),
                latency_ms: 120,
            }],
            tokens: Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_tokens: 40,
                cache_write_tokens: 0,
                reasoning_tokens: 5,
            },
            cost_nanos: 1_234_500,
            status: 200,
            error_code: None,
            finish_reason: Some("stop".into()),
            usage_anomaly: None,
            input: None,
            output: None,
            streamed: true,
            latency_ms: 450,
            ttft_ms: Some(80),
            cache_hit: None,
            cache_saved_nanos: 0,
        }
    }

    #[test]
    fn a_record_survives_the_spill_format() {
        let r = sample("gen-1", 1_760_000_000_123);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<UsageRecord>(&line).unwrap(), r);
        let bare = UsageRecord {
            team: None,
            user: None,
            tags: vec![],
            app: None,
            caller_issuer: None,
            caller_subject: None,
            served_model: None,
            provider: None,
            upstream_model: None,
            attempts: vec![],
            error_code: Some("upstream_failed".into()),
            ..sample("gen-2", 0)
        };
        let line = serde_json::to_string(&bare).unwrap();
        assert!(
            !line.contains("tags") && !line.contains("provider") && !line.contains("caller"),
            "{line}"
        );
        assert!(bare.render(false).get("identity").is_none());
        assert_eq!(serde_json::from_str::<UsageRecord>(&line).unwrap(), bare);
    }

    #[test]
    fn kept_content_is_bounded_at_a_character_boundary_and_rendered_only_when_present() {
        assert_eq!(content::bounded("short".into()), "short");
        let long = "é".repeat(content::MAX_BYTES);
        let cut = content::bounded(long);
        assert!(cut.len() <= content::MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with(content::CUT));
        assert!(cut.trim_end_matches(content::CUT).chars().all(|c| c == 'é'));
        let plain = sample("gen-1", 0).render(false);
        assert!(plain.get("input").is_none() && plain.get("output").is_none());
        let kept = UsageRecord {
            input: Some(r#"[{"role":"user","content":"hi"}]"#.into()),
            output: Some("hello".into()),
            ..sample("gen-1", 0)
        };
        let line = serde_json::to_string(&kept).unwrap();
        assert_eq!(serde_json::from_str::<UsageRecord>(&line).unwrap(), kept);
        let data = kept.render(false);
        assert_eq!(data["output"], "hello");
        assert_eq!(data["input"], r#"[{"role":"user","content":"hi"}]"#);
    }

    #[test]
    fn days_are_utc_and_floor_before_1970() {
        assert_eq!(sample("a", 0).day(), 0);
        assert_eq!(sample("a", DAY_MS - 1).day(), 0);
        assert_eq!(sample("a", DAY_MS).day(), 1);
        assert_eq!(sample("a", -1).day(), -1);
    }

    #[test]
    fn the_rendered_record_bills_the_served_model_and_states_cost_in_usd() {
        let data = sample("gen-1", 1_760_000_000_999).render(false);
        assert_eq!(data["model"], "openai/gpt-4o");
        assert_eq!(data["total_cost"], "0.0012345");
        assert_eq!(data["created_at"], 1_760_000_000);
        assert!(data.get("api_key").is_none());
        assert_eq!(
            data["identity"],
            json!({"issuer": "https://kubernetes.default.svc",
                   "subject": "system:serviceaccount:ml:trainer"})
        );
        let admin = sample("gen-1", 0).render(true);
        assert_eq!(admin["api_key"], "default/main");
        assert_eq!(admin["requested_model"], "smart");
    }
}
