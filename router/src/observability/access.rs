//! One record per client request: filled in as the request proceeds, written out (access-log line
//! and metrics) exactly once when it is dropped, so streams that end, fail or are abandoned by the
//! client are all counted.

use std::{
    sync::Arc,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use rust_decimal::Decimal;
use switchboard_api::{
    money::{MAX_NANOS, to_nanos},
    snapshot::ModelConfig,
};

use crate::{
    budgets::{
        bounds::RequestBounds,
        spend::{SpendPlan, settlement_and_gauges},
    },
    error::AttemptReport,
    observability::generations::Stored,
    pricing::{
        Usage,
        reported::{Anomaly, UsageBounds},
    },
    state::AppState,
    usage::{
        attribution::Attribution,
        record::{UsageRecord, content},
    },
};

/// Who called with a token: what the access log, the trace (`enduser.id`) and the usage record
/// show of it (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's issuer (`iss`).
    pub issuer: String,
    /// The token's subject (`sub`), e.g. `system:serviceaccount:ml:trainer`.
    pub subject: String,
    /// The pod a ServiceAccount token is bound to.
    pub pod: Option<String>,
}

/// The record of one request.
pub struct Access {
    state: Arc<AppState>,
    started: Instant,
    started_at: SystemTime,
    /// `chat`, `embeddings`, `messages`, `responses`, `completions`, `models`, ...
    pub endpoint: &'static str,
    /// A generation request (see [`crate::ingress::intake::begin`]): once its key is known, it
    /// leaves a generation record and a usage record.
    pub of_record: bool,
    /// End user, tags and app the request is attributed to.
    pub attribution: Attribution,
    /// Generation id (also in `X-Generation-Id`).
    pub generation_id: String,
    /// Public model name when it is a configured one, else `unknown` (bounded label).
    pub model: String,
    /// ApiKey name (never the key).
    pub key: Option<String>,
    /// ApiKey id (`namespace/name`) of the authenticated caller: who may read the generation
    /// record.
    pub key_id: Option<String>,
    /// The key's team.
    pub team: Option<String>,
    /// The caller's identity, when it called with a token.
    pub identity: Option<Identity>,
    /// The ledger reservation to settle when the request ends.
    pub spend: Option<SpendPlan>,
    /// Provider that served.
    pub provider: Option<String>,
    /// Upstream model id that served.
    pub upstream_model: Option<String>,
    /// Public model that served (differs from `model` after a model fallback).
    pub served_model: Option<String>,
    /// Every upstream attempt.
    pub reports: Vec<AttemptReport>,
    /// Finish reason of the response.
    pub finish_reason: Option<String>,
    /// HTTP status sent.
    pub status: u16,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Cost in USD.
    pub cost: Option<Decimal>,
    /// Why the upstream's usage report was not used (it was billed at the worst case).
    pub usage_anomaly: Option<Anomaly>,
    /// What the ledger was told this request spent, nano-dollars (set by settling; the usage
    /// record carries the same amount).
    settled_nanos: Option<i64>,
    /// The key or the requested model's route opted in to keeping content in the usage store.
    pub keep_content: bool,
    /// The request's messages (JSON), when content is kept.
    pub input_content: Option<String>,
    /// The answer (a complete answer's `choices`/`content` JSON, a stream's text), when content is
    /// kept.
    pub output_content: Option<String>,
    /// Streamed or not.
    pub stream: bool,
    /// Time spent waiting on upstream attempts (until the stream committed, for streams).
    pub upstream_time: std::time::Duration,
    /// For streams: time from the request to the first content sent.
    pub time_to_first_token: Option<std::time::Duration>,
    /// The request's server span, started once the model is known (GenAI attributes are
    /// recorded on it when the request ends).
    pub span: tracing::Span,
    /// The client's trace context, continued by the span.
    trace_parent: Option<opentelemetry::Context>,
    /// The upstream response id (`gen_ai.response.id`).
    pub response_id: Option<String>,
    /// How it ended when it is not plain success (`client_disconnected`, `stream_error`, an error code).
    pub outcome: Option<String>,
    /// The output limit a budget fitted the request to (`fitMaxTokens`), when it did.
    pub fitted_max_tokens: Option<u64>,
    /// What the client's `Cache-Control` asked of the response cache.
    pub cache_directives: crate::cache::Directives,
    /// Answered from the response cache: how, and what it saved.
    pub cache: Option<crate::cache::Mark>,
}

impl Access {
    /// Writes the record (access log line, metrics, settlement, generation and usage records) right after
    /// the response has been handed to the connection, instead of before it: the client does not
    /// wait for its own bookkeeping. Nothing is lost: the record is written when the task runs,
    /// or when the runtime drops it unrun at shutdown. Readers that must see it
    /// (`/metrics`, `/api/v1/generation`) wait for [`AppState::records_written`].
    pub fn finish_after_response(self) {
        let state = self.state.clone();
        state.record_handed_off();
        tokio::spawn(async move {
            drop(self);
            state.record_written();
        });
    }

