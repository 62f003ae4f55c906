//! Config from the operator: a router started with `--operator-url` holds the operator's
//! authenticated server-sent event stream (`GET /v1/config/stream?deltas=1`) and installs each
//! snapshot it receives — whole, or as a delta from the version it runs (by the rules of
//! [`super::install`]); `--snapshot-file` (the snapshot Secrets mounted as files: a manifest naming
//! compressed shards, or a whole snapshot) lets it start serving while the operator is down.
//!
//! - Stored shards must match the SHA-256s their manifest names (a manifest and shards from
//!   different versions, caught mid-update, are read again shortly) and make up the content hash
//!   the manifest names.
//! - The stream is reconnected forever with capped exponential backoff and jitter; a connection
//!   silent for longer than three keep-alive intervals is treated as dead. A delta made from
//!   another version than the running one makes the router reconnect at once, which brings the
//!   whole snapshot.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, stream};
use switchboard_api::{
    RouterConfig,
    snapshot::{
        CONFIG_STREAM_PATH,
        shards::{self, ShardError, ShardManifest},
    },
};
use tokio::sync::watch;

use super::install::{Admitted, offer, offer_delta_json, offer_json};
use crate::{
    providers::clients::install_crypto_provider,
    state::{AppState, release_freed_memory},
};

/// Where and how to reach the operator.
#[derive(Clone)]
pub struct OperatorSource {
    /// Base URL of the operator's push server, e.g. `http://switchboard-operator:8081`.
    pub url: String,
    /// Bearer token the operator requires.
    pub token: String,
    /// A connection with no bytes (keep-alives included) for this long is dropped and redialled.
    pub idle_timeout: Duration,
    /// First reconnect delay; doubled after each failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for OperatorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSource")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl OperatorSource {
    /// A source with the default timings (45 s idle limit, 100 ms to 5 s backoff).
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        OperatorSource {
            url: url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            idle_timeout: Duration::from_secs(45),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The operator token: the file's content if a file is given, else `value`; trimmed, non-empty.
pub fn read_token(file: Option<&Path>, value: Option<&str>) -> anyhow::Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the operator token file {}", f.display()))?,
        None => value.unwrap_or_default().to_string(),
    };
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "--operator-url needs the operator's token: --operator-token-file FILE or \
         SWITCHBOARD_OPERATOR_TOKEN"
    );
    Ok(token.to_string())
}

/// Installs the snapshot stored in `path`: the snapshot Secrets mounted as files (a manifest,
/// its shards beside it), or a whole snapshot.
pub fn load_snapshot_file(state: &AppState, path: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the snapshot file {}", path.display()))?;
    match serde_json::from_slice::<ShardManifest>(&bytes) {
        Ok(manifest) => {
            let config = read_shards(path, &manifest)?;
            offer(state, config, "snapshot-file")
                .with_context(|| format!("in the snapshot files at {}", path.display()))?;
        }
        Err(_) => {
            offer_json(state, &bytes, "snapshot-file")
                .with_context(|| format!("in the snapshot file {}", path.display()))?;
        }
    }
    release_freed_memory();
    Ok(state.runtime().map_or(0, |r| r.config.version))
}

/// The snapshot a manifest at `path` names, from the shard files beside it.
fn read_shards(path: &Path, manifest: &ShardManifest) -> Result<RouterConfig, ShardError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    shards::assemble(manifest, |key| {
        // Keys are file names the operator chose; anything else is not read.
        let plain = !key.is_empty() && !key.contains(['/', '\\']) && !key.starts_with('.');
        plain.then(|| std::fs::read(dir.join(key)).ok()).flatten()
    })
}

/// A byte stream that fails when no chunk arrives within `idle`.
fn with_idle_timeout<S>(inner: S, idle: Duration) -> impl Stream<Item = Result<Bytes, String>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    stream::unfold(Some(inner), move |inner| async move {
        let mut inner = inner?;
        match tokio::time::timeout(idle, inner.next()).await {
            Err(_) => Some((Err(format!("no data for {}s", idle.as_secs())), None)),
            Ok(None) => None,
            Ok(Some(chunk)) => Some((chunk.map_err(|e| e.to_string()), Some(inner))),
        }
    })
}

/// Holds one stream until it ends; `Ok` when at least one snapshot arrived (the connection was
/// good, so the backoff resets).
async fn follow_once(
    client: &reqwest::Client,
    source: &OperatorSource,
    state: &AppState,
) -> Result<(), (bool, String)> {
    let url = format!("{}{CONFIG_STREAM_PATH}?deltas=1", source.url);
    let resp = client
        .get(&url)
        .bearer_auth(&source.token)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| (false, format!("cannot connect: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err((false, "the operator refused the router token (401)".into()));
    }
    if !status.is_success() {
        return Err((false, format!("the operator answered {status}")));
    }
    tracing::info!(url = %source.url, "connected to the operator's config stream");
    let mut events =
        Box::pin(with_idle_timeout(resp.bytes_stream(), source.idle_timeout)).eventsource();
    let mut received = false;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| (received, format!("stream broke: {e}")))?;
        match event.event.as_str() {
            "snapshot" => {
                received = true;
                if let Ok(Admitted::Installed) =
                    offer_json(state, event.data.as_bytes(), "operator")
                {
                    tracing::info!(version = %event.id, "installed a snapshot from the operator");
                    // A whole snapshot (at start, or on a resync) is decoded on this thread;
                    // deltas are small and left to the allocator's own pace.
                    release_freed_memory();
                }
            }
            "delta" => match offer_delta_json(state, event.data.as_bytes()) {
                Ok(Admitted::Installed) => {
                    tracing::debug!(version = %event.id, "applied a delta from the operator");
                }
                Ok(Admitted::Unchanged) => {}
                // Reconnecting brings the whole snapshot.
                Err(e) => return Err((true, format!("resyncing: {e}"))),
            },
            _ => {}
        }
    }
    Err((received, "the operator closed the stream".into()))
}

