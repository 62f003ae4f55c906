//! Installing a snapshot: whether one may replace the config being served, and serving it. The
//! router keeps serving the last good config whatever arrives:
//! - A snapshot must pass [`RouterConfig::validate`] (hash matches content, every route target
//!   exists) and have a version at least the running one; otherwise it is refused, logged and
//!   counted in `switchboard_config_refused_total{reason}`.
//! - The same version and hash as the running one is not reinstalled.
//! - Snapshot contents (provider credentials) are never logged; only version and hash are.

use switchboard_api::RouterConfig;

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
    let admitted = admit(running.as_ref().map(|r| &r.config), &config)?;
    if admitted == Admitted::Installed {
        let runtime = Runtime::build(config, Vec::new(), &state.clients, &|name| {
            std::env::var(name).ok()
        })
        .map_err(Refusal::Build)?;
        state.install(runtime);
    }
    Ok(admitted)
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
}
