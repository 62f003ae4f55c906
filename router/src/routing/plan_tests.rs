use std::collections::HashMap;

use rand::{SeedableRng, rngs::StdRng};
use switchboard_api::{compile, parse_manifests, snapshot::ApiKeyConfig};

use super::*;
use crate::{
    providers::clients::ClientPool,
    routing::prefs::{MaxPrice, model_choice},
};

/// Providers `a`..`e` (openaiCompatible) each offering `m`, with prices, data policies and
/// capabilities chosen per test; route `r` over them in declared order; route `fb` for fallbacks.
fn runtime(providers: &[(&str, &str, &str, &str)], route_extra: &str) -> Runtime {
    let mut yaml = String::new();
    let mut targets = String::new();
    for (name, input, output, extra) in providers {
        yaml.push_str(&format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {name}}}\nspec:\n  type: openaiCompatible\n  baseURL: http://{name}.test/v1\n  {extra}\n  models: [{{name: m, pricing: {{inputUSDPerMillion: \"{input}\", outputUSDPerMillion: \"{output}\"}}, capabilities: [tools]}}]\n"
        ));
        targets.push_str(&format!("{{provider: {name}, model: m}},"));
    }
    yaml.push_str(&format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: r}}\nspec: {{model: r, targets: [{targets}] {route_extra}}}\n"
    ));
    yaml.push_str(&format!(
        "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: fb}}\nspec: {{model: fb, targets: [{targets}]}}\n"
    ));
    let objects = parse_manifests(&yaml, "default").unwrap().objects;
    let compiled = compile(&objects);
    for (obj, r) in &compiled.results {
        assert!(r.outcome.is_ready(), "{obj}: {:?}", r.outcome);
    }
    Runtime::build(compiled.config, vec![], &ClientPool::default(), &|_| None).unwrap()
}

fn healthy(_: &str, _: &str) -> TargetView {
    TargetView::default()
}

/// Provider names of the candidates for `model` under `prefs`.
fn order_with(
    rt: &Runtime,
    model: &str,
    prefs: &ProviderPrefs,
    view: &dyn Fn(&str, &str) -> TargetView,
    sticky: Option<&str>,
    rng: &mut StdRng,
) -> Vec<String> {
    let chain = [model_choice(model, |n| rt.config.routes.contains_key(n))];
    let req = RoutingRequest {
        chain: &chain,
        prefs,
        needs: &[Capability::Tools],
        sticky,
    };
    // As `Health::view_of`: the medians only when the plan asks for them.
    let view = |p: &str, m: &str, measured: bool| {
        let v = view(p, m);
        TargetView {
            latency_ms: v.latency_ms.filter(|_| measured),
            throughput: v.throughput.filter(|_| measured),
            ..v
        }
    };
    let plan = plan(rt, &ApiKeyConfig::test(), &req, &view, rng);
    plan.models
        .iter()
        .flat_map(|m| {
            m.candidates
                .iter()
                .map(|c| format!("{}:{}", m.route.model, c.provider.config.name))
        })
        .collect()
}

fn prefs() -> ProviderPrefs {
    ProviderPrefs {
        allow_fallbacks: true,
        ..ProviderPrefs::default()
    }
}

fn first_of(rt: &Runtime, prefs: &ProviderPrefs, rng: &mut StdRng) -> String {
    order_with(rt, "r", prefs, &healthy, None, rng)[0].clone()
}

