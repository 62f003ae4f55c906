//! Switchboard's API: the four custom resources (Provider, ModelRoute, ApiKey, Budget), the
//! `RouterConfig` snapshot the router runs on, and the pure [`compile()`] between them.
//!
//! Nothing in this crate does I/O: the operator feeds it objects it watched, the standalone router
//! feeds it objects parsed from manifest files, and both get the same snapshot.

pub mod compile;
pub mod counters;
pub mod crdgen;
pub mod identity;
pub mod manifest;
pub mod money;
pub mod resources;
pub mod snapshot;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod windows;

pub use compile::{Compiled, Compiler, ObjectOutcome, ObjectResult, compile, compile_trusting};
pub use manifest::{Object, ObjectRef, parse_manifests};
pub use snapshot::RouterConfig;

/// The API group of every Switchboard custom resource.
pub const GROUP: &str = "switchboard.dev";
/// The served and stored version of every Switchboard custom resource.
pub const VERSION: &str = "v1alpha1";
