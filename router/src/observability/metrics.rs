//! Prometheus metrics for the admin port. Labels are bounded: model labels are public model names
//! from the config (or `unknown`), never free-form client input.

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec};
use switchboard_telemetry::metrics::Registry;

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
    /// Spend by key, team, model and provider: counted in nano-dollars, exposed in USD.
    pub spend_usd: IntCounterVec,
    /// USD left in each budget's current window (spent and reserved subtracted), as of the last
    /// admission or settlement.
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
    /// Upstream usage reports that could not be used (billed at the worst case), by provider and
    /// kind.
    pub usage_anomalies: IntCounterVec,
    /// Client connections open, by listener (`api`, `admin`).
    pub connections_open: IntGaugeVec,
    /// Client connections refused at the connection limit, by listener.
    pub connections_rejected: IntCounterVec,
    /// Client connections closed by the router for idling or dawdling, by listener and reason
    /// (`idle_timeout`, `header_timeout`).
    pub connections_closed: IntCounterVec,
    /// Usage records by stage: `queued`, `written`, `duplicate`, `spilled`, `replayed`,
    /// `dropped` (see [`crate::usage::Counters`]).
    pub usage_records: IntCounterVec,
    /// 1 while the usage store takes writes, 0 while records spill.
    pub usage_store_up: IntGauge,
    /// Bytes of usage records waiting in the spill file.
    pub usage_spill_bytes: IntGauge,
    /// Usage records waiting in the writer's channel.
    pub usage_queue_depth: IntGauge,
    /// Seconds to store one batch of usage records, by store (`sqlite`, `postgres`).
    pub usage_batch_seconds: HistogramVec,
    /// Callers with a token, by outcome (`ok`, or why it was refused).
    pub token_authentications: IntCounterVec,
    /// Fetches of issuers' signing keys, by issuer and outcome (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// The response cache's counters.
    cache: crate::cache::CacheMetrics,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let genai = |last| {
            [
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                last,
            ]
        };
        let latency_buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        Metrics {
            requests: r.int_counter_vec(
                "switchboard_requests_total",
                "Client requests by endpoint, model and status",
                &["endpoint", "model", "status"],
            ),
            request_duration: r.histogram_vec(
                "switchboard_request_duration_seconds",
                "Client request latency, to the last byte",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 120.0,
                ],
                &["endpoint", "model"],
            ),
            upstream_attempts: r.int_counter_vec(
                "switchboard_upstream_attempts_total",
                "Upstream attempts by provider and outcome",
                &["provider", "outcome"],
            ),
            tokens: r.int_counter_vec(
                "switchboard_tokens_total",
                "Tokens by model, provider and kind",
                &["model", "provider", "kind"],
            ),
            config_version: r.int_gauge(
                "switchboard_config_version",
                "Version of the router config snapshot being served",
            ),
            config_refused: r.int_counter_vec(
                "switchboard_config_refused_total",
                "Config snapshots refused (decode, invalid, older, build); the last good one keeps serving",
                &["reason"],
            ),
            spend_usd: r.scaled_counter_vec(
                "switchboard_spend_usd_total",
                "USD spent by key, team, model and provider (counted exactly in nano-dollars)",
                &["key", "team", "model", "provider"],
                1_000_000_000,
            ),
            budget_remaining_usd: r.gauge_vec(
                "switchboard_budget_remaining_usd",
                "USD left in the budget's current window (spent and reserved subtracted)",
                &["budget"],
            ),
            budget_used_ratio: r.gauge_vec(
                "switchboard_budget_used_ratio",
                "Spent plus reserved over the limit, per budget, as of the last admitted request",
                &["budget"],
            ),
            budget_soft_limit_ratio: r.gauge_vec(
                "switchboard_budget_soft_limit_ratio",
                "A budget's softLimitPercent as a ratio (absent when none is set)",
                &["budget"],
            ),
            gen_ai_token_usage: r.histogram_vec(
                "gen_ai_client_token_usage",
                "Tokens used per request (OpenTelemetry GenAI semantic conventions)",
                vec![
                    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0,
                    1048576.0, 4194304.0, 16777216.0, 67108864.0,
                ],
                &genai("gen_ai_token_type"),
            ),
            gen_ai_operation_duration: r.histogram_vec(
                "gen_ai_client_operation_duration_seconds",
                "Duration of GenAI operations (OpenTelemetry GenAI semantic conventions)",
                vec![
                    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                    81.92,
                ],
                &genai("error_type"),
            ),
            time_to_first_token: r.histogram_vec(
                "switchboard_time_to_first_token_seconds",
                "Time from the request to the first content sent to the client (streams)",
                latency_buckets,
                &["model", "provider"],
            ),
            time_per_output_token: r.histogram_vec(
                "switchboard_time_per_output_token_seconds",
                "Time per output token after the first (streams)",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
                &["model", "provider"],
            ),
            open_streams: r.int_gauge("switchboard_open_streams", "Streams being relayed now"),
            fallbacks: r.int_counter_vec(
                "switchboard_fallbacks_total",
                "Requests served after the first target or model tried failed",
                &["model"],
            ),
            retries: r.int_counter_vec(
                "switchboard_retries_total",
                "Extra passes over a route's targets after all failed transiently",
                &["model"],
            ),
            gateway_overhead: r.histogram_vec(
                "switchboard_gateway_overhead_seconds",
                "Time spent in the router itself: total (or, for streams, time to first content) \
                 minus time waiting on upstreams",
                vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                ],
                &["endpoint"],
            ),
            reservations_outstanding: r.int_gauge(
                "switchboard_reservations_outstanding",
                "Ledger reservations held by requests in flight on this replica",
            ),
            ledger_errors: r.int_counter_vec(
                "switchboard_ledger_errors_total",
                "Failed ledger operations",
                &["op"],
            ),
            limit_rejections: r.int_counter_vec(
                "switchboard_limit_rejections_total",
                "Requests refused by a budget or a key rate limit",
                &["reason"],
            ),
            usage_anomalies: r.int_counter_vec(
                "switchboard_usage_anomalies_total",
                "Upstream usage reports that were missing, malformed or beyond what the request \
                 could use; each was billed at the request's worst case",
                &["provider", "kind"],
            ),
            connections_open: r.int_gauge_vec(
                "switchboard_connections_open",
                "Client connections open",
                &["listener"],
            ),
            connections_rejected: r.int_counter_vec(
                "switchboard_connections_rejected_total",
                "Client connections refused at the connection limit (--max-connections)",
                &["listener"],
            ),
            connections_closed: r.int_counter_vec(
                "switchboard_connections_closed_total",
                "Client connections the router closed: idle past --idle-timeout, or a request \
                 head not complete within --header-timeout",
                &["listener", "reason"],
            ),
            usage_records: r.int_counter_vec(
                "switchboard_usage_records_total",
                "Usage records by stage: queued, written, duplicate (already stored), spilled, \
                 replayed (from the spill file), dropped (lost)",
                &["stage"],
            ),
            usage_store_up: r.int_gauge(
                "switchboard_usage_store_up",
                "1 while the usage store takes writes, 0 while usage records spill to disk",
            ),
            usage_spill_bytes: r.int_gauge(
                "switchboard_usage_spill_bytes",
                "Bytes of usage records waiting in the spill file",
            ),
            usage_queue_depth: r.int_gauge(
                "switchboard_usage_queue_depth",
                "Usage records waiting in the writer's channel",
            ),
            usage_batch_seconds: r.histogram_vec(
                "switchboard_usage_batch_seconds",
                "Time to store one batch of usage records",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                &["store"],
            ),
            token_authentications: r.int_counter_vec(
                "switchboard_token_authentications_total",
                "Callers presenting a token (JWT), by outcome: ok, or why it was refused",
                &["outcome"],
            ),
            jwks_fetches: r.int_counter_vec(
                "switchboard_jwks_fetches_total",
                "Fetches of trusted issuers' signing keys, by issuer and outcome",
                &["issuer", "outcome"],
            ),
            cache: crate::cache::CacheMetrics {
                hits: r.int_counter_vec(
                    "switchboard_cache_hits_total",
                    "Requests answered from the response cache, by route and mode",
                    &["route", "mode"],
                ),
                misses: r.int_counter_vec(
                    "switchboard_cache_misses_total",
                    "Requests looked up in the response cache and not found, by route and mode",
                    &["route", "mode"],
                ),
                evictions: r.int_counter_vec(
                    "switchboard_cache_evictions_total",
                    "Cached answers (in process) and semantic index points pushed out for room, by \
                     route and mode",
                    &["route", "mode"],
                ),
                saved_usd: r.scaled_counter_vec(
                    "switchboard_cache_saved_usd_total",
                    "USD that cache hits did not spend (what the answers cost when made), by route \
                     and mode",
                    &["route", "mode"],
                    1_000_000_000,
                ),
                errors: r.int_counter_vec(
                    "switchboard_cache_errors_total",
                    "Response cache backend operations that failed (served as misses), by backend \
                     and operation",
                    &["backend", "op"],
                ),
            },
            registry: r,
        }
    }

    /// The response cache's counters.
    pub fn cache_metrics(&self) -> crate::cache::CacheMetrics {
        self.cache.clone()
    }

    /// The budget gauges the settler refreshes once a settlement is recorded.
    pub fn budget_gauges(&self) -> crate::budgets::settler::Gauges {
        crate::budgets::settler::Gauges {
            remaining_usd: self.budget_remaining_usd.clone(),
            used_ratio: self.budget_used_ratio.clone(),
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