#[test]
fn default_weighting_is_inverse_price_squared() {
    // Blended prices 1 and 2: weights 1 and 1/4, so `a` should be first 80% of the time.
    let rt = runtime(&[("a", "0.5", "0.5", ""), ("b", "1", "1", "")], "");
    let mut rng = StdRng::seed_from_u64(7);
    let n = 20_000;
    let a_first = (0..n)
        .filter(|_| first_of(&rt, &prefs(), &mut rng) == "r:a")
        .count();
    let share = a_first as f64 / n as f64;
    assert!(
        (share - 0.8).abs() < 0.015,
        "a first in {share:.3} of plans, expected 0.8"
    );

    // Three targets 1, 2, 4 → weights 1, 1/4, 1/16 → shares 16/21, 4/21, 1/21.
    let rt = runtime(
        &[
            ("a", "1", "0", ""),
            ("b", "2", "0", ""),
            ("c", "4", "0", ""),
        ],
        "",
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..n {
        *counts.entry(first_of(&rt, &prefs(), &mut rng)).or_default() += 1;
    }
    for (name, expected) in [
        ("r:a", 16.0 / 21.0),
        ("r:b", 4.0 / 21.0),
        ("r:c", 1.0 / 21.0),
    ] {
        let share = counts[name] as f64 / n as f64;
        assert!(
            (share - expected).abs() < 0.015,
            "{name}: {share:.3} vs {expected:.3}"
        );
    }
}

#[test]
fn sort_and_order_turn_weighting_off() {
    let rt = runtime(
        &[
            ("a", "3", "0", ""),
            ("b", "1", "0", ""),
            ("c", "2", "0", ""),
        ],
        "",
    );
    let mut rng = StdRng::seed_from_u64(1);
    let mut p = prefs();
    p.sort = Some(SortBy::Price);
    for _ in 0..50 {
        assert_eq!(
            order_with(&rt, "r", &p, &healthy, None, &mut rng),
            ["r:b", "r:c", "r:a"]
        );
    }
    assert_eq!(
        order_with(&rt, "r:floor", &prefs(), &healthy, None, &mut rng),
        ["r:b", "r:c", "r:a"]
    );

    let measured = |provider: &str, _: &str| TargetView {
        latency_ms: match provider {
            "default/a" => Some(50.0),
            "default/b" => Some(300.0),
            _ => None,
        },
        throughput: match provider {
            "default/a" => Some(20.0),
            "default/b" => Some(90.0),
            _ => Some(40.0),
        },
        ..TargetView::default()
    };
    p.sort = Some(SortBy::Latency);
    assert_eq!(
        order_with(&rt, "r", &p, &measured, None, &mut rng),
        ["r:c", "r:a", "r:b"],
        "unmeasured first (to measure it), then fastest"
    );
    assert_eq!(
        order_with(&rt, "r:nitro", &prefs(), &measured, None, &mut rng),
        ["r:b", "r:c", "r:a"],
        "highest throughput first"
    );

    let mut p = prefs();
    p.order = vec!["c".into(), "a".into()];
    for _ in 0..50 {
        let got = order_with(&rt, "r", &p, &healthy, None, &mut rng);
        assert_eq!(got, ["r:c", "r:a", "r:b"]);
    }
    p.allow_fallbacks = false;
    assert_eq!(
        order_with(&rt, "r", &p, &healthy, None, &mut rng),
        ["r:c", "r:a"]
    );
    let mut p = prefs();
    p.sort = Some(SortBy::Price);
    p.allow_fallbacks = false;
    assert_eq!(order_with(&rt, "r", &p, &healthy, None, &mut rng), ["r:b"]);
}

#[test]
fn filters_choose_exactly_the_eligible_targets() {
    let rt = runtime(
        &[
            (
                "a",
                "1",
                "1",
                "dataPolicy: {trainsOnData: false, retainsData: false}",
            ),
            (
                "b",
                "1",
                "1",
                "dataPolicy: {trainsOnData: true, retainsData: true}",
            ),
            (
                "c",
                "5",
                "1",
                "dataPolicy: {trainsOnData: false, retainsData: true}",
            ),
            ("d", "1", "9", ""),
            ("e", "0", "0", ""),
        ],
        "",
    );
    let mut rng = StdRng::seed_from_u64(3);
    let set = |p: &ProviderPrefs, model: &str, rng: &mut StdRng| {
        let mut v = order_with(&rt, model, p, &healthy, None, rng);
        v.sort();
        v
    };
    let mut p = prefs();
    p.only = vec!["a".into(), "c".into()];
    assert_eq!(set(&p, "r", &mut rng), ["r:a", "r:c"]);
    let mut p = prefs();
    p.ignore = vec!["a".into(), "e".into()];
    assert_eq!(set(&p, "r", &mut rng), ["r:b", "r:c", "r:d"]);
    let mut p = prefs();
    p.max_price = MaxPrice {
        prompt: Some(Decimal::from(1)),
        completion: Some(Decimal::from(2)),
    };
    assert_eq!(set(&p, "r", &mut rng), ["r:a", "r:b", "r:e"]);
    let mut p = prefs();
    p.deny_data_collection = true;
    assert_eq!(
        set(&p, "r", &mut rng),
        ["r:a", "r:c"],
        "undeclared policies are not trusted"
    );
    let mut p = prefs();
    p.zdr = true;
    assert_eq!(set(&p, "r", &mut rng), ["r:a"]);
    assert_eq!(set(&prefs(), "r:free", &mut rng), ["r:e"]);
    // require_parameters: every target declares `tools` only.
    let chain = [model_choice("r", |_| true)];
    let mut p = prefs();
    p.require_parameters = true;
    for (needs, expected) in [
        (vec![Capability::Tools], 5),
        (vec![Capability::Tools, Capability::JsonSchema], 0),
    ] {
        let req = RoutingRequest {
            chain: &chain,
            prefs: &p,
            needs: &needs,
            sticky: None,
        };
        let plan = plan(
            &rt,
            &ApiKeyConfig::test(),
            &req,
            &|p, m, _| healthy(p, m),
            &mut rng,
        );
        assert_eq!(plan.models[0].candidates.len(), expected);
        if expected == 0 {
            assert_eq!(plan.excluded.len(), 5);
            assert!(
                plan.excluded[0].contains("require_parameters"),
                "{:?}",
                plan.excluded
            );
        }
    }
}

#[test]
fn tools_and_images_only_go_to_models_that_declare_them() {
    // `a` declares `[tools]`; `bare` declares nothing.
    let yaml = "---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: a}\nspec: {type: openaiCompatible, baseURL: http://a.test/v1, models: [{name: m, capabilities: [tools]}]}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: bare}\nspec: {type: openaiCompatible, baseURL: http://bare.test/v1, models: [{name: m}]}\n---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: r}\nspec: {model: r, targets: [{provider: a, model: m}, {provider: bare, model: m}]}\n";
    let objects = parse_manifests(yaml, "default").unwrap().objects;
    let rt = Runtime::build(
        compile(&objects).config,
        vec![],
        &ClientPool::default(),
        &|_| None,
    )
    .unwrap();
    let chain = [model_choice("r", |_| true)];
    let p = prefs();
    let mut rng = StdRng::seed_from_u64(7);
    let names = |needs: &[Capability], rng: &mut StdRng| {
        let req = RoutingRequest {
            chain: &chain,
            prefs: &p,
            needs,
            sticky: None,
        };
        let plan = plan(
            &rt,
            &ApiKeyConfig::test(),
            &req,
            &|p, m, _| healthy(p, m),
            rng,
        );
        let mut names: Vec<String> = plan.models[0]
            .candidates
            .iter()
            .map(|c| c.provider.config.name.clone())
            .collect();
        names.sort();
        (names, plan.excluded)
    };
    // Tools: `a` declares them, `bare` declares nothing and keeps today's behaviour.
    assert_eq!(names(&[Capability::Tools], &mut rng).0, ["a", "bare"]);
    // Images: `a` declares capabilities without `vision`, so it is left out, with the reason.
    let (got, excluded) = names(&[Capability::Vision], &mut rng);
    assert_eq!(got, ["bare"]);
    assert_eq!(
        excluded,
        ["a/m: does not accept images (its capabilities do not list `vision`)"]
    );
    // JSON schema is not judged without require_parameters.
    let (got, excluded) = names(&[Capability::JsonSchema], &mut rng);
    assert_eq!(got, ["a", "bare"], "{excluded:?}");
}

#[test]
fn health_tiers_order_targets_and_cooling_excludes_them() {
    let rt = runtime(
        &[
            ("a", "1", "0", ""),
            ("b", "1", "0", ""),
            ("c", "1", "0", ""),
            ("d", "1", "0", ""),
        ],
        "",
    );
    let mut rng = StdRng::seed_from_u64(5);
    let view = |provider: &str, _: &str| TargetView {
        tier: match provider {
            "default/a" => Tier::Ejected,
            "default/b" => Tier::Degraded,
            "default/c" => Tier::Probe,
            _ => Tier::Healthy,
        },
        ..TargetView::default()
    };
    for _ in 0..20 {
        assert_eq!(
            order_with(&rt, "r", &prefs(), &view, None, &mut rng),
            ["r:c", "r:d", "r:b", "r:a"]
        );
    }
    let cooling = |provider: &str, _: &str| TargetView {
        cooling: (provider != "default/d").then(|| Duration::from_secs(provider.len() as u64)),
        ..TargetView::default()
    };
    let chain = [model_choice("r", |_| true)];
    let p = prefs();
    let req = RoutingRequest {
        chain: &chain,
        prefs: &p,
        needs: &[],
        sticky: None,
    };
    let planned = plan(
        &rt,
        &ApiKeyConfig::test(),
        &req,
        &|p, m, _| cooling(p, m),
        &mut rng,
    );
    let names: Vec<&str> = planned.models[0]
        .candidates
        .iter()
        .map(|c| c.provider.config.name.as_str())
        .collect();
    assert_eq!(names, ["d"]);
    assert_eq!(planned.cooling, Some(Duration::from_secs(9)));
}

#[test]
fn sticky_keys_keep_their_target_and_spread_across_sessions() {
    let rt = runtime(
        &[
            ("a", "1", "0", ""),
            ("b", "1", "0", ""),
            ("c", "1", "0", ""),
        ],
        "",
    );
    let mut rng = StdRng::seed_from_u64(9);
    let first = |s: &str, rng: &mut StdRng| {
        order_with(&rt, "r", &prefs(), &healthy, Some(s), rng)[0].clone()
    };
    let mut spread: HashMap<String, usize> = HashMap::new();
    for s in 0..300 {
        let session = format!("session-{s}");
        let chosen = first(&session, &mut rng);
        for _ in 0..5 {
            assert_eq!(first(&session, &mut rng), chosen, "{session} moved");
        }
        *spread.entry(chosen).or_default() += 1;
    }
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.values().all(|n| *n > 60), "{spread:?}");
    // When the sticky target is ejected, the session moves.
    let session = "session-1";
    let chosen = first(session, &mut rng);
    let provider_id = format!("default/{}", chosen.trim_start_matches("r:"));
    let ejected = |p: &str, _: &str| TargetView {
        tier: if p == provider_id {
            Tier::Ejected
        } else {
            Tier::Healthy
        },
        ..TargetView::default()
    };
    let moved = order_with(&rt, "r", &prefs(), &ejected, Some(session), &mut rng);
    assert_ne!(moved[0], chosen);
    assert_eq!(moved[2], chosen);
}

#[test]
fn model_fallbacks_follow_the_requested_models_then_route_fallbacks() {
    let rt = runtime(&[("a", "1", "0", "")], ", fallbackModels: [fb]");
    let mut rng = StdRng::seed_from_u64(2);
    let chain = [model_choice("r", |_| true), model_choice("fb", |_| true)];
    let p = prefs();
    let req = RoutingRequest {
        chain: &chain,
        prefs: &p,
        needs: &[],
        sticky: None,
    };
    let planned = plan(
        &rt,
        &ApiKeyConfig::test(),
        &req,
        &|p, m, _| healthy(p, m),
        &mut rng,
    );
    let models: Vec<&str> = planned
        .models
        .iter()
        .map(|m| m.route.model.as_str())
        .collect();
    assert_eq!(models, ["r", "fb"], "fb appears once");
    let mut k = ApiKeyConfig::test();
    k.denied_models = vec!["fb".into()];
    let planned = plan(&rt, &k, &req, &|p, m, _| healthy(p, m), &mut rng);
    assert_eq!(
        planned.models.len(),
        1,
        "a model the key may not use is skipped"
    );
}
