//! Installing a snapshot: whether one may replace the config being served, and serving it. The
//! router keeps serving the last good config whatever arrives:
//! - A snapshot must pass [`RouterConfig::validate`] (hash matches content, every route target
//!   exists) and have a version at least the running one; otherwise it is refused, logged and
//!   counted in `switchboard_config_refused_total{reason}`.
//! - A delta applies only to the exact version and hash it was made from, and its result must
//!   hash to the hash it names; one made from another version asks for the whole snapshot
//!   ([`DeltaFailure::Resync`]). Applying one costs what it changes, not the snapshot's size.
//! - The same version and hash as the running one is not reinstalled.
//! - Snapshot contents (provider credentials) are never logged; only version and hash are.

use switchboard_api::{
    RouterConfig,
    snapshot::{DeltaError, SnapshotDelta, SnapshotDigest},
};

use super::runtime::Runtime;
use crate::state::AppState;

/// Why a snapshot was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a snapshot (bad JSON or shape).
    #[error("not a snapshot: {0}")]
    Decode(String),
    /// Failed [`RouterConfig::validate`].
    #[error("invalid snapshot: {0}")]
    Invalid(String),
    /// Older than the one running.
    #[error("snapshot version {offered} is older than the running version {running}")]
    Older {
        /// The version offered.
        offered: u64,
        /// The version running.
        running: u64,
    },
    /// The runtime could not be built from it.
    #[error("cannot serve the snapshot: {0}")]
    Build(String),
}

impl Refusal {
    /// Bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Refusal::Decode(_) => "decode",
            Refusal::Invalid(_) => "invalid",
            Refusal::Older { .. } => "older",
            Refusal::Build(_) => "build",
        }
    }
}

/// What happened to an admitted snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Installed: it is being served now.
    Installed,
    /// Already running (same version and hash): nothing done.
    Unchanged,
}

/// Whether `offered` may replace `running`. Pure.
pub fn admit(running: Option<&RouterConfig>, offered: &RouterConfig) -> Result<Admitted, Refusal> {
    offered.validate().map_err(Refusal::Invalid)?;
    admit_version(running, offered)
}

/// The version rules of [`admit`], for a snapshot already validated.
fn admit_version(
    running: Option<&RouterConfig>,
    offered: &RouterConfig,
) -> Result<Admitted, Refusal> {
    match running {
        Some(r) if offered.version < r.version => Err(Refusal::Older {
            offered: offered.version,
            running: r.version,
        }),
        Some(r) if offered.version == r.version && offered.hash == r.hash => {
            Ok(Admitted::Unchanged)
        }
        _ => Ok(Admitted::Installed),
    }
}

/// Admits and installs `config` into `state`, counting and logging a refusal.
pub fn offer(state: &AppState, config: RouterConfig, origin: &str) -> Result<Admitted, Refusal> {
    install(state, config).inspect_err(|refusal| refused(state, refusal, origin))
}

/// Why `offered` would empty what `running` serves: no provider, route or key left of the ones
/// there were. A truncated or half-written manifest file looks like this; it is refused like a
/// broken one unless the operator allows it (`--allow-empty-reload`). Pure.
pub fn empties(running: &RouterConfig, offered: &RouterConfig) -> Option<String> {
    let emptied: Vec<&str> = [
        (
            "providers",
            running.providers.len(),
            offered.providers.len(),
        ),
        ("routes", running.routes.len(), offered.routes.len()),
        ("API keys", running.api_keys.len(), offered.api_keys.len()),
    ]
    .into_iter()
    .filter(|(_, before, after)| *before > 0 && *after == 0)
    .map(|(what, _, _)| what)
    .collect();
    (!emptied.is_empty()).then(|| {
        format!(
            "it would drop every one of the {} being served (an empty or truncated file?); \
             pass --allow-empty-reload to allow that",
            emptied.join(", ")
        )
    })
}

/// Counts and logs a refused snapshot.
fn refused(state: &AppState, refusal: &Refusal, origin: &str) {
    state
        .metrics
        .config_refused
        .with_label_values(&[refusal.metric_label()])
        .inc();
    tracing::error!(
        origin,
        "refused a config snapshot, keeping the current one: {refusal}"
    );
}

