//! The admin listener's pages, on their own port: liveness and readiness, Prometheus metrics, the
//! config being served (secrets redacted), the live log filter, and the usage API
//! (`/admin/v1/usage`, `/admin/v1/generations`). [`auth`] guards all but the probes and metrics.

pub mod auth;
pub mod config;
pub mod generations;
pub mod health;
pub mod log_level;
pub mod metrics;
pub mod usage;
