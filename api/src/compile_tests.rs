use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use rust_decimal::Decimal;

use super::{reason::*, *};
use crate::{
    manifest::parse_manifests,
    resources::{
        ApiKeySpec, AzureSettings, BedrockSettings, BudgetAction, BudgetScope, BudgetSpec,
        BudgetWindow, Capability, Credentials, FailureMode, MockBehaviour, ModelRouteSpec, Pricing,
        ProviderSpec, ProviderTimeouts, RateLimits, RouteSort, RouteTarget, VertexSettings,
    },
    snapshot::hash_api_key,
};

// ---------------------------------------------------------------------------------------------
// Builders: one valid object of each kind, which tests bend out of shape.

const NS: &str = "default";
const UPSTREAM_SECRET: &str = "sk-upstream-never-shown-42";
const ALICE_KEY: &str = "sk-sb-alice-0123456789abcdef";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        generation: Some(3),
        ..Default::default()
    }
}

fn secret(name: &str, key: &str, value: &str) -> Object {
    let string_data = BTreeMap::from([(key.to_string(), value.to_string())]);
    Object::Secret(Secret {
        metadata: meta(name),
        string_data: Some(string_data),
        ..Default::default()
    })
}

fn secret_bytes(name: &str, key: &str, value: &[u8]) -> Object {
    let data = BTreeMap::from([(key.to_string(), ByteString(value.to_vec()))]);
    Object::Secret(Secret {
        metadata: meta(name),
        data: Some(data),
        ..Default::default()
    })
}

fn model(name: &str, input: &str, output: &str) -> ProviderModel {
    ProviderModel {
        name: name.into(),
        pricing: Pricing {
            input_usd_per_million: Some(input.into()),
            output_usd_per_million: Some(output.into()),
            ..Default::default()
        },
        context_length: None,
        max_output_tokens: None,
        capabilities: vec![],
    }
}

fn secret_ref(name: &str, key: &str) -> Option<SecretKeyRef> {
    Some(SecretKeyRef {
        name: name.into(),
        key: key.into(),
    })
}

/// An `openaiCompatible` Provider at `http://upstream.test/v1` offering model `m`, with its key in
/// Secret `creds` key `apiKey` (see [`creds`]).
fn provider(name: &str) -> Provider {
    let mut p = Provider::new(
        name,
        ProviderSpec {
            provider_type: ProviderType::OpenaiCompatible,
            base_url: Some("http://upstream.test/v1".into()),
            credentials: Some(Credentials {
                secret_ref: secret_ref("creds", "apiKey"),
                env: None,
            }),
            headers: BTreeMap::new(),
            models: vec![model("m", "0.15", "0.60")],
            data_policy: None,
            timeouts: None,
            max_concurrent_requests: None,
            mock: None,
            azure: None,
            bedrock: None,
            vertex: None,
        },
    );
    p.metadata = meta(name);
    p
}

fn creds() -> Object {
    secret("creds", "apiKey", UPSTREAM_SECRET)
}

fn route(name: &str, public: &str, targets: &[(&str, &str)]) -> ModelRoute {
    let targets = targets
        .iter()
        .map(|(provider, model)| RouteTarget {
            provider: provider.to_string(),
            model: model.to_string(),
            weight: None,
            priority: None,
        })
        .collect();
    let mut r = ModelRoute::new(
        name,
        ModelRouteSpec {
            model: public.into(),
            targets,
            fallback_models: vec![],
            sort: None,
            retries: None,
            timeout: None,
        },
    );
    r.metadata = meta(name);
    r
}

/// An ApiKey whose key is in Secret `<name>-key` key `key` (see [`key_secret`]).
fn api_key(name: &str) -> ApiKey {
    let mut k = ApiKey::new(
        name,
        ApiKeySpec {
            secret_ref: secret_ref(&format!("{name}-key"), "key"),
            team: None,
            allowed_models: vec![],
            denied_models: vec![],
            rate_limits: None,
            provider_policy: None,
            expires_at: None,
            disabled: false,
            fit_max_tokens: None,
        },
    );
    k.metadata = meta(name);
    k
}

fn key_secret(name: &str, value: &str) -> Object {
    secret(&format!("{name}-key"), "key", value)
}

fn budget(name: &str, limit: &str) -> Budget {
    let mut b = Budget::new(
        name,
        BudgetSpec {
            limit_usd: limit.into(),
            window: Default::default(),
            scope: BudgetScope::default(),
            soft_limit_percent: None,
            action: Default::default(),
            failure_mode: Default::default(),
            fit_max_tokens: None,
        },
    );
    b.metadata = meta(name);
    b
}

fn with_labels(mut meta: ObjectMeta, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.labels = Some(labels);
    meta
}

// ---------------------------------------------------------------------------------------------
// Reading results

fn outcome<'c>(c: &'c Compiled, kind: &'static str, name: &str) -> &'c ObjectOutcome {
    let r = ObjectRef {
        kind,
        namespace: NS.into(),
        name: name.into(),
    };
    &c.results
        .get(&r)
        .unwrap_or_else(|| panic!("no result for {r}"))
        .outcome
}

#[track_caller]
fn ready(c: &Compiled, kind: &'static str, name: &str) -> (&'static str, String) {
    match outcome(c, kind, name) {
        ObjectOutcome::Ready { reason, message } => (reason, message.clone()),
        other => panic!("{kind} {name} should be ready: {other:?}"),
    }
}

/// Asserts the object is rejected with `reason` and a message naming `field`; returns the message.
#[track_caller]
fn assert_rejected(
    c: &Compiled,
    kind: &'static str,
    name: &str,
    reason: &str,
    field: &str,
) -> String {
    match outcome(c, kind, name) {
        ObjectOutcome::Rejected {
            reason: got,
            message,
        } => {
            assert_eq!(*got, reason, "{kind} {name}: {message}");
            assert!(
                message.contains(field),
                "{kind} {name}: message should name {field:?}: {message}"
            );
            message.clone()
        }
        other => panic!("{kind} {name} should be rejected with {reason}: {other:?}"),
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A full valid set

const FULL: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: openai, namespace: team-a}
data:
  apiKey: c2stb3BlbmFpLXVwc3RyZWFtLXNlY3JldC12YWx1ZQo=   # echo sk-openai-upstream-secret-value | base64
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: team-a, generation: 7}
spec:
  type: openai
  credentials:
    secretRef: {name: openai, key: apiKey}
  headers: {OpenAI-Organization: org-123}
  models:
    - name: gpt-4o-mini
      pricing:
        inputUSDPerMillion: "0.15"
        outputUSDPerMillion: "0.60"
        cachedInputUSDPerMillion: "0.075"
      contextLength: 128000
      maxOutputTokens: 16384
      capabilities: [vision, tools, jsonSchema]
    - name: o3
      pricing: {inputUSDPerMillion: "2", outputUSDPerMillion: "8", perRequestUSD: "0.001"}
  dataPolicy: {retainsData: true}
  timeouts: {connect: 2s, firstToken: 1500ms}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: mock, namespace: team-a}
