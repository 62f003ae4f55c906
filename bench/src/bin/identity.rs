//! `make bench-identity`: what admitting a request costs when the caller presents a
//! ServiceAccount token (a JWT, RS256 or ES256) rather than a static key, in-process through
//! `Caller::authenticate`, the function the request path calls. Four ways of presenting: a static
//! key (looked up by hash); a token seen before (the router's cache of verified tokens, until the
//! token expires); a token never seen (signature verified, then cached), for each algorithm.
//!
//! `bench-identity [--write docs/benchmarks.md]` prints the report as markdown; `--write`
//! replaces the identity section of that file.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use switchboard_api::{
    Object, compile_trusting,
    identity::{IssuerConfig, KeySource},
    resources::{ApiKey, ServiceAccountSubject, Subject},
    testing::resources::key_secret,
};
use switchboard_e2e::token_issuer::{SigningKey, jwks, now, service_account_claims};
use switchboard_router::{
    auth::Caller,
    config::install::offer,
    state::{AppState, Settings},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BEGIN: &str = "<!-- identity:begin (make bench-identity) -->";
const END: &str = "<!-- identity:end -->";
const ISS: &str = "https://issuer.bench";
const STATIC_KEY: &str = "sk-sb-bench-static-key-0123456789";
/// Requests per cached case, and distinct tokens per uncached one (below the cache's 4,096).
const CACHED: usize = 50_000;
const FRESH: usize = 2_000;

/// A router trusting the bench issuer (keys inline), with a static-key ApiKey and an ApiKey
/// granted to the ServiceAccount `ml/trainer`.
fn router(keys: &[&SigningKey]) -> Arc<AppState> {
    let mut by_token = ApiKey::test("trainer");
    by_token.spec.secret_ref = None;
    by_token.spec.subjects = vec![Subject {
        service_account: Some(ServiceAccountSubject {
            namespace: "ml".into(),
            name: "trainer".into(),
        }),
        oidc: None,
    }];
    let objects: Vec<Object> = vec![
        by_token.into(),
        ApiKey::test("static").into(),
        key_secret("static", STATIC_KEY),
    ];
    let issuer = IssuerConfig {
        issuer: ISS.into(),
        audiences: vec!["switchboard".into()],
        keys: KeySource::Jwks(jwks(keys)),
    };
    let mut config = compile_trusting(&objects, vec![issuer]).config;
    config.version = 1;
    let state = AppState::new(Settings::default());
    offer(&state, config, "bench").expect("the config installs");
    state
}

fn bearer(credential: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {credential}")).expect("a header"),
    );
    h
}

/// Mean time per admission over `headers`, each admitted once in turn; the best of 3 passes
/// (a pass over fresh tokens only counts its first time: later passes hit the cache, so fresh
/// cases run once on a new router).
async fn per_request(state: &AppState, headers: &[HeaderMap], passes: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..passes {
        let runtime = state.runtime().expect("a config");
        let t = Instant::now();
        for h in headers {
            let caller = Caller::authenticate(runtime.clone(), &state.tokens, h, now(), |_, _| {})
                .await
                .expect("admitted");
            std::hint::black_box(caller);
        }
        best = best.min(t.elapsed() / headers.len() as u32);
    }
    best
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn main() {
    let write = match std::env::args().nth(1).as_deref() {
        Some("--write") => Some(std::env::args().nth(2).expect("--write FILE")),
        None => None,
        Some(other) => panic!("unknown argument {other}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (rs, es) = (SigningKey::rs256("r"), SigningKey::es256("e"));
    let claims = |pod: &str| service_account_claims(ISS, "ml", "trainer", "switchboard", pod);

    let mut rows: Vec<(String, Duration)> = Vec::new();
    rt.block_on(async {
        let state = router(&[&rs, &es]);
        let keys = vec![bearer(STATIC_KEY); CACHED];
        rows.push(("static key".into(), per_request(&state, &keys, 3).await));
        for (name, key) in [("RS256", &rs), ("ES256", &es)] {
            let token = bearer(&key.sign(&claims("p")));
            let same = vec![token; CACHED];
            per_request(&state, &same[..1], 1).await;
            let cached = per_request(&state, &same, 3).await;
            // A router of its own, so that none of these tokens was seen before.
            let fresh_state = router(&[&rs, &es]);
            let fresh: Vec<HeaderMap> = (0..FRESH)
                .map(|i| bearer(&key.sign(&claims(&format!("p-{i}")))))
                .collect();
            let verified = per_request(&fresh_state, &fresh, 1).await;
            rows.push((format!("{name} token, seen before"), cached));
            rows.push((
                format!("{name} token, never seen (signature verified)"),
                verified,
            ));
        }
    });

    let base = rows[0].1;
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut report = vec![
        BEGIN.to_string(),
        "## Workload identity: admitting a token".into(),
        String::new(),
        format!(
            "Generated by `make bench-identity` (bench/src/bin/identity.rs); {} UTC, load \
             average {load}. Release build, one thread, in-process through \
             `Caller::authenticate` (what every request calls: read the credential, tell a JWT \
             from a key by its shape, find the ApiKey). Tokens are projected ServiceAccount \
             tokens (RS256: 2048-bit RSA; ES256: P-256) of an issuer whose keys the router \
             holds. A token seen before is answered from the router's cache of verified tokens \
             (keyed by the token's SHA-256, until `exp`; 16 × 256 entries); a token never seen \
             is verified (signature, `iss`, `aud`, `exp`/`nbf`, Kubernetes claims), then cached. \
             Mean per request: {CACHED} requests per cached case (best of 3 passes), {FRESH} \
             distinct tokens per uncached one.",
            jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M")
        ),
        String::new(),
        "| credential | µs per request | added over a static key (µs) |".into(),
        "|---|---:|---:|".into(),
    ];
    for (name, d) in &rows {
        report.push(format!(
            "| {name} | {} | {} |",
            us(*d),
            us(d.saturating_sub(base))
        ));
    }
    report.push(String::new());
    report.push(END.to_string());
    let text = report.join("\n");
    println!("{text}");
    if let Some(path) = write {
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let updated = match (doc.find(BEGIN), doc.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{text}{}", &doc[..b], &doc[e + END.len()..])
            }
            _ => format!("{}\n\n{text}\n", doc.trim_end()),
        };
        std::fs::write(&path, updated).expect("write the report");
        eprintln!("wrote {path}");
    }
}
