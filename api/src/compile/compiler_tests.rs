//! The incremental compiler against the whole one: after any sequence of changes, what it holds
//! is exactly what compiling every object from scratch gives, and it reports exactly the entries
//! and verdicts that changed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::super::fixtures::*;
use super::{Applied, Changes, Compiler};
use crate::snapshot::Section;

/// A small deterministic generator (SplitMix64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn created(rng: &mut Rng) -> Option<Time> {
    [None, Some(10), Some(20)][rng.below(3)]
        .map(|s| Time(Timestamp::from_second(s).expect("valid")))
}

/// One random version of the object in slot `slot` of `kind`.
fn variant(rng: &mut Rng, kind: usize, slot: usize) -> Object {
    match kind {
        0 => {
            let mut p = Provider::test(&format!("p{slot}"));
            match rng.below(5) {
                0 => p.spec.models.push(model("n", "1", "2")),
                1 => p.spec.models[0].pricing.input_usd_per_million = Some("0.2".into()),
                2 => p.spec.models[0].pricing.input_usd_per_million = Some("lots".into()),
                3 => {
                    p.spec.credentials.as_mut().unwrap().secret_ref =
                        secret_ref("creds-x", "apiKey")
                }
                _ => {}
            }
            p.metadata.generation = Some(1 + rng.below(2) as i64);
            p.into()
        }
        1 => {
            let models = ["a", "b", "c"];
            let targets: Vec<(String, String)> = (0..1 + rng.below(2))
                .map(|_| {
                    (
                        format!("p{}", rng.below(3)),
                        rng.pick(&["m", "n", "x"]).to_string(),
                    )
                })
                .collect();
            let targets: Vec<(&str, &str)> = targets
                .iter()
                .map(|(p, m)| (p.as_str(), m.as_str()))
                .collect();
            let public = *rng.pick(&models);
            let mut r = ModelRoute::test(&format!("r{slot}"), public, &targets);
            if rng.below(2) == 0 {
                r.spec.fallback_models = vec![rng.pick(&["a", "b", "c", "d"]).to_string()];
            }
            r.metadata.creation_timestamp = created(rng);
            r.into()
        }
        2 => {
            let mut k = ApiKey::test(&format!("k{slot}"));
            let labels = [
                ("team", *rng.pick(&["x", "y"])),
                ("g", *rng.pick(&["1", "2"])),
            ];
            let n = rng.below(3);
            k.metadata = with_labels(k.metadata, &labels[..n]);
            k.metadata.generation = Some(3);
            match rng.below(6) {
                0 => k.spec.secret_ref = None,
                1 => k.spec.team = Some("y".into()),
                2 => k.spec.secret_ref = secret_ref("shared-key", "key"),
                // Subjects alone, or with the key: two keys may grant one caller.
                n @ (3 | 4) => {
                    if n == 3 {
                        k.spec.secret_ref = None;
                    }
                    k.spec.subjects = vec![crate::resources::Subject {
                        service_account: Some(crate::resources::ServiceAccountSubject {
                            namespace: "ml".into(),
                            name: format!("sa{}", rng.below(2)),
                        }),
                        oidc: None,
                    }];
                }
                _ => {}
            }
            k.into()
        }
        3 => {
            let mut b = Budget::test(&format!("b{slot}"), "5");
            match rng.below(6) {
                5 => b.spec.limit_usd = "7".into(),
                0 => b.spec.scope.api_keys = vec!["k0".into(), "k9".into()],
                1 => {
                    b.spec.scope.match_labels = BTreeMap::from([("g".to_string(), "1".to_string())])
                }
                2 => b.spec.scope.team = Some("x".into()),
                3 => b.spec.limit_usd = "five".into(),
                _ => {}
            }
            b.into()
        }
        _ => {
            let names = [
                "creds",
                "creds-x",
                "shared-key",
                "k0-key",
                "k1-key",
                "k2-key",
                "k3-key",
                "switchboard-apikey-k0",
                "switchboard-apikey-k1",
            ];
            let name = names[slot % names.len()];
            let key = if name.starts_with("creds") {
                "apiKey"
            } else {
                "key"
            };
            let value = match rng.below(8) {
                0 => "sk-weak".to_string(),
                1 => "sk-sb-shared-value-0123456789".to_string(),
                _ => format!("sk-sb-{name}-value-{}", rng.below(3)),
            };
            secret(name, key, &value)
        }
    }
}

