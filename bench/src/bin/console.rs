//! The web console's server time on a big usage store (docs/benchmarks.md, "Console"): each page
//! rendered by the router's own admin route table, in-process (no network, no browser), on a
//! store `bench-usage seed` filled. Prints one JSON object: per page the median and slowest of 10
//! renders after a warm-up, and the page's size.
//!
//! `bench-console --store URL [--manifests FILE]`. Without `--manifests` the config is the one
//! the seeded records belong to (namespace `bench`): 200 ApiKeys `key-N` on 10 teams, a route per
//! model `model-M` on a mock provider, and a monthly Budget per team over its 20 keys, so the keys
//! and budgets pages do their per-key work on every seeded key.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo};
use serde_json::json;
use switchboard_router::{
    app::admin_app,
    state::{AppState, Settings},
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
    let scratch = std::env::temp_dir().join(format!("bench-console-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let manifests = match arg(&args, "--manifests") {
        Some(path) => PathBuf::from(path),
        None => {
            let path = scratch.join("manifests.yaml");
            std::fs::write(&path, seeded_config())?;
            path
        }
    };
    let state = AppState::new(Settings::default());
    switchboard_router::load_manifests(&state, &[manifests], "bench", 1)?;
    let usage = switchboard_router::usage::start(
        &state.metrics,
        &state.usage,
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

/// The config of `bench-usage seed`'s records (bench/src/bin/usage.rs: 200 keys, 10 teams, 30
/// models): keys `bench/key-N` with their teams, a route per model, a monthly Budget per team.
fn seeded_config() -> String {
    const KEYS: usize = 200;
    const TEAMS: usize = 10;
    const MODELS: usize = 30;
    let mut out =
        String::from("apiVersion: v1\nkind: Secret\nmetadata: {name: keys}\nstringData:\n");
    for k in 0..KEYS {
        out += &format!("  key-{k}: sk-sb-bench-console-key-{k:04}\n");
    }
    out += "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: mock}\n\
            spec:\n  type: mock\n  models:\n";
    for m in 0..MODELS {
        out += &format!(
            "    - {{name: model-{m}, pricing: {{inputUSDPerMillion: \"0.15\", outputUSDPerMillion: \"0.60\"}}}}\n"
        );
    }
    for m in 0..MODELS {
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: model-{m}}}\n\
             spec: {{model: model-{m}, targets: [{{provider: mock, model: model-{m}}}]}}\n"
        );
    }
    for k in 0..KEYS {
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\n\
             metadata: {{name: key-{k}, labels: {{team: team-{}}}}}\n\
             spec: {{secretRef: {{name: keys, key: key-{k}}}}}\n",
            k % TEAMS
        );
    }
    for t in 0..TEAMS {
        let keys: Vec<String> = (0..KEYS)
            .filter(|k| k % TEAMS == t)
            .map(|k| format!("key-{k}"))
            .collect();
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: team-{t}}}\n\
             spec: {{limitUSD: \"1000\", window: monthly, softLimitPercent: 80, scope: {{apiKeys: [{}]}}}}\n",
            keys.join(", ")
        );
    }
    out
}
