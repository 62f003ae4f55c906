//! Prometheus metrics for the admin port. Labels are bounded: model labels are public model names
//! from the config (or `unknown`), never free-form client input.

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The router's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint, model and HTTP status.
    pub requests: IntCounterVec,
    /// Request latency by endpoint and model (whole request, including streams).
    pub request_duration: HistogramVec,
    /// Upstream attempts by provider and outcome (`ok` or an error label).
    pub upstream_attempts: IntCounterVec,
    /// Tokens by model, provider and kind (`input`, `output`).
    pub tokens: IntCounterVec,
    /// Version of the config snapshot being served.
    pub config_version: IntGauge,
    /// USD spent, by key, team, model and provider.
    pub spend_usd: CounterVec,
    /// USD left in each budget's current window, as of the last request it admitted.
    pub budget_remaining_usd: GaugeVec,
    /// Spent plus reserved over the limit, per budget (≥ softLimitPercent/100: soft limit reached;
    /// ≥ 1: exhausted, or exceeded for alert-only budgets).
    pub budget_used_ratio: GaugeVec,
    /// Budgets' soft limit as a ratio of the limit, for alert rules.
    pub budget_soft_limit_ratio: GaugeVec,
    /// Reservations held by requests in flight on this replica.
    pub reservations_outstanding: IntGauge,
    /// Ledger operations that failed, by operation.
    pub ledger_errors: IntCounterVec,
    /// Requests refused by a budget or a key limit, by reason.
    pub limit_rejections: IntCounterVec,
    /// Config snapshots refused (the last good one kept serving), by reason.
    pub config_refused: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "switchboard_requests_total",
                "Client requests by endpoint, model and status",
            ),
            &["endpoint", "model", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_request_duration_seconds",
                "Client request latency, to the last byte",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 120.0,
            ]),
            &["endpoint", "model"],
        )
        .expect("valid metric");
        let upstream_attempts = IntCounterVec::new(
            Opts::new(
                "switchboard_upstream_attempts_total",
                "Upstream attempts by provider and outcome",
            ),
            &["provider", "outcome"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new(
                "switchboard_tokens_total",
                "Tokens by model, provider and kind",
            ),
            &["model", "provider", "kind"],
        )
        .expect("valid metric");
        let config_version = IntGauge::new(
            "switchboard_config_version",
            "Version of the router config snapshot being served",
        )
        .expect("valid metric");
        let config_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_config_refused_total",
                "Config snapshots refused (decode, invalid, older, build); the last good one keeps serving",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let spend_usd = CounterVec::new(
            Opts::new(
                "switchboard_spend_usd_total",
                "USD spent by key, team, model and provider",
            ),
            &["key", "team", "model", "provider"],
        )
        .expect("valid metric");
        let budget_remaining_usd = GaugeVec::new(
            Opts::new(
                "switchboard_budget_remaining_usd",
                "USD left in the budget's current window (spent and reserved subtracted)",
            ),
            &["budget"],
        )
        .expect("valid metric");
        let budget_used_ratio = GaugeVec::new(
            Opts::new(
                "switchboard_budget_used_ratio",
                "Spent plus reserved over the limit, per budget, as of the last admitted request",
            ),
            &["budget"],
        )
        .expect("valid metric");
        let budget_soft_limit_ratio = GaugeVec::new(
            Opts::new(
                "switchboard_budget_soft_limit_ratio",
                "A budget's softLimitPercent as a ratio (absent when none is set)",
            ),
            &["budget"],
        )
        .expect("valid metric");
        let reservations_outstanding = IntGauge::new(
            "switchboard_reservations_outstanding",
            "Ledger reservations held by requests in flight on this replica",
        )
        .expect("valid metric");
        let ledger_errors = IntCounterVec::new(
            Opts::new(
                "switchboard_ledger_errors_total",
                "Failed ledger operations",
            ),
            &["op"],
        )
        .expect("valid metric");
        let limit_rejections = IntCounterVec::new(
            Opts::new(
                "switchboard_limit_rejections_total",
                "Requests refused by a budget or a key rate limit",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(upstream_attempts.clone()),
            Box::new(tokens.clone()),
            Box::new(config_version.clone()),
            Box::new(config_refused.clone()),
            Box::new(spend_usd.clone()),
            Box::new(budget_remaining_usd.clone()),
            Box::new(budget_used_ratio.clone()),
            Box::new(budget_soft_limit_ratio.clone()),
            Box::new(reservations_outstanding.clone()),
            Box::new(ledger_errors.clone()),
            Box::new(limit_rejections.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_attempts,
            tokens,
            config_version,
            config_refused,
            spend_usd,
            budget_remaining_usd,
            budget_used_ratio,
            budget_soft_limit_ratio,
            reservations_outstanding,
            ledger_errors,
            limit_rejections,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