/// The first recompile reports everything as new without listing it.
fn seed_step_is_first(step: usize) -> bool {
    step == 0
}

fn diff<V: PartialEq>(a: &BTreeMap<String, V>, b: &BTreeMap<String, V>) -> BTreeSet<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

#[test]
fn any_sequence_of_changes_ends_where_compiling_from_scratch_does() {
    const SLOTS: [usize; 5] = [3, 5, 4, 4, 9];
    let mut seen = BTreeSet::new();
    let mut budget_sizes = BTreeSet::new();
    for seed in 0..40 {
        let mut rng = Rng(seed);
        let mut compiler = Compiler::new();
        let mut objects: BTreeMap<ObjectRef, Object> = BTreeMap::new();
        let mut previous = compile(&[]);
        let mut issuers = Vec::new();
        for step in 0..60 {
            // Now and then the trusted issuers change (the operator read the cluster's again).
            if rng.below(8) == 0 {
                issuers = match rng.below(3) {
                    0 => vec![],
                    n => vec![crate::identity::IssuerConfig {
                        issuer: "https://k8s.example".into(),
                        audiences: vec!["switchboard".into()],
                        keys: crate::identity::KeySource::Jwks(
                            serde_json::json!({"keys": [{"kid": n.to_string()}]}),
                        ),
                    }],
                };
                compiler.set_issuers(issuers.clone());
            }
            // A few changes per round, as a debounced burst of watch events brings them.
            for _ in 0..1 + rng.below(3) {
                let kind = rng.below(SLOTS.len());
                let slot = rng.below(SLOTS[kind]);
                let object = variant(&mut rng, kind, slot);
                let r = object.object_ref();
                if rng.below(5) == 0 {
                    compiler.remove(&r);
                    objects.remove(&r);
                } else {
                    compiler.apply(object.clone());
                    objects.insert(r, object);
                }
            }
            let changes = compiler.recompile();
            let all: Vec<Object> = objects.values().cloned().collect();
            let expected = crate::compile_trusting(&all, issuers.clone());
            let context = format!("seed {seed} step {step}");
            assert_eq!(compiler.config(), &expected.config, "{context}");
            let results: BTreeMap<ObjectRef, ObjectResult> = compiler
                .results()
                .map(|(r, res)| (r.clone(), res.clone()))
                .collect();
            assert_eq!(results, expected.results, "{context}");
            assert_eq!(compiler.config().hash, expected.config.content_hash());

            let mut entries = BTreeMap::new();
            let (a, b) = (&previous.config, &expected.config);
            for (section, keys) in [
                (Section::Providers, diff(&a.providers, &b.providers)),
                (Section::Routes, diff(&a.routes, &b.routes)),
                (Section::ApiKeys, diff(&a.api_keys, &b.api_keys)),
                (Section::Budgets, diff(&a.budgets, &b.budgets)),
                (Section::Issuers, diff(&a.issuers, &b.issuers)),
            ] {
                if !keys.is_empty() {
                    entries.insert(section, keys);
                }
            }
            let results = previous
                .results
                .keys()
                .chain(expected.results.keys())
                .filter(|r| previous.results.get(*r) != expected.results.get(*r))
                .cloned()
                .collect();
            let first = seed_step_is_first(step);
            if first {
                assert_eq!(
                    changes,
                    Changes {
                        first,
                        ..Changes::default()
                    },
                    "{context}"
                );
            } else {
                let expected_changes = Changes {
                    first,
                    entries,
                    results,
                };
                assert_eq!(changes, expected_changes, "{context}");
            }
            seen.extend(expected.results.values().map(|r| r.outcome.reason()));
            budget_sizes.extend(expected.config.budgets.values().map(|b| b.api_keys.len()));
            previous = expected;
        }
    }
    // The sequences went through every cross-object decision.
    for reason in [
        COMPILED,
        SOME_TARGETS_UNRESOLVED,
        SOME_KEYS_UNRESOLVED,
        DUPLICATE_MODEL,
        DUPLICATE_KEY,
        OVERLAPPING_SUBJECTS,
        UNKNOWN_PROVIDER,
        PROVIDER_NOT_READY,
        UNKNOWN_PROVIDER_MODEL,
        SECRET_NOT_FOUND,
        WEAK_KEY,
        INVALID_PRICE,
        INVALID_LIMIT,
    ] {
        assert!(seen.contains(reason), "{reason} never came up: {seen:?}");
    }
    assert!(budget_sizes.len() > 3, "{budget_sizes:?}");
}

