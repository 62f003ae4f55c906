//! Telemetry shared by Switchboard's processes (router and operator): logging with a live filter
//! ([`logging`]), OpenTelemetry trace export over OTLP ([`otlp`]), and Prometheus metrics made and
//! registered in one call ([`metrics`]). What each process measures stays in that process.

pub mod logging;
pub mod metrics;
pub mod otlp;

pub use logging::{LogFormat, LogLevel, LogWriter};
pub use otlp::{OtlpOptions, exporting};

/// The tracing target of exported spans (requests, upstream attempts, operator writes). It stays
/// enabled whatever the log filter says, so turning logs down never turns tracing off, and it is
/// kept out of log lines.
pub const TARGET: &str = "switchboard::trace";
