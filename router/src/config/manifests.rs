//! Standalone mode: the same manifests a team would `kubectl apply`, read from files and compiled
//! in-process with the same pure compiler the operator uses, then served.

use std::{fs, path::PathBuf, sync::Arc};

use anyhow::{Context, bail};
use switchboard_api::{
    RouterConfig, compile::Batch, manifest::read_manifests, snapshot::IssuerConfig,
};

use super::{
    install::empties,
    runtime::{ObjectStatus, Runtime},
};
use crate::state::{AppState, Settings};

/// Compiles `manifests` and installs the result as config `version` into `state`. Used at start,
/// on SIGHUP, and by tests. A config that fails validation is refused and the old one kept; so is
/// one that would drop every provider, route or key being served (see [`empties`]), unless
/// [`Settings::allow_empty_reload`] is set.
pub fn load_manifests(
    state: &AppState,
    manifests: &[PathBuf],
    namespace: &str,
    version: u64,
) -> anyhow::Result<()> {
    let issuers = state.settings.trusted_issuers.load()?;
    let (config, objects) = compile_manifests(manifests, namespace, version, issuers)?;
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid snapshot: {e}"))?;
    if let Some(running) = state.runtime()
        && !state.settings.allow_empty_reload
        && let Some(reason) = empties(&running.config, &config)
    {
        state
            .metrics
            .config_refused
            .with_label_values(&["empties"])
            .inc();
        anyhow::bail!("refusing the manifests: {reason}");
    }
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
    settings: Settings,
) -> anyhow::Result<Arc<AppState>> {
    let state = AppState::new(settings);
    load_manifests(&state, manifests, "default", 1)?;
    Ok(state)
}

/// The manifest files named by `paths`: files as given, directories expanded to their `.yaml`,
/// `.yml` and `.json` files (not recursive), in name order.
pub fn manifest_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        let meta =
            fs::metadata(p).with_context(|| format!("cannot read manifests at {}", p.display()))?;
        if meta.is_dir() {
            let mut in_dir: Vec<PathBuf> = fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        bail!("no manifest files found in {paths:?}");
    }
    Ok(files)
}

/// Reads every manifest file into `batch`, one document at a time (no file's text nor list of
/// objects is held beside the compiler). A document that is not a valid object stops the load,
/// as `kubectl apply` would refuse it.
fn read_objects(paths: &[PathBuf], namespace: &str, batch: &mut Batch) -> anyhow::Result<()> {
    for file in manifest_files(paths)? {
        let reader = fs::File::open(&file)
            .map(std::io::BufReader::new)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let ignored = read_manifests(reader, namespace, |object| batch.add(object))
            .with_context(|| format!("in {}", file.display()))?;
        for ignored in &ignored {
            tracing::info!(file = %file.display(), object = %ignored, "ignoring a non-Switchboard object");
        }
    }
    Ok(())
}

/// Compiles manifests into a snapshot with the given version, trusting `issuers`, logging every
/// rejected object.
pub fn compile_manifests(
    paths: &[PathBuf],
    namespace: &str,
    version: u64,
    issuers: Vec<IssuerConfig>,
) -> anyhow::Result<(RouterConfig, Vec<ObjectStatus>)> {
    let mut batch = Batch::new(issuers);
    read_objects(paths, namespace, &mut batch)?;
    let compiled = batch.finish();
    let statuses: Vec<ObjectStatus> = compiled
        .results
        .iter()
        .map(|(obj, r)| ObjectStatus::new(obj, &r.outcome))
        .collect();
    for s in &statuses {
        if s.ready {
            tracing::debug!(object = %s.object, reason = s.reason, "{}", s.message);
        } else {
            tracing::warn!(object = %s.object, reason = s.reason, "rejected: {}", s.message);
        }
    }
    let mut config = compiled.config;
    config.version = version;
    Ok((config, statuses))
}