spec:
  type: mock
  models: [{name: echo}]
  mock: {reply: hello, chunkDelay: 5ms}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: mini, namespace: team-a}
spec:
  model: openai/gpt-4o-mini
  targets:
    - {provider: openai, model: gpt-4o-mini, weight: 3}
    - {provider: mock, model: echo, priority: 1}
  fallbackModels: [smart]
  sort: price
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: smart, namespace: team-a}
spec:
  model: smart
  targets: [{provider: openai, model: o3}]
---
apiVersion: v1
kind: Secret
metadata: {name: alice-key, namespace: team-a}
data:
  key: c2stc2ItYWxpY2UtMDEyMzQ1Njc4OWFiY2RlZgo=   # echo sk-sb-alice-0123456789abcdef | base64
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: alice, namespace: team-a, labels: {team: ml}}
spec:
  secretRef: {name: alice-key, key: key}
  allowedModels: ["openai/*"]
  deniedModels: [smart]
  rateLimits: {requestsPerMinute: 60}
  expiresAt: "2027-01-01T00:00:00Z"
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: ml-monthly, namespace: team-a}
spec:
  limitUSD: "100.50"
  scope: {team: ml, models: ["openai/*"]}
  softLimitPercent: 80
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: unrelated}
"#;

fn full() -> Vec<Object> {
    parse_manifests(FULL, NS).unwrap().objects
}

#[test]
fn a_full_valid_set_compiles_into_the_expected_snapshot() {
    let c = compile(&full());
    for (r, result) in &c.results {
        assert!(result.outcome.is_ready(), "{r}: {:?}", result.outcome);
    }
    assert_eq!(c.results.len(), 6, "one result per non-Secret object");
    assert_eq!(c.config.version, 0);
    assert_eq!(c.config.hash, c.config.content_hash());

    let openai = &c.config.providers["team-a/openai"];
    assert_eq!(openai.provider_type, ProviderType::Openai);
    assert_eq!(
        openai.base_url.as_deref(),
        Some("https://api.openai.com/v1")
    );
    assert_eq!(
        openai.credential,
        Some(CredentialSource::Value(SecretValue::new(
            "sk-openai-upstream-secret-value"
        ))),
        "data is base64-decoded and the trailing newline trimmed"
    );
    assert_eq!(openai.headers["OpenAI-Organization"], "org-123");
    let policy = openai.data_policy.clone().expect("declared policy is kept");
    assert!(policy.retains_data && !policy.trains_on_data);
    assert_eq!(
        openai.timeouts,
        Timeouts {
            connect_ms: 2_000,
            first_token_ms: 1_500,
            ..Timeouts::default()
        }
    );
    let mini = &openai.models["gpt-4o-mini"];
    assert_eq!(
        mini.pricing,
        PriceTable {
            input_per_million: d("0.15"),
            output_per_million: d("0.60"),
            cached_input_per_million: d("0.075"),
            cache_write_per_million: d("0.15"),
            reasoning_per_million: d("0.60"),
            per_request: Decimal::ZERO,
            per_image: Decimal::ZERO,
        }
    );
    assert_eq!(mini.context_length, Some(128_000));
    assert_eq!(mini.max_output_tokens, Some(16_384));
    assert_eq!(
        mini.capabilities.iter().copied().collect::<Vec<_>>(),
        [
            Capability::Tools,
            Capability::Vision,
            Capability::JsonSchema
        ]
    );
    assert_eq!(openai.models["o3"].pricing.per_request, d("0.001"));
    assert_eq!(openai.models["o3"].pricing.cached_input_per_million, d("2"));

    let mock = &c.config.providers["team-a/mock"];
    assert_eq!(mock.base_url, None);
    assert_eq!(mock.credential, None);
    assert_eq!(
        mock.mock,
        Some(MockConfig {
            reply: Some("hello".into()),
            chunk_chars: 8,
            chunk_delay_ms: 5,
            embedding_dimensions: 8,
        })
    );
    assert_eq!(mock.models["echo"].pricing, PriceTable::default());

    let route = &c.config.routes["openai/gpt-4o-mini"];
    assert_eq!(
        (route.namespace.as_str(), route.name.as_str()),
        ("team-a", "mini")
    );
    assert_eq!(
        route.targets,
        [
            TargetConfig {
                provider: "team-a/openai".into(),
                model: "gpt-4o-mini".into(),
                weight: 3,
                priority: 0,
            },
            TargetConfig {
                provider: "team-a/mock".into(),
                model: "echo".into(),
                weight: 1,
                priority: 1,
            },
        ]
    );
    assert_eq!(route.fallback_models, ["smart"]);
    assert_eq!(route.sort, Some(RouteSort::Price));

    let hash = "7239fa33dae231c0ccb48531c19233dcc55ab8a98f7d4402d4f25f367d00778c";
    assert_eq!(hash, hash_api_key(ALICE_KEY));
    let alice = &c.config.api_keys[hash];
    assert_eq!(alice.id(), "team-a/alice");
    assert_eq!(alice.key_hash, hash);
    assert_eq!(alice.prefix, "sk-sb-alic…");
    assert_eq!(alice.team.as_deref(), Some("ml"), "team from the label");
    assert_eq!(alice.allowed_models, ["openai/*"]);
    assert_eq!(alice.denied_models, ["smart"]);
    assert_eq!(alice.rate_limits.requests_per_minute, Some(60));
    assert_eq!(alice.expires_at, Some(1_798_761_600));
    assert!(!alice.disabled);

    let b = &c.config.budgets["team-a/ml-monthly"];
    assert_eq!(b.limit_usd, d("100.50"));
    assert_eq!(b.window, BudgetWindow::Monthly);
    assert_eq!(b.api_keys.iter().collect::<Vec<_>>(), ["team-a/alice"]);
    assert_eq!(b.models, ["openai/*"]);
    assert_eq!(b.soft_limit_percent, Some(80));
    assert_eq!(b.action, BudgetAction::Block);
    assert_eq!(b.failure_mode, FailureMode::Closed);

    let provider_ref = ObjectRef {
        kind: "Provider",
        namespace: "team-a".into(),
        name: "openai".into(),
    };
    assert_eq!(
        c.results[&provider_ref],
        ObjectResult {
            generation: Some(7),
            outcome: ObjectOutcome::Ready {
                reason: COMPILED,
                message: "2 models".into(),
            },
        }
    );
    c.config.validate().unwrap();
}

