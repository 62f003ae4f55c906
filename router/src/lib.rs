//! Switchboard's router: the data plane. It serves OpenAI-compatible endpoints, authenticates
//! callers by ApiKey, plans attempts across provider targets, relays or translates each provider's
//! wire format, prices every response, and exports metrics.
//!
//! Entry points: [`app::app`] / [`app::admin_app`] build the axum routers over an
//! [`state::AppState`]; [`server::start`] binds and serves them; [`load_manifests`] serves
//! manifest files (standalone), [`config::operator`] the operator's snapshots.

pub mod admin;
pub mod app;
pub mod auth;
pub mod budgets;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod ingress;
pub mod json;
pub mod observability;
pub mod panics;
pub mod pricing;
pub mod providers;
pub mod response_store;
pub mod routing;
pub mod server;
pub mod state;
pub mod streaming;
pub mod tokens;
pub mod usage;

pub use config::manifests::{load_manifests, state_from_manifests};
