//! Objects at the scale of a platform team with per-developer keys, for benchmarks and the tests
//! that check the control plane stays within the API server's limits: Providers of 20 models each
//! with a credential Secret, ModelRoutes with two targets and a fallback, ApiKeys labelled by team
//! and group, each with its own key Secret, and Budgets selecting keys by label (one in a hundred
//! by team, one over the whole namespace). One bad object of each kind is mixed in: a Provider with
//! a malformed price, a ModelRoute naming a missing Provider, an ApiKey whose Secret is missing, a
//! Budget with a malformed limit. Deterministic: the same scale gives the same objects.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{
    manifest::Object,
    resources::{ApiKey, Budget, BudgetScope, ModelRoute, Provider, RouteTarget},
    testing::resources::{model, secret_ref, test_meta, with_labels},
};
use k8s_openapi::api::core::v1::Secret;

/// The namespace every generated object is in (one namespace: the worst case for selectors).
pub const SCALE_NAMESPACE: &str = "acme";
/// Models each Provider offers.
pub const MODELS_PER_PROVIDER: usize = 20;
/// Teams the keys are spread over (label `team`).
pub const TEAMS: usize = 20;

/// How many objects of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// ApiKeys (each with its Secret).
    pub api_keys: usize,
    /// ModelRoutes.
    pub routes: usize,
    /// Budgets.
    pub budgets: usize,
    /// Providers (each with its Secret).
    pub providers: usize,
}

impl Scale {
    /// `keys` ApiKeys with a tenth as many ModelRoutes, a twentieth as many Budgets and one
    /// Provider per 500 keys (at least two): 100k keys give 10k routes, 5k budgets, 200 providers.
    pub fn keys(keys: usize) -> Scale {
        Scale {
            api_keys: keys,
            routes: (keys / 10).max(1),
            budgets: (keys / 20).max(1),
            providers: (keys / 500).max(2),
        }
    }

    /// Label groups: each Budget but the team and namespace-wide ones selects one group.
    fn groups(&self) -> usize {
        self.budgets.max(1)
    }
}

fn meta_in_scale(name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut meta = test_meta(name);
    meta.namespace = Some(SCALE_NAMESPACE.into());
    meta.generation = Some(1);
    meta
}

fn secret(name: &str, key: &str, value: &str) -> Secret {
    let Object::Secret(mut s) = crate::testing::resources::secret(name, key, value) else {
        unreachable!("secret() builds a Secret")
    };
    s.metadata.namespace = Some(SCALE_NAMESPACE.into());
    s
}

/// The client key of ApiKey number `i`: `sk-sb-` and 40 hex characters derived from `i`.
pub fn client_key(i: usize) -> String {
    let digest = Sha256::digest(format!("switchboard-scale-key-{i}").as_bytes());
    format!("sk-sb-{}", &hex::encode(digest)[..40])
}

/// Provider number `i`: `openaiCompatible`, 20 models `m-0`.. `m-19`.
pub fn provider(i: usize) -> Provider {
    let mut p = Provider::test(&format!("provider-{i}"));
    p.metadata = meta_in_scale(&format!("provider-{i}"));
    p.spec.base_url = Some(format!("http://upstream-{i}.test/v1"));
    if let Some(c) = &mut p.spec.credentials {
        c.secret_ref = secret_ref(&format!("provider-{i}-creds"), "apiKey");
    }
    p.spec.models = (0..MODELS_PER_PROVIDER)
        .map(|m| model(&format!("m-{m}"), &format!("0.{}", 10 + m), "1.25"))
        .collect();
    p
}

/// ModelRoute number `i`: public model `model-i`, two targets on neighbouring Providers, the
/// next route's model as fallback.
pub fn route(i: usize, scale: &Scale) -> ModelRoute {
    let p = scale.providers.max(1);
    let target = |provider: usize| RouteTarget {
        provider: format!("provider-{}", provider % p),
        model: format!("m-{}", i % MODELS_PER_PROVIDER),
        weight: Some(1 + (i % 3) as u32),
        priority: None,
    };
    let mut r = ModelRoute::test(&format!("route-{i}"), &format!("model-{i}"), &[]);
    r.metadata = meta_in_scale(&format!("route-{i}"));
    r.spec.targets = vec![target(i), target(i + 1)];
    r.spec.fallback_models = vec![format!("model-{}", (i + 1) % scale.routes.max(1))];
    if scale.routes == 1 {
        r.spec.fallback_models.clear();
    }
    r
}

