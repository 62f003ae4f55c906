//! The web console in a real browser (issue 18): a router runs in-process with a SQLite usage
//! store, an admin token and the built-in mock provider; this test seeds two weeks of history
//! into the store, sends real traffic through the client API (two keys on two teams, three
//! models, one of them named `<script>alert(1)</script>`, streamed and not, one refused; a
//! route rejected by the compiler), then
//! `tests/console/console_check.py` (Playwright for Python driving Debian's chromium) signs in,
//! visits every page, filters, opens a request, streams two playground replies and signs out.
//! What the pages showed is compared here with the usage API's answers.
//!
//! With `SWITCHBOARD_CONSOLE_SCREENSHOTS=1` the script also writes a screenshot of each page to
//! `docs/console/` (the README and docs/console.md show them).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};
use switchboard_api::{snapshot::BudgetWindow, windows::window_bounds};
use switchboard_e2e::tools::{Tool, optional};
use switchboard_router::{
    admin::auth::AdminAuth,
    error::AttemptReport,
    pricing::Usage,
    providers::clients::install_crypto_provider,
    server,
    state::Settings,
    usage::{UsageOptions, record::UsageRecord, retention::Retention},
};

const TOKEN: &str = "sb-admin-browser-4f9Qm2Lx7Vt0Rk3Z";
const KEY_ML: &str = "sk-sb-console-ml-0123456789";
const KEY_WEB: &str = "sk-sb-console-web-0123456789";
const HOSTILE: &str = "<script>alert(1)</script>";
const DAY_MS: i64 = 86_400_000;

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn manifests() -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: console-keys}}
stringData: {{ml: {KEY_ML}, web: {KEY_WEB}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: mock
  mock: {{chunkChars: 4, chunkDelay: 40ms}}
  models:
    - {{name: mock-chat, pricing: {{inputUSDPerMillion: "2.5", outputUSDPerMillion: "10"}}, maxOutputTokens: 4096}}
    - {{name: mock-fast, pricing: {{inputUSDPerMillion: "0.8", outputUSDPerMillion: "4"}}, maxOutputTokens: 4096}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: gpt}}
spec: {{model: openai/gpt-4o-mini, targets: [{{provider: mock, model: mock-chat}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: haiku}}
spec: {{model: anthropic/claude-haiku, targets: [{{provider: mock, model: mock-fast}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: hostile}}
spec: {{model: "{HOSTILE}", targets: [{{provider: mock, model: mock-fast}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: broken}}
spec: {{model: openai/gpt-5, targets: [{{provider: azure-eu, model: gpt-5}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: ml-pipeline, labels: {{team: ml}}}}
spec: {{secretRef: {{name: console-keys, key: ml}}, rateLimits: {{requestsPerMinute: 600}}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: web-app, labels: {{team: web}}}}
spec: {{secretRef: {{name: console-keys, key: web}}, allowedModels: ["openai/*", "anthropic/*"]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: ml-monthly}}
spec: {{limitUSD: "2", window: monthly, scope: {{team: ml}}, softLimitPercent: 80}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {{name: web-daily}}
spec: {{limitUSD: "0.5", window: daily, scope: {{apiKeys: [web-app]}}, action: alertOnly}}
"#
    )
}

/// Two weeks of history before today, so the charts have days to draw: a few records a day per
/// key and model, written straight into the store (the client API cannot backdate).
fn history(now_ms: i64) -> Vec<Arc<UsageRecord>> {
    let today = now_ms.div_euclid(DAY_MS);
    let mut out = Vec::new();
    for back in 1..=13i64 {
        for (k, (key, team)) in [("default/ml-pipeline", "ml"), ("default/web-app", "web")]
            .iter()
            .enumerate()
        {
            for (m, model) in ["openai/gpt-4o-mini", "anthropic/claude-haiku"]
                .iter()
                .enumerate()
            {
                let n = 1 + (back + k as i64 * 3 + m as i64 * 5) % 4;
                for i in 0..n {
                    let prompt = 200 + 37 * (back as u64 + i as u64);
                    let completion = 80 + 11 * (i as u64 + k as u64);
                    out.push(Arc::new(UsageRecord {
                        id: format!("gen-seed-{back}-{k}-{m}-{i}"),
                        created_at_ms: (today - back) * DAY_MS + 3_600_000 * (8 + i),
                        endpoint: "chat".into(),
                        key_id: key.to_string(),
                        team: Some(team.to_string()),
                        user: None,
                        tags: vec![],
                        app: Some(
                            if k == 0 {
                                "batch-scorer"
                            } else {
                                "web-frontend"
                            }
                            .into(),
                        ),
                        caller_issuer: None,
                        caller_subject: None,
                        model: model.to_string(),
                        served_model: None,
                        provider: Some("mock".into()),
                        upstream_model: Some(if m == 0 { "mock-chat" } else { "mock-fast" }.into()),
                        attempts: vec![AttemptReport {
                            provider: "mock".into(),
                            model: if m == 0 { "mock-chat" } else { "mock-fast" }.into(),
                            ok: true,
                            error_type: None,
                            status: Some(200),
                            latency_ms: 300 + 40 * i as u64,
                        }],
                        tokens: Usage {
                            prompt_tokens: prompt,
                            completion_tokens: completion,
                            ..Usage::default()
                        },
                        cost_nanos: prompt as i64 * if m == 0 { 2_500 } else { 800 }
                            + completion as i64 * if m == 0 { 10_000 } else { 4_000 },
                        status: 200,
                        error_code: None,
                        finish_reason: Some("stop".into()),
                        usage_anomaly: None,
                        input: None,
                        output: None,
                        streamed: i % 2 == 0,
                        latency_ms: 300 + 40 * i as u64,
                        ttft_ms: (i % 2 == 0).then_some(120),
                        cache_hit: None,
                        cache_saved_nanos: 0,
                    }));
                }
            }
        }
    }
    out
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let resp = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_real_traffic_in_chromium() {
    let test = "console browser test";
    let (Some(python), Some(chromium)) =
        (optional(Tool::Python, test), optional(Tool::Chromium, test))
    else {
        return;
    };
    install_crypto_provider();
    let dir = std::env::temp_dir().join(format!(
        "switchboard-console-browser-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("console.yaml");
    std::fs::write(&manifest, manifests()).unwrap();
    let settings = Settings {
        admin: AdminAuth::new(Some(TOKEN), false, false),
        ..Settings::default()
    };
    let state = switchboard_router::state_from_manifests(&[manifest], settings).unwrap();
    let usage = switchboard_router::usage::start(
        &state.metrics,
        &state.usage,
        UsageOptions {
            url: format!("sqlite://{}", dir.join("usage.db").display()),
            spill_file: dir.join("usage-spill.jsonl"),
            spill_max_bytes: 1 << 30,
            retention: Retention {
                records: None,
                rollups: None,
            },
            drain: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let seeded = history(now_ms);
    let store = state.usage.get().unwrap().store().clone();
    assert_eq!(store.insert(&seeded).await.unwrap(), seeded.len() as u64);
    let server = server::start(
        state.clone(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let api = format!("http://{}", server.api_addr);
    let admin = format!("http://{}", server.admin_addr);
    let http = reqwest::Client::new();

    // Real traffic through the client API.
    let mut sent = 0;
    for (key, model, stream, n) in [
        (KEY_ML, "openai/gpt-4o-mini", false, 3),
        (KEY_ML, "anthropic/claude-haiku", true, 2),
        (KEY_WEB, "openai/gpt-4o-mini", true, 2),
        (KEY_WEB, "anthropic/claude-haiku", false, 1),
        (KEY_ML, HOSTILE, false, 1),
        // Refused: web-app may not call it.
        (KEY_WEB, HOSTILE, false, 1),
    ] {
        for i in 0..n {
            let mut body = json!({
                "model": model,
                "messages": [{"role": "user", "content": format!("Summarise ticket {i} in one line, please.")}],
                "stream": stream,
            });
            if stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            let resp = http
                .post(format!("{api}/v1/chat/completions"))
                .bearer_auth(key)
                .header(
                    "x-title",
                    if key == KEY_ML {
                        "batch-scorer"
                    } else {
                        "web-frontend"
                    },
                )
                .json(&body)
                .send()
                .await
                .unwrap();
            let refused = key == KEY_WEB && model == HOSTILE;
            assert_eq!(resp.status(), if refused { 403 } else { 200 }, "{model}");
            let _ = resp.text().await.unwrap();
            sent += 1;
        }
    }
    // Wait until the store has every request of today.
    let today = jiff::Timestamp::now().as_millisecond().div_euclid(DAY_MS);
    let date = |day: i64| {
        jiff::Timestamp::from_millisecond(day * DAY_MS)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string()
    };
    let mut day_report = Value::Null;
    for _ in 0..200 {
        day_report = get_json(
            &http,
            &format!("{admin}/admin/v1/usage?from={0}&to={0}", date(today)),
        )
        .await;
        if day_report["total"]["requests"] == sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(day_report["total"]["requests"], sent, "{day_report}");
    let month_start = window_bounds(BudgetWindow::Monthly, jiff::Timestamp::now())
        .0
        .as_millisecond()
        .div_euclid(DAY_MS);
    let month_report = get_json(
        &http,
        &format!(
            "{admin}/admin/v1/usage?from={}&to={}",
            date(month_start),
            date(today)
        ),
    )
    .await;
    let keys_report = get_json(&http, &format!("{admin}/admin/v1/usage?group_by=key")).await;
    let haiku = get_json(
        &http,
        &format!("{admin}/admin/v1/generations?model=anthropic/claude-haiku&limit=50"),
    )
    .await;

    let shots = std::env::var("SWITCHBOARD_CONSOLE_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| repo_path("docs/console"));
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        json!({
            "token": TOKEN,
            "client_key": KEY_ML,
            "filter_model": "anthropic/claude-haiku",
            "hostile_model": HOSTILE,
            "playground_models": ["openai/gpt-4o-mini", "anthropic/claude-haiku"],
            "prompt": "Streamed from the mock provider, word by word.",
            "screenshots": shots,
        })
        .to_string(),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new(&python)
            .arg(repo_path("tests/console/console_check.py"))
            .arg(&admin)
            .arg(&chromium)
            .arg(&plan)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the console check finishes within 4 minutes")
    .expect("SWITCHBOARD_TEST_PYTHON runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "console_check.py failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("one JSON line expected ({e}): {stdout}"));

    // Nothing ran that should not have; the CSP held without breaking the pages.
    assert_eq!(r["csp_violations"], json!([]), "{r}");
    assert_eq!(r["page_errors"], json!([]), "{r}");
    assert_eq!(r["dialogs"], json!([]), "a hostile name ran as script: {r}");
    assert_eq!(r["script_elements"], 0);

    // Login: the root went to the login page; a wrong token was refused; the session cookie is
    // HttpOnly and SameSite=Strict.
    assert!(
        r["login_url"].as_str().unwrap().contains("/console/login"),
        "{r}"
    );
    assert!(
        r["wrong_token_error"]
            .as_str()
            .unwrap()
            .contains("not the admin token")
    );
    assert!(
        r["after_login_url"]
            .as_str()
            .unwrap()
            .ends_with("/console/")
    );
    assert_eq!(r["who"], "admin (signed in)");
    assert_eq!(
        r["session_cookie"],
        json!({"http_only": true, "same_site": "Strict", "readable_by_script": false})
    );

    // Overview: the numbers are the usage API's.
    let o = &r["overview"];
    assert_eq!(
        o["spend-today"]["exact"], day_report["total"]["cost_usd"],
        "{r}"
    );
    assert_eq!(o["requests-today"]["exact"], sent.to_string());
    assert_eq!(
        o["error-rate-today"]["exact"],
        day_report["total"]["failed"].to_string()
    );
    assert_eq!(o["spend-month"]["exact"], month_report["total"]["cost_usd"]);
    assert_eq!(
        o["requests-month"]["exact"],
        month_report["total"]["requests"].to_string()
    );
    assert!(
        o["p50-24h"]["text"].as_str().unwrap().ends_with("ms"),
        "{o}"
    );
    assert_eq!(r["overview_charts"], 2);
    let legend: Vec<String> = serde_json::from_value(r["overview_legend"].clone()).unwrap();
    assert!(
        legend.iter().any(|l| l.contains("openai/gpt-4o-mini")),
        "{legend:?}"
    );
    assert!(r["hover_legend"].as_str().unwrap().contains('$'), "{r}");
    assert!(
        r["top_models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == HOSTILE),
        "{r}"
    );
    assert_eq!(r["overview_24h_title"], "Spend by team (USD)");
    let legend_24h: Vec<String> = serde_json::from_value(r["overview_24h_legend"].clone()).unwrap();
    assert!(
        legend_24h.iter().any(|l| l.contains("ml")),
        "{legend_24h:?}"
    );
    assert_eq!(r["theme_after_toggle"], "dark");
    assert_eq!(r["theme_after_second_toggle"], "light");

    // Budgets: both, spend from the ledger (the budget's keys' settled cost today).
    let budgets = r["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2, "{r}");
    assert!(
        budgets
            .iter()
            .all(|b| !b["forecast"].as_str().unwrap().is_empty())
    );

    // Keys: prefixes only, and the 30-day requests of the usage API.
    let keys = r["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        let text = k["text"].as_str().unwrap();
        assert!(
            !text.contains(KEY_ML) && !text.contains(KEY_WEB),
            "a whole key on the page"
        );
        assert!(k["prefix"].as_str().unwrap().ends_with('…'));
        let api_row = keys_report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["key"] == k["id"])
            .unwrap_or_else(|| panic!("{k} in {keys_report}"));
        assert_eq!(k["requests"], api_row["requests"], "{k}");
    }

    // Providers & routes: every route, the hostile one as text; the mock target healthy.
    assert!(
        r["route_models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == HOSTILE),
        "{r}"
    );
    assert!(
        r["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "healthy"),
        "{r}"
    );
    // A route to a provider that does not exist is rejected, and the page says so.
    assert_eq!(
        r["rejected_objects"],
        json!(["ModelRoute default/broken"]),
        "{r}"
    );

    // Requests: the hostile model shown as text; the filter gives the API's list.
    assert!(r["hostile_cells"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["filtered_url"]
            .as_str()
            .unwrap()
            .contains("model=anthropic")
    );
    let api_ids: Vec<&str> = haiku["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    let page_ids: Vec<&str> = r["filtered_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(page_ids, api_ids);
    assert!(
        r["filtered_models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m == "anthropic/claude-haiku")
    );
    let detail = &r["detail"];
    let one = get_json(
        &http,
        &format!(
            "{admin}/admin/v1/generations/{}",
            detail["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        detail["cost"], one["data"]["total_cost"],
        "{detail} vs {one}"
    );
    assert_eq!(
        detail["attempts"],
        one["data"]["attempts"].as_array().unwrap().len().max(1)
    );

    // Playground: both replies streamed from the mock (it echoes the prompt), priced.
    let answers = r["playground"].as_array().unwrap();
    assert_eq!(answers.len(), 2);
    for a in answers {
        assert_eq!(a["state"], "done", "{a}");
        assert_eq!(
            a["text"], "echo: Streamed from the mock provider, word by word.",
            "{a}"
        );
        assert!(a["cost"].as_str().unwrap().starts_with('$'), "{a}");
        assert!(a["ttft"].as_str().unwrap().ends_with("ms"), "{a}");
        assert!(a["generation"].as_str().unwrap().starts_with("gen-"), "{a}");
    }
    assert!(
        r["after_logout_url"]
            .as_str()
            .unwrap()
            .contains("/console/login")
    );

    server.shutdown().await;
    usage.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
