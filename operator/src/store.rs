//! The leader's store task: keeps the snapshot Secrets (the manifest and its shards,
//! [`crate::publish`]) up to date with the latest published version, so routers starting while no
//! operator answers read a consistent snapshot. Versions that come faster than they are stored
//! coalesce: only the latest is written. Shards whose bytes did not change are not rewritten; the
//! manifest goes last, so a reader never sees a manifest naming shards not yet written.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tracing::Instrument;

use crate::{
    metrics::Metrics,
    outbox::write_span,
    publish::{ShardStore, manifest_secret, shard_secret, shard_secret_name},
    push::Published,
    writer::Writer,
};

/// Where and how the snapshot is stored.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Namespace and name of the manifest Secret.
    pub secret: (String, String),
    /// Most shard Secrets.
    pub max_shards: usize,
}

/// Stores each published version while `leader` is true, until `shutdown`.
pub async fn run(
    settings: StoreSettings,
    writer: Writer,
    metrics: Arc<Metrics>,
    mut published: watch::Receiver<Option<Arc<Published>>>,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut store = ShardStore::default();
    let mut stored: Option<u64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let leading = *leader.borrow_and_update();
        let latest = published.borrow_and_update().clone();
        match latest {
            Some(p) if leading && stored != Some(p.version) => {
                match store_version(&settings, &writer, &metrics, &mut store, &p).await {
                    Ok(()) => {
                        stored = Some(p.version);
                        backoff = Duration::from_millis(200);
                        continue;
                    }
                    Err(()) => {
                        // Another leader may have written: start over from nothing.
                        store.forget();
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = crate::stopped(&mut shutdown) => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            _ => {}
        }
        tokio::select! {
            Ok(()) = published.changed() => {}
            Ok(()) = leader.changed() => {
                if *leader.borrow() {
                    store.forget();
                    stored = None;
                }
            }
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}

/// Writes the shards of `p` that changed, then its manifest.
async fn store_version(
    settings: &StoreSettings,
    writer: &Writer,
    metrics: &Metrics,
    store: &mut ShardStore,
    p: &Published,
) -> Result<(), ()> {
    let (ns, name) = &settings.secret;
    let text = p.text().clone();
    let (version, hash, max) = (p.version, p.hash.clone(), settings.max_shards);
    let planned = {
        let store = std::mem::take(store);
        tokio::task::spawn_blocking(move || {
            let plan = store.plan(&text, version, &hash, max);
            (store, plan)
        })
        .await
    };
    let Ok((kept, plan)) = planned else {
        return Err(());
    };
    *store = kept;
    let plan = match plan {
        Ok(plan) => plan,
        Err(too_big) => {
            metrics.write("snapshot_secret", false);
            tracing::error!(version, "cannot store the snapshot: {too_big}");
            return Err(());
        }
    };
    for write in &plan.shards {
        let shard_name = shard_secret_name(name, write.index);
        let secret = shard_secret(ns, name, version, write);
        let result = writer
            .write_secret(ns, &shard_name, &secret)
            .instrument(write_span("write_snapshot", "Secret", ns, &shard_name))
            .await;
        metrics.write("snapshot_secret", result.is_ok());
        if let Err(e) = result {
            tracing::warn!(secret = %format!("{ns}/{shard_name}"), "writing a snapshot shard failed: {e}");
            return Err(());
        }
    }
    let manifest = manifest_secret(ns, name, &plan.manifest);
    let result = writer
        .write_manifest(ns, name, &manifest)
        .instrument(write_span("write_snapshot", "Secret", ns, name))
        .await;
    metrics.write("snapshot_secret", result.is_ok());
    if let Err(e) = result {
        tracing::warn!(secret = %format!("{ns}/{name}"), "writing the snapshot manifest failed: {e}");
        return Err(());
    }
    store.commit(&plan);
    let bytes: u64 = plan.manifest.shards.iter().map(|s| s.bytes).sum();
    metrics.snapshot_stored(plan.manifest.shards.len(), bytes);
    tracing::info!(
        version,
        shards = plan.manifest.shards.len(),
        rewritten = plan.shards.len(),
        bytes,
        "stored the snapshot"
    );
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
