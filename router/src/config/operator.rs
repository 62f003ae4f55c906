//! Config from the operator: a router started with `--operator-url` holds the operator's
//! authenticated server-sent event stream (`GET /v1/config/stream`) and installs each snapshot it
//! receives (by the rules of [`super::install`]); `--snapshot-file` (the snapshot Secret mounted
//! as a file) lets it start serving while the operator is down. The stream is reconnected forever
//! with capped exponential backoff and jitter; a connection silent for longer than three
//! keep-alive intervals is treated as dead.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, stream};
use switchboard_api::snapshot::CONFIG_STREAM_PATH;
use tokio::sync::watch;

use super::install::{Admitted, offer_json};
use crate::{providers::clients::install_crypto_provider, state::AppState};

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

/// Installs the snapshot stored in `path` (the snapshot Secret mounted as a file).
pub fn load_snapshot_file(state: &AppState, path: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the snapshot file {}", path.display()))?;
    offer_json(state, &bytes, "snapshot-file")
        .with_context(|| format!("in the snapshot file {}", path.display()))?;
    Ok(state.runtime().map_or(0, |r| r.config.version))
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
    let url = format!("{}{CONFIG_STREAM_PATH}", source.url);
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
        if event.event != "snapshot" {
            continue;
        }
        received = true;
        if let Ok(Admitted::Installed) = offer_json(state, event.data.as_bytes(), "operator") {
            tracing::info!(version = %event.id, "installed a snapshot from the operator");
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
            Err(e) => tracing::warn!("no stored snapshot to start from: {e:#}"),
        }
    }
    tokio::spawn(follow(state, source, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let s = OperatorSource::new("http://op:8081/", "s3cret-token");
        assert_eq!(s.url, "http://op:8081");
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
