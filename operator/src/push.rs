//! The config push server routers connect to, and the operator's admin endpoints.
//!
//! `GET /v1/config/stream` (bearer token required): a server-sent event stream. A `snapshot`
//! event's data is the full snapshot JSON (credentials included, hence the token); the current one
//! is sent at once on connect. A router that asks for deltas (`?deltas=1`) then gets each next
//! version as a `delta` event (a [`SnapshotDelta`] from the version it was sent last) whenever the
//! change was small, and a full `snapshot` otherwise or when it missed a version (a slow reader
//! may skip versions: it only ever gets the latest). A keep-alive comment every 15 s lets both
//! sides notice a dead connection. `GET /v1/config` returns the current snapshot once.
//!
//! [`SnapshotDelta`]: switchboard_api::snapshot::SnapshotDelta

use std::{
    convert::Infallible,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use subtle::ConstantTimeEq;
use switchboard_api::{
    RouterConfig,
    snapshot::{CONFIG_STREAM_PATH, SnapshotText},
};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::metrics::Metrics;

/// A published snapshot version: every entry's JSON (shared with the versions around it), the
/// delta from the version published before it when the change was small, and the whole snapshot
/// JSON once someone needs it (built once, for every router).
#[derive(Debug)]
pub struct Published {
    /// Its version.
    pub version: u64,
    /// Its content hash.
    pub hash: String,
    text: SnapshotText,
    delta: Option<Delta>,
    full: OnceLock<Bytes>,
}

/// A delta event's data, and the version it applies to.
#[derive(Debug)]
struct Delta {
    from: (u64, String),
    json: Bytes,
}

impl Published {
    /// Version `version` with content `hash`, whose entries are `text`; `delta` is the
    /// (version, hash) it changes and the delta's JSON.
    pub fn new(
        version: u64,
        hash: &str,
        text: SnapshotText,
        delta: Option<((u64, String), String)>,
    ) -> Arc<Published> {
        Arc::new(Published {
            version,
            hash: hash.to_string(),
            text,
            delta: delta.map(|(from, json)| Delta {
                from,
                json: json.into(),
            }),
            full: OnceLock::new(),
        })
    }

    /// `config` as a version of its own (no delta).
    pub fn of(config: &RouterConfig) -> Arc<Published> {
        Published::new(config.version, &config.hash, SnapshotText::of(config), None)
    }

    /// Every entry's JSON.
    pub fn text(&self) -> &SnapshotText {
        &self.text
    }

    /// The whole snapshot JSON (one line).
    pub fn json(&self) -> &Bytes {
        self.full
            .get_or_init(|| self.text.full(self.version, &self.hash).into())
    }

    /// The delta JSON when this version was made from `from` (version, hash) by a small change.
    pub fn delta_from(&self, from: &(u64, String)) -> Option<&Bytes> {
        self.delta
            .as_ref()
            .filter(|d| d.from == *from)
            .map(|d| &d.json)
    }
}

/// The channel snapshots are published on: `None` until the first compile.
pub type Snapshots = watch::Receiver<Option<Arc<Published>>>;

/// State of the push server.
#[derive(Clone)]
pub struct PushState {
    /// The token routers must present.
    pub token: Arc<str>,
    /// Published snapshots.
    pub snapshots: Snapshots,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Interval of keep-alive comments.
    pub keep_alive: Duration,
}

/// The push server's routes.
pub fn push_app(state: PushState) -> Router {
    Router::new()
        .route(CONFIG_STREAM_PATH, get(stream))
        .route("/v1/config", get(current))
        .with_state(state)
}

fn authorized(state: &PushState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !state.token.is_empty() && bool::from(presented.as_bytes().ct_eq(state.token.as_bytes()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "a valid router token is required"})),
    )
        .into_response()
}

/// Decrements the client gauge when the stream is dropped (the router went away).
struct ClientGuard(Arc<Metrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stream_clients.dec();
    }
}

