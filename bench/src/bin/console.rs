//! The web console's server time on a big usage store (docs/benchmarks.md, "Console"): each page
//! rendered by the router's own admin route table, in-process (no network, no browser), on a
//! store `bench-usage seed` filled. Prints one JSON object: per page the median and slowest of 10
//! renders after a warm-up, and the page's size.
//!
//! `bench-console --store URL [--manifests FILE]` (default manifests: examples/quickstart.yaml).

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo};
use serde_json::json;
use switchboard_router::{
    app::admin_app,
    state::Settings,
    usage::{UsageOptions, retention::Retention},
};
use tower::ServiceExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--store").ok_or("--store URL is required")?;
    let manifests = arg(&args, "--manifests").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml"),
        PathBuf::from,
    );
    let state = switchboard_router::state_from_manifests(&[manifests], Settings::default())?;
    let scratch = std::env::temp_dir().join(format!("bench-console-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let usage = switchboard_router::usage::start(
        &state,
        UsageOptions {
            url,
            spill_file: scratch.join("spill.jsonl"),
            spill_max_bytes: 1 << 20,
            retention: Retention {
                records: None,
                rollups: None,
            },
            drain: Duration::from_secs(1),
        },
    )
    .await?;
    let app = admin_app(state);
    let loopback: SocketAddr = "127.0.0.1:40000".parse()?;
    let mut pages = Vec::new();
    for path in [
        "/console/?range=7d&by=model",
        "/console/?range=30d&by=team",
        "/console/?range=24h&by=provider",
        "/console/budgets",
        "/console/keys",
        "/console/requests",
        "/console/requests?model=model-7&status=502",
        "/console/providers",
    ] {
        let render = || async {
            let mut req = http::Request::get(path).body(Body::empty())?;
            req.extensions_mut().insert(ConnectInfo(loopback));
            let resp = app.clone().oneshot(req).await?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 26).await?;
            if status != 200 {
                return Err(format!("{path}: {status}").into());
            }
            Ok::<usize, Box<dyn std::error::Error>>(body.len())
        };
        render().await?;
        let mut ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..10 {
            let t = Instant::now();
            bytes = render().await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        pages.push(json!({
            "page": path, "bytes": bytes, "median_ms": ms[ms.len() / 2], "max_ms": ms[ms.len() - 1],
        }));
    }
    usage.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{}", json!({ "pages": pages }));
    Ok(())
}
