//! What a request leaves behind: its access record (written once, when it drops, whatever way the
//! request ended), Prometheus metrics, OpenTelemetry spans, and the generation record clients read
//! back from `/api/v1/generation`.

pub mod access;
pub mod generations;
pub mod metrics;
pub mod traces;
