//! Client compatibility with the official `openai` Python SDK (version pinned in
//! `tests/sdk/requirements.txt`): a router runs in-process on `examples/quickstart.yaml` and
//! `tests/sdk/openai_client_check.py` drives it through the SDK, unmodified — chat, streamed chat
//! with and without `stream_options`, embeddings (the SDK's default base64 encoding and float),
//! the model list, and the 401/404 errors as typed SDK exceptions. See the script for each check.
//!
//! Then the router's own bookkeeping is checked against what the client did: the admin
//! `/metrics` must count exactly the requests the script reports, by endpoint, model and status.
//!
//! Needs `SWITCHBOARD_TEST_PYTHON` pointing at a Python with the pinned SDK (`make test` builds
//! `.venv` and sets it). Without it the test fails, unless `SWITCHBOARD_SKIP_SDK_TESTS=1`, which
//! skips it loudly; CI must never skip silently.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use switchboard_router::{providers::clients::install_crypto_provider, server, state::Settings};

/// The quickstart's client key.
const KEY: &str = "sk-sb-quickstart-0123456789";
/// Limit for the whole script; it normally takes a few seconds.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The requests the script makes, as `(endpoint, status, model label in the metric, count)`. The
/// script's docstring and its final `CALLS` line say the same; a change to either side that is not
/// made to the other fails here. The model label is `unknown` when the router rejected the request
/// before it knew a configured model (bad key, unknown model); `None` means not checked (the
/// models listing has no model).
const SCRIPT_CALLS: &[(&str, u16, Option<&str>, u64)] = &[
    // One plain completion, one stream with `include_usage`, one stream without `stream_options`.
    ("chat", 200, Some("openai/gpt-4o-mini"), 3),
    ("chat", 401, Some("unknown"), 1),
    ("chat", 404, Some("unknown"), 1),
    // Two inputs at once, one input again (base64), the same input as floats.
    ("embeddings", 200, Some("openai/text-embedding-3-small"), 3),
    ("models", 200, None, 1),
];

/// A path relative to the repository root (this package lives in `tests/`).
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join(rel)
}

/// The `openai==X` version pinned in `tests/sdk/requirements.txt`.
fn pinned_openai_version() -> String {
    let reqs = std::fs::read_to_string(repo_path("tests/sdk/requirements.txt"))
        .expect("read tests/sdk/requirements.txt");
    reqs.lines()
        .find_map(|l| l.trim().strip_prefix("openai=="))
        .expect("tests/sdk/requirements.txt pins openai==<version>")
        .trim()
        .to_string()
}

/// The value of `switchboard_requests_total{endpoint, model, status}` in Prometheus text (0 when
/// absent). Label values here are config model names: no commas or quotes to unescape.
fn requests_total(metrics: &str, endpoint: &str, model: &str, status: u16) -> u64 {
    let mut want = vec![
        format!("endpoint=\"{endpoint}\""),
        format!("model=\"{model}\""),
        format!("status=\"{status}\""),
    ];
    want.sort();
    metrics
        .lines()
        .filter_map(|l| {
            l.strip_prefix("switchboard_requests_total{")?
                .split_once("} ")
        })
        .find(|(labels, _)| {
            let mut got: Vec<&str> = labels.split(',').collect();
            got.sort();
            got == want
        })
        .map_or(0, |(_, v)| v.trim().parse().expect("integer counter"))
}

#[tokio::test(flavor = "multi_thread")]
async fn official_openai_python_sdk_works_against_the_router() {
    let Some(python) = std::env::var_os("SWITCHBOARD_TEST_PYTHON").filter(|p| !p.is_empty()) else {
        if std::env::var("SWITCHBOARD_SKIP_SDK_TESTS").as_deref() == Ok("1") {
            // Straight to stderr, past the test harness's output capture, so it is seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED openai SDK compatibility test: SWITCHBOARD_SKIP_SDK_TESTS=1 and \
                 SWITCHBOARD_TEST_PYTHON is unset. Nothing about SDK compatibility was tested. ***\n"
            );
            return;
        }
        panic!(
            "SWITCHBOARD_TEST_PYTHON is not set: run `make test` (it builds .venv with \
             tests/sdk/requirements.txt and sets it), or set it to a Python that has the pinned \
             `openai` package. To skip on purpose, set SWITCHBOARD_SKIP_SDK_TESTS=1."
        );
    };
    let started = std::time::Instant::now();

    let state = switchboard_router::state_from_manifests(
        &[repo_path("examples/quickstart.yaml")],
        Settings::default(),
    )
    .expect("quickstart manifests load");
    let server = server::start(
        state,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .expect("router starts");

    // The SDK's HTTP client honours *_PROXY variables; the router is local.
    let no_proxy = match std::env::var("NO_PROXY") {
        Ok(v) if !v.is_empty() => format!("{v},127.0.0.1,localhost"),
        _ => "127.0.0.1,localhost".to_string(),
    };
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(repo_path("tests/sdk/openai_client_check.py"))
        .arg(format!("http://{}/v1", server.api_addr))
        .arg(KEY)
        .env("SWITCHBOARD_EXPECT_OPENAI_VERSION", pinned_openai_version())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", &no_proxy)
        .env("no_proxy", &no_proxy)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the SDK script did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| {
            panic!(
                "cannot run SWITCHBOARD_TEST_PYTHON={}: {e}",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the openai SDK check failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );

    // What the script says it did must be what this test expects...
    let reported: BTreeMap<(String, u16), u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CALLS "))
        .expect("the script prints a CALLS line")
        .split_whitespace()
        .map(|item| {
            let (key, n) = item.split_once('=').expect("endpoint:status=count");
            let (endpoint, status) = key.split_once(':').expect("endpoint:status");
            let status = status.parse().expect("status");
            ((endpoint.to_string(), status), n.parse().expect("count"))
        })
        .collect();
    let expected: BTreeMap<(String, u16), u64> = SCRIPT_CALLS
        .iter()
        .map(|&(endpoint, status, _, n)| ((endpoint.to_string(), status), n))
        .collect();
    assert_eq!(
        reported, expected,
        "the script's calls differ from SCRIPT_CALLS"
    );

    // ...and what the router counted. A stream's request is recorded when the server drops the
    // stream, which can be just after the client read `[DONE]`: poll briefly before asserting.
    install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let metrics_url = format!("http://{}/metrics", server.admin_addr);
    let checked = || {
        SCRIPT_CALLS
            .iter()
            .filter_map(|&(e, s, m, n)| Some((e, s, m?, n)))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let settled = checked().all(|(e, s, m, n)| requests_total(&text, e, m, s) >= n);
        if settled || tokio::time::Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (endpoint, status, model, n) in checked() {
        assert_eq!(
            requests_total(&metrics, endpoint, model, status),
            n,
            "switchboard_requests_total{{endpoint=\"{endpoint}\",model=\"{model}\",\
             status=\"{status}\"}} in:\n{metrics}"
        );
    }
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("switchboard_requests_total{") && l.contains("status=\"5")),
        "the router answered 5xx to the SDK:\n{metrics}"
    );

    server.shutdown().await;
    println!("openai SDK compatibility test took {:?}", started.elapsed());
}
