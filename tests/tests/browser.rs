//! Playwright for Python (pinned in tests/tools/requirements.txt) drives Debian's chromium
//! (`SWITCHBOARD_TEST_CHROMIUM`, never a downloaded browser) headless against a page served here on
//! loopback: the page's script (a file, as a strict Content-Security-Policy wants) fetches JSON
//! from this server and a click changes the page; `tests/browser/chromium_check.py` reports what it
//! saw and takes a screenshot. The console's browser tests build on this.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use serde_json::{Value, json};
use switchboard_e2e::tools::{Tool, optional};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard browser check</title>
<script src="/app.js" defer></script></head>
<body><p id="out">loading</p><button id="more" type="button">more</button></body></html>"#;

const SCRIPT: &str = r#"
const out = document.getElementById("out");
fetch("/data.json").then((r) => r.json()).then((d) => {
  out.textContent = d.message;
  out.dataset.loaded = "yes";
});
document.getElementById("more").addEventListener("click", () => {
  out.textContent += " + clicked";
  out.dataset.clicked = "yes";
});
"#;

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[derive(Clone)]
struct Page {
    message: String,
    fetched: Arc<AtomicUsize>,
}

fn app(page: Page) -> Router {
    let csp = [(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'",
    )];
    Router::new()
        .route(
            "/",
            get(move || async move { (csp, axum::response::Html(PAGE)).into_response() }),
        )
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .route(
            "/data.json",
            get(|State(p): State<Page>| async move {
                p.fetched.fetch_add(1, Ordering::SeqCst);
                Json(json!({"message": p.message}))
            }),
        )
        .with_state(page)
}

#[tokio::test(flavor = "multi_thread")]
async fn playwright_drives_debian_chromium_on_a_loopback_page() {
    let test = "Playwright + chromium check";
    let (Some(python), Some(chromium)) =
        (optional(Tool::Python, test), optional(Tool::Chromium, test))
    else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = Page {
        message: format!("served from port {}", addr.port()),
        fetched: Arc::default(),
    };
    let server = tokio::spawn(axum::serve(listener, app(page.clone())).into_future());

    let screenshot = std::env::temp_dir().join(format!("switchboard-browser-{}.png", addr.port()));
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(repo_path("tests/browser/chromium_check.py"))
            .arg(format!("http://{addr}/"))
            .arg(&chromium)
            .arg(&screenshot)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 2 minutes")
    .expect("SWITCHBOARD_TEST_PYTHON runs");
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium_check.py failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("one JSON line expected ({e}): {stdout}"));
    assert_eq!(report["title"], "Switchboard browser check");
    assert_eq!(
        report["out"],
        format!("{} + clicked", page.message),
        "the page's script fetched from this server and handled the click"
    );
    assert_eq!(page.fetched.load(Ordering::SeqCst), 1);
    let ua = report["user_agent"].as_str().unwrap_or_default();
    assert!(ua.contains("Chrome/"), "{ua}");
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    let _ = std::fs::remove_file(&screenshot);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
}