fn install(state: &AppState, config: RouterConfig) -> Result<Admitted, Refusal> {
    let running = state.runtime();
    let digest = config.validate_digest().map_err(Refusal::Invalid)?;
    let admitted = admit_version(running.as_ref().map(|r| &r.config), &config)?;
    if admitted == Admitted::Installed {
        serve(state, config, digest).map_err(Refusal::Build)?;
    }
    Ok(admitted)
}

/// Builds the runtime of a validated snapshot whose digest is known, and serves it.
fn serve(state: &AppState, config: RouterConfig, digest: SnapshotDigest) -> Result<(), String> {
    let runtime = Runtime::build(config, Vec::new(), &state.clients, &|name| {
        std::env::var(name).ok()
    })?;
    let _ = runtime.digest.set(digest);
    state.install(runtime);
    Ok(())
}

/// Why a delta was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaFailure {
    /// It was made from another version than the one running (or none runs): the whole
    /// snapshot is needed.
    #[error("{0}")]
    Resync(String),
    /// It is bad (counted as a refusal); the whole snapshot is needed too.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Applies a delta from the operator to the running config and installs the result.
pub fn offer_delta_json(state: &AppState, json: &[u8]) -> Result<Admitted, DeltaFailure> {
    let refuse = |refusal: Refusal| {
        refused(state, &refusal, "operator delta");
        DeltaFailure::Refused(refusal)
    };
    let delta: SnapshotDelta =
        serde_json::from_slice(json).map_err(|e| refuse(Refusal::Decode(e.to_string())))?;
    let Some(running) = state.runtime() else {
        return Err(DeltaFailure::Resync("no config to apply a delta to".into()));
    };
    if (delta.version, delta.hash.as_str())
        == (running.config.version, running.config.hash.as_str())
    {
        return Ok(Admitted::Unchanged);
    }
    let mut config = running.config.clone();
    let mut digest = *running
        .digest
        .get_or_init(|| SnapshotDigest::of(&running.config));
    match delta.apply(&mut config, &mut digest) {
        Ok(()) => {}
        Err(e @ DeltaError::Base { .. }) => return Err(DeltaFailure::Resync(e.to_string())),
        Err(DeltaError::Invalid(why)) => return Err(refuse(Refusal::Invalid(why))),
    }
    serve(state, config, digest).map_err(|e| refuse(Refusal::Build(e)))?;
    Ok(Admitted::Installed)
}

