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
        let parsed = EnvFilter::try_new(filter)
            .map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
        self.handle.reload(parsed).map_err(|e| e.to_string())?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = filter.to_string();
        tracing::info!(filter, "log filter changed");
        Ok(())
    }
}

/// Installs the global subscriber; an invalid `filter` falls back to `info`.
pub fn init(format: LogFormat, filter: &str) -> LogLevel {
    let (filter, current) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, filter.to_string()),
        Err(_) => (EnvFilter::new("info"), "info".to_string()),
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
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    LogLevel {
        handle,
        current: Mutex::new(current),
    }
}
