//! The usage of record end to end (issue 17's must-show tests): every generation request leaves
//! exactly one row whose cost is what the client was told and what the ledger settled; the
//! activity API and the usage report agree with the rows; the generation API answers from the
//! store after a restart (Postgres outages, spill replay and two routers: `usage_postgres.rs`).

mod support;

use std::{
    collections::{BTreeMap, HashSet},
    str::FromStr,
    time::{Duration, Instant},
};

use rust_decimal::Decimal;
use serde_json::{Value, json, value::RawValue};
use support::*;
use switchboard_api::{counters::key_usage_counter, money::from_nanos, snapshot::BudgetWindow};
use switchboard_router::state::AppState;

/// `usage.cost` as the client saw it, exact: from a complete body, or a stream's usage chunk.
fn client_cost(body: &str, stream: bool) -> Decimal {
    #[derive(serde::Deserialize)]
    struct Cost<'a> {
        #[serde(borrow)]
        cost: &'a RawValue,
    }
    #[derive(serde::Deserialize)]
    struct WithUsage<'a> {
        #[serde(borrow, default)]
        usage: Option<Cost<'a>>,
    }
    let cost = |json: &str| {
        serde_json::from_str::<WithUsage<'_>>(json)
            .ok()
            .and_then(|w| w.usage)
            .map(|u| Decimal::from_str(u.cost.get()).unwrap())
    };
    if !stream {
        return cost(body).expect("a usage.cost in the body");
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .find_map(cost)
        .expect("a usage chunk with cost")
}

/// Every generation the admin API lists (all pages).
async fn all_rows(http: &reqwest::Client, admin: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{admin}/admin/v1/generations?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return rows,
        }
    }
}