/// Follows the operator forever (until `shutdown` turns true): connects, installs snapshots,
/// reconnects with backoff.
pub async fn follow(
    state: Arc<AppState>,
    source: OperatorSource,
    mut shutdown: watch::Receiver<bool>,
) {
    install_crypto_provider();
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build the HTTP client for the operator stream: {e}");
            return;
        }
    };
    let mut backoff = source.min_backoff;
    loop {
        let attempt = tokio::select! {
            r = follow_once(&client, &source, &state) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if let Err((was_good, why)) = attempt {
            if was_good {
                backoff = source.min_backoff;
            }
            if why.starts_with("resyncing") {
                tracing::info!(url = %source.url, "config stream: {why}");
                continue;
            }
            tracing::warn!(url = %source.url, retry_in = ?backoff, "config stream: {why}; serving the last good config");
        }
        let jitter = Duration::from_millis(rand::random_range(
            0..=backoff.as_millis().min(1000) as u64 / 4,
        ));
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(source.max_backoff);
    }
}

/// Operator mode at start: install the snapshot file if there is a usable one (a missing or bad
/// file is logged, not fatal: the stream may still deliver), then follow the operator in the
/// background.
pub fn start(
    state: Arc<AppState>,
    source: OperatorSource,
    snapshot_file: Option<PathBuf>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    if let Some(path) = &snapshot_file {
        match load_snapshot_file(&state, path) {
            Ok(version) => {
                tracing::info!(version, file = %path.display(), "serving the stored snapshot until the operator answers")
            }
            Err(e) if stale(&e) => {
                tracing::info!(
                    "the stored snapshot is being rewritten; reading it again shortly: {e:#}"
                );
                tokio::spawn(reread(state.clone(), path.clone()));
            }
            Err(e) => tracing::warn!("no stored snapshot to start from: {e:#}"),
        }
    }
    tokio::spawn(follow(state, source, shutdown))
}

/// Whether reading the stored snapshot failed because its files are mid-update (the mounted
/// Secrets are refreshed one by one).
fn stale(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ShardError>(),
        Some(ShardError::Stale(_) | ShardError::Missing(_))
    )
}

/// Reads a stored snapshot caught mid-update again, every second for a minute, until it is
/// consistent or a config arrived from the operator.
async fn reread(state: Arc<AppState>, path: PathBuf) {
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if state.runtime().is_some() {
            return;
        }
        match load_snapshot_file(&state, &path) {
            Ok(version) => {
                tracing::info!(version, file = %path.display(), "serving the stored snapshot until the operator answers");
                return;
            }
            Err(e) if stale(&e) => {}
            Err(e) => {
                tracing::warn!("no stored snapshot to start from: {e:#}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(version: u64) -> RouterConfig {
        let mut c = switchboard_api::compile(&switchboard_api::testing::scale::objects(
            &switchboard_api::testing::scale::Scale::keys(40),
        ))
        .config;
        c.version = version;
        c
    }

    #[test]
    fn a_manifest_and_its_shards_load_and_a_stale_shard_is_told_apart() {
        use switchboard_api::snapshot::{
            SnapshotText,
            shards::{ShardManifest, compress, shard_key},
        };
        let dir = std::env::temp_dir().join(format!("sb-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = compiled(5);
        let text = SnapshotText::of(&config);
        let mut shards = Vec::new();
        for i in 0..2 {
            let (shard, bytes) = compress(shard_key(i), text.shard(i, 2).as_bytes());
            std::fs::write(dir.join(&shard.key), bytes).unwrap();
            shards.push(shard);
        }
        let manifest = ShardManifest {
            version: 5,
            hash: config.hash.clone(),
            shards,
        };
        let path = dir.join("manifest.json");
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let state = AppState::new(Default::default());
        assert_eq!(load_snapshot_file(&state, &path).unwrap(), 5);
        assert_eq!(state.runtime().unwrap().config, config);

        // A shard of another version: stale, read again later.
        std::fs::write(dir.join(shard_key(1)), b"not the shard").unwrap();
        let err = load_snapshot_file(&AppState::new(Default::default()), &path).unwrap_err();
        assert!(stale(&err), "{err:#}");
        // A key that is not a plain file name is never read.
        let mut outside = manifest.clone();
        outside.shards[0].key = "../manifest.json".into();
        std::fs::write(&path, serde_json::to_vec(&outside).unwrap()).unwrap();
        let err = load_snapshot_file(&AppState::new(Default::default()), &path).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = OperatorSource::new("http://op:8081/", "s3cret-token");
        assert_eq!(s.url, "http://op:8081");
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
