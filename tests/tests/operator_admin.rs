//! The operator's admin port discloses nothing (issue 27's review of the operator): it serves
//! only `/healthz`, `/readyz` (status, version, hash, leader) and `/metrics` (counts by kind and
//! outcome); the snapshot is served only by the push server, behind the router token.

use std::sync::Arc;

use switchboard_operator::{
    metrics::Metrics,
    push::{AdminState, admin_app},
};
use tokio::sync::watch;

#[tokio::test]
async fn the_operator_admin_port_serves_probes_and_metrics_only() {
    let (_snapshots_tx, snapshots) = watch::channel(None);
    let (_leader_tx, leader) = watch::channel(true);
    let app = admin_app(AdminState {
        snapshots,
        metrics: Arc::new(Metrics::new()),
        leader,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    switchboard_router::providers::clients::install_crypto_provider();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{addr}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/metrics").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 503, "nothing compiled yet");
    for path in [
        "/v1/config",
        "/v1/config/stream",
        "/config",
        "/loglevel",
        "/snapshot",
    ] {
        assert_eq!(get(path).await.unwrap().status(), 404, "{path}");
    }
}
