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
    /// OpenTelemetry GenAI `gen_ai.client.token.usage`: tokens per request, by token type.
    pub gen_ai_token_usage: HistogramVec,
    /// OpenTelemetry GenAI `gen_ai.client.operation.duration`, seconds.
    pub gen_ai_operation_duration: HistogramVec,
    /// Time from the request to the first content byte of a stream.
    pub time_to_first_token: HistogramVec,
    /// Time per output token after the first, for streams.
    pub time_per_output_token: HistogramVec,
    /// Streams being relayed now.
    pub open_streams: IntGauge,
    /// Requests served by another target or model than the first one tried.
    pub fallbacks: IntCounterVec,
    /// Extra passes over a route's targets (`retries`).
    pub retries: IntCounterVec,
    /// Gateway overhead: time spent in the router, not waiting on upstreams.
    pub gateway_overhead: HistogramVec,
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
        let genai_labels = &[
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
        ];
        let gen_ai_token_usage = HistogramVec::new(
            HistogramOpts::new(
                "gen_ai_client_token_usage",
                "Tokens used per request (OpenTelemetry GenAI semantic conventions)",
            )
            .buckets(vec![
                1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
                4194304.0, 16777216.0, 67108864.0,
            ]),
            &[
                genai_labels[0],
                genai_labels[1],
                genai_labels[2],
                "gen_ai_token_type",
            ],
        )
        .expect("valid metric");
        let gen_ai_operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "gen_ai_client_operation_duration_seconds",
                "Duration of GenAI operations (OpenTelemetry GenAI semantic conventions)",
            )
            .buckets(vec![
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                81.92,
            ]),
            &[
                genai_labels[0],
                genai_labels[1],
                genai_labels[2],
                "error_type",
            ],
        )
        .expect("valid metric");
        let latency_buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let time_to_first_token = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_time_to_first_token_seconds",
                "Time from the request to the first content sent to the client (streams)",
            )
            .buckets(latency_buckets.clone()),
            &["model", "provider"],
        )
        .expect("valid metric");
        let time_per_output_token = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_time_per_output_token_seconds",
                "Time per output token after the first (streams)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["model", "provider"],
        )
        .expect("valid metric");
        let open_streams = IntGauge::new("switchboard_open_streams", "Streams being relayed now")
            .expect("valid metric");
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "switchboard_fallbacks_total",
                "Requests served after the first target or model tried failed",
            ),
            &["model"],
        )
        .expect("valid metric");
        let retries = IntCounterVec::new(
            Opts::new(
                "switchboard_retries_total",
                "Extra passes over a route's targets after all failed transiently",
            ),
            &["model"],
        )
        .expect("valid metric");
        let gateway_overhead = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_gateway_overhead_seconds",
                "Time spent in the router itself: total (or, for streams, time to first content) \
                 minus time waiting on upstreams",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
            &["endpoint"],
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
            Box::new(gen_ai_token_usage.clone()),
            Box::new(gen_ai_operation_duration.clone()),
            Box::new(time_to_first_token.clone()),
            Box::new(time_per_output_token.clone()),
            Box::new(open_streams.clone()),
            Box::new(fallbacks.clone()),
            Box::new(retries.clone()),
            Box::new(gateway_overhead.clone()),
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
            gen_ai_token_usage,
            gen_ai_operation_duration,
            time_to_first_token,
            time_per_output_token,
            open_streams,
            fallbacks,
            retries,
            gateway_overhead,
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
