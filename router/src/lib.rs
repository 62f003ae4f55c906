//! Switchboard's router: the data plane. It serves OpenAI-compatible endpoints, authenticates
//! callers by ApiKey, plans attempts across provider targets, relays or translates each provider's
//! wire format, prices every response, and exports metrics.
//!
//! Entry points: [`app::app`] / [`app::admin_app`] build the axum routers over an
//! [`state::AppState`]; [`server::start`] binds and serves them; [`standalone`] compiles manifest
//! files into a config.

pub mod app;
pub mod auth;
pub mod budgets;
pub mod cli;
pub mod config_source;
pub mod endpoints;
pub mod error;
pub mod health;
pub mod json;
pub mod observability;
pub mod prefs;
pub mod pricing;
pub mod providers;

pub mod routing;
pub mod runtime;
pub mod server;
pub mod spend;
pub mod standalone;
pub mod state;
pub mod stream_relay;

use std::{path::PathBuf, sync::Arc};

use runtime::Runtime;
use state::AppState;

/// Compiles `manifests` and installs the result as config `version` into `state`. Used at start,
/// on SIGHUP, and by tests. A config that fails validation is refused and the old one kept.
pub fn load_manifests(
    state: &AppState,
    manifests: &[PathBuf],
    namespace: &str,
    version: u64,
) -> anyhow::Result<()> {
    let (config, objects) = standalone::compile_manifests(manifests, namespace, version)?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid snapshot: {e}"))?;
    let runtime = Runtime::build(config, objects, &state.clients, &|name| {
        std::env::var(name).ok()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    state.install(runtime);
    Ok(())
}

/// A fresh state serving `manifests`, for embedding the router (tests, benchmarks).
pub fn state_from_manifests(
    manifests: &[PathBuf],
    settings: state::Settings,
) -> anyhow::Result<Arc<AppState>> {
    let state = AppState::new(settings);
    load_manifests(&state, manifests, "default", 1)?;
    Ok(state)
}