#[test]
fn a_status_only_change_compiles_nothing() {
    let mut compiler = Compiler::new();
    compiler.recompile();
    let mut key = ApiKey::test("alice");
    compiler.apply(key.clone().into());
    compiler.apply(key_secret("alice", ALICE_KEY));
    assert!(compiler.recompile().snapshot_changed());
    key.status = Some(Default::default());
    key.metadata.resource_version = Some("42".into());
    assert_eq!(compiler.apply(key.clone().into()), Applied::Unchanged);
    assert!(compiler.recompile().is_empty());
    key.metadata.generation = Some(4);
    assert_eq!(compiler.apply(key.into()), Applied::Changed);
    let changes = compiler.recompile();
    assert!(!changes.snapshot_changed());
    assert_eq!(
        changes.results.len(),
        1,
        "the verdict names the new generation"
    );
}

#[test]
fn a_key_changing_labels_moves_between_label_budgets_only() {
    let mut compiler = Compiler::new();
    compiler.recompile();
    let mut by_group = |name: &str, group: &str| {
        let mut b = Budget::test(name, "5");
        b.spec.scope.match_labels = BTreeMap::from([("g".to_string(), group.to_string())]);
        compiler.apply(b.into());
    };
    by_group("g1", "1");
    by_group("g2", "2");
    for i in 0..50 {
        let mut k = ApiKey::test(&format!("k{i}"));
        k.metadata = with_labels(k.metadata, &[("g", if i % 2 == 0 { "1" } else { "2" })]);
        compiler.apply(k.into());
        compiler.apply(key_secret(
            &format!("k{i}"),
            &format!("sk-sb-key-number-{i:04}"),
        ));
    }
    compiler.recompile();
    assert_eq!(compiler.config().budgets["default/g1"].api_keys.len(), 25);

    let mut k = ApiKey::test("k0");
    k.metadata = with_labels(k.metadata, &[("g", "2")]);
    compiler.apply(k.into());
    let changes = compiler.recompile();
    assert_eq!(
        changes.entries[&Section::Budgets],
        BTreeSet::from(["default/g1".to_string(), "default/g2".to_string()])
    );
    assert!(!changes.entries.contains_key(&Section::ApiKeys));
    let budgets = &compiler.config().budgets;
    assert_eq!(budgets["default/g1"].api_keys.len(), 24);
    assert!(budgets["default/g2"].api_keys.contains("default/k0"));
    assert_eq!(
        changes.results,
        BTreeSet::from([
            ObjectRef {
                kind: "Budget",
                namespace: NS.into(),
                name: "g1".into()
            },
            ObjectRef {
                kind: "Budget",
                namespace: NS.into(),
                name: "g2".into()
            },
        ])
    );
}

