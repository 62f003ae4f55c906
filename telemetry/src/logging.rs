//! Logging: `tracing` to stderr as text or JSON (one object per line), with a filter that can be
//! changed while the process runs (the router's `PUT /loglevel` on its admin port). The router's
//! access-log lines use the target `switchboard::access`. Prompts, responses and keys are never
//! logged.
//!
//! Lines are written by a dedicated thread (`tracing_appender::non_blocking`), not by the request
//! workers: a slow stderr (a full pipe to the container runtime, a file under writeback) must not
//! stall requests. The queue holds 8,192 lines; when it is full, logging waits
//! rather than drops.

use std::{
    io::IsTerminal,
    sync::{Mutex, PoisonError},
};

use clap::ValueEnum;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

use crate::TARGET;

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The live log filter.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
    tracing: bool,
}

/// The log writer thread: hold it until the process ends; dropping it writes out what is queued.
pub type LogWriter = tracing_appender::non_blocking::WorkerGuard;

/// The filter actually installed: the user's, plus request spans when traces are exported.
fn effective(filter: &str, tracing: bool) -> Result<EnvFilter, String> {
    let full = if tracing {
        format!("{filter},{}=info", TARGET)
    } else {
        filter.to_string()
    };
    EnvFilter::try_new(full).map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

impl LogLevel {
    /// The filter in force (tracing `EnvFilter` syntax).
    pub fn get(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the filter, e.g. `debug` or `info,switchboard=debug`.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = effective(filter, self.tracing)?;
        self.handle.reload(parsed).map_err(|e| e.to_string())?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = filter.to_string();
        tracing::info!(filter, "log filter changed");
        Ok(())
    }
}

/// Log lines queued for the writer thread before a worker waits for it. The channel's slots are
/// allocated up front (tracing-appender's default of 128,000 cost 4 MB of idle memory); 8,192
/// lines are a third of a second of access logs at full load (about 23k requests/s), far longer
/// than a write to stderr takes.
const LOG_LINES_BUFFERED: usize = 8192;

/// Installs the global subscriber; an invalid `filter` falls back to `info`. With `traces`, spans
/// also go to OpenTelemetry.
pub fn init(
    format: LogFormat,
    filter: &str,
    traces: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) -> (LogLevel, LogWriter) {
    let tracing = traces.is_some();
    let (filter, current) = match effective(filter, tracing) {
        Ok(f) => (f, filter.to_string()),
        Err(_) => (
            effective("info", tracing).expect("valid"),
            "info".to_string(),
        ),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .thread_name("switchboard-log")
        .finish(std::io::stderr());
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(crate::fields::PlainFields)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
    };
    // Request and attempt spans (which carry prompts when content recording is on) go to traces
    // only, never into log lines.
    let output = output.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() != TARGET
    }));
    let otel = traces.map(crate::otlp::layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(otel)
        .init();
    let level = LogLevel {
        handle,
        current: Mutex::new(current),
        tracing,
    };
    (level, guard)
}
