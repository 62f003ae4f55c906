//! Command-line flags. Every flag can also be set by an environment variable `SWITCHBOARD_<FLAG>`
//! (e.g. `SWITCHBOARD_MANIFESTS`, `SWITCHBOARD_LISTEN`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgGroup, Parser};
use switchboard_telemetry::LogFormat;

/// How replicas share counters in Redis (`--ledger-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerMode {
    /// Slices of each limit leased ahead of need; spend flushed in batches.
    Lease,
    /// Every reservation and settlement a Lua script.
    PerRequest,
}

/// Switchboard router: an OpenAI-compatible LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "switchboard-router", version, about)]
#[command(group(ArgGroup::new("config_source").required(true).args(["manifests", "operator_url"])))]
pub struct Cli {
    /// Manifest file or directory (Provider, ModelRoute, ApiKey, Budget and Secret objects, `---`
    /// separated). May be given more than once; in the environment, comma-separated. Exactly one
    /// of `--manifests` and `--operator-url` is required.
    #[arg(
        long = "manifests",
        env = "SWITCHBOARD_MANIFESTS",
        value_delimiter = ','
    )]
    pub manifests: Vec<PathBuf>,
    /// Base URL of the operator's config push server (e.g. `http://switchboard-operator:8081`):
    /// the router holds its config stream and serves each snapshot it sends.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_URL")]
    pub operator_url: Option<String>,
    /// File holding the bearer token the operator requires (else `SWITCHBOARD_OPERATOR_TOKEN`).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_TOKEN_FILE",
        requires = "operator_url"
    )]
    pub operator_token_file: Option<PathBuf>,
    /// The operator token itself; prefer the environment variable or the file (a flag value is
    /// visible in the process list).
    #[arg(
        long,
        env = "SWITCHBOARD_OPERATOR_TOKEN",
        hide_env_values = true,
        requires = "operator_url"
    )]
    pub operator_token: Option<String>,
    /// The snapshot Secret mounted as a file: served at start, before the operator answers, so
    /// routers start while the operator is down.
    #[arg(long, env = "SWITCHBOARD_SNAPSHOT_FILE", requires = "operator_url")]
    pub snapshot_file: Option<PathBuf>,
    /// Trust tokens (JWTs) from this OpenID Connect issuer, e.g. a cluster's ServiceAccount issuer
    /// or a company IdP; its keys are found by discovery (`<issuer>/.well-known/openid-configuration`).
    /// May be given more than once; in the environment, comma-separated. Standalone only: with
    /// the operator, its snapshot names the trusted issuers.
    #[arg(
        long = "trust-issuer",
        env = "SWITCHBOARD_TRUST_ISSUER",
        value_delimiter = ',',
        conflicts_with = "operator_url"
    )]
    pub trust_issuers: Vec<String>,
    /// Trust tokens from an issuer whose keys are read from a JSON Web Key Set file instead of
    /// fetched (air-gapped): `ISSUER=FILE`, e.g. `https://kubernetes.default.svc=/etc/sb/jwks.json`.
    /// Re-read on SIGHUP. May be given more than once.
    #[arg(
        long = "trust-issuer-jwks",
        env = "SWITCHBOARD_TRUST_ISSUER_JWKS",
        value_delimiter = ',',
        conflicts_with = "operator_url"
    )]
    pub trust_issuer_jwks: Vec<String>,
    /// Audiences a token may be issued for (its `aud` must name one). May be given more than once.
    #[arg(
        long = "token-audience",
        env = "SWITCHBOARD_TOKEN_AUDIENCE",
        value_delimiter = ',',
        default_value = "switchboard"
    )]
    pub token_audiences: Vec<String>,
    /// Address of the client API.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin API (/healthz, /readyz, /metrics, /config, /loglevel, /admin/v1).
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: SocketAddr,
    /// Namespace given to manifest objects that name none.
    #[arg(long, env = "SWITCHBOARD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SWITCHBOARD_MAX_REQUEST_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// How long in-flight requests may run after SIGTERM (e.g. `30s`). Streams still open then
    /// are cut: each ends with an error chunk, settled for what was relayed.
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Most time for a client's request head (both ports), once it starts arriving; also the
    /// grace before --min-body-rate applies.
    #[arg(long, env = "SWITCHBOARD_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Most time a client connection may stay open with no request in flight (keep-alive, or a
    /// new connection before its first request).
    #[arg(long, env = "SWITCHBOARD_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Least average rate of a request body, in bytes per second, once --header-timeout has
    /// passed; a slower body fails with 408. 0 disables.
    #[arg(long, env = "SWITCHBOARD_MIN_BODY_RATE", default_value_t = 1024)]
    pub min_body_rate: u64,
    /// Most client connections open on each port; more are answered 503 and closed
    /// (`switchboard_connections_rejected_total`). Keep it below the process's file limit.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Redis URL of the shared spend and rate-limit ledger (`redis://host:6379/0`). Required when
    /// more than one router replica serves the same keys; without it counters are in-process.
    #[arg(long, env = "SWITCHBOARD_REDIS_URL", conflicts_with = "state_file")]
    pub redis_url: Option<String>,
    /// How replicas share budgets and rate limits through `--redis-url`: `lease` (each replica
    /// takes slices of what remains ahead of need, admits and settles locally, and sends Redis
    /// one batch every 100 ms; docs/budgets.md) or `per-request` (two Lua round trips per
    /// request).
    #[arg(
        long,
        env = "SWITCHBOARD_LEDGER_MODE",
        value_enum,
        default_value = "lease"
    )]
    pub ledger_mode: LedgerMode,
    /// Accept a SIGHUP reload whose manifests drop every provider, route or API key being served
    /// (by default such a reload, the mark of an empty or truncated file, is refused).
    #[arg(long, env = "SWITCHBOARD_ALLOW_EMPTY_RELOAD")]
    pub allow_empty_reload: bool,
    /// How long stored Responses (`store: true`) are kept for `previous_response_id` and
    /// `GET /v1/responses/{id}` (e.g. `24h`). With `--redis-url` they live in that Redis.
    #[arg(long, env = "SWITCHBOARD_RESPONSE_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub response_ttl: Duration,
    /// Without Redis, how many bytes of stored Responses the process keeps (the oldest go first).
    #[arg(long, env = "SWITCHBOARD_RESPONSE_STORE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub response_store_bytes: usize,
    /// Without Redis, how many bytes of cached answers the process keeps (the least recently
    /// used go first; docs/caching.md). With `--redis-url` the answers live in that Redis.
    #[arg(long, env = "SWITCHBOARD_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub cache_bytes: u64,
    /// How many bytes this replica's semantic cache index may use (docs/caching.md).
    #[arg(long, env = "SWITCHBOARD_CACHE_INDEX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_index_bytes: u64,
    /// File the in-process ledger persists settled spend to, so a restart keeps it (standalone).
    #[arg(long, env = "SWITCHBOARD_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Directory of the router's local state: the default SQLite usage store and the usage
    /// spill file. Default: the directory of `--state-file`, else `$XDG_STATE_HOME/switchboard`,
    /// else `~/.local/state/switchboard`.
    #[arg(long, env = "SWITCHBOARD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where every generation request is recorded: `sqlite://PATH`, `postgres://…` (one database
    /// shared by every replica; `sslmode=require` for RDS or Cloud SQL), or `off`. Default:
    /// `sqlite://<state dir>/usage.db`.
    #[arg(long, env = "SWITCHBOARD_USAGE_STORE", hide_env_values = true)]
    pub usage_store: Option<String>,
    /// How long raw usage records are kept (`0`: forever). Daily rollups are kept longer.
    #[arg(long, env = "SWITCHBOARD_USAGE_RETENTION", default_value = "90d", value_parser = humantime::parse_duration)]
    pub usage_retention: Duration,
    /// How long the daily usage rollups behind the reports are kept (`0`: forever).
    #[arg(long, env = "SWITCHBOARD_USAGE_ROLLUP_RETENTION", default_value = "730d", value_parser = humantime::parse_duration)]
    pub usage_rollup_retention: Duration,
    /// File usage records spill to while the store is down, replayed when it answers and at
    /// start. Default: `<state dir>/usage-spill.jsonl`. One per router.
    #[arg(long, env = "SWITCHBOARD_USAGE_SPILL_FILE")]
    pub usage_spill_file: Option<PathBuf>,
    /// Largest size of the spill file, in bytes; past it records are dropped (an ERROR log, the
    /// `dropped` metric and its alert).
    #[arg(long, env = "SWITCHBOARD_USAGE_SPILL_MAX_BYTES", default_value_t = 1 << 30)]
    pub usage_spill_max_bytes: u64,
    /// File holding the admin bearer token. Without one, the admin listener's protected
    /// endpoints (`/config`, `/loglevel`, `/admin/v1/*`) answer only loopback peers.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Admit admin requests carrying an authenticating proxy's identity headers
    /// (`X-Auth-Request-Email`, `X-Forwarded-Email`, as oauth2-proxy sets them). Only when nothing
    /// but that proxy can reach the admin port.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TRUST_PROXY_HEADERS")]
    pub admin_trust_proxy_headers: bool,
    /// Require the admin token on `/metrics` too.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_PROTECT_METRICS",
        requires = "admin_token_file"
    )]
    pub admin_protect_metrics: bool,
    /// Requests in flight on one upstream HTTP client before another client (another connection
    /// to an HTTP/2 upstream) is opened. HTTP/2 servers should allow at least 100 streams per
    /// connection; lower it for an upstream that allows fewer, or long streams beyond its limit
    /// wait for a stream to end.
    #[arg(
        long,
        env = "SWITCHBOARD_UPSTREAM_REQUESTS_PER_CONNECTION",
        default_value_t = crate::providers::clients::REQUESTS_PER_CLIENT
    )]
    pub upstream_requests_per_connection: usize,
    /// Consecutive failures that eject an upstream target from routing.
    #[arg(long, env = "SWITCHBOARD_EJECT_AFTER_FAILURES", default_value_t = 5)]
    pub eject_after_failures: u32,
    /// First ejection time of a failing target (doubles on each further ejection, up to 5m).
    #[arg(long, env = "SWITCHBOARD_EJECTION_TIME", default_value = "5s", value_parser = humantime::parse_duration)]
    pub ejection_time: Duration,
    /// OTLP endpoint for traces (e.g. `http://otel-collector:4318`); the standard
    /// `OTEL_EXPORTER_OTLP_*` variables work as well. Unset: no traces are exported.
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Record prompts and completions on traces, as span events (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: they are never recorded otherwise.
    #[arg(long, env = "SWITCHBOARD_TRACE_CONTENT")]
    pub trace_content: bool,
    /// OTLP protocol: `http/protobuf` (default) or `grpc`.
    #[arg(long, env = "SWITCHBOARD_OTLP_PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// Log format.
    #[arg(
        long,
        env = "SWITCHBOARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `switchboard=debug`).
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info")]
    pub log: String,
}

impl Cli {
    /// The directory of local state (see `--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(dir) = self
            .state_file
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
        {
            return dir.to_path_buf();
        }
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        match (env("XDG_STATE_HOME"), env("HOME")) {
            (Some(state), _) => PathBuf::from(state).join("switchboard"),
            (None, Some(home)) => PathBuf::from(home).join(".local/state/switchboard"),
            (None, None) => PathBuf::from("switchboard-state"),
        }
    }

    /// The usage store's URL, or `None` with `--usage-store off`.
    pub fn usage_store_url(&self) -> Option<String> {
        match self.usage_store.as_deref().map(str::trim) {
            Some("off") => None,
            Some(url) if !url.is_empty() => Some(url.to_string()),
            _ => Some(format!(
                "sqlite://{}",
                self.state_dir().join("usage.db").display()
            )),
        }
    }

    /// The usage spill file.
    pub fn usage_spill_file(&self) -> PathBuf {
        self.usage_spill_file
            .clone()
            .unwrap_or_else(|| self.state_dir().join("usage-spill.jsonl"))
    }
}