    /// Starts a record.
    pub fn new(state: Arc<AppState>, endpoint: &'static str, generation_id: String) -> Access {
        Access {
            span: tracing::Span::none(),
            trace_parent: None,
            response_id: None,
            state,
            started: Instant::now(),
            started_at: SystemTime::now(),
            endpoint,
            of_record: false,
            attribution: Attribution::default(),
            generation_id,
            model: "unknown".into(),
            key: None,
            key_id: None,
            team: None,
            identity: None,
            spend: None,
            provider: None,
            upstream_model: None,
            served_model: None,
            reports: Vec::new(),
            finish_reason: None,
            status: 200,
            attempts: 0,
            usage: None,
            cost: None,
            usage_anomaly: None,
            settled_nanos: None,
            keep_content: false,
            input_content: None,
            output_content: None,
            stream: false,
            upstream_time: std::time::Duration::ZERO,
            time_to_first_token: None,
            outcome: None,
            fitted_max_tokens: None,
            cache_directives: crate::cache::Directives::default(),
            cache: None,
        }
    }
}

impl Access {
    /// What `model` may report as usage for this request: checked against its reservation's
    /// bounds (see [`crate::budgets::bounds`]).
    pub fn usage_bounds(&self, model: &ModelConfig) -> UsageBounds {
        match &self.spend {
            Some(plan) => plan.usage_bounds(model),
            None => RequestBounds::default().usage_bounds(model, MAX_NANOS),
        }
    }

    /// Continues the client's W3C trace (`traceparent`) in this request's span.
    pub fn continue_trace(&mut self, headers: &http::HeaderMap) {
        // Read only by the span, which exists only when traces are exported.
        if !switchboard_telemetry::exporting() {
            return;
        }
        self.trace_parent = Some(super::traces::extract(headers));
    }