/// ApiKey number `i`: labels `team: team-<i mod 20>` and `group: g-<i mod groups>`, key in Secret
/// `key-i`.
pub fn api_key(i: usize, scale: &Scale) -> ApiKey {
    let name = format!("key-{i}");
    let mut k = ApiKey::test(&name);
    let team = format!("team-{}", i % TEAMS);
    let group = format!("g-{}", i % scale.groups());
    k.metadata = with_labels(meta_in_scale(&name), &[("team", &team), ("group", &group)]);
    k.spec.secret_ref = secret_ref(&name, "key");
    k.spec.allowed_models = vec!["model-*".into()];
    k.spec.rate_limits = Some(crate::resources::RateLimits {
        requests_per_minute: Some(600),
        tokens_per_minute: None,
        concurrent_requests: None,
    });
    k
}

/// Budget number `i`: every hundredth selects a team, number 1 the whole namespace, the others
/// one label group.
pub fn budget(i: usize) -> Budget {
    let mut b = Budget::test(&format!("budget-{i}"), &format!("{}.50", 10 + i % 90));
    b.metadata = meta_in_scale(&format!("budget-{i}"));
    b.spec.scope = if i == 1 {
        BudgetScope::default()
    } else if i.is_multiple_of(100) {
        BudgetScope {
            team: Some(format!("team-{}", (i / 100) % TEAMS)),
            ..BudgetScope::default()
        }
    } else {
        BudgetScope {
            match_labels: BTreeMap::from([("group".to_string(), format!("g-{i}"))]),
            ..BudgetScope::default()
        }
    };
    b
}

/// Every object of `scale`, Secrets included, and one bad object of each kind.
pub fn objects(scale: &Scale) -> Vec<Object> {
    let mut out: Vec<Object> =
        Vec::with_capacity(2 * (scale.api_keys + scale.providers) + scale.routes + scale.budgets);
    for i in 0..scale.providers {
        out.push(provider(i).into());
        out.push(
            secret(
                &format!("provider-{i}-creds"),
                "apiKey",
                &format!("sk-upstream-{i}"),
            )
            .into(),
        );
    }
    for i in 0..scale.routes {
        out.push(route(i, scale).into());
    }
    for i in 0..scale.api_keys {
        out.push(api_key(i, scale).into());
        out.push(secret(&format!("key-{i}"), "key", &client_key(i)).into());
    }
    for i in 0..scale.budgets {
        out.push(budget(i).into());
    }
    out.extend(bad_objects(scale));
    out
}

/// One bad object of each kind, each rejected alone.
pub fn bad_objects(scale: &Scale) -> Vec<Object> {
    let mut bad_price = provider(scale.providers);
    bad_price.metadata = meta_in_scale("provider-bad-price");
    bad_price.spec.models[0].pricing.input_usd_per_million = Some("lots".into());
    let mut missing_provider = route(0, scale);
    missing_provider.metadata = meta_in_scale("route-missing-provider");
    missing_provider.spec.model = "model-missing-provider".into();
    for t in &mut missing_provider.spec.targets {
        t.provider = "provider-that-does-not-exist".into();
    }
    let mut missing_secret = api_key(0, scale);
    missing_secret.metadata = meta_in_scale("key-missing-secret");
    missing_secret.spec.secret_ref = secret_ref("key-secret-that-does-not-exist", "key");
    let mut bad_limit = budget(2);
    bad_limit.metadata = meta_in_scale("budget-bad-limit");
    bad_limit.spec.limit_usd = "ten dollars".into();
    vec![
        bad_price.into(),
        missing_provider.into(),
        missing_secret.into(),
        bad_limit.into(),
    ]
}

/// The objects as `---`-separated YAML manifests, as a team would `kubectl apply` them.
pub fn manifests(objects: &[Object]) -> String {
    let mut out = String::new();
    for o in objects {
        let doc = match o {
            Object::Provider(p) => serde_yaml::to_string(p),
            Object::ModelRoute(r) => serde_yaml::to_string(r),
            Object::ApiKey(k) => serde_yaml::to_string(k),
            Object::Budget(b) => serde_yaml::to_string(b),
            Object::Secret(s) => serde_yaml::to_string(s),
        }
        .expect("objects serialize");
        out.push_str("---\n");
        out.push_str(&doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, parse_manifests};

    #[test]
    fn a_small_scale_compiles_with_exactly_the_bad_objects_rejected() {
        let scale = Scale::keys(200);
        let objects = objects(&scale);
        let c = compile(&objects);
        let rejected: Vec<String> = c
            .results
            .iter()
            .filter(|(_, r)| !r.outcome.is_ready())
            .map(|(r, _)| r.name.clone())
            .collect();
        assert_eq!(
            rejected,
            [
                "key-missing-secret",
                "budget-bad-limit",
                "route-missing-provider",
                "provider-bad-price"
            ]
        );
        assert_eq!(c.config.api_keys.len(), 200);
        assert_eq!(c.config.routes.len(), 20);
        assert_eq!(c.config.budgets["acme/budget-1"].api_keys.len(), 200);
        let back = parse_manifests(&manifests(&objects), "default").unwrap();
        assert_eq!(compile(&back.objects), c);
    }
}
