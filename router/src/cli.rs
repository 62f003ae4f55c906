//! Command-line flags. Every flag can also be set by an environment variable `SWITCHBOARD_<FLAG>`
//! (e.g. `SWITCHBOARD_MANIFESTS`, `SWITCHBOARD_LISTEN`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// Switchboard router: an OpenAI-compatible LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "switchboard-router", version, about)]
pub struct Cli {
    /// Manifest file or directory (Provider, ModelRoute, ApiKey, Budget and Secret objects, `---`
    /// separated). May be given more than once; in the environment, comma-separated.
    #[arg(
        long = "manifests",
        env = "SWITCHBOARD_MANIFESTS",
        value_delimiter = ',',
        required = true
    )]
    pub manifests: Vec<PathBuf>,
    /// Address of the client API.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin API (/healthz, /readyz, /metrics, /config).
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
    /// How long in-flight requests may run after SIGTERM (e.g. `30s`).
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
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

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}