/// Query of the stream: `deltas=1` (or `true`) asks for deltas.
#[derive(Debug, Default, serde::Deserialize)]
struct StreamQuery {
    #[serde(default)]
    deltas: Option<String>,
}

async fn stream(
    State(state): State<PushState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    state.metrics.stream_clients.inc();
    let guard = ClientGuard(state.metrics.clone());
    let deltas = matches!(query.deltas.as_deref(), Some("1" | "true"));
    let events = snapshot_events(state.snapshots.clone(), deltas).map(move |e| {
        let _ = &guard;
        e
    });
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(state.keep_alive)
                .text("keep-alive"),
        )
        .into_response()
}

/// The current snapshot (if any) at once, then each new one: as a delta from the one sent
/// before when `deltas` and the published version carries one from it, else whole.
fn snapshot_events(
    snapshots: Snapshots,
    deltas: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut sent: Option<(u64, String)> = None;
    WatchStream::new(snapshots).filter_map(move |p| {
        let delta = match (&p, &sent) {
            (Some(p), Some(from)) if deltas => p.delta_from(from).cloned(),
            _ => None,
        };
        if let Some(p) = &p {
            sent = Some((p.version, p.hash.clone()));
        }
        async move {
            let p = p?;
            let (kind, data) = match delta {
                Some(json) => ("delta", json),
                // Splicing the whole snapshot takes a while at scale: off the async threads.
                None => {
                    let p = p.clone();
                    let json = tokio::task::spawn_blocking(move || p.json().clone()).await;
                    ("snapshot", json.ok()?)
                }
            };
            let data = std::str::from_utf8(&data).ok()?;
            Some(Ok(Event::default()
                .event(kind)
                .id(p.version.to_string())
                .data(data)))
        }
    })
}

async fn current(State(state): State<PushState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let published = state.snapshots.borrow().clone();
    match published {
        Some(p) => {
            let json = tokio::task::spawn_blocking(move || p.json().clone())
                .await
                .unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "no snapshot compiled yet"})),
        )
            .into_response(),
    }
}

/// State of the admin server.
#[derive(Clone)]
pub struct AdminState {
    /// Published snapshots (ready once there is one).
    pub snapshots: Snapshots,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica leads.
    pub leader: watch::Receiver<bool>,
}

