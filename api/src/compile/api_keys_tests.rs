use super::super::fixtures::*;

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
        let mut k = ApiKey::test("k");
        bend(&mut k);
        let c = compile(&[
            k.into(),
            key_secret("k", value),
            ApiKey::test("fine").into(),
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
    let mut k = ApiKey::test("bob");
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
    let mut other_ns = ApiKey::test("carol");
    other_ns.metadata.namespace = Some("other".into());
    let mut other_ns_secret = Secret {
        metadata: test_meta("carol-key"),
        string_data: Some(BTreeMap::from([("key".into(), format!("{shared}\n"))])),
        ..Default::default()
    };
    other_ns_secret.metadata.namespace = Some("other".into());
    let c = compile(&[
        ApiKey::test("alice").into(),
        key_secret("alice", shared),
        ApiKey::test("bob").into(),
        key_secret("bob", shared),
        other_ns.into(),
        other_ns_secret.into(),
        ApiKey::test("dave").into(),
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
    let mut labelled = ApiKey::test("labelled");
    labelled.metadata = with_labels(test_meta("labelled"), &[("team", "ml")]);
    let mut both = ApiKey::test("both");
    both.metadata = with_labels(test_meta("both"), &[("team", "ml")]);
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