/// Decodes a snapshot from JSON and offers it.
pub fn offer_json(state: &AppState, json: &[u8], origin: &str) -> Result<Admitted, Refusal> {
    match serde_json::from_slice::<RouterConfig>(json) {
        Ok(config) => offer(state, config, origin),
        Err(e) => {
            let refusal = Refusal::Decode(e.to_string());
            refused(state, &refusal, origin);
            Err(refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    fn config(version: u64) -> RouterConfig {
        let mut c = RouterConfig::default().seal();
        c.version = version;
        c
    }

    #[test]
    fn newer_or_first_snapshot_is_installed() {
        assert_eq!(admit(None, &config(1)), Ok(Admitted::Installed));
        assert_eq!(admit(Some(&config(1)), &config(2)), Ok(Admitted::Installed));
    }

    #[test]
    fn same_version_and_hash_is_not_reinstalled() {
        assert_eq!(admit(Some(&config(3)), &config(3)), Ok(Admitted::Unchanged));
    }

    #[test]
    fn older_snapshot_is_refused() {
        assert_eq!(
            admit(Some(&config(5)), &config(4)),
            Err(Refusal::Older {
                offered: 4,
                running: 5
            })
        );
    }

    #[test]
    fn snapshot_whose_hash_does_not_match_is_refused() {
        let mut tampered = config(9);
        tampered.hash = "0".repeat(64);
        assert!(matches!(
            admit(None, &tampered),
            Err(Refusal::Invalid(m)) if m.contains("hash")
        ));
    }

    #[test]
    fn a_config_that_empties_what_is_served_is_named() {
        let empty = RouterConfig::default();
        let mut serving = RouterConfig::default();
        serving.api_keys.insert(
            "hash".into(),
            switchboard_api::snapshot::ApiKeyConfig::test(),
        );
        let reason = empties(&serving, &empty).unwrap();
        assert!(
            reason.contains("API keys") && !reason.contains("routes"),
            "{reason}"
        );
        assert_eq!(empties(&serving, &serving), None);
        assert_eq!(empties(&empty, &empty), None, "nothing was served");
    }

    #[test]
    fn refusals_keep_the_running_config_and_are_counted() {
        let state = AppState::new(Default::default());
        assert_eq!(offer(&state, config(2), "test"), Ok(Admitted::Installed));
        assert!(offer(&state, config(1), "test").is_err());
        assert!(offer_json(&state, b"{not json", "test").is_err());
        let mut bad = config(7);
        bad.hash = "x".into();
        assert!(offer(&state, bad, "test").is_err());
        assert_eq!(state.runtime().unwrap().config.version, 2);
        let text = state.metrics.render();
        for reason in ["older", "decode", "invalid"] {
            assert!(
                text.contains(&format!(
                    "switchboard_config_refused_total{{reason=\"{reason}\"}} 1"
                )),
                "{text}"
            );
        }
    }

    fn compiled(version: u64) -> RouterConfig {
        let mut c = switchboard_api::compile(&switchboard_api::testing::scale::objects(
            &switchboard_api::testing::scale::Scale::keys(40),
        ))
        .config;
        c.version = version;
        c
    }

    #[test]
    fn a_delta_applies_to_its_version_only_and_a_bad_one_is_counted() {
        use switchboard_api::snapshot::{Section, SnapshotText};
        let state = AppState::new(Default::default());
        let base = compiled(3);
        assert_eq!(offer(&state, base.clone(), "test"), Ok(Admitted::Installed));
        let mut next = base.clone();
        let route = next.routes.keys().next().unwrap().clone();
        next.routes.get_mut(&route).unwrap().retry.attempts = 3;
        next.version = 4;
        next.hash = next.content_hash();
        let mut text = SnapshotText::of(&base);
        text.update(&next, Section::Routes, [route.as_str()]);
        let changed = std::collections::BTreeMap::from([(
            Section::Routes,
            std::collections::BTreeSet::from([route.clone()]),
        )]);
        let delta = text.delta((3, &base.hash), (4, &next.hash), &changed);
        assert_eq!(
            offer_delta_json(&state, delta.as_bytes()),
            Ok(Admitted::Installed)
        );
        assert_eq!(state.runtime().unwrap().config, next);

        // Made from version 9: the router resyncs.
        let gap = text.delta((9, &base.hash), (10, &next.hash), &changed);
        assert!(matches!(
            offer_delta_json(&state, gap.as_bytes()),
            Err(DeltaFailure::Resync(_))
        ));
        // Claiming a hash its result does not have: refused and counted.
        let bad = text.delta((4, &next.hash), (5, &"0".repeat(64)), &changed);
        assert!(matches!(
            offer_delta_json(&state, bad.as_bytes()),
            Err(DeltaFailure::Refused(Refusal::Invalid(_)))
        ));
        assert_eq!(state.runtime().unwrap().config.version, 4);
        assert!(
            state
                .metrics
                .render()
                .contains(r#"switchboard_config_refused_total{reason="invalid"} 1"#)
        );
    }

    #[test]
    fn a_replaced_config_is_dropped_off_the_thread_that_held_it_last() {
        let state = AppState::new(Default::default());
        offer(&state, config(1), "test").unwrap();
        // A request holding the running config while a new one is installed.
        let held = state.runtime().unwrap();
        let weak = Arc::downgrade(&held);
        offer(&state, config(2), "test").unwrap();
        drop(held);
        assert!(
            weak.upgrade().is_some(),
            "the request's thread did not drop it"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while weak.upgrade().is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(weak.upgrade().is_none(), "the retiring thread dropped it");
    }
}
