//! The client-facing API (`/v1/...` and `/api/v1/...`): thin HTTP handlers, one per endpoint,
//! over the shared [`intake`]. Each handler reads its request, hands it to routing, budgets,
//! providers and streaming, and writes the answer; nothing below this folder imports it.

pub mod activity;
pub mod chat;
pub mod completion;
pub mod completions;
pub mod embeddings;
pub mod fallback;
pub mod generation;
pub mod intake;
pub mod key;
pub mod messages;
pub mod models;
pub mod pipeline;
pub mod responses;
