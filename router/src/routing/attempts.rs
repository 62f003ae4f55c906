//! Walking a request's plan: the attempt loop shared by chat and embeddings.
//!
//! Retryable failures (connection, timeout, 408/409/425/429, 5xx, the provider's own 401/403/404)
//! move to the next target and count against the target's health; a client error from an
//! upstream moves to the next *model* if the request has one (OpenRouter's model fallback: any
//! error counts), else goes back to the client as is. After a pass over every model with at least
//! one transient failure, the route's `retries` allow further passes after a jittered exponential
//! backoff, skipping targets that are ejected or cooling down, all within the route's deadline.
//! The loop is driven by the handlers (`while let Some(..) = attempts.next().await`), which keeps
//! their futures `Send`.

use std::time::{Duration, Instant};

use rand::Rng;
use switchboard_api::snapshot::RetryConfig;

use super::{
    health::{InFlight, Tier},
    plan::{Candidate, Plan},
};
use crate::{
    error::{ApiError, AttemptReport, scrub},
    observability::access::Access,
    providers::{AttemptError, clients::ClientLease},
    state::AppState,
};

/// The message of an upstream error body (`error.message`, or the text itself).
fn upstream_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(500).collect())
}

/// What an attempt holds until it ends (its response read, or its stream closed): its place
/// under the provider's concurrency cap and the upstream client it is sent with.
pub struct Slot {
    _cap: InFlight,
    lease: ClientLease,
}

impl Slot {
    /// The upstream client to send this attempt with.
    pub fn client(&self) -> &reqwest::Client {
        self.lease.client()
    }
}

/// Walks a plan: see the module doc.
pub struct Attempts<'s, 'a> {
    state: &'s AppState,
    plan: Plan<'a>,
    model: usize,
    cand: usize,
    pass: u32,
    retry: RetryConfig,
    deadline: Option<Instant>,
    transient_in_pass: bool,
    reports: Vec<AttemptReport>,
    last: Option<(AttemptError, String)>,
    rate_limited: Vec<Option<Duration>>,
    deadline_hit: bool,
    started: Instant,
    span: tracing::Span,
}

impl<'s, 'a> Attempts<'s, 'a> {
    /// Starts walking `plan` under the primary route's retries and deadline.
    pub fn new(state: &'s AppState, plan: Plan<'a>) -> Self {
        let route = plan.models.first().map(|m| m.route);
        Attempts {
            state,
            retry: route.map(|r| r.retry.clone()).unwrap_or_default(),
            deadline: route
                .and_then(|r| r.deadline_ms)
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            plan,
            model: 0,
            cand: 0,
            pass: 0,
            transient_in_pass: false,
            reports: Vec::new(),
            last: None,
            rate_limited: Vec::new(),
            deadline_hit: false,
            started: Instant::now(),
            span: tracing::Span::none(),
        }
    }

    /// The span of the attempt in progress: run the upstream call in it
    /// (`.instrument(attempts.span())`) so the provider sees its trace context.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// `limit`, shortened to what is left of the request's deadline.
    pub fn remaining(&self, limit: Duration) -> Duration {
        match self.deadline {
            Some(d) => limit.min(d.saturating_duration_since(Instant::now())),
            None => limit,
        }
    }