#[test]
fn a_budget_changing_its_limit_keeps_its_keys_and_takes_in_those_that_moved() {
    let mut compiler = Compiler::new();
    let mut objects: BTreeMap<ObjectRef, Object> = BTreeMap::new();
    let mut apply = |compiler: &mut Compiler, object: Object| {
        objects.insert(object.object_ref(), object.clone());
        compiler.apply(object);
        objects.values().cloned().collect::<Vec<_>>()
    };
    let everyone = Budget::test("everyone", "5");
    let mut team = Budget::test("team", "5");
    team.spec.scope.team = Some("x".into());
    apply(&mut compiler, everyone.clone().into());
    apply(&mut compiler, team.clone().into());
    for i in 0..20 {
        let mut k = ApiKey::test(&format!("k{i}"));
        if i % 2 == 0 {
            k.spec.team = Some("x".into());
        }
        apply(&mut compiler, k.into());
        apply(
            &mut compiler,
            key_secret(&format!("k{i}"), &format!("sk-sb-key-number-{i:04}")),
        );
    }
    compiler.recompile();
    assert_eq!(compiler.config().budgets["default/team"].api_keys.len(), 10);

    // In one recompile: both limits change (same scopes) while a key joins the team and another
    // leaves every Budget.
    let mut everyone = everyone;
    everyone.spec.limit_usd = "6".into();
    let mut team = team;
    team.spec.limit_usd = "7".into();
    apply(&mut compiler, everyone.into());
    apply(&mut compiler, team.into());
    let mut joins = ApiKey::test("k1");
    joins.spec.team = Some("x".into());
    apply(&mut compiler, joins.into());
    let mut leaves = ApiKey::test("k2");
    leaves.spec.team = Some("x".into());
    leaves.spec.secret_ref = secret_ref("missing", "key");
    let all = apply(&mut compiler, leaves.into());
    let changes = compiler.recompile();

    let expected = compile(&all);
    assert_eq!(compiler.config(), &expected.config);
    assert_eq!(compiler.config().hash, expected.config.content_hash());
    let budgets = &compiler.config().budgets;
    assert_eq!(budgets["default/team"].api_keys.len(), 10);
    assert!(budgets["default/team"].api_keys.contains("default/k1"));
    assert!(!budgets["default/everyone"].api_keys.contains("default/k2"));
    assert_eq!(
        changes.entries[&Section::Budgets],
        BTreeSet::from(["default/everyone".to_string(), "default/team".to_string()])
    );
    for (r, result) in compiler.results() {
        assert_eq!(Some(result), expected.results.get(r), "{r}");
    }
}

