//! The config push server routers connect to, and the operator's admin endpoints.
//!
//! `GET /v1/config/stream` (bearer token required): a server-sent event stream. Each `snapshot`
//! event's data is the full snapshot JSON (credentials included, hence the token); the current one
//! is sent at once on connect, then every new version; a keep-alive comment every 15 s lets both
//! sides notice a dead connection. `GET /v1/config` returns the current snapshot once.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
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
use switchboard_api::{RouterConfig, snapshot::CONFIG_STREAM_PATH};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::metrics::Metrics;

/// A published snapshot, serialized once for every router.
#[derive(Debug)]
pub struct Published {
    /// Its version.
    pub version: u64,
    /// Its content hash.
    pub hash: String,
    /// The snapshot JSON (one line).
    pub json: String,
}

impl Published {
    /// Serializes `config` for publishing.
    pub fn new(config: &RouterConfig) -> Arc<Published> {
        Arc::new(Published {
            version: config.version,
            hash: config.hash.clone(),
            json: serde_json::to_string(config).expect("snapshot types always serialize"),
        })
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

async fn stream(State(state): State<PushState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    state.metrics.stream_clients.inc();
    let guard = ClientGuard(state.metrics.clone());
    let events = snapshot_events(state.snapshots.clone()).map(move |e| {
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

/// The current snapshot (if any) at once, then each new one.
fn snapshot_events(snapshots: Snapshots) -> impl Stream<Item = Result<Event, Infallible>> {
    WatchStream::new(snapshots).filter_map(|p| async move {
        p.map(|p| {
            Ok(Event::default()
                .event("snapshot")
                .id(p.version.to_string())
                .data(p.json.as_str()))
        })
    })
}

async fn current(State(state): State<PushState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let published = state.snapshots.borrow().clone();
    match published {
        Some(p) => ([(header::CONTENT_TYPE, "application/json")], p.json.clone()).into_response(),
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
        let (tx, _) = watch::channel(Some(Published::new(&c)));
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
        tx.send_replace(Some(Published::new(&c)));
        let next = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(next.contains("id: 5\n"), "{next}");
    }

    #[tokio::test]
    async fn current_snapshot_needs_the_token_too() {
        let c = RouterConfig::default().seal();
        let (tx, _) = watch::channel(Some(Published::new(&c)));
        let res = oneshot(push_app(state(&tx)), get("/v1/config", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = oneshot(push_app(state(&tx)), get("/v1/config", Some("t0ken"))).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(serde_json::from_slice::<RouterConfig>(&body).unwrap(), c);
    }
}