    /// The next candidate with a concurrency slot, waiting out the backoff between passes;
    /// `None` when the plan, the retries or the deadline are exhausted.
    pub async fn next(&mut self, access: &mut Access) -> Option<(Candidate<'a>, Slot)> {
        loop {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.deadline_hit = true;
                return None;
            }
            if self.model >= self.plan.models.len() {
                if !self.transient_in_pass || self.pass >= self.retry.attempts {
                    return None;
                }
                self.start_pass(access).await;
                continue;
            }
            let candidates = &self.plan.models[self.model].candidates;
            let Some(c) = candidates.get(self.cand).cloned() else {
                self.model += 1;
                self.cand = 0;
                continue;
            };
            self.cand += 1;
            if !self.may_try(&c) {
                continue;
            }
            let provider = &c.provider.config;
            match self
                .state
                .health
                .try_acquire(c.provider.id(), provider.max_concurrent_requests)
            {
                Some(cap) => {
                    let slot = Slot {
                        _cap: cap,
                        lease: c.provider.clients.lease(),
                    };
                    access.attempts += 1;
                    self.started = Instant::now();
                    self.span = attempt_span(access, &c);
                    return Some((c, slot));
                }
                None => self.reports.push(AttemptReport {
                    provider: provider.name.clone(),
                    model: c.upstream_model.to_string(),
                    ok: false,
                    error_type: Some("capacity".into()),
                    status: None,
                    latency_ms: 0,
                }),
            }
        }
    }

    /// Starts another pass over the plan (a retry), after a jittered exponential backoff.
    async fn start_pass(&mut self, access: &Access) {
        self.pass += 1;
        self.state
            .metrics
            .retries
            .with_label_values(&[&access.model])
            .inc();
        self.model = 0;
        self.cand = 0;
        self.transient_in_pass = false;
        let cap = self
            .retry
            .backoff_ms
            .saturating_mul(1 << (self.pass - 1).min(20))
            .min(self.retry.max_backoff_ms);
        let wait = self.remaining(Duration::from_millis(rand::rng().random_range(0..=cap)));
        tokio::time::sleep(wait).await;
    }

    /// Whether `c` may be tried now: a probe only by the request that claims it, and on a retry
    /// pass nothing that is cooling down or ejected.
    fn may_try(&self, c: &Candidate<'_>) -> bool {
        let provider_id = c.provider.id();
        if c.tier == Tier::Probe
            && !self
                .state
                .health
                .claim_probe(provider_id, c.upstream_model, Instant::now())
        {
            // Another request is probing this target right now.
            return false;
        }
        if self.pass > 0 {
            let view =
                self.state
                    .health
                    .view_of(provider_id, c.upstream_model, Instant::now(), false);
            if view.cooling.is_some() || view.tier == Tier::Ejected {
                return false;
            }
        }
        true
    }

    /// Records the attempt on `cand` as the one that served: health (time to first token,
    /// output rate), metrics, and the access record.
    pub fn succeeded(
        &mut self,
        access: &mut Access,
        cand: &Candidate<'_>,
        ttft: Option<Duration>,
        tokens_per_second: Option<f64>,
    ) {
        let provider = &cand.provider.config.name;
        self.state.health.record_success(
            cand.provider.id(),
            cand.upstream_model,
            Instant::now(),
            ttft,
            tokens_per_second,
        );
        self.state
            .metrics
            .upstream_attempts
            .with_label_values(&[provider, "ok"])
            .inc();
        self.reports.push(AttemptReport {
            provider: provider.clone(),
            model: cand.upstream_model.to_string(),
            ok: true,
            error_type: None,
            status: Some(200),
            latency_ms: self.started.elapsed().as_millis() as u64,
        });
        access.upstream_time += self.started.elapsed();
        self.span.record("http.response.status_code", 200u16);
        self.span = tracing::Span::none();
        if self.reports.len() > 1 {
            self.state
                .metrics
                .fallbacks
                .with_label_values(&[&access.model])
                .inc();
        }
        access.provider = Some(provider.clone());
        access.upstream_model = Some(cand.upstream_model.to_string());
        access.served_model = Some(cand.public_model.to_string());
        access.reports = std::mem::take(&mut self.reports);
    }

    /// Records a failed attempt. `Err` when the failure must go to the client as is; `Ok` when
    /// the loop should go on.
    pub fn failed(
        &mut self,
        access: &mut Access,
        cand: &Candidate<'_>,
        e: AttemptError,
    ) -> Result<(), ApiError> {
        access.upstream_time += self.started.elapsed();
        let provider_name = cand.provider.config.name.clone();
        let secrets = cand.provider.secrets();
        let status = self.report_failure(access, cand, &e, &secrets);
        let raw = match &e {
            AttemptError::Status { body, .. } => scrub(body, &secrets),
            other => scrub(&other.to_string(), &secrets),
        };
        if e.is_retryable() {
            let retry_after = match &e {
                AttemptError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            self.state.health.record_failure(
                cand.provider.id(),
                cand.upstream_model,
                Instant::now(),
                retry_after,
            );
            if status == Some(429) {
                self.rate_limited.push(retry_after);
            }
            self.transient_in_pass = true;
            self.last = Some((e, raw));
            return Ok(());
        }
        // The upstream refused the request itself: another model may accept it, the same
        // model elsewhere would not.
        if self.model + 1 < self.plan.models.len() {
            self.model += 1;
            self.cand = 0;
            self.last = Some((e, raw));
            return Ok(());
        }
        access.reports = std::mem::take(&mut self.reports);
        Err(ApiError::UpstreamRejected {
            status: status
                .and_then(|s| http::StatusCode::from_u16(s).ok())
                .unwrap_or(http::StatusCode::BAD_REQUEST),
            message: upstream_message(&raw),
            provider: provider_name,
            raw,
        })
    }

    /// Counts, logs and reports a failed attempt on its span, the metrics and the attempt list;
    /// returns the upstream's status, if it answered one.
    fn report_failure(
        &mut self,
        access: &Access,
        cand: &Candidate<'_>,
        e: &AttemptError,
        secrets: &[&str],
    ) -> Option<u16> {
        let provider_name = &cand.provider.config.name;
        let label = e.label();
        let span = std::mem::replace(&mut self.span, tracing::Span::none());
        span.record("otel.status_code", "ERROR");
        span.record("error.type", label.as_str());
        if let AttemptError::Status { status, .. } = e {
            span.record("http.response.status_code", *status);
        }
        drop(span);
        self.state
            .metrics
            .upstream_attempts
            .with_label_values(&[provider_name, &label])
            .inc();
        tracing::warn!(
            generation_id = %access.generation_id,
            provider = %provider_name,
            model = cand.upstream_model,
            error = %scrub(&e.to_string(), secrets),
            "upstream attempt failed"
        );
        let status = match e {
            AttemptError::Status { status, .. } => Some(*status),
            _ => None,
        };
        self.reports.push(AttemptReport {
            provider: provider_name.clone(),
            model: cand.upstream_model.to_string(),
            ok: false,
            error_type: Some(label),
            status,
            latency_ms: self.started.elapsed().as_millis() as u64,
        });
        status
    }

    /// The error for the client once the loop ends without success.
    pub fn exhausted(&mut self, access: &mut Access) -> ApiError {
        let attempts = std::mem::take(&mut self.reports);
        access.reports = attempts.clone();
        let tried = attempts
            .iter()
            .filter(|a| a.error_type.as_deref() != Some("capacity"))
            .count();
        let Some((e, raw)) = self.last.take() else {
            return if self.deadline_hit {
                ApiError::AllAttemptsFailed {
                    message: "The request's deadline passed before any upstream answered".into(),
                    timed_out: true,
                    raw: None,
                    attempts,
                }
            } else {
                ApiError::NoEligibleProvider(
                    "Every provider for this model is at its concurrency limit".into(),
                )
            };
        };
        if !self.rate_limited.is_empty() && self.rate_limited.len() == tried {
            let retry_after = self
                .rate_limited
                .iter()
                .flatten()
                .min()
                .copied()
                .unwrap_or(Duration::from_secs(1));
            return ApiError::RateLimited {
                message: format!(
                    "Every provider is rate limiting this request: {}",
                    upstream_message(&raw)
                ),
                retry_after,
                attempts,
            };
        }
        if let (AttemptError::Status { status, .. }, false) = (&e, e.is_retryable()) {
            return ApiError::UpstreamRejected {
                status: http::StatusCode::from_u16(*status)
                    .unwrap_or(http::StatusCode::BAD_REQUEST),
                message: upstream_message(&raw),
                provider: attempts
                    .last()
                    .map(|a| a.provider.clone())
                    .unwrap_or_default(),
                raw,
            };
        }
        ApiError::AllAttemptsFailed {
            message: format!(
                "All {tried} upstream attempt(s) failed; the last one: {}",
                upstream_message(&raw)
            ),
            timed_out: self.deadline_hit || matches!(e, AttemptError::Timeout(_)),
            raw: Some(raw),
            attempts,
        }
    }
}

/// The client span of an attempt on `c`, a child of the request's span (none unless spans are
/// exported).
fn attempt_span(access: &Access, c: &Candidate<'_>) -> tracing::Span {
    if !switchboard_telemetry::exporting() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: switchboard_telemetry::TARGET,
        parent: &access.span,
        "attempt",
        otel.name = format!("chat {}", c.upstream_model).as_str(),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = c.provider.config.name.as_str(),
        gen_ai.request.model = c.upstream_model,
        error.type = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    )
}
