use super::super::fixtures::*;

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
        let mut r = ModelRoute::test("r", "smart", &[("p", "m")]);
        bend(&mut r);
        let c = compile(&[
            Provider::test("p").into(),
            creds(),
            r.into(),
            ModelRoute::test("fine", "fine", &[("p", "m")]).into(),
        ]);
        assert_rejected(&c, "ModelRoute", "r", reason, field);
        assert_eq!(ready(&c, "ModelRoute", "fine").0, COMPILED);
        assert_eq!(c.config.routes.len(), 1);
    }
}

#[test]
fn a_route_is_rejected_only_when_no_target_resolves() {
    let r = ModelRoute::test("r", "smart", &[("nope", "m"), ("p", "gpt-5")]);
    let c = compile(&[Provider::test("p").into(), creds(), r.into()]);
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

    let mut r = ModelRoute::test("r", "smart", &[("p", "m"), ("q", "m"), ("p", "nope")]);
    r.spec.targets[0].priority = Some(-1);
    let c = compile(&[Provider::test("p").into(), creds(), r.into()]);
    let (reason, msg) = ready(&c, "ModelRoute", "r");
    assert_eq!(reason, SOME_TARGETS_UNRESOLVED);
    assert!(msg.starts_with("1 of 3 targets resolve: "), "{msg}");
    assert!(msg.contains("spec.targets[1].provider"), "{msg}");
    assert!(msg.contains("spec.targets[2].model"), "{msg}");
    assert_eq!(c.config.routes["smart"].targets[0].priority, -1);
}

#[test]
fn targets_resolve_only_within_the_route_namespace() {
    let mut p = Provider::test("p");
    p.metadata.namespace = Some("elsewhere".into());
    let mut s = Secret {
        metadata: test_meta("creds"),
        string_data: Some(BTreeMap::from([("apiKey".into(), "sk-x".into())])),
        ..Default::default()
    };
    s.metadata.namespace = Some("elsewhere".into());
    let c = compile(&[
        p.into(),
        s.into(),
        ModelRoute::test("r", "smart", &[("p", "m")]).into(),
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
    let mut old = ModelRoute::test("zz-old", "smart", &[("p", "m")]);
    old.metadata.creation_timestamp = at("2024-01-01T00:00:00Z");
    let mut new = ModelRoute::test("aa-new", "smart", &[("p", "m")]);
    new.metadata.creation_timestamp = at("2025-01-01T00:00:00Z");
    let undated = ModelRoute::test("aa-undated", "smart", &[("p", "m")]);
    // Broken routes do not compete, even when older.
    let mut broken = ModelRoute::test("broken", "smart", &[("nope", "m")]);
    broken.metadata.creation_timestamp = at("2020-01-01T00:00:00Z");

    let c = compile(&[
        Provider::test("p").into(),
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
        Provider::test("p").into(),
        creds(),
        ModelRoute::test("b", "smart", &[("p", "m")]).into(),
        ModelRoute::test("a", "smart", &[("p", "m")]).into(),
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
    let mut r = ModelRoute::test("r", "smart", &[("p", "m")]);
    r.spec.fallback_models = vec!["cheap".into(), "later".into()];
    let c = compile(&[
        Provider::test("p").into(),
        creds(),
        r.into(),
        ModelRoute::test("cheap", "cheap", &[("p", "m")]).into(),
    ]);
    let (reason, msg) = ready(&c, "ModelRoute", "r");
    assert_eq!(reason, COMPILED);
    assert_eq!(msg, "1 target; fallback model \"later\" is not served yet");
    assert_eq!(c.config.routes["smart"].fallback_models, ["cheap", "later"]);
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
    let mut r = ModelRoute::test("smart", "smart", &[("p", "m")]);
    let c = compile(&[Provider::test("p").into(), creds(), r.clone().into()]);
    let got = &c.config.routes["smart"];
    assert_eq!(got.retry, crate::snapshot::RetryConfig::default());
    assert_eq!(got.deadline_ms, None);
    r.spec.retries = Some(crate::resources::RetryPolicy {
        attempts: Some(0),
        backoff: Some("50ms".into()),
        max_backoff: Some("1s".into()),
    });
    r.spec.timeout = Some("90s".into());
    let c = compile(&[Provider::test("p").into(), creds(), r.into()]);
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
