//! Logging: `tracing` to stderr as text or JSON (one object per line), with a filter that can be
//! changed while the router runs (`PUT /loglevel` on the admin port). Access-log lines use the
//! target `switchboard::access`. Prompts, responses and keys are never logged.

use std::{
    io::IsTerminal,
    sync::{Mutex, PoisonError},
};

use tracing_subscriber::{
    EnvFilter, Layer, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

use crate::cli::LogFormat;

/// The live log filter.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
    tracing: bool,
}

/// The filter actually installed: the user's, plus request spans when traces are exported.
fn effective(filter: &str, tracing: bool) -> Result<EnvFilter, String> {
    let full = if tracing {
        format!("{filter},{}=info", crate::telemetry::TARGET)
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

/// Installs the global subscriber; an invalid `filter` falls back to `info`. With `traces`, spans
/// also go to OpenTelemetry.
pub fn init(
    format: LogFormat,
    filter: &str,
    traces: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) -> LogLevel {
    let tracing = traces.is_some();
    let (filter, current) = match effective(filter, tracing) {
        Ok(f) => (f, filter.to_string()),
        Err(_) => (
            effective("info", tracing).expect("valid"),
            "info".to_string(),
        ),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Request and attempt spans (which carry prompts when content recording is on) go to traces
    // only, never into log lines.
    let output = output.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() != crate::telemetry::TARGET
    }));
    let otel = traces.map(crate::telemetry::layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(otel)
        .init();
    LogLevel {
        handle,
        current: Mutex::new(current),
        tracing,
    }
}
