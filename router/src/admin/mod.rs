//! The admin listener's pages, on their own port: liveness and readiness, Prometheus metrics, the
//! config being served (secrets redacted), and the live log filter.

pub mod config;
pub mod health;
pub mod log_level;
pub mod metrics;
