//! Budgets that fit requests (`fitMaxTokens`) through real sockets: a request whose worst case a
//! budget cannot cover is sent with the largest `max_tokens` the budget still covers — exactly —
//! and says so in `X-Switchboard-Max-Tokens-Fitted`; never below the floor; enabled on the Budget
//! or on the ApiKey. The upstream here writes as much as it is allowed (the built-in mock with a
//! long reply), so every answer costs its worst case: concurrent fitted requests never settle
//! more than the limit, and the settled spend is the sum of the `usage.cost` the client saw.

mod support;

use std::{str::FromStr, time::Duration};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::TestRouter;

const KEY: &str = "sk-sb-fitting-test-0123456789";

/// The mock provider at $1 / $100 per million input/output tokens, replying with 40000 characters
/// (10000 tokens, cut at `max_tokens`); key `main` with `key_fit`; budgets from `budgets`.
fn manifest(key_fit: &str, budgets: &str) -> String {
    let reply = "x".repeat(40_000);
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{main: {KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: mock
  mock: {{reply: "{reply}", chunkChars: 4000}}
  models: [{{name: m, pricing: {{inputUSDPerMillion: "1", outputUSDPerMillion: "100"}}, maxOutputTokens: 8000}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: r}}
spec: {{model: test/r, targets: [{{provider: mock, model: m}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: main}}
spec: {{secretRef: {{name: keys, key: main}}{key_fit}}}
{budgets}
"#
    )
}

fn budget(name: &str, limit: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: {name}}}\nspec: {{limitUSD: \"{limit}\", scope: {{apiKeys: [main]}}{extra}}}\n"
    )
}

const FIT: &str = ", fitMaxTokens: {enabled: true, minTokens: 100}";

/// `[{"role":"user","content":"hi"}]` is 32 bytes: 32 input tokens at most ($0.000032), plus
/// $0.0001 per output token.
fn request(max_tokens: u64, stream: bool) -> Value {
    json!({"model": "test/r", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens, "stream": stream})
}

async fn send(router: &TestRouter, body: &Value) -> reqwest::Response {
    router.chat_as(KEY, body.clone()).await
}

fn fitted(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("x-switchboard-max-tokens-fitted")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// The exact `usage.cost` values in a body (complete or streamed).
fn costs(text: &str) -> Vec<Decimal> {
    text.match_indices("\"cost\":")
        .map(|(i, k)| {
            let rest = &text[i + k.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap();
            Decimal::from_str(&rest[..end]).unwrap()
        })
        .collect()
}

/// The budget's settled spend once no reservation is outstanding.
async fn settled(router: &TestRouter, budget: usize) -> Decimal {
    for _ in 0..200 {
        let info = router.key_info(KEY).await;
        let b = &info["budgets"][budget];
        if b["reserved_usd"] == "0" {
            return Decimal::from_str(b["spent_usd"].as_str().unwrap()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("reservations never settled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_that_fits_lowers_max_tokens_to_exactly_what_it_covers() {
    let router = TestRouter::start(&manifest("", &budget("team", "0.5", FIT))).await;
    // Worst case at 8000 tokens: $0.800032 > $0.5. The largest that fits: ($0.5 - $0.000032) /
    // $0.0001 = 4999.68 → 4999 tokens ($0.499932); 5000 would be $0.500032.
    let resp = send(&router, &request(8000, false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(fitted(&resp), Some(4999));
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["usage"]["completion_tokens"], 4999,
        "the upstream got the fitted limit"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let spent = settled(&router, 0).await;
    assert_eq!(spent, costs(&text).into_iter().sum::<Decimal>());
    assert!(spent <= Decimal::from_str("0.5").unwrap());
    // What is left covers fewer than 100 output tokens, the floor: refused as without fitting.
    let resp = send(&router, &request(8000, false)).await;
    assert_eq!(resp.status(), 402);
    assert!(fitted(&resp).is_none());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["metadata"]["error_code"], "budget_exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_fitting_the_same_request_is_refused_and_a_request_that_fits_is_untouched() {
    let router = TestRouter::start(&manifest("", &budget("team", "0.5", ""))).await;
    let resp = send(&router, &request(8000, false)).await;
    assert_eq!(resp.status(), 402);
    let router = TestRouter::start(&manifest("", &budget("team", "0.5", FIT))).await;
    let resp = send(&router, &request(1000, false)).await;
    assert_eq!(resp.status(), 200);
    assert!(fitted(&resp).is_none());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_turns_fitting_on_for_every_budget_and_each_refusal_is_fitted_in_turn() {
    // Two budgets without fitting of their own; the key fits. The ledger checks `a-wide` first:
    // it refuses 8000 tokens and fits to 4999, then `b-narrow` refuses that and fits to 1999.
    let key_fit = ", fitMaxTokens: {enabled: true, minTokens: 50}";
    let budgets = budget("a-wide", "0.5", "") + &budget("b-narrow", "0.2", "");
    let router = TestRouter::start(&manifest(key_fit, &budgets)).await;
    // ($0.2 - $0.000032) / $0.0001 → 1999 tokens. Without a max_tokens of its own, the
    // request is fitted from the model's maxOutputTokens (8000), and streams say so too.
    let body = json!({"model": "test/r", "messages": [{"role": "user", "content": "hi"}],
        "stream": true});
    let resp = send(&router, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(fitted(&resp), Some(1999));
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"completion_tokens\":1999"), "{text}");
    assert_eq!(
        settled(&router, 1).await,
        costs(&text).into_iter().sum::<Decimal>()
    );
    // The narrow budget has less than the key's floor (50 tokens) left.
    let resp = send(&router, &request(8000, false)).await;
    assert_eq!(resp.status(), 402);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["metadata"]["budget"], "default/b-narrow");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_fitted_requests_never_settle_more_than_the_limit() {
    let router = TestRouter::start(&manifest("", &budget("team", "1", FIT))).await;
    let requests = (0..24).map(|i| {
        let router = &router;
        async move {
            let resp = send(router, &request(8000, i % 2 == 0)).await;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (status, costs(&text))
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let served = results.iter().filter(|(s, _)| *s == 200).count();
    assert!(served >= 2, "{results:?}");
    assert!(
        results.iter().all(|(s, _)| *s == 200 || *s == 402),
        "{results:?}"
    );
    let told: Decimal = results.iter().flat_map(|(_, c)| c.iter()).sum();
    let spent = settled(&router, 0).await;
    assert_eq!(spent, told);
    assert!(spent <= Decimal::ONE, "settled {spent} over the $1 limit");
}