#[test]
fn compiled_output_validates_and_a_tampered_hash_does_not() {
    let c = compile(&full());
    assert_eq!(c.config.validate(), Ok(()));

    let mut tampered = c.config.clone();
    tampered.hash = "0".repeat(64);
    assert!(tampered.validate().is_err());

    let mut tampered = c.config.clone();
    tampered.budgets.clear();
    assert!(
        tampered.validate().is_err(),
        "content changed under the hash"
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism

/// Deterministic permutations: identity, reversed, every rotation, and odd/even interleaving.
fn permutations(objects: &[Object]) -> Vec<Vec<Object>> {
    let mut out = vec![objects.to_vec(), objects.iter().rev().cloned().collect()];
    for k in 1..objects.len() {
        let mut rotated = objects.to_vec();
        rotated.rotate_left(k);
        out.push(rotated);
    }
    let (odd, even): (Vec<_>, Vec<_>) = objects.iter().enumerate().partition(|(i, _)| i % 2 == 1);
    out.push(
        odd.into_iter()
            .chain(even)
            .map(|(_, o)| o.clone())
            .collect(),
    );
    out
}

#[test]
fn the_snapshot_and_results_do_not_depend_on_input_order() {
    // Include rejections and cross-object decisions (duplicate model, duplicate key), whose
    // outcome could depend on order if the compiler were careless.
    let mut objects = full();
    objects.push(route("mini-copy", "openai/gpt-4o-mini", &[("p", "m")]).into());
    objects.push(provider("p").into());
    objects.push(creds());
    objects.push(api_key("twin1").into());
    objects.push(api_key("twin2").into());
    objects.push(key_secret("twin1", "sk-sb-the-same-key-twice"));
    objects.push(key_secret("twin2", "sk-sb-the-same-key-twice"));

    let reference = compile(&objects);
    for permuted in permutations(&objects) {
        let c = compile(&permuted);
        assert_eq!(c.config.hash, reference.config.hash);
        assert_eq!(c, reference);
    }
}

#[test]
fn the_hash_changes_when_content_changes() {
    let base = compile(&[provider("p").into(), creds()]).config.hash;

    let mut cheaper = provider("p");
    cheaper.spec.models[0].pricing.input_usd_per_million = Some("0.14".into());
    let other = compile(&[cheaper.into(), creds()]).config.hash;
    assert_ne!(base, other);

    let rotated = compile(&[
        provider("p").into(),
        secret("creds", "apiKey", "sk-rotated"),
    ]);
    assert_ne!(
        base, rotated.config.hash,
        "a rotated credential is a new snapshot"
    );
}

// ---------------------------------------------------------------------------------------------
// Isolation: one bad object does not poison the rest

#[test]
fn a_bad_provider_leaves_the_rest_compiling() {
    let mut bad = provider("bad");
    bad.spec.models[0].pricing.output_usd_per_million = Some("lots".into());
    let objects: Vec<Object> = vec![
        creds(),
        bad.into(),
        provider("good").into(),
        route("r-good", "good-model", &[("good", "m")]).into(),
        route("r-bad", "bad-model", &[("bad", "m")]).into(),
        route("r-mixed", "mixed", &[("good", "m"), ("bad", "m")]).into(),
    ];
    let c = compile(&objects);

    assert_rejected(
        &c,
        "Provider",
        "bad",
        INVALID_PRICE,
        "spec.models[0].pricing.outputUSDPerMillion",
    );
    assert_eq!(ready(&c, "Provider", "good").0, COMPILED);
    assert_eq!(
        ready(&c, "ModelRoute", "r-good"),
        (COMPILED, "1 target".into())
    );
    let msg = assert_rejected(
        &c,
        "ModelRoute",
        "r-bad",
        PROVIDER_NOT_READY,
        "spec.targets[0].provider",
    );
    assert!(
        msg.contains("Provider default/bad is not ready: InvalidPrice"),
        "{msg}"
    );

    let (reason, msg) = ready(&c, "ModelRoute", "r-mixed");
    assert_eq!(reason, SOME_TARGETS_UNRESOLVED);
    assert!(msg.contains("1 of 2 targets resolve"), "{msg}");
    assert!(
        msg.contains("spec.targets[1].provider: Provider default/bad"),
        "{msg}"
    );
    assert_eq!(c.config.routes["mixed"].targets.len(), 1);
    assert_eq!(c.config.routes["mixed"].targets[0].provider, "default/good");

    assert!(!c.config.providers.contains_key("default/bad"));
    assert!(!c.config.routes.contains_key("bad-model"));
    c.config.validate().unwrap();
}

#[test]
fn duplicate_objects_are_all_rejected_and_left_out() {
    let mut second = provider("p");
    second.spec.models = vec![model("other", "1", "1")];
    let c = compile(&[provider("p").into(), second.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", DUPLICATE_OBJECT, "Provider default/p");
    assert!(msg.contains("2 times"), "{msg}");
    assert_eq!(c.results[&provider_ref("p")].generation, None);
    assert!(c.config.providers.is_empty());
}

fn provider_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: "Provider",
        namespace: NS.into(),
        name: name.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Provider rejections

type Bend = fn(&mut Provider);

#[test]
fn provider_rejections_name_the_reason_and_field() {
    let cases: Vec<(Bend, &str, &str)> = vec![
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: secret_ref("creds", "apiKey"),
                    env: Some("OPENAI_API_KEY".into()),
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials: set exactly one of secretRef or env, not both",
        ),
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: None,
                    env: None,
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials: set exactly one",
        ),
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: None,
                    env: Some("1-BAD".into()),
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials.env: \"1-BAD\"",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Openai;
                p.spec.credentials = None;
            },
            MISSING_CREDENTIALS,
            "spec.credentials: type openai needs",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Anthropic;
                p.spec.credentials = None;
            },
            MISSING_CREDENTIALS,
            "spec.credentials: type anthropic needs",
        ),
        (
            |p| p.spec.provider_type = ProviderType::Mock,
            INVALID_CREDENTIALS,
            "spec.credentials: type mock takes no credentials",
        ),
        (
            |p| {
                p.spec.credentials.as_mut().unwrap().secret_ref = secret_ref("nope", "apiKey");
            },
            SECRET_NOT_FOUND,
            "spec.credentials.secretRef: Secret default/nope not found",
        ),
        (
            |p| {
                p.spec.credentials.as_mut().unwrap().secret_ref = secret_ref("creds", "token");
            },
            SECRET_KEY_NOT_FOUND,
            "spec.credentials.secretRef: Secret default/creds has no key \"token\" (it has \
             \"apiKey\")",
        ),
        (
            |p| p.spec.base_url = None,
            MISSING_BASE_URL,
            "spec.baseURL: required for type openaiCompatible",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::AzureOpenAI;
                p.spec.base_url = None;
            },
            MISSING_BASE_URL,
            "spec.baseURL: required for type azureOpenAI",
        ),
        (
            |p| p.spec.base_url = Some("ftp://upstream.test/v1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"ftp://upstream.test/v1\" must start with http:// or https://",
        ),
        (
            |p| p.spec.base_url = Some("https:///v1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"https:///v1\" has no host",
        ),
        (
            |p| p.spec.base_url = Some("http://upstream.test:80a/v1".into()),
            INVALID_BASE_URL,
            "has an invalid port",
        ),
        (
            |p| p.spec.base_url = Some("http://upstream.test/v1?x=1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"http://upstream.test/v1?x=1\" must not contain a query",
        ),
        (
            |p| {
                p.spec.bedrock = Some(BedrockSettings {
                    region: "us-east-1".into(),
                })
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.bedrock: only valid with type bedrock (this Provider's type is openaiCompatible)",
        ),
        (
            |p| p.spec.provider_type = ProviderType::Bedrock,
            INVALID_PROVIDER_SETTINGS,
            "spec.bedrock.region: required for type bedrock",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Vertex;
                p.spec.vertex = Some(VertexSettings {
                    project: Some("bad project".into()),
                    location: "us-central1".into(),
                });
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.vertex: type vertex needs vertex.location",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::AzureOpenAI;
                p.spec.azure = Some(AzureSettings {
                    api_version: Some("2024 10".into()),
                });
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.azure.apiVersion: \"2024 10\" is not an API version",
        ),
        (
            |p| p.spec.mock = Some(MockBehaviour::default()),
            INVALID_MOCK,
            "spec.mock: only valid with type mock (this Provider's type is openaiCompatible)",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    chunk_chars: Some(0),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.chunkChars: must be at least 1",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    embedding_dimensions: Some(4097),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.embeddingDimensions: 4097 is not between 1 and 4096",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    chunk_delay: Some("soon".into()),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.chunkDelay: \"soon\" is not a duration",
        ),
        (
            |p| {
                p.spec
                    .headers
                    .insert("Authorization".into(), "Bearer x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"Authorization\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("X-API-Key".into(), "x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X-API-Key\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("api-key".into(), "x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"api-key\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("Content-Length".into(), "1".into());
            },
            INVALID_HEADER,
            "spec.headers[\"Content-Length\"]: set by the router",
        ),
        (
            |p| {
                p.spec.headers.insert("X Team".into(), "ml".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X Team\"]: not a valid HTTP header name",
        ),
        (
            |p| {
                p.spec
                    .headers
                    .insert("X-Team".into(), "ml\r\nX-Evil: 1".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X-Team\"]: the value may hold only visible ASCII",
        ),
        (
            |p| {
                p.spec.headers.insert("X-Team".into(), "a".into());
                p.spec.headers.insert("x-team".into(), "b".into());
            },
            INVALID_HEADER,
            "spec.headers[\"x-team\"]: same header as \"X-Team\"",
        ),
        (
            |p| p.spec.models.clear(),
            NO_MODELS,
            "spec.models: at least one model is required",
        ),
        (
            |p| p.spec.models[0].name = String::new(),
            INVALID_MODELS,
            "spec.models[0].name: must not be empty",
        ),
        (
            |p| p.spec.models.push(model("m", "1", "2")),
            INVALID_MODELS,
            "spec.models[1].name: \"m\" is already listed at spec.models[0]",
        ),
        (
            |p| p.spec.models[0].context_length = Some(0),
            INVALID_MODELS,
            "spec.models[0].contextLength: must be greater than 0",
        ),
        (
            |p| p.spec.models[0].max_output_tokens = Some(0),
            INVALID_MODELS,
            "spec.models[0].maxOutputTokens: must be greater than 0",
        ),
        (
            |p| {
                p.spec.models.push(model("n", "abc", "1"));
            },
            INVALID_PRICE,
            "spec.models[1].pricing.inputUSDPerMillion: \"abc\" is not a non-negative decimal \
             string such as \"0.15\"",
        ),
        (
            |p| p.spec.models[0].pricing.cached_input_usd_per_million = Some("-1".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.cachedInputUSDPerMillion: \"-1\"",
        ),
        (
            |p| p.spec.models[0].pricing.cache_write_usd_per_million = Some("1e3".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.cacheWriteUSDPerMillion",
        ),
        (
            |p| p.spec.models[0].pricing.reasoning_usd_per_million = Some("".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.reasoningUSDPerMillion",
        ),
        (
            |p| p.spec.models[0].pricing.per_request_usd = Some("free".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.perRequestUSD",
        ),
        (
            |p| p.spec.models[0].pricing.per_image_usd = Some(".5".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.perImageUSD",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    connect: Some("ten seconds".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.connect: \"ten seconds\" is not a duration",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    total: Some("0s".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.total: \"0s\" must be at least 1ms",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    idle: Some("500us".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.idle",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    first_token: Some("-1s".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.firstToken",
        ),
    ];
    for (i, (bend, reason, field)) in cases.into_iter().enumerate() {
        let mut p = provider("p");
        bend(&mut p);
        let c = compile(&[p.into(), creds(), provider("other").into()]);
        let msg = assert_rejected(&c, "Provider", "p", reason, field);
        assert!(!msg.contains(UPSTREAM_SECRET), "case {i}: {msg}");
        assert!(
            ready(&c, "Provider", "other").0 == COMPILED,
            "case {i}: the other Provider still compiles"
        );
        assert!(!c.config.providers.contains_key("default/p"), "case {i}");
    }
}

#[test]
fn every_problem_of_a_provider_is_reported_at_once() {
    let mut p = provider("p");
    p.spec.base_url = Some("upstream.test".into());
    p.spec.models[0].pricing.input_usd_per_million = Some("x".into());
    let c = compile(&[p.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", INVALID_BASE_URL, "spec.baseURL");
    assert!(
        msg.contains("; spec.models[0].pricing.inputUSDPerMillion"),
        "{msg}"
    );
}

#[test]
fn secret_values_are_trimmed_and_must_be_usable() {
    // `echo key | base64` leaves a newline; stringData wins over data.
    let c = compile(&[
        provider("p").into(),
        secret_bytes("creds", "apiKey", b"  sk-from-data\n"),
    ]);
    assert_eq!(
        c.config.providers["default/p"].credential,
        Some(CredentialSource::Value(SecretValue::new("sk-from-data")))
    );
    let mut both = Secret {
        metadata: meta("creds"),
        data: Some(BTreeMap::from([(
            "apiKey".to_string(),
            ByteString(b"from-data".to_vec()),
        )])),
        string_data: Some(BTreeMap::from([(
            "apiKey".to_string(),
            "from-string-data".to_string(),
        )])),
        ..Default::default()
    };
    let c = compile(&[provider("p").into(), both.clone().into()]);
    assert_eq!(
        c.config.providers["default/p"].credential,
        Some(CredentialSource::Value(SecretValue::new(
            "from-string-data"
        )))
    );
    both.string_data = None;
    both.data = None;
    let c = compile(&[provider("p").into(), both.into()]);
    let msg = assert_rejected(&c, "Provider", "p", SECRET_KEY_NOT_FOUND, "secretRef");
    assert!(msg.contains("it has no keys"), "{msg}");

    let cases: [(Object, &str, &str); 4] = [
        (
            secret("creds", "apiKey", " \n"),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" is empty",
        ),
        (
            secret_bytes("creds", "apiKey", &[0xff, 0xfe, 0x41]),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" is not UTF-8",
        ),
        (
            secret("creds", "apiKey", "sk-line-one\nsk-line-two"),
            INVALID_SECRET,
            "spec.credentials.secretRef: Secret default/creds key \"apiKey\" contains characters \
             that cannot be sent in an HTTP header",
        ),
        (
            secret("creds", "other", "x"),
            SECRET_KEY_NOT_FOUND,
            "(it has \"other\")",
        ),
    ];
    for (s, reason, field) in cases {
        let c = compile(&[provider("p").into(), s]);
        let msg = assert_rejected(&c, "Provider", "p", reason, field);
        assert!(!msg.contains("sk-line"), "{msg}");
    }

    let c = compile(&[provider("p").into(), creds(), creds()]);
    assert_rejected(
        &c,
        "Provider",
        "p",
        DUPLICATE_SECRET,
        "spec.credentials.secretRef: Secret default/creds is given 2 times",
    );
}

#[test]
fn provider_types_get_their_defaults_and_credential_rules() {
    // Ollama: openaiCompatible without credentials; trailing slashes stripped.
    let mut ollama = provider("ollama");
    ollama.spec.credentials = None;
    ollama.spec.base_url = Some("http://localhost:11434/v1//".into());
    // Credentials from the router's environment.
    let mut env = provider("env");
    env.spec.provider_type = ProviderType::Openai;
    env.spec.base_url = None;
    env.spec.credentials = Some(Credentials {
        secret_ref: None,
        env: Some("OPENAI_API_KEY".into()),
    });
    // Cloud identity: no credentials, but a base URL.
    let mut bedrock = provider("bedrock");
    bedrock.spec.provider_type = ProviderType::Bedrock;
    bedrock.spec.credentials = None;
    bedrock.spec.base_url = Some("https://bedrock-runtime.us-east-1.amazonaws.com".into());
    bedrock.spec.bedrock = Some(BedrockSettings {
        region: "us-east-1".into(),
    });
    // Mock: no base URL, default behaviour.
    let mut mock = provider("mock");
    mock.spec.provider_type = ProviderType::Mock;
    mock.spec.credentials = None;
    mock.spec.base_url = Some("ignored".into());
    let mut ipv6 = provider("ipv6");
    ipv6.spec.base_url = Some("http://[::1]:8000/v1".into());

    let c = compile(&[
        ollama.into(),
        env.into(),
        bedrock.into(),
        mock.into(),
        ipv6.into(),
        creds(),
    ]);
    for (r, res) in &c.results {
        assert!(res.outcome.is_ready(), "{r}: {:?}", res.outcome);
    }
    let p = &c.config.providers;
    assert_eq!(
        p["default/ollama"].base_url.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_eq!(p["default/ollama"].credential, None);
    assert_eq!(
        p["default/env"].base_url.as_deref(),
        Some("https://api.openai.com/v1")
    );
    assert_eq!(
        p["default/env"].credential,
        Some(CredentialSource::Env("OPENAI_API_KEY".into()))
    );
    assert_eq!(p["default/bedrock"].credential, None);
    assert_eq!(
        p["default/bedrock"].bedrock,
        Some(BedrockConfig {
            region: "us-east-1".into()
        })
    );
    assert_eq!(p["default/ollama"].bedrock, None);
    assert_eq!(p["default/mock"].base_url, None);
    assert_eq!(
        p["default/mock"].mock,
        Some(MockConfig {
            reply: None,
            chunk_chars: 8,
            chunk_delay_ms: 0,
            embedding_dimensions: 8,
        })
    );
    assert_eq!(p["default/mock"].timeouts, Timeouts::default());
    assert_eq!(
        p["default/mock"].data_policy, None,
        "an undeclared policy stays unknown"
    );
}

#[test]
fn a_base_url_with_userinfo_is_rejected_without_echoing_it() {
    let mut p = provider("p");
    p.spec.base_url = Some("https://user:hunter2-password@upstream.test/v1".into());
    let c = compile(&[p.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", INVALID_BASE_URL, "spec.baseURL");
    assert!(!msg.contains("hunter2"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// ModelRoute rejections and resolution

#[test]
fn route_rejections_name_the_reason_and_field() {
    type BendRoute = fn(&mut ModelRoute);
    let cases: Vec<(BendRoute, &str, &str)> = vec![
        (
            |r| r.spec.model = String::new(),
            INVALID_MODEL,
            "spec.model: must not be empty",
        ),
        (
            |r| r.spec.model = "gpt 4".into(),
            INVALID_MODEL,
            "spec.model: \"gpt 4\" must not contain whitespace",
        ),
        (
            |r| r.spec.targets.clear(),
            NO_TARGETS,
            "spec.targets: at least one target is required",
        ),
        (
            |r| r.spec.targets[0].weight = Some(0),
            INVALID_TARGET,
            "spec.targets[0].weight: must be at least 1",
        ),
        (
            |r| {
                let t = r.spec.targets[0].clone();
                r.spec.targets.push(t);
            },
            INVALID_TARGET,
            "spec.targets[1]: provider \"p\" model \"m\" is already listed at spec.targets[0]",
        ),
        (
            |r| r.spec.targets[0].provider = "nope".into(),
            UNKNOWN_PROVIDER,
            "spec.targets[0].provider: Provider default/nope not found",
        ),
        (
            |r| r.spec.targets[0].model = "gpt-5".into(),
            UNKNOWN_PROVIDER_MODEL,
            "spec.targets[0].model: Provider default/p does not offer \"gpt-5\" (it offers \"m\")",
        ),
        (
            |r| {
                r.spec.retries = Some(switchboard_retry(Some(6), None));
            },
            INVALID_RETRIES,
            "spec.retries.attempts: 6 is more than 5",
        ),
        (
            |r| {
                r.spec.retries = Some(switchboard_retry(None, Some("soon")));
            },
            INVALID_RETRIES,
            "spec.retries.backoff:",
        ),
        (
            |r| r.spec.timeout = Some("0s".into()),
            INVALID_RETRIES,
            "spec.timeout:",
        ),
        (
            |r| r.spec.fallback_models = vec!["smart".into()],
            INVALID_FALLBACK,
            "spec.fallbackModels[0]: \"smart\" is this route's own model",
        ),
        (
            |r| r.spec.fallback_models = vec!["a".into(), "a".into()],
            INVALID_FALLBACK,
            "spec.fallbackModels[1]: \"a\" is already listed",
        ),
        (
            |r| r.spec.fallback_models = vec!["".into()],
            INVALID_FALLBACK,
            "spec.fallbackModels[0]",
        ),
    ];
    for (bend, reason, field) in cases {
        let mut r = route("r", "smart", &[("p", "m")]);
        bend(&mut r);
        let c = compile(&[
            provider("p").into(),
            creds(),
            r.into(),
            route("fine", "fine", &[("p", "m")]).into(),
        ]);
        assert_rejected(&c, "ModelRoute", "r", reason, field);
        assert_eq!(ready(&c, "ModelRoute", "fine").0, COMPILED);
        assert_eq!(c.config.routes.len(), 1);
    }
}

#[test]
fn a_route_is_rejected_only_when_no_target_resolves() {
    let r = route("r", "smart", &[("nope", "m"), ("p", "gpt-5")]);
    let c = compile(&[provider("p").into(), creds(), r.into()]);
    let msg = assert_rejected(
        &c,
        "ModelRoute",
        "r",
        UNKNOWN_PROVIDER,
        "spec.targets[0].provider: Provider default/nope not found",
    );
    assert!(
        msg.contains("spec.targets[1].model: Provider default/p does not offer \"gpt-5\""),
        "every target's failure is listed: {msg}"
    );

    let mut r = route("r", "smart", &[("p", "m"), ("q", "m"), ("p", "nope")]);
    r.spec.targets[0].priority = Some(-1);
    let c = compile(&[provider("p").into(), creds(), r.into()]);
    let (reason, msg) = ready(&c, "ModelRoute", "r");
    assert_eq!(reason, SOME_TARGETS_UNRESOLVED);
    assert!(msg.starts_with("1 of 3 targets resolve: "), "{msg}");
    assert!(msg.contains("spec.targets[1].provider"), "{msg}");
    assert!(msg.contains("spec.targets[2].model"), "{msg}");
    assert_eq!(c.config.routes["smart"].targets[0].priority, -1);
}

#[test]
fn targets_resolve_only_within_the_route_namespace() {
    let mut p = provider("p");
    p.metadata.namespace = Some("elsewhere".into());
    let mut s = Secret {
        metadata: meta("creds"),
        string_data: Some(BTreeMap::from([("apiKey".into(), "sk-x".into())])),
        ..Default::default()
    };
    s.metadata.namespace = Some("elsewhere".into());
    let c = compile(&[
        p.into(),
        s.into(),
        route("r", "smart", &[("p", "m")]).into(),
    ]);
    assert!(c.config.providers.contains_key("elsewhere/p"));
    assert_rejected(
        &c,
        "ModelRoute",
        "r",
        UNKNOWN_PROVIDER,
        "Provider default/p not found",
    );
}

#[test]
fn the_oldest_route_wins_a_duplicate_model_name() {
    let at = |s: &str| Some(Time(s.parse().unwrap()));
    let mut old = route("zz-old", "smart", &[("p", "m")]);
    old.metadata.creation_timestamp = at("2024-01-01T00:00:00Z");
    let mut new = route("aa-new", "smart", &[("p", "m")]);
    new.metadata.creation_timestamp = at("2025-01-01T00:00:00Z");
    let undated = route("aa-undated", "smart", &[("p", "m")]);
    // Broken routes do not compete, even when older.
    let mut broken = route("broken", "smart", &[("nope", "m")]);
    broken.metadata.creation_timestamp = at("2020-01-01T00:00:00Z");

    let c = compile(&[
        provider("p").into(),
        creds(),
        new.into(),
        undated.into(),
        old.into(),
        broken.into(),
    ]);
    assert_eq!(ready(&c, "ModelRoute", "zz-old").0, COMPILED);
    assert_eq!(c.config.routes["smart"].name, "zz-old");
    for loser in ["aa-new", "aa-undated"] {
        assert_rejected(
            &c,
            "ModelRoute",
            loser,
            DUPLICATE_MODEL,
            "spec.model: \"smart\" is already served by ModelRoute default/zz-old",
        );
    }
    assert_rejected(
        &c,
        "ModelRoute",
        "broken",
        UNKNOWN_PROVIDER,
        "spec.targets[0]",
    );

    // Without timestamps (standalone manifests), namespace/name decides.
    let c = compile(&[
        provider("p").into(),
        creds(),
        route("b", "smart", &[("p", "m")]).into(),
        route("a", "smart", &[("p", "m")]).into(),
    ]);
    assert_eq!(c.config.routes["smart"].name, "a");
    assert_rejected(
        &c,
        "ModelRoute",
        "b",
        DUPLICATE_MODEL,
        "ModelRoute default/a",
    );
}

#[test]
fn unknown_fallback_models_are_allowed_with_a_note() {
    let mut r = route("r", "smart", &[("p", "m")]);
    r.spec.fallback_models = vec!["cheap".into(), "later".into()];
    let c = compile(&[
        provider("p").into(),
        creds(),
        r.into(),
        route("cheap", "cheap", &[("p", "m")]).into(),
    ]);
    let (reason, msg) = ready(&c, "ModelRoute", "r");
    assert_eq!(reason, COMPILED);
    assert_eq!(msg, "1 target; fallback model \"later\" is not served yet");
    assert_eq!(c.config.routes["smart"].fallback_models, ["cheap", "later"]);
}

// ---------------------------------------------------------------------------------------------
// ApiKeys

#[test]
fn api_key_rejections_name_the_reason_and_field() {
    type BendKey = fn(&mut ApiKey);
    let cases: Vec<(BendKey, &str, &str, &str)> = vec![
        (
            |k| k.spec.secret_ref = secret_ref("missing", "key"),
            ALICE_KEY,
            SECRET_NOT_FOUND,
            "spec.secretRef: Secret default/missing not found",
        ),
        (
            |k| k.spec.secret_ref = secret_ref("k-key", "token"),
            ALICE_KEY,
            SECRET_KEY_NOT_FOUND,
            "spec.secretRef: Secret default/k-key has no key \"token\" (it has \"key\")",
        ),
        (
            |_| {},
            "sk-short",
            WEAK_KEY,
            "spec.secretRef: the key in Secret default/k-key key \"key\" is 8 characters long; \
             at least 16 are required",
        ),
        (
            |_| {},
            "sk-sb-has a-space-inside",
            INVALID_KEY,
            "spec.secretRef: the key in Secret default/k-key key \"key\" contains whitespace",
        ),
        (
            |k| k.spec.allowed_models = vec!["openai/*".into(), "gpt 4".into()],
            ALICE_KEY,
            INVALID_GLOB,
            "spec.allowedModels[1]: model glob \"gpt 4\" contains ' '",
        ),
        (
            |k| k.spec.denied_models = vec!["[abc]".into()],
            ALICE_KEY,
            INVALID_GLOB,
            "spec.deniedModels[0]",
        ),
        (
            |k| k.spec.expires_at = Some("next year".into()),
            ALICE_KEY,
            INVALID_EXPIRY,
            "spec.expiresAt: \"next year\" is not an RFC 3339 timestamp",
        ),
        (
            |k| k.spec.expires_at = Some("2027-01-01".into()),
            ALICE_KEY,
            INVALID_EXPIRY,
            "spec.expiresAt",
        ),
        (
            |k| {
                k.spec.rate_limits = Some(RateLimits {
                    requests_per_minute: Some(0),
                    ..Default::default()
                })
            },
            ALICE_KEY,
            INVALID_RATE_LIMIT,
            "spec.rateLimits.requestsPerMinute: must be at least 1",
        ),
        (
            |k| {
                k.spec.rate_limits = Some(RateLimits {
                    tokens_per_minute: Some(0),
                    ..Default::default()
                })
            },
            ALICE_KEY,
            INVALID_RATE_LIMIT,
            "spec.rateLimits.tokensPerMinute",
        ),
        (
            |k| {
                k.spec.rate_limits = Some(RateLimits {
                    concurrent_requests: Some(0),
                    ..Default::default()
                })
            },
            ALICE_KEY,
            INVALID_RATE_LIMIT,
            "spec.rateLimits.concurrentRequests",
        ),
    ];
    for (bend, value, reason, field) in cases {
        let mut k = api_key("k");
        bend(&mut k);
        let c = compile(&[
            k.into(),
            key_secret("k", value),
            api_key("fine").into(),
            key_secret("fine", "sk-sb-fine-0123456789"),
        ]);
        let msg = assert_rejected(&c, "ApiKey", "k", reason, field);
        assert!(!msg.contains(value), "{msg}");
        assert_eq!(ready(&c, "ApiKey", "fine").0, COMPILED);
        assert_eq!(c.config.api_keys.len(), 1);
    }
}

#[test]
fn an_api_key_without_secret_ref_reads_the_generated_secret() {
    let mut k = api_key("bob");
    k.spec.secret_ref = None;
    let c = compile(&[k.clone().into()]);
    let msg = assert_rejected(
        &c,
        "ApiKey",
        "bob",
        SECRET_NOT_FOUND,
        "spec.secretRef is unset, so the key is read from the generated Secret: Secret \
         default/switchboard-apikey-bob not found",
    );
    assert!(msg.contains("the operator generates it"), "{msg}");
    assert!(msg.contains("set spec.secretRef"), "{msg}");

    let generated = secret(
        &generated_key_secret_name("bob"),
        GENERATED_KEY_SECRET_KEY,
        "sk-sb-generated-abcdefghijklmnop",
    );
    let c = compile(&[k.into(), generated]);
    assert_eq!(ready(&c, "ApiKey", "bob").0, COMPILED);
    assert!(
        c.config
            .api_keys
            .contains_key(&hash_api_key("sk-sb-generated-abcdefghijklmnop"))
    );
}

#[test]
fn two_api_keys_with_one_key_are_both_rejected() {
    let shared = "sk-sb-shared-0123456789";
    let mut other_ns = api_key("carol");
    other_ns.metadata.namespace = Some("other".into());
    let mut other_ns_secret = Secret {
        metadata: meta("carol-key"),
        string_data: Some(BTreeMap::from([("key".into(), format!("{shared}\n"))])),
        ..Default::default()
    };
    other_ns_secret.metadata.namespace = Some("other".into());
    let c = compile(&[
        api_key("alice").into(),
        key_secret("alice", shared),
        api_key("bob").into(),
        key_secret("bob", shared),
        other_ns.into(),
        other_ns_secret.into(),
        api_key("dave").into(),
        key_secret("dave", "sk-sb-dave-0123456789"),
    ]);
    let msg = assert_rejected(
        &c,
        "ApiKey",
        "alice",
        DUPLICATE_KEY,
        "the key is also held by ApiKey default/bob, ApiKey other/carol",
    );
    assert!(
        !msg.contains(shared) && !msg.contains("sk-sb-shar"),
        "{msg}"
    );
    assert_rejected(&c, "ApiKey", "bob", DUPLICATE_KEY, "ApiKey default/alice");
    assert_eq!(c.config.api_keys.len(), 1);
    assert_eq!(ready(&c, "ApiKey", "dave").0, COMPILED);
}

#[test]
fn api_key_team_comes_from_spec_then_label() {
    let mut labelled = api_key("labelled");
    labelled.metadata = with_labels(meta("labelled"), &[("team", "ml")]);
    let mut both = api_key("both");
    both.metadata = with_labels(meta("both"), &[("team", "ml")]);
    both.spec.team = Some("web".into());
    both.spec.disabled = true;
    let c = compile(&[
        labelled.into(),
        key_secret("labelled", "sk-sb-labelled-0123456789"),
        both.into(),
        key_secret("both", "sk-sb-both-0123456789"),
    ]);
    let team = |key: &str| c.config.api_keys[&hash_api_key(key)].team.clone();
    assert_eq!(team("sk-sb-labelled-0123456789").as_deref(), Some("ml"));
    assert_eq!(team("sk-sb-both-0123456789").as_deref(), Some("web"));
    assert!(c.config.api_keys[&hash_api_key("sk-sb-both-0123456789")].disabled);
    assert_eq!(
        ready(&c, "ApiKey", "both").1,
        "key accepted, team web, disabled"
    );
}

// ---------------------------------------------------------------------------------------------
// Budgets

#[test]
fn budget_rejections_name_the_reason_and_field() {
    type BendBudget = fn(&mut Budget);
    let cases: Vec<(BendBudget, &str, &str)> = vec![
        (
            |b| b.spec.limit_usd = "-5".into(),
            INVALID_LIMIT,
            "spec.limitUSD: \"-5\" is not a non-negative decimal string",
        ),
        (
            |b| b.spec.soft_limit_percent = Some(0),
            INVALID_SOFT_LIMIT,
            "spec.softLimitPercent: 0 is not between 1 and 100",
        ),
        (
            |b| b.spec.soft_limit_percent = Some(101),
            INVALID_SOFT_LIMIT,
            "spec.softLimitPercent: 101",
        ),
        (
            |b| b.spec.scope.models = vec!["gpt{4,5}".into()],
            INVALID_GLOB,
            "spec.scope.models[0]: model glob \"gpt{4,5}\"",
        ),
    ];
    for (bend, reason, field) in cases {
        let mut b = budget("b", "10");
        bend(&mut b);
        let c = compile(&[b.into(), budget("fine", "0").into()]);
        assert_rejected(&c, "Budget", "b", reason, field);
        assert_eq!(
            ready(&c, "Budget", "fine"),
            (COMPILED, "covers no keys yet".into())
        );
        assert_eq!(c.config.budgets.len(), 1);
    }
}

#[test]
fn budget_scopes_resolve_to_ready_keys_of_the_namespace() {
    let key = |name: &str, labels: &[(&str, &str)]| -> [Object; 2] {
        let mut k = api_key(name);
        k.metadata = with_labels(meta(name), labels);
        [
            k.into(),
            key_secret(name, &format!("sk-sb-{name}-0123456789")),
        ]
    };
    let mut objects: Vec<Object> = [
        key("alice", &[("team", "ml"), ("env", "prod")]),
        key("bob", &[("team", "web"), ("env", "prod")]),
        key("carol", &[("team", "ml"), ("env", "dev")]),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A key too weak to compile, and one in another namespace.
    objects.push(api_key("weak").into());
    objects.push(key_secret("weak", "short"));
    let mut foreign = api_key("dave");
    foreign.metadata.namespace = Some("other".into());
    objects.push(foreign.into());

    let scoped = |name: &str, scope: BudgetScope| -> Object {
        let mut b = budget(name, "5");
        b.spec.scope = scope;
        b.into()
    };
    objects.extend([
        scoped("all", BudgetScope::default()),
        scoped(
            "ml",
            BudgetScope {
                team: Some("ml".into()),
                ..Default::default()
            },
        ),
        scoped(
            "prod",
            BudgetScope {
                match_labels: BTreeMap::from([("env".into(), "prod".into())]),
                ..Default::default()
            },
        ),
        scoped(
            "named-ml",
            BudgetScope {
                api_keys: vec!["alice".into(), "bob".into()],
                team: Some("ml".into()),
                ..Default::default()
            },
        ),
        scoped(
            "unresolved",
            BudgetScope {
                api_keys: vec!["alice".into(), "ghost".into(), "weak".into()],
                ..Default::default()
            },
        ),
        scoped(
            "nobody",
            BudgetScope {
                team: Some("finance".into()),
                ..Default::default()
            },
        ),
    ]);

    let c = compile(&objects);
    let keys = |name: &str| -> Vec<String> {
        c.config.budgets[&format!("default/{name}")]
            .api_keys
            .iter()
            .cloned()
            .collect()
    };
    assert_eq!(
        keys("all"),
        ["default/alice", "default/bob", "default/carol"]
    );
    assert_eq!(
        ready(&c, "Budget", "all"),
        (COMPILED, "covers 3 keys".into())
    );
    assert_eq!(keys("ml"), ["default/alice", "default/carol"]);
    assert_eq!(keys("prod"), ["default/alice", "default/bob"]);
    assert_eq!(keys("named-ml"), ["default/alice"]);
    assert_eq!(keys("unresolved"), ["default/alice"]);
    assert_eq!(
        ready(&c, "Budget", "unresolved"),
        (
            SOME_KEYS_UNRESOLVED,
            "covers 1 key; spec.scope.apiKeys: ApiKey default/ghost not found; ApiKey \
             default/weak is not ready: WeakKey"
                .into()
        )
    );
    assert!(keys("nobody").is_empty());
    assert_eq!(
        ready(&c, "Budget", "nobody"),
        (COMPILED, "covers no keys yet".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets never leak

#[test]
fn no_secret_value_appears_in_messages_debug_output_or_the_redacted_snapshot() {
    let secrets = [
        "sk-openai-upstream-secret-value",
        "sk-sb-alice-0123456789abcdef",
        UPSTREAM_SECRET,
        "sk-weak",
        "sk-sb-twin-0123456789",
        "sk-env-header\nbroken",
    ];
    let mut objects = full();
    objects.extend([
        provider("p").into(),
        creds(),
        // Rejected objects whose messages talk about their secrets.
        api_key("weak").into(),
        key_secret("weak", "sk-weak"),
        api_key("twin1").into(),
        key_secret("twin1", "sk-sb-twin-0123456789"),
        api_key("twin2").into(),
        key_secret("twin2", "sk-sb-twin-0123456789"),
    ]);
    let mut broken = provider("broken");
    broken.spec.credentials = Some(Credentials {
        secret_ref: secret_ref("broken-creds", "apiKey"),
        env: None,
    });
    objects.push(broken.into());
    objects.push(secret("broken-creds", "apiKey", "sk-env-header\nbroken"));

    let c = compile(&objects);
    assert!(!c.results.values().all(|r| r.outcome.is_ready()));
    let debug = format!("{:?}", c.config);
    let redacted = serde_json::to_string(&c.config.redacted()).unwrap();
    let messages: Vec<&str> = c.results.values().map(|r| r.outcome.message()).collect();
    for s in secrets {
        assert!(!debug.contains(s), "{s:?} in Debug output");
        assert!(!redacted.contains(s), "{s:?} in the redacted snapshot");
        for m in &messages {
            assert!(!m.contains(s), "{s:?} in message {m:?}");
        }
    }
    assert!(debug.contains("SecretValue(<redacted>)"));
    assert!(redacted.contains("<redacted>"));
    // The unredacted snapshot does carry the credential (routers need it).
    let full_json = serde_json::to_string(&c.config).unwrap();
    assert!(full_json.contains(UPSTREAM_SECRET));
}

fn switchboard_retry(
    attempts: Option<u32>,
    backoff: Option<&str>,
) -> crate::resources::RetryPolicy {
    crate::resources::RetryPolicy {
        attempts,
        backoff: backoff.map(str::to_string),
        max_backoff: None,
    }
}

#[test]
fn route_retries_and_deadline_compile_with_defaults() {
    let mut r = route("smart", "smart", &[("p", "m")]);
    let c = compile(&[provider("p").into(), creds(), r.clone().into()]);
    let got = &c.config.routes["smart"];
    assert_eq!(got.retry, crate::snapshot::RetryConfig::default());
    assert_eq!(got.deadline_ms, None);
    r.spec.retries = Some(crate::resources::RetryPolicy {
        attempts: Some(0),
        backoff: Some("50ms".into()),
        max_backoff: Some("1s".into()),
    });
    r.spec.timeout = Some("90s".into());
    let c = compile(&[provider("p").into(), creds(), r.into()]);
    let got = &c.config.routes["smart"];
    assert_eq!(
        (
            got.retry.attempts,
            got.retry.backoff_ms,
            got.retry.max_backoff_ms,
            got.deadline_ms
        ),
        (0, 50, 1000, Some(90_000))
    );
}

#[test]
fn a_zero_concurrency_limit_is_rejected() {
    let mut p = provider("p");
    p.spec.max_concurrent_requests = Some(0);
    let c = compile(&[p.into(), creds()]);
    assert_rejected(
        &c,
        "Provider",
        "p",
        INVALID_CONCURRENCY_LIMIT,
        "spec.maxConcurrentRequests",
    );
    let mut p = provider("p");
    p.spec.max_concurrent_requests = Some(4);
    let c = compile(&[p.into(), creds()]);
    assert_eq!(
        c.config.providers["default/p"].max_concurrent_requests,
        Some(4)
    );
}

#[test]
fn fit_max_tokens_reaches_the_snapshot_as_a_floor_only_when_enabled() {
    use crate::resources::FitMaxTokens;
    let fit = |enabled, min_tokens| {
        Some(FitMaxTokens {
            enabled,
            min_tokens,
        })
    };
    let mut on = budget("on", "10");
    on.spec.fit_max_tokens = fit(true, 2048);
    let mut off = budget("off", "10");
    off.spec.fit_max_tokens = fit(false, 2048);
    let mut key = api_key("alice");
    key.spec.fit_max_tokens = fit(true, FitMaxTokens::DEFAULT_MIN_TOKENS);
    let objects = vec![
        on.into(),
        off.into(),
        key.into(),
        key_secret("alice", "sk-sb-alice-0123456789abcdef"),
    ];
    let c = compile(&objects);
    assert_eq!(c.config.budgets["default/on"].fit_min_tokens, Some(2048));
    assert_eq!(c.config.budgets["default/off"].fit_min_tokens, None);
    let key = c.config.api_keys.values().next().unwrap();
    assert_eq!(key.fit_min_tokens, Some(1024));
    // Written by hand, `minTokens` defaults to 1024.
    let parsed: FitMaxTokens = serde_json::from_str(r#"{"enabled": true}"#).unwrap();
    assert_eq!(parsed.floor(), Some(1024));
}