/// Waits until the store lists `n` generations (at most `limit`), and returns them.
async fn rows_when(http: &reqwest::Client, admin: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let rows = all_rows(http, admin).await;
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn usd(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

/// What a client sent and was told.
#[derive(Default)]
struct Sent {
    ids: Vec<String>,
    cost: Decimal,
    failed: usize,
}

impl Sent {
    async fn chat(&mut self, router: &TestRouter, body: Value, headers: &[(&str, &str)]) {
        let stream = body["stream"].as_bool().unwrap_or(false);
        let mut req = router
            .http
            .post(router.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        self.take(resp, stream).await;
    }

    async fn take(&mut self, resp: reqwest::Response, stream: bool) {
        self.ids.push(
            resp.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let status = resp.status();
        let text = resp.text().await.unwrap();
        if status.is_success() {
            self.cost += client_cost(&text, stream);
        } else {
            self.failed += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_requests_leave_one_row_each_and_the_money_agrees_everywhere() {
    let up0 = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let up1 = MockUpstream::start(Behaviour::Json(200, UPSTREAM_COMPLETION.into())).await;
    let dir = scratch_dir("usage-mixed");
    let (router, state, usage) = TestRouter::start_with_usage(
        &manifests(&[up0.base_url(), up1.base_url()]),
        settings_without_ejection(),
        sqlite_usage(&dir),
    )
    .await;
    let mut sent = Sent::default();
    let tagged = [("x-switchboard-tags", "prod,exp"), ("x-title", "Bench App")];
    let chat = |stream: bool| json!({"model": "test/model", "stream": stream, "messages": hi(), "user": "alice"});
    // Plain, streamed, fallback (up0 fails, up1 serves), failed (both fail).
    for _ in 0..5 {
        sent.chat(&router, chat(false), &tagged).await;
    }
    up0.set(Behaviour::Sse(upstream_stream_frames(true), Duration::ZERO));
    for _ in 0..5 {
        sent.chat(&router, chat(true), &[]).await;
    }
    up0.set(Behaviour::Json(
        500,
        r#"{"error":{"message":"internal"}}"#.into(),
    ));
    for _ in 0..4 {
        sent.chat(&router, chat(false), &[("x-switchboard-tags", "fallback")])
            .await;
    }
    up1.set(Behaviour::Json(
        503,
        r#"{"error":{"message":"overloaded"}}"#.into(),
    ));
    for stream in [false, true, false] {
        sent.chat(&router, chat(stream), &[]).await;
    }
    // The built-in mock, streamed and not, tagged in the body.
    for stream in [false, true, false, true] {
        let body = json!({"model": "test/mock", "stream": stream, "messages": hi(), "metadata": {"tags": ["eval"]}});
        sent.chat(&router, body, &[]).await;
    }
    // A model the router does not serve, and one the key may not use: failed requests too.
    sent.chat(&router, json!({"model": "no/such", "messages": hi()}), &[])
        .await;
    sent.chat(
        &router,
        json!({"model": "test/denied", "messages": hi()}),
        &[],
    )
    .await;
    // Embeddings (up0 fails: they fall back to up1, which serves embeddings fine).
    up1.set(Behaviour::Json(
        200,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"model":"embed","usage":{"prompt_tokens":8,"total_tokens":8}}"#.into(),
    ));
    for _ in 0..2 {
        let resp = router
            .http
            .post(router.url("/v1/embeddings"))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "test/embed", "input": "hello"}))
            .send()
            .await
            .unwrap();
        sent.take(resp, false).await;
    }
    // Anthropic's Messages API: its usage has no cost, so price it from its tokens (the mock
    // model's $1 / $2 per million).
    for _ in 0..2 {
        let resp = router
            .http
            .post(router.url("/v1/messages"))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": "test/mock", "max_tokens": 50, "messages": hi()}))
            .send()
            .await
            .unwrap();
        sent.ids.push(
            resp.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        let v: Value = resp.json().await.unwrap();
        let tokens = |k: &str| Decimal::from(v["usage"][k].as_u64().unwrap());
        sent.cost += (tokens("input_tokens") + tokens("output_tokens") * Decimal::TWO)
            / Decimal::from(1_000_000);
    }
    // Counting tokens costs nothing, and is recorded like every endpoint.
    let resp = router
        .http
        .post(router.url("/v1/messages/count_tokens"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "test/mock", "messages": hi()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sent.ids.push(
        resp.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_string(),
    );
    // Not a request of any key: the access log has it, the usage store does not.
    let anonymous = router
        .http
        .post(router.url("/v1/chat/completions"))
        .bearer_auth("sk-sb-nobody-0123456789")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let n = sent.ids.len();
    assert_eq!(n, 28);
    assert_eq!(
        sent.failed, 5,
        "three failed upstream, one unknown model, one denied"
    );
    let rows = rows_when(&router.http, &router.admin(""), n, Duration::from_secs(20)).await;
    assert_eq!(rows.len(), n, "exactly one row per request");
    let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        sent.ids.iter().map(String::as_str).collect::<HashSet<_>>()
    );

    // Money: rows == what clients were told == what the ledger settled.
    let rows_cost: Decimal = rows.iter().map(|r| usd(&r["total_cost"])).sum();
    assert_eq!(rows_cost, sent.cost);
    state.settler.drain(Duration::from_secs(5)).await;
    let counter = key_usage_counter("default/main", BudgetWindow::Total, jiff::Timestamp::now());
    let settled = state.settler.ledger().read(&[counter]).await.unwrap()[0].spent;
    assert_eq!(from_nanos(settled), rows_cost);

    // The rows carry what the requests said about themselves.
    let by_id: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    let first = by_id[sent.ids[0].as_str()];
    assert_eq!(first["tags"], json!(["prod", "exp"]));
    assert_eq!(first["app"], "Bench App");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["api_key"], "default/main");
    assert_eq!(first["team"], "a");
    let fallback = by_id[sent.ids[10].as_str()];
    assert_eq!(fallback["provider_name"], "up1");
    assert_eq!(fallback["attempts"].as_array().unwrap().len(), 2);
    let failed = by_id[sent.ids[14].as_str()];
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["total_cost"], "0");
    let streamed = by_id[sent.ids[5].as_str()];
    assert_eq!(streamed["streamed"], true);
    assert!(streamed["time_to_first_token"].is_u64());
    let endpoints: HashSet<&str> = rows
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        endpoints,
        HashSet::from(["chat", "embeddings", "messages", "count_tokens"])
    );

    // The activity API (the caller's key) and the report agree with the rows.
    let activity: Value = get_as(&router.http, router.url("/api/v1/activity"), CLIENT_KEY)
        .await
        .json()
        .await
        .unwrap();
    let items = activity["data"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i["requests"].as_i64().unwrap())
            .sum::<i64>(),
        n as i64
    );
    let activity_usd: f64 = items.iter().map(|i| i["usage"].as_f64().unwrap()).sum();
    assert!((activity_usd - rows_cost.to_string().parse::<f64>().unwrap()).abs() < 1e-12);
    let prompt: i64 = rows
        .iter()
        .map(|r| r["tokens_prompt"].as_i64().unwrap())
        .sum();
    assert_eq!(
        items
            .iter()
            .map(|i| i["prompt_tokens"].as_i64().unwrap())
            .sum::<i64>(),
        prompt
    );
    let other: Value = get_as(
        &router.http,
        router.url("/api/v1/activity"),
        "sk-sb-test-other-0123456789",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(other["data"], json!([]), "another key sees none of it");

    let report: Value = router
        .http
        .get(router.admin("/admin/v1/usage?group_by=model,provider"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["total"]["requests"], n);
    assert_eq!(usd(&report["total"]["cost_usd"]), rows_cost);
    let mut want: BTreeMap<(String, String), (i64, Decimal)> = BTreeMap::new();
    for r in &rows {
        let e = want
            .entry((
                r["model"].as_str().unwrap().to_string(),
                r["provider_name"].as_str().unwrap_or("").to_string(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += usd(&r["total_cost"]);
    }
    let got: BTreeMap<(String, String), (i64, Decimal)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                (
                    g["model"].as_str().unwrap().to_string(),
                    g["provider"].as_str().unwrap_or("").to_string(),
                ),
                (g["requests"].as_i64().unwrap(), usd(&g["cost_usd"])),
            )
        })
        .collect();
    assert_eq!(got, want);
    let tags: Value = router
        .http
        .get(router.admin("/admin/v1/usage?group_by=tag&format=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tag_requests: BTreeMap<String, i64> = tags["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["tag"].as_str().unwrap_or("").to_string(),
                g["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tag_requests["prod"], 5);
    assert_eq!(tag_requests["exp"], 5);
    assert_eq!(tag_requests["fallback"], 4);
    assert_eq!(tag_requests["eval"], 4);
    let csv = router
        .http
        .get(router.admin("/admin/v1/usage?group_by=team&format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("team,requests,"), "{csv}");
    assert!(csv.contains(&format!("\r\na,{n},5,")), "{csv}");

    let metrics = router.metrics().await;
    assert_eq!(usage_stage(&metrics, "written"), n as u64);
    assert_eq!(usage_stage(&metrics, "dropped"), 0);
    usage.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generation_api_answers_from_the_store_after_a_restart() {
    let dir = scratch_dir("usage-restart");
    let (first, first_state, usage) = TestRouter::start_with_usage(
        &manifests(&[]),
        settings_without_ejection(),
        sqlite_usage(&dir),
    )
    .await;
    let resp = first
        .chat(json!({"model": "test/mock", "messages": hi(), "user": "bob"}))
        .await;
    let id = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let told = client_cost(&resp.text().await.unwrap(), false);
    // The records are handed to the writer after each response is sent: wait for them, then
    // stop the writer, which stores what is queued.
    first_state.records_written(Duration::from_secs(2)).await;
    usage.shutdown().await;
    first.server.shutdown().await;
    // The state holds the recorder, and with it the spill file's lock: the next router takes it.
    drop(first_state);

    let (second, state, usage) = TestRouter::start_with_usage(
        &manifests(&[]),
        settings_without_ejection(),
        sqlite_usage(&dir),
    )
    .await;
    assert!(
        state.generations.get(&id).is_none(),
        "a new process remembers nothing"
    );
    let url = second.url(&format!("/api/v1/generation?id={id}"));
    let v: Value = get_as(&second.http, &url, CLIENT_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["id"], id);
    assert_eq!(usd(&v["data"]["total_cost"]), told);
    assert_eq!(v["data"]["user"], "bob");
    assert!(
        v["data"].get("api_key").is_none(),
        "clients see no admin fields"
    );
    let (status, _) =
        error_of(get_as(&second.http, &url, "sk-sb-test-other-0123456789").await).await;
    assert_eq!(status, 404, "another key cannot read it");
    let admin: Value = second
        .http
        .get(second.admin(&format!("/admin/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["data"]["api_key"], "default/main");
    let (status, body) = error_of(
        second
            .http
            .get(second.admin("/admin/v1/generations/gen-unknown"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["metadata"]["error_code"].as_str()),
        (404, Some("generation_not_found"))
    );
    usage.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_store_off_nothing_is_recorded_and_the_apis_say_so() {
    let router = TestRouter::start_with(&manifests(&[]), settings_without_ejection()).await;
    let resp = router
        .chat(json!({"model": "test/mock", "messages": hi()}))
        .await;
    assert_eq!(resp.status(), 200);
    for url in [
        router.admin("/admin/v1/usage"),
        router.admin("/admin/v1/generations"),
    ] {
        let (status, body) = error_of(router.http.get(&url).send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"]["metadata"]["error_code"].as_str()),
            (404, Some("usage_store_off"))
        );
    }
    let (status, _) =
        error_of(get_as(&router.http, router.url("/api/v1/activity"), CLIENT_KEY).await).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_records_to_sqlite_in_its_state_directory_by_default() {
    let dir = scratch_dir("usage-default");
    let router = RouterProcess::spawn(
        &manifests(&[]),
        &[],
        &[("SWITCHBOARD_STATE_DIR", dir.to_str().unwrap())],
        None,
    )
    .await;
    let http = support::http();
    let resp = post_chat(
        &http,
        &router.api,
        CLIENT_KEY,
        &json!({"model": "test/mock", "messages": hi()}),
    )
    .await;
    let id = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let rows = rows_when(&http, &router.admin, 1, Duration::from_secs(10)).await;
    assert_eq!(rows[0]["id"], id);
    assert!(dir.join("usage.db").is_file());
    drop(router);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Unused parts of the harness this binary does not need.
#[allow(dead_code)]
fn _state(_: &AppState) {}