#[test]
fn keys_granting_one_caller_clash_and_part_as_their_subjects_change() {
    use crate::resources::{ServiceAccountSubject, Subject};
    let by_token = |name: &str, accounts: &[&str]| {
        let mut k = ApiKey::test(name);
        k.spec.secret_ref = None;
        k.spec.subjects = accounts
            .iter()
            .map(|a| Subject {
                service_account: Some(ServiceAccountSubject {
                    namespace: "ml".into(),
                    name: a.to_string(),
                }),
                oidc: None,
            })
            .collect();
        k
    };
    let r = |name: &str| ObjectRef {
        kind: "ApiKey",
        namespace: NS.into(),
        name: name.into(),
    };
    let mut compiler = Compiler::new();
    let mut objects: BTreeMap<ObjectRef, Object> = BTreeMap::new();
    // Applies the changes, recompiles, checks the result is compiling from scratch's, and returns
    // the reason of a's and b's verdicts with what changed.
    let mut step = |changes: Vec<Object>, removed: Option<ObjectRef>| {
        for object in changes {
            objects.insert(object.object_ref(), object.clone());
            compiler.apply(object);
        }
        if let Some(gone) = removed {
            objects.remove(&gone);
            compiler.remove(&gone);
        }
        let changes = compiler.recompile();
        let all: Vec<Object> = objects.values().cloned().collect();
        let expected = compile(&all);
        assert_eq!(compiler.config(), &expected.config);
        let reason = |name: &str| compiler.result(&r(name)).map(|res| res.outcome.reason());
        let reasons = (reason("a"), reason("b"));
        let message = compiler
            .result(&r("a"))
            .map(|res| res.outcome.message().to_string());
        (
            reasons,
            message,
            changes,
            compiler.config().api_keys.clone(),
        )
    };
    let a_id = crate::compile::subject_key_id(NS, "a");
    let b_id = crate::compile::subject_key_id(NS, "b");

    let (reasons, ..) = step(
        vec![
            by_token("a", &["trainer"]).into(),
            by_token("b", &["server"]).into(),
        ],
        None,
    );
    assert_eq!(reasons, (Some(COMPILED), Some(COMPILED)));

    // b comes to grant a's caller as well: neither may take it.
    let (reasons, message, changes, keys) =
        step(vec![by_token("b", &["server", "trainer"]).into()], None);
    assert_eq!(
        reasons,
        (Some(OVERLAPPING_SUBJECTS), Some(OVERLAPPING_SUBJECTS))
    );
    let message = message.unwrap();
    assert!(
        message.contains("spec.subjects[0]") && message.contains("ApiKey default/b"),
        "{message}"
    );
    assert!(keys.is_empty(), "both left the snapshot: {keys:?}");
    assert_eq!(
        changes.entries[&Section::ApiKeys],
        BTreeSet::from([a_id.clone(), b_id.clone()])
    );
    assert_eq!(changes.results, BTreeSet::from([r("a"), r("b")]));

    // b lets go of it: both are back, a without being changed itself.
    let (reasons, _, changes, keys) = step(vec![by_token("b", &["server"]).into()], None);
    assert_eq!(reasons, (Some(COMPILED), Some(COMPILED)));
    assert_eq!(keys.len(), 2);
    assert_eq!(changes.results, BTreeSet::from([r("a"), r("b")]));

    // a, now with a key of its own, also grants b's caller: the key does not settle the clash.
    let mut a = by_token("a", &["trainer", "server"]);
    a.spec.secret_ref = ApiKey::test("a").spec.secret_ref;
    let (reasons, ..) = step(vec![a.into(), key_secret("a", ALICE_KEY)], None);
    assert_eq!(
        reasons,
        (Some(OVERLAPPING_SUBJECTS), Some(OVERLAPPING_SUBJECTS))
    );

    // b is deleted: a is alone with its callers, filed under its key.
    let (reasons, _, changes, keys) = step(vec![], Some(r("b")));
    assert_eq!(reasons, (Some(COMPILED), None));
    let alice = hash_api_key(ALICE_KEY);
    assert_eq!(
        keys.keys().cloned().collect::<Vec<_>>(),
        vec![alice.clone()]
    );
    assert_eq!(keys[&alice].subjects.len(), 2);
    assert_eq!(changes.entries[&Section::ApiKeys], BTreeSet::from([alice]));
}

#[test]
fn a_one_shot_compile_drops_ready_keys_yet_scopes_budgets_by_their_labels() {
    // The one-shot compile (`compile_owned`, a Batch) drops each ApiKey once it is ready and
    // keeps its labels alone; the kept compiler holds every object. Both must agree.
    let mut b = Budget::test("g1", "5");
    b.spec.scope.match_labels = BTreeMap::from([("g".to_string(), "1".to_string())]);
    let mut objects: Vec<Object> = vec![b.into()];
    for i in 0..20 {
        let mut k = ApiKey::test(&format!("k{i}"));
        k.metadata = with_labels(k.metadata, &[("g", if i % 2 == 0 { "1" } else { "2" })]);
        objects.push(k.into());
        // k18 and k19 hold the same key: both are left out, of the Budget too.
        let key = if i >= 18 {
            "sk-sb-key-shared-0000".to_string()
        } else {
            format!("sk-sb-key-number-{i:04}")
        };
        objects.push(key_secret(&format!("k{i}"), &key));
    }
    let mut kept = Compiler::new();
    for object in objects.clone() {
        kept.apply(object);
    }
    kept.recompile();
    let once = compile_owned(objects);
    assert_eq!(&once.config, kept.config());
    let kept_results: BTreeMap<_, _> = kept
        .results()
        .map(|(r, result)| (r.clone(), result.clone()))
        .collect();
    assert_eq!(once.results, kept_results);
    let members = &once.config.budgets["default/g1"].api_keys;
    assert_eq!(members.len(), 9, "k0, k2 … k16: {members:?}");
    assert!(!members.contains("default/k18"));
    assert_rejected(&once, "ApiKey", "k18", DUPLICATE_KEY, "spec.secretRef");
}
