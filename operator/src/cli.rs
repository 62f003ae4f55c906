//! Command-line flags. Every flag can also be set by an environment variable
//! `SWITCHBOARD_OPERATOR_<FLAG>`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use switchboard_telemetry::LogFormat;

/// Switchboard operator: compiles Provider, ModelRoute, ApiKey and Budget objects into the router
/// snapshot, pushes it to routers, and writes status.
#[derive(Debug, Parser)]
#[command(name = "switchboard-operator", version, about)]
pub struct Cli {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the config push server (`GET /v1/config/stream`).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_LISTEN",
        default_value = "0.0.0.0:8081"
    )]
    pub listen: SocketAddr,
    /// Address of the admin server (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_ADMIN_LISTEN",
        default_value = "0.0.0.0:9091"
    )]
    pub admin_listen: SocketAddr,
    /// File holding the bearer token routers must present (e.g. a mounted Secret).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_ROUTER_TOKEN_FILE")]
    pub router_token_file: Option<PathBuf>,
    /// The bearer token routers must present (prefer the file or the environment variable; a
    /// flag value is visible in the process list).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_ROUTER_TOKEN",
        hide_env_values = true
    )]
    pub router_token: Option<String>,
    /// Secret the snapshot manifest is stored in, `NAMESPACE/NAME` (key `manifest.json`); the
    /// shards go in `NAME-0`, `NAME-1`, … of the same namespace.
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_SNAPSHOT_SECRET",
        default_value = "switchboard-system/switchboard-config"
    )]
    pub snapshot_secret: String,
    /// Namespace of the leader-election Lease (default: the snapshot Secret's namespace).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_LEASE_NAME",
        default_value = "switchboard-operator"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease and in Events (default: `$POD_NAME`, else the
    /// hostname, else a random id).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// How long a Lease is valid without renewal.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Quiet period after a change before compiling, so a burst of changes compiles once.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_DEBOUNCE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,
    /// Most Secrets the stored snapshot may be sharded over (`<snapshot-secret>-0` …); the chart
    /// mounts as many into routers (`operator.snapshotMaxShards`).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_SNAPSHOT_MAX_SHARDS",
        default_value_t = 32
    )]
    pub snapshot_max_shards: usize,
    /// Status and Event writes per second the leader makes at most (a first round over many
    /// objects is spread out; changes reach routers without waiting for them).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_STATUS_QPS", default_value_t = 100.0)]
    pub status_qps: f64,
    /// Status and Event writes the leader may make at once after a quiet spell.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_STATUS_BURST", default_value_t = 200)]
    pub status_burst: u32,
    /// Redis the routers share as their spend ledger (`redis://host:6379/0`, the routers'
    /// `--redis-url`). Spend is written into Budget and ApiKey status only with it.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// How often the leader reads spend from the ledger (besides reads for new Budgets and
    /// ApiKeys).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_SPEND_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub spend_interval: Duration,
    /// OTLP endpoint for traces of reconciles (e.g. `http://otel-collector:4318`); the standard
    /// `OTEL_EXPORTER_OTLP_*` variables work as well. Unset: no traces are exported.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol: `http/protobuf` (default) or `grpc`.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_OTLP_PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// Apply this release's CRDs by server-side apply at start, before watching (needs `get`,
    /// `create` and `patch` on the four CRDs; the chart grants them with `operator.applyCRDs`).
    /// Keeps CRDs current across `helm upgrade`; never replaces a CRD a newer operator applied.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_APPLY_CRDS")]
    pub apply_crds: bool,
    /// Log format.
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "SWITCHBOARD_OPERATOR_LOG", default_value = "info")]
    pub log: String,
}

/// Splits `NAMESPACE/NAME`.
pub fn split_namespaced(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}