/// `/healthz`, `/readyz` (200 with the version once a snapshot is published), `/metrics`.
pub fn admin_app(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let published = state.snapshots.borrow().clone();
    let leader = *state.leader.borrow();
    match published {
        Some(p) => Json(json!({
            "status": "ready", "version": p.version, "hash": p.hash, "leader": leader
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": "caches not synced or nothing compiled yet"})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            switchboard_telemetry::metrics::CONTENT_TYPE,
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn oneshot(app: Router, req: axum::http::Request<Body>) -> Response {
        app.oneshot(req).await.expect("infallible")
    }

    fn state(tx: &watch::Sender<Option<Arc<Published>>>) -> PushState {
        PushState {
            token: "t0ken".into(),
            snapshots: tx.subscribe(),
            metrics: Arc::new(Metrics::new()),
            keep_alive: Duration::from_secs(15),
        }
    }

    fn get(path: &str, token: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::get(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn stream_without_or_with_a_wrong_token_is_401() {
        let (tx, _) = watch::channel(None);
        for token in [None, Some("wrong"), Some("")] {
            let res = oneshot(push_app(state(&tx)), get("/v1/config/stream", token)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        }
    }

    #[tokio::test]
    async fn stream_sends_the_current_snapshot_at_once_then_each_new_one() {
        let mut c = RouterConfig::default().seal();
        c.version = 4;
        let (tx, _) = watch::channel(Some(Published::of(&c)));
        let res = oneshot(
            push_app(state(&tx)),
            get("/v1/config/stream", Some("t0ken")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut body = res.into_body().into_data_stream();
        let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(first.starts_with("event: snapshot\n"), "{first}");
        assert!(first.contains("id: 4\n"), "{first}");
        let data = first
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let got: RouterConfig = serde_json::from_str(data).unwrap();
        assert_eq!(got, c);

        c.version = 5;
        tx.send_replace(Some(Published::of(&c)));
        let next = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(next.contains("id: 5\n"), "{next}");
    }

    /// The next SSE event's (type, id, data).
    async fn next_event(
        body: &mut (impl futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin),
    ) -> (String, String, String) {
        let text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .to_string()
        };
        (field("event: "), field("id: "), field("data: "))
    }

    #[tokio::test]
    async fn a_router_asking_for_deltas_gets_them_and_a_whole_snapshot_after_a_gap() {
        use switchboard_api::snapshot::{SnapshotDelta, SnapshotDigest};
        let mut c = RouterConfig::default().seal();
        c.version = 1;
        let (tx, _) = watch::channel(Some(Published::of(&c)));
        let res = oneshot(
            push_app(state(&tx)),
            get("/v1/config/stream?deltas=1", Some("t0ken")),
        )
        .await;
        let mut body = res.into_body().into_data_stream();
        let (kind, id, data) = next_event(&mut body).await;
        assert_eq!((kind.as_str(), id.as_str()), ("snapshot", "1"));
        let mut running: RouterConfig = serde_json::from_str(&data).unwrap();

        // Version 2 made from 1: a delta.
        let text = SnapshotText::of(&c);
        let delta = text.delta((1, &c.hash), (2, &c.hash), &Default::default());
        tx.send_replace(Some(Published::new(
            2,
            &c.hash,
            text.clone(),
            Some(((1, c.hash.clone()), delta)),
        )));
        let (kind, id, data) = next_event(&mut body).await;
        assert_eq!((kind.as_str(), id.as_str()), ("delta", "2"));
        let delta: SnapshotDelta = serde_json::from_str(&data).unwrap();
        let mut digest = SnapshotDigest::of(&running);
        delta.apply(&mut running, &mut digest).unwrap();
        assert_eq!(running.version, 2);

        // Version 4 made from 3, which this router never got: the whole snapshot.
        let delta = text.delta((3, &c.hash), (4, &c.hash), &Default::default());
        tx.send_replace(Some(Published::new(
            4,
            &c.hash,
            text,
            Some(((3, c.hash.clone()), delta)),
        )));
        let (kind, id, _) = next_event(&mut body).await;
        assert_eq!((kind.as_str(), id.as_str()), ("snapshot", "4"));
    }

    #[tokio::test]
    async fn a_router_not_asking_for_deltas_gets_whole_snapshots() {
        let mut c = RouterConfig::default().seal();
        c.version = 1;
        let (tx, _) = watch::channel(Some(Published::of(&c)));
        let res = oneshot(
            push_app(state(&tx)),
            get("/v1/config/stream", Some("t0ken")),
        )
        .await;
        let mut body = res.into_body().into_data_stream();
        assert_eq!(next_event(&mut body).await.0, "snapshot");
        let text = SnapshotText::of(&c);
        let delta = text.delta((1, &c.hash), (2, &c.hash), &Default::default());
        tx.send_replace(Some(Published::new(
            2,
            &c.hash,
            text,
            Some(((1, c.hash.clone()), delta)),
        )));
        let (kind, id, data) = next_event(&mut body).await;
        assert_eq!((kind.as_str(), id.as_str()), ("snapshot", "2"));
        assert_eq!(
            serde_json::from_str::<RouterConfig>(&data).unwrap().version,
            2
        );
    }

    #[tokio::test]
    async fn current_snapshot_needs_the_token_too() {
        let c = RouterConfig::default().seal();
        let (tx, _) = watch::channel(Some(Published::of(&c)));
        let res = oneshot(push_app(state(&tx)), get("/v1/config", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = oneshot(push_app(state(&tx)), get("/v1/config", Some("t0ken"))).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(serde_json::from_slice::<RouterConfig>(&body).unwrap(), c);
    }
}
