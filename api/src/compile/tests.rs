use super::fixtures::*;

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
    assert_eq!(
        b.api_keys.iter().map(|k| &**k).collect::<Vec<_>>(),
        ["team-a/alice"]
    );
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
    objects.push(ModelRoute::test("mini-copy", "openai/gpt-4o-mini", &[("p", "m")]).into());
    objects.push(Provider::test("p").into());
    objects.push(creds());
    objects.push(ApiKey::test("twin1").into());
    objects.push(ApiKey::test("twin2").into());
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
    let base = compile(&[Provider::test("p").into(), creds()]).config.hash;

    let mut cheaper = Provider::test("p");
    cheaper.spec.models[0].pricing.input_usd_per_million = Some("0.14".into());
    let other = compile(&[cheaper.into(), creds()]).config.hash;
    assert_ne!(base, other);

    let rotated = compile(&[
        Provider::test("p").into(),
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
    let mut bad = Provider::test("bad");
    bad.spec.models[0].pricing.output_usd_per_million = Some("lots".into());
    let objects: Vec<Object> = vec![
        creds(),
        bad.into(),
        Provider::test("good").into(),
        ModelRoute::test("r-good", "good-model", &[("good", "m")]).into(),
        ModelRoute::test("r-bad", "bad-model", &[("bad", "m")]).into(),
        ModelRoute::test("r-mixed", "mixed", &[("good", "m"), ("bad", "m")]).into(),
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
    let mut second = Provider::test("p");
    second.spec.models = vec![model("other", "1", "1")];
    let c = compile(&[Provider::test("p").into(), second.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", DUPLICATE_OBJECT, "Provider default/p");
    assert!(msg.contains("2 times"), "{msg}");
    assert_eq!(c.results[&provider_ref("p")].generation, None);
    assert!(c.config.providers.is_empty());
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
        Provider::test("p").into(),
        creds(),
        // Rejected objects whose messages talk about their secrets.
        ApiKey::test("weak").into(),
        key_secret("weak", "sk-weak"),
        ApiKey::test("twin1").into(),
        key_secret("twin1", "sk-sb-twin-0123456789"),
        ApiKey::test("twin2").into(),
        key_secret("twin2", "sk-sb-twin-0123456789"),
    ]);
    let mut broken = Provider::test("broken");
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
