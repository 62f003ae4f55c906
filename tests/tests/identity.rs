//! Workload identity end to end: a test issuer (keys generated here, its discovery document and
//! key set served over HTTP) and a router trusting it (`--trust-issuer`). A ServiceAccount token
//! is admitted as the ApiKey whose subjects name it and spends on that key's budget; every kind of
//! bad token is a 401 in the client's error shape with nothing recorded; an unknown `kid` after
//! rotation is fetched once and accepted; a flood of tokens with made-up key ids costs at most one
//! fetch of the key set; an issuer that went away keeps its keys working.

use std::{path::PathBuf, time::Duration};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use switchboard_e2e::token_issuer::{
    IssuerServer, SigningKey, hs256, now, service_account_claims, unsigned, with_payload,
};
use switchboard_router::{
    config::issuers::TrustedIssuers,
    providers::clients::install_crypto_provider,
    server::{self, RunningServer},
    state::Settings,
};

/// The static key of ApiKey `static`, whose budget a token must never touch.
const STATIC_KEY: &str = "sk-sb-identity-static-0123456789";

/// The mock provider at $1 / $2 per million tokens; ApiKey `trainer` granted to the
/// ServiceAccount `ml/trainer` (no key of its own), ApiKey `static` with a key; a budget on each.
const MANIFEST: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {static: sk-sb-identity-static-0123456789}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: mock}
spec:
  type: mock
  models: [{name: m, pricing: {inputUSDPerMillion: "1", outputUSDPerMillion: "2"}, maxOutputTokens: 100}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec: {model: test/r, targets: [{provider: mock, model: m}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: trainer}
spec:
  team: ml
  subjects: [{serviceAccount: {namespace: ml, name: trainer}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: static}
spec: {secretRef: {name: keys, key: static}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: ml}
spec: {limitUSD: "1", window: monthly, scope: {apiKeys: [trainer]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: static}
spec: {limitUSD: "1", window: monthly, scope: {apiKeys: [static]}}
"#;

struct Setup {
    issuer: IssuerServer,
    router: RunningServer,
    http: reqwest::Client,
    _dir: TempDir,
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An issuer serving `keys` and a router trusting it, with the keys fetched.
async fn setup(keys: &[&SigningKey]) -> Setup {
    install_crypto_provider();
    let issuer = IssuerServer::start(keys).await;
    let dir = std::env::temp_dir().join(format!(
        "sb-identity-{}-{}",
        std::process::id(),
        issuer.url.rsplit(':').next().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("manifest.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let settings = Settings {
        trusted_issuers: TrustedIssuers::from_flags(std::slice::from_ref(&issuer.url), &[], &[])
            .unwrap(),
        ..Settings::default()
    };
    let state = switchboard_router::state_from_manifests(&[manifest], settings).unwrap();
    let router = server::start(
        state,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    // The keys are fetched at start.
    for _ in 0..200 {
        if issuer.jwks_fetches() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(issuer.discovery_fetches(), 1, "discovery at start");
    assert_eq!(issuer.jwks_fetches(), 1, "the key set at start");
    Setup {
        issuer,
        router,
        http: reqwest::Client::new(),
        _dir: TempDir(dir),
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.router.api_addr)
    }

    /// A token of ServiceAccount `ml/<name>` from this issuer, signed with `key`.
    fn sa_token(&self, key: &SigningKey, name: &str) -> String {
        key.sign(&self.sa_claims(name))
    }

    fn sa_claims(&self, name: &str) -> Value {
        service_account_claims(&self.issuer.url, "ml", name, "switchboard", "trainer-7d9f")
    }

    async fn chat(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(token)
            .json(&json!({"model": "test/r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}))
            .send()
            .await
            .unwrap()
    }

    async fn messages(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/messages"))
            .header("x-api-key", token)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "test/r", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
    }

    async fn key_info(&self, credential: &str) -> Value {
        let resp = self
            .http
            .get(self.url("/api/v1/key"))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["data"].clone()
    }

    /// Waits until the budget of `credential`'s key shows `spent` and nothing reserved.
    async fn wait_for_spent(&self, credential: &str, spent: &str) -> Value {
        for _ in 0..200 {
            let data = self.key_info(credential).await;
            if data["budgets"][0]["spent_usd"] == spent && data["budgets"][0]["reserved_usd"] == "0"
            {
                return data;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never spent {spent}: {}", self.key_info(credential).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_token_is_admitted_and_spends_on_its_own_key_and_budget() {
    let es = SigningKey::es256("es-1");
    let rs = SigningKey::rs256("rs-1");
    let s = setup(&[&es, &rs]).await;
    let token = s.sa_token(&es, "trainer");

    let resp = s.chat(&token).await;
    assert_eq!(resp.status(), 200);
    let generation = resp.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["usage"]["cost"].as_f64(), Some(0.000005));
    // The same caller with an RS256 token, through x-api-key on the Messages API.
    let resp = s.messages(&s.sa_token(&rs, "trainer")).await;
    assert_eq!(resp.status(), 200);

    let data = s.wait_for_spent(&token, "0.00001").await;
    assert_eq!(data["name"], "trainer");
    assert_eq!(data["api_key"], "default/trainer");
    assert_eq!(data["team"], "ml");
    assert_eq!(
        data["identity"],
        json!({"issuer": s.issuer.url, "subject": "system:serviceaccount:ml:trainer"})
    );
    assert_eq!(data["budgets"][0]["name"], "default/ml");
    assert_eq!(
        data["label"], "",
        "no key prefix for a key reached by subjects"
    );
    // The usage record says who called (never the token).
    let resp = s
        .http
        .get(s.url(&format!("/api/v1/generation?id={generation}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let record: Value = resp.json().await.unwrap();
    assert_eq!(
        record["data"]["identity"],
        json!({"issuer": s.issuer.url, "subject": "system:serviceaccount:ml:trainer"})
    );
    assert!(!record.to_string().contains(&token));
    let other = s.key_info(STATIC_KEY).await;
    assert_eq!(other["identity"], Value::Null);
    assert_eq!(other["budgets"][0]["name"], "default/static");
    assert_eq!(
        other["budgets"][0]["spent_usd"], "0",
        "not the static key's budget"
    );

    // A token of a ServiceAccount no ApiKey grants: valid, but refused.
    let resp = s.chat(&s.sa_token(&es, "someone-else")).await;
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        err["error"]["metadata"]["error_code"],
        "identity_not_granted"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", s.router.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Chat, Messages, the generation lookup and at least one key lookup (more while the spend
    // settles), each counted once; the refused token under its reason.
    let ok: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"switchboard_token_authentications_total{outcome="ok"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(ok >= 4, "{metrics}");
    assert!(
        metrics.contains(r#"switchboard_token_authentications_total{outcome="not_granted"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(&token), "tokens never reach metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_401s_in_the_clients_shape_and_record_nothing() {
    let key = SigningKey::es256("es-1");
    let stranger = SigningKey::es256("es-1");
    let s = setup(&[&key]).await;
    let good = s.sa_claims("trainer");
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let now = now();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(
                json!({"exp": now - 120, "iat": now - 3720, "nbf": now - 3720}),
            )),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&with(json!({"nbf": now + 600}))),
            "not_yet_valid",
        ),
        (
            "wrong audience",
            key.sign(&with(json!({"aud": ["https://kubernetes.default.svc"]}))),
            "wrong_audience",
        ),
        (
            "wrong issuer",
            key.sign(&with(json!({"iss": "https://issuer.invalid"}))),
            "untrusted_issuer",
        ),
        ("alg none", unsigned(&good), "unsigned"),
        (
            "tampered payload",
            with_payload(
                &key.sign(&good),
                &with(json!({"sub": "system:serviceaccount:ml:admin"})),
            ),
            "bad_signature",
        ),
        (
            "signed by another key under the same kid",
            stranger.sign(&good),
            "bad_signature",
        ),
        (
            "HMAC with the public key as secret",
            hs256(key.jwk().to_string().as_bytes(), &good),
            "hmac",
        ),
        (
            "kubernetes.io naming another ServiceAccount",
            key.sign(&with(json!({"kubernetes.io": {
                "namespace": "ml", "serviceaccount": {"name": "admin", "uid": "u"}
            }}))),
            "kubernetes_claims",
        ),
    ];
    for (name, token, reason) in &cases {
        let resp = s.chat(token).await;
        assert_eq!(resp.status(), 401, "{name}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(
            err["error"]["type"], "authentication_error",
            "{name}: {err}"
        );
        assert_eq!(
            err["error"]["metadata"]["error_code"], "invalid_token",
            "{name}: {err}"
        );
        assert_eq!(err["error"]["metadata"]["reason"], *reason, "{name}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(token.as_str()),
            "{name}: the token is never echoed"
        );

        let resp = s.messages(token).await;
        assert_eq!(resp.status(), 401, "{name} on /v1/messages");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "error", "{name}: Anthropic's shape: {err}");
        assert_eq!(
            err["error"]["type"], "authentication_error",
            "{name}: {err}"
        );
    }

    let valid = key.sign(&good);
    let data = s.key_info(&valid).await;
    assert_eq!(data["budgets"][0]["spent_usd"], "0");
    assert_eq!(data["budgets"][0]["reserved_usd"], "0");
    assert_eq!(data["usage"], 0.0, "nothing recorded against the key");
    assert_eq!(s.issuer.jwks_fetches(), 1, "known kids need no fetch");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_after_rotation_is_fetched_once_then_accepted() {
    let old = SigningKey::es256("2026-01");
    let new = SigningKey::rs256("2026-02");
    let s = setup(&[&old]).await;
    assert_eq!(s.chat(&s.sa_token(&old, "trainer")).await.status(), 200);

    s.issuer.rotate(&[&old, &new]);
    let resp = s.chat(&s.sa_token(&new, "trainer")).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(s.issuer.jwks_fetches(), 2, "one fetch for the new kid");
    assert_eq!(s.chat(&s.sa_token(&new, "trainer")).await.status(), 200);
    assert_eq!(s.issuer.jwks_fetches(), 2, "then it is held");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_1000_tokens_with_made_up_kids_costs_one_fetch_at_most() {
    let key = SigningKey::es256("real");
    let s = setup(&[&key]).await;
    let claims = s.sa_claims("trainer");
    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            key.sign_with_header(
                &json!({"alg": "ES256", "kid": format!("made-up-{i}"), "typ": "JWT"}),
                &claims,
            )
        })
        .collect();
    let setup = &s;
    let statuses: Vec<(u16, Value)> = stream::iter(&tokens)
        .map(|t| async move {
            let resp = setup.chat(t).await;
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for (status, err) in &statuses {
        assert_eq!(*status, 401, "{err}");
        assert_eq!(err["error"]["metadata"]["reason"], "unknown_key", "{err}");
    }
    let fetches = s.issuer.jwks_fetches() - 1;
    assert!(
        fetches <= 1,
        "{fetches} key set fetches for 1,000 bad tokens"
    );
    assert_eq!(s.issuer.discovery_fetches(), 1);
    let data = s.key_info(&key.sign(&claims)).await;
    assert_eq!(data["budgets"][0]["spent_usd"], "0");
    assert_eq!(data["budgets"][0]["reserved_usd"], "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_that_went_away_keeps_its_keys_working() {
    let key = SigningKey::es256("k");
    let s = setup(&[&key]).await;
    s.issuer.set_down(true);
    // A token never seen (so not cached) still verifies with the keys held.
    assert_eq!(s.chat(&s.sa_token(&key, "trainer")).await.status(), 200);
    // A kid the router does not hold: the fetch fails, the held keys stay.
    let other = SigningKey::es256("other");
    let resp = s.chat(&s.sa_token(&other, "trainer")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(s.chat(&s.sa_token(&key, "trainer")).await.status(), 200);
}
