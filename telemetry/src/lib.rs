//! Telemetry shared by Switchboard's processes (router and operator): logging with a live filter
//! ([`logging`]), OpenTelemetry trace export over OTLP ([`otlp`]), and Prometheus metrics made and
//! registered in one call ([`metrics`]). What each process measures stays in that process.

pub mod fields;
pub mod logging;
pub mod metrics;
pub mod otlp;

pub use logging::{LogFormat, LogLevel, LogWriter};
pub use otlp::{OtlpOptions, exporting};

/// The tracing target of exported spans (requests, upstream attempts, operator writes). It stays
/// enabled whatever the log filter says, so turning logs down never turns tracing off, and it is
/// kept out of log lines.
pub const TARGET: &str = "switchboard::trace";

/// A process's telemetry once installed: the global subscriber (logs, and spans when exported)
/// and the OTLP exporter. Hold it for the life of the process; [`Telemetry::shutdown`] at exit
/// exports the spans still buffered, and dropping it writes out the queued log lines.
pub struct Telemetry {
    /// The live log filter, for a process that serves it (the router's `/loglevel`).
    pub log_level: Option<LogLevel>,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    _log_writer: LogWriter,
}

/// Installs logging (`format`, `filter`) and, when an OTLP endpoint is configured, trace export.
/// Must run inside the Tokio runtime.
pub fn init(export: &OtlpOptions, format: LogFormat, filter: &str) -> anyhow::Result<Telemetry> {
    let traces = otlp::enabled(export)
        .then(|| otlp::tracer_provider(export))
        .transpose()?;
    let (log_level, log_writer) = logging::init(format, filter, traces.as_ref());
    Ok(Telemetry {
        log_level: Some(log_level),
        traces,
        _log_writer: log_writer,
    })
}

impl Telemetry {
    /// Exports what is still buffered, then writes out the queued log lines.
    pub async fn shutdown(self) {
        if let Some(t) = self.traces {
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
    }
}
