use super::super::fixtures::*;

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
            // #16.2: a 28-digit limit took every key in its scope down at request time.
            |b| b.spec.limit_usd = "9999999999999999999999999999".into(),
            INVALID_LIMIT,
            "spec.limitUSD: \"9999999999999999999999999999\" is above 9007199.254740991",
        ),
        (
            |b| b.spec.limit_usd = "1.0000000001".into(),
            INVALID_LIMIT,
            "spec.limitUSD: \"1.0000000001\" has more than nine decimals",
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
        (
            |b| {
                b.spec.fit_max_tokens = Some(crate::resources::FitMaxTokens {
                    enabled: true,
                    min_tokens: 0,
                })
            },
            INVALID_FIT,
            "spec.fitMaxTokens.minTokens: must be at least 1",
        ),
    ];
    for (bend, reason, field) in cases {
        let mut b = Budget::test("b", "10");
        bend(&mut b);
        let c = compile(&[b.into(), Budget::test("fine", "0").into()]);
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
        let mut k = ApiKey::test(name);
        k.metadata = with_labels(test_meta(name), labels);
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
    objects.push(ApiKey::test("weak").into());
    objects.push(key_secret("weak", "short"));
    let mut foreign = ApiKey::test("dave");
    foreign.metadata.namespace = Some("other".into());
    objects.push(foreign.into());

    let scoped = |name: &str, scope: BudgetScope| -> Object {
        let mut b = Budget::test(name, "5");
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
            .map(|k| k.to_string())
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

#[test]
fn fit_max_tokens_reaches_the_snapshot_as_a_floor_only_when_enabled() {
    use crate::resources::FitMaxTokens;
    let fit = |enabled, min_tokens| {
        Some(FitMaxTokens {
            enabled,
            min_tokens,
        })
    };
    let mut on = Budget::test("on", "10");
    on.spec.fit_max_tokens = fit(true, 2048);
    let mut off = Budget::test("off", "10");
    off.spec.fit_max_tokens = fit(false, 2048);
    let mut key = ApiKey::test("alice");
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

/// A Budget listing a key twice covers it once, and the snapshot's hash is its content's (a key
/// counted twice in the Budget's member sum made routers refuse the snapshot).
#[test]
fn a_key_listed_twice_is_covered_once() {
    let mut k = ApiKey::test("alice");
    k.metadata = test_meta("alice");
    let mut b = Budget::test("twice", "5");
    b.spec.scope.api_keys = vec!["alice".into(), "alice".into()];
    let c = compile(&[
        k.into(),
        key_secret("alice", "sk-sb-alice-0123456789"),
        b.into(),
    ]);
    let budget = &c.config.budgets["default/twice"];
    assert_eq!(budget.api_keys.len(), 1);
    assert_eq!(ready(&c, "Budget", "twice").1, "covers 1 key");
    assert_eq!(c.config.hash, c.config.content_hash());
    c.config.validate().expect("a router takes the snapshot");
}
