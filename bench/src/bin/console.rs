//! The web console's server time on a big usage store (docs/benchmarks.md, "Console"): each page
//! rendered by the router's own admin route table, in-process (no network, no browser), on a
//! store `bench-usage seed` filled. Prints one JSON object: per page the median and slowest of 10
//! renders after a warm-up, and the page's size.
//!
//! `bench-console --store URL [--manifests FILE] [--seed FILE] [--write docs/benchmarks.md]`:
//! `--seed` names the JSON `bench-usage seed` printed (its times and row counts go into the
//! report); `--write` replaces the console's section of that file (between [`BEGIN`] and
//! [`END`]) with a report of this run. Without `--manifests` the config is the one
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

/// Where the report goes in docs/benchmarks.md.
const BEGIN: &str = "<!-- console:begin (make bench-console) -->";
const END: &str = "<!-- console:end -->";

/// The pages rendered, and what each is called in the report.
const PAGES: [(&str, &str); 11] = [
    ("/console/?range=7d&by=model", "overview, 7 days by model"),
    ("/console/?range=30d&by=team", "overview, 30 days by team"),
    (
        "/console/?range=24h&by=provider",
        "overview, 24 hours by provider",
    ),
    ("/console/budgets", "budgets"),
    ("/console/keys", "keys"),
    ("/console/requests", "requests (newest page)"),
    (
        "/console/requests?model=model-7&status=502",
        "requests: one model's 502s (none match)",
    ),
    (
        "/console/requests?team=team-3&status=502",
        "requests: one team's 502s (none match)",
    ),
    (
        "/console/requests?key=bench/key-7&status=502",
        "requests: one key's 502s (none match)",
    ),
    ("/console/requests?status=502", "requests: every 502"),
    ("/console/providers", "providers & routes"),
];

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
            url: url.clone(),
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
    for (path, _) in PAGES {
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
    if let Some(doc) = arg(&args, "--write") {
        let seed = match arg(&args, "--seed") {
            Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
            None => serde_json::Value::Null,
        };
        let text = report(&pages, &seed, &url);
        let old = std::fs::read_to_string(&doc).unwrap_or_default();
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => format!("{}{text}{}", &old[..b], &old[e + END.len()..]),
            _ => format!("{}\n\n{text}\n", old.trim_end()),
        };
        std::fs::write(&doc, new)?;
        eprintln!("wrote the console section of {doc}");
    }
    Ok(())
}

/// `1,234,567`.
fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && c != '-' && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with sensible precision.
fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v.round() as i64)
    }
}

/// The console's section of docs/benchmarks.md: this run's page times, the seeding it ran on.
fn report(pages: &[serde_json::Value], seed: &serde_json::Value, url: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let now = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC");
    let mut l = vec![
        BEGIN.to_string(),
        "## Console".to_string(),
        String::new(),
        format!(
            "Generated by `make bench-console` (bench-usage seeds a SQLite store, bench-console renders \
             each page in-process through the admin route table; median and slowest of 10 after a \
             warm-up) on {now}, release build, {cpus} × {cpu}, load average {load} when the pages \
             were rendered (the machine was shared)."
        ),
    ];
    let n = |k: &str| seed["rows"][k].as_i64().unwrap_or(0);
    if seed.is_object() {
        let file = url.strip_prefix("sqlite://").map_or(0, |p| {
            ["", "-wal", "-shm"]
                .iter()
                .filter_map(|x| std::fs::metadata(format!("{p}{x}")).ok())
                .map(|m| m.len())
                .sum::<u64>()
        });
        l.push(format!(
            "Seeding {} records took {:.0} s and their rollups {:.0} s ({} daily rows, {} tag \
             rows, {} user rows, {} hourly rows, {} hourly latency rows); the store file, with the \
             explorer's indexes, is {:.1} GB.",
            thousands(n("usage_records")),
            seed["records_seconds"].as_f64().unwrap_or(0.0),
            seed["rollups_seconds"].as_f64().unwrap_or(0.0),
            thousands(n("usage_daily")),
            thousands(n("usage_daily_tags")),
            thousands(n("usage_daily_users")),
            thousands(n("usage_hourly")),
            thousands(n("usage_hourly_latency")),
            file as f64 / 1e9,
        ));
    }
    l.push(String::new());
    l.push("| page | bytes | median ms | slowest ms |".into());
    l.push("|---|---:|---:|---:|".into());
    let mut overview: f64 = 0.0;
    let mut slowest_page = (String::new(), 0.0_f64);
    for (page, (path, name)) in pages.iter().zip(PAGES) {
        let median = page["median_ms"].as_f64().unwrap_or(0.0);
        let max = page["max_ms"].as_f64().unwrap_or(0.0);
        if path.starts_with("/console/?") {
            overview = overview.max(median);
        }
        if median > slowest_page.1 {
            slowest_page = (name.to_string(), median);
        }
        l.push(format!(
            "| {name} | {} | {} | {} |",
            thousands(page["bytes"].as_i64().unwrap_or(0)),
            ms(median),
            ms(max)
        ));
    }
    l.push(String::new());
    l.push(format!(
        "The overview's server time is at most {} ms (median, of the three ranges): every number on \
         it comes from the rollups, daily ones and, for the last 24 hours, hourly ones with a latency \
         histogram. The requests page's filters each walk their own index newest first, the status \
         checked inside it, so a filter that matches nothing reads that value's index entries and no \
         record (docs/usage.md#indexes). The slowest page is {} ({} ms).",
        ms(overview),
        slowest_page.0,
        ms(slowest_page.1)
    ));
    l.push(END.to_string());
    l.join("\n")
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