    /// The GenAI operation name of the endpoint.
    fn operation(&self) -> &'static str {
        match self.endpoint {
            "embeddings" => "embeddings",
            "completions" => "text_completion",
            _ => "chat",
        }
    }

    /// Starts the request's span, named `{operation} {model}` as the GenAI conventions ask.
    pub fn start_span(&mut self, model: &str) {
        if !self.span.is_none() || !switchboard_telemetry::exporting() {
            return;
        }
        let operation = self.operation();
        let span = tracing::info_span!(
            target: switchboard_telemetry::TARGET,
            "request",
            otel.name = %format!("{operation} {model}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = operation,
            gen_ai.provider.name = tracing::field::Empty,
            gen_ai.request.model = model,
            gen_ai.request.max_tokens = tracing::field::Empty,
            gen_ai.request.temperature = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.response.id = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            switchboard.generation_id = %self.generation_id,
            switchboard.api_key = tracing::field::Empty,
            switchboard.team = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
            switchboard.identity.issuer = tracing::field::Empty,
            switchboard.model = tracing::field::Empty,
            switchboard.cost_usd = tracing::field::Empty,
            switchboard.attempts = tracing::field::Empty,
            switchboard.fallbacks = tracing::field::Empty,
            switchboard.streamed = tracing::field::Empty,
            gen_ai.input.messages = tracing::field::Empty,
            gen_ai.output.messages = tracing::field::Empty,
        );
        if let Some(parent) = self.trace_parent.take() {
            super::traces::set_parent(&span, parent);
        }
        self.span = span;
    }

    /// Writes what is known about the request onto its span (called once, when it ends).
    fn record_span(&mut self) {
        if !switchboard_telemetry::exporting() {
            return;
        }
        if self.span.is_none() {
            let model = self.model.clone();
            self.start_span(&model);
        }
        let s = &self.span;
        let model = self.served_model.as_deref().unwrap_or(&self.model);
        s.record("switchboard.model", model);
        if let Some(p) = &self.provider {
            s.record("gen_ai.provider.name", p.as_str());
        }
        if let Some(m) = &self.upstream_model {
            s.record("gen_ai.response.model", m.as_str());
        }
        if let Some(id) = &self.response_id {
            s.record("gen_ai.response.id", id.as_str());
        }
        if let Some(f) = &self.finish_reason {
            s.record("gen_ai.response.finish_reasons", f.as_str());
        }
        if let Some(u) = &self.usage {
            s.record("gen_ai.usage.input_tokens", u.prompt_tokens);
            s.record("gen_ai.usage.output_tokens", u.completion_tokens);
        }
        if let Some(c) = &self.cost {
            s.record("switchboard.cost_usd", c.to_string().as_str());
        }
        if let Some(k) = &self.key {
            s.record("switchboard.api_key", k.as_str());
        }
        if let Some(t) = &self.team {
            s.record("switchboard.team", t.as_str());
        }
        if let Some(i) = &self.identity {
            s.record("enduser.id", i.subject.as_str());
            s.record("switchboard.identity.issuer", i.issuer.as_str());
        }
        s.record("switchboard.attempts", self.attempts);
        s.record("switchboard.fallbacks", self.attempts.saturating_sub(1));
        s.record("switchboard.streamed", self.stream);
        s.record("http.response.status_code", self.status);
        match (&self.outcome, self.status) {
            (_, s_) if s_ >= 400 => {
                s.record("otel.status_code", "ERROR");
                s.record("error.type", self.outcome.as_deref().unwrap_or("error"));
            }
            (Some(o), _) => {
                s.record("otel.status_code", "ERROR");
                s.record("error.type", o.as_str());
            }
            _ => {}
        }
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Drop for Access {
    fn drop(&mut self) {
        if crate::panics::request_panicked() {
            self.status = 500;
            self.outcome = Some("panic".into());
        } else if self.status == 200
            && self.outcome.is_none()
            && self.cost.is_none()
            && self.state.cutting()
        {
            // Dropped unanswered because the drain timeout closed its connection.
            self.status = 503;
            self.outcome = Some("drain_cut".into());
        }
        let elapsed = self.started.elapsed();
        self.record_span();
        self.note_usage_anomaly();
        self.settle();
        self.count(elapsed);
        self.log(elapsed);
        // Last: it moves fields out of the record.
        self.keep_record(elapsed);
    }
}

impl Access {
    /// Settles whatever happened: the cost of what was served (zero on failure) and the tokens
    /// used; releases the rest of the reservation.
    fn settle(&mut self) {
        let Some(plan) = self.spend.take() else {
            return;
        };
        let m = &self.state.metrics;
        let cost = self.cost.unwrap_or_default();
        let tokens = self.usage.map_or(0, |u| u.total_tokens());
        // What the ledger records: never above the reservation.
        let nanos = to_nanos(cost).clamp(0, plan.worst_case);
        self.settled_nanos = Some(nanos);
        let (settlement, gauges) = settlement_and_gauges(&plan, nanos, tokens);
        self.state.settler.submit(settlement, gauges);
        m.reservations_outstanding.dec();
        if nanos > 0 {
            m.spend_usd
                .with_label_values(&[
                    self.key.as_deref().unwrap_or("-"),
                    self.team.as_deref().unwrap_or("-"),
                    self.served_model.as_deref().unwrap_or(&self.model),
                    self.provider.as_deref().unwrap_or("-"),
                ])
                .inc_by(u64::try_from(nanos).unwrap_or(0));
        }
    }

    /// An upstream's unusable usage report: a warning and its metric.
    fn note_usage_anomaly(&self) {
        let Some(anomaly) = self.usage_anomaly else {
            return;
        };
        let provider = self.provider.as_deref().unwrap_or("-");
        self.state
            .metrics
            .usage_anomalies
            .with_label_values(&[provider, anomaly.kind.label()])
            .inc();
        tracing::warn!(
            generation_id = %self.generation_id,
            provider,
            model = %self.model,
            anomaly = %anomaly,
            cost = %self.cost.unwrap_or_default(),
            "the upstream's usage report is unusable; billed at the request's worst case"
        );
    }

    /// Request, GenAI, overhead and token metrics.
    fn count(&self, elapsed: std::time::Duration) {
        let m = &self.state.metrics;
        let status = self.status.to_string();
        m.requests
            .with_label_values(&[self.endpoint, &self.model, &status])
            .inc();
        m.request_duration
            .with_label_values(&[self.endpoint, &self.model])
            .observe(elapsed.as_secs_f64());
        let operation = self.operation();
        if matches!(
            self.endpoint,
            "chat" | "embeddings" | "messages" | "responses" | "completions"
        ) {
            let provider = self.provider.as_deref().unwrap_or("-");
            let error_type = if self.status < 400 {
                String::new()
            } else {
                self.status.to_string()
            };
            m.gen_ai_operation_duration
                .with_label_values(&[operation, provider, &self.model, &error_type])
                .observe(elapsed.as_secs_f64());
            if let Some(u) = &self.usage {
                for (kind, n) in [("input", u.prompt_tokens), ("output", u.completion_tokens)] {
                    m.gen_ai_token_usage
                        .with_label_values(&[operation, provider, &self.model, kind])
                        .observe(n as f64);
                }
            }
            if !self.stream && self.status < 400 {
                m.gateway_overhead
                    .with_label_values(&[self.endpoint])
                    .observe(elapsed.saturating_sub(self.upstream_time).as_secs_f64());
            }
            if let (Some(ttft), Some(u), Some(p)) =
                (self.time_to_first_token, &self.usage, &self.provider)
                && u.completion_tokens > 1
            {
                m.time_per_output_token
                    .with_label_values(&[&self.model, p])
                    .observe(
                        elapsed.saturating_sub(ttft).as_secs_f64()
                            / (u.completion_tokens - 1) as f64,
                    );
            }
        }
        if let (Some(u), Some(p)) = (&self.usage, &self.provider) {
            m.tokens
                .with_label_values(&[&self.model, p, "input"])
                .inc_by(u.prompt_tokens);
            m.tokens
                .with_label_values(&[&self.model, p, "output"])
                .inc_by(u.completion_tokens);
        }
    }

    /// Keeps the record of a generation request whose caller is known: in this replica's
    /// generation store (and Redis, with the Redis ledger) for `/api/v1/generation`, and in the
    /// usage store.
    fn keep_record(&mut self, elapsed: std::time::Duration) {
        if !self.of_record {
            return;
        }
        let Some(key_id) = self.key_id.take() else {
            return;
        };
        let attribution = std::mem::take(&mut self.attribution);
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let record = Arc::new(UsageRecord {
            id: self.generation_id.clone(),
            created_at_ms: self
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            endpoint: self.endpoint.to_string(),
            key_id,
            team: self.team.clone(),
            user: attribution.user,
            tags: attribution.tags,
            app: attribution.app,
            caller_issuer: self.identity.as_ref().map(|i| i.issuer.clone()),
            caller_subject: self.identity.as_ref().map(|i| i.subject.clone()),
            model: std::mem::take(&mut self.model),
            served_model: self.served_model.take(),
            provider: self.provider.clone(),
            upstream_model: self.upstream_model.take(),
            attempts: std::mem::take(&mut self.reports),
            tokens: self.usage.unwrap_or_default(),
            // The ledger's amount when it settled one, so the store and the ledger agree.
            cost_nanos: self
                .settled_nanos
                .unwrap_or_else(|| self.cost.map_or(0, to_nanos)),
            status: self.status,
            error_code: self.outcome.clone(),
            finish_reason: self.finish_reason.take(),
            usage_anomaly: self.usage_anomaly.map(|a| a.to_string()),
            input: self.input_content.take().map(content::bounded),
            output: self.output_content.take().map(content::bounded),
            streamed: self.stream,
            latency_ms: millis(elapsed),
            ttft_ms: self.time_to_first_token.map(millis),
            cache_hit: self.cache.map(|c| c.mode.to_string()),
            cache_saved_nanos: self.cache.map_or(0, |c| c.saved_nanos),
        });
        self.state.generations.insert(record.clone());
        if let Some(usage) = self.state.usage.get() {
            usage.submit(record.clone());
        }
        // Shared with the other replicas through the ledger's store, when it has one
        // (rendered and serialised only then: this runs on every request).
        if self.state.settler.ledger().shares_generations() {
            let state = self.state.clone();
            tokio::spawn(async move {
                let Ok(json) = serde_json::to_string(&Stored::from(&*record)) else {
                    return;
                };
                let ttl = state.generations.ttl();
                let id = &record.id;
                if let Err(e) = state.settler.ledger().put_generation(id, &json, ttl).await {
                    tracing::debug!(generation_id = %id, "generation record not shared: {e}");
                }
            });
        }
    }

    /// The access-log line.
    fn log(&self, elapsed: std::time::Duration) {
        tracing::info!(
            target: "switchboard::access",
            generation_id = %self.generation_id,
            endpoint = self.endpoint,
            key = self.key.as_deref().unwrap_or("-"),
            issuer = self.identity.as_ref().map_or("-", |i| i.issuer.as_str()),
            subject = self.identity.as_ref().map_or("-", |i| i.subject.as_str()),
            pod = self.identity.as_ref().and_then(|i| i.pod.as_deref()).unwrap_or("-"),
            model = %self.model,
            provider = self.provider.as_deref().unwrap_or("-"),
            status = self.status,
            stream = self.stream,
            attempts = self.attempts,
            prompt_tokens = self.usage.map_or(0, |u| u.prompt_tokens),
            completion_tokens = self.usage.map_or(0, |u| u.completion_tokens),
            cost = %self.cost.unwrap_or_default(),
            usage_anomaly = self.usage_anomaly.map(|a| a.to_string()),
            latency_ms = elapsed.as_millis() as u64,
            outcome = self.outcome.as_deref().unwrap_or("ok"),
            fitted_max_tokens = %self.fitted_max_tokens.map_or("-".into(), |n| n.to_string()),
            cache = self.cache.map_or("-", |c| c.mode),
            "request"
        );
    }
}
