//! Route planning: which provider models to try, in which order. Pure: it reads the config, the
//! request's preferences and a health view per target, and takes its randomness from the caller.
//!
//! The order, as documented in docs/routing.md:
//! 1. Models: the requested `model`, then the request's `models`, then each route's
//!    `fallbackModels` (appended as routes are reached), each name once; names the key may not use
//!    are skipped.
//! 2. Per model, targets are filtered: adapter exists, `only`/`ignore`, `data_collection: deny`
//!    and `zdr` (the provider must declare a policy that allows it), `max_price`, `:free`,
//!    tools and images only to models that declare them (when they declare any capabilities),
//!    `require_parameters` (declared capabilities cover the request), and not cooling down after
//!    an upstream `Retry-After`.
//! 3. Per model, the survivors are ordered: with `provider.order`, the named providers first in
//!    that order, then (if `allow_fallbacks`) the rest as below. Otherwise a target holding a
//!    health probe first, then healthy, then recently failed, then ejected targets; within each
//!    tier, by `sort` (request, `:floor`/`:nitro`, or the route's) or, without one, by ascending
//!    `priority` and then a random pick weighted by `weight / price²` — seeded by the sticky key
//!    (`session_id`, else `user`) when there is one, so a session keeps its target while it stays
//!    healthy. `allow_fallbacks: false` keeps only the named (or the first) target.

use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use rand::Rng;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use switchboard_api::snapshot::{
    ApiKeyConfig, Capability, ModelConfig, ProviderType, RouteConfig, RouteSort, TargetConfig,
};

use super::{
    health::{TargetView, Tier},
    prefs::{ModelChoice, ProviderPrefs, SortBy, Variant},
};
use crate::{
    config::runtime::Runtime,
    providers::{Adapter, ProviderRuntime},
};

/// One upstream to try.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    /// Public model name this candidate serves.
    pub public_model: &'a str,
    /// The provider.
    pub provider: Arc<ProviderRuntime>,
    /// Upstream model id.
    pub upstream_model: &'a str,
    /// The provider model's config (pricing, limits).
    pub model: &'a ModelConfig,
    /// Health tier when planned.
    pub tier: Tier,
}

/// The candidates of one model, in the order to try.
#[derive(Debug)]
pub struct ModelPlan<'a> {
    /// The route.
    pub route: &'a RouteConfig,
    /// Candidates in order.
    pub candidates: Vec<Candidate<'a>>,
}

/// The plan for a request.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Models in the order to try.
    pub models: Vec<ModelPlan<'a>>,
    /// Why targets were left out (`provider/model: reason`), for the 503 message.
    pub excluded: Vec<String>,
    /// `(provider name, type)` of targets left out because their adapter is not built yet.
    pub unsupported: Vec<(String, ProviderType)>,
    /// The shortest remaining `Retry-After` among targets left out for it.
    pub cooling: Option<Duration>,
}

impl Plan<'_> {
    /// Whether there is nothing to try.
    pub fn is_empty(&self) -> bool {
        self.models.iter().all(|m| m.candidates.is_empty())
    }
}

/// What a request asks of routing.
pub struct RoutingRequest<'r> {
    /// Requested models, in order.
    pub chain: &'r [ModelChoice],
    /// Provider preferences (already merged with the key's policy).
    pub prefs: &'r ProviderPrefs,
    /// Capabilities the request uses (enforced under `require_parameters`).
    pub needs: &'r [Capability],
    /// Sticky-routing key.
    pub sticky: Option<&'r str>,
}

/// Input plus output price per million tokens: the price `sort: price` and weighting use.
pub fn blended_price(m: &ModelConfig) -> Decimal {
    m.pricing.input_per_million + m.pricing.output_per_million
}

fn is_free(m: &ModelConfig) -> bool {
    m.pricing.input_per_million.is_zero()
        && m.pricing.output_per_million.is_zero()
        && m.pricing.per_request.is_zero()
}

/// Plans the attempts for a request. `view` gives each target's health (by provider id and
/// upstream model; its medians only when the third argument asks for them, for a latency or
/// throughput sort).
pub fn plan<'a>(
    runtime: &'a Runtime,
    key: &ApiKeyConfig,
    req: &RoutingRequest<'_>,
    view: &dyn Fn(&str, &str, bool) -> TargetView,
    rng: &mut impl Rng,
) -> Plan<'a> {
    let mut out = Plan::default();
    let mut seen = HashSet::new();
    let mut queue: Vec<(&str, Option<Variant>)> = req
        .chain
        .iter()
        .map(|c| (c.route.as_str(), c.variant))
        .collect();
    let mut i = 0;
    while i < queue.len() {
        let (name, variant) = queue[i];
        i += 1;
        if !seen.insert((name, variant)) || !key.may_use(name) {
            continue;
        }
        let Some(route) = runtime.config.routes.get(name) else {
            continue;
        };
        let candidates = plan_model(runtime, route, variant, req, view, rng, &mut out);
        out.models.push(ModelPlan { route, candidates });
        queue.extend(route.fallback_models.iter().map(|f| (f.as_str(), None)));
    }
    out
}

struct Eligible<'a> {
    index: usize,
    target: &'a TargetConfig,
    provider: &'a Arc<ProviderRuntime>,
    model: &'a ModelConfig,
    view: TargetView,
}

fn exclusion(
    req: &RoutingRequest<'_>,
    variant: Option<Variant>,
    provider: &ProviderRuntime,
    model: &ModelConfig,
) -> Option<&'static str> {
    let prefs = req.prefs;
    let name = &provider.config.name;
    if !prefs.only.is_empty() && !prefs.only.contains(name) {
        return Some("not in provider.only");
    }
    if prefs.ignore.contains(name) {
        return Some("in provider.ignore");
    }
    let policy = provider.config.data_policy.as_ref();
    if prefs.deny_data_collection && policy.is_none_or(|p| p.trains_on_data) {
        return Some("may train on data (data_collection: deny)");
    }
    if prefs.zdr && policy.is_none_or(|p| p.retains_data) {
        return Some("does not declare zero data retention (zdr)");
    }
    if prefs
        .max_price
        .prompt
        .is_some_and(|max| model.pricing.input_per_million > max)
    {
        return Some("input price above max_price.prompt");
    }
    if prefs
        .max_price
        .completion
        .is_some_and(|max| model.pricing.output_per_million > max)
    {
        return Some("output price above max_price.completion");
    }
    if variant == Some(Variant::Free) && !is_free(model) {
        return Some("not free (:free)");
    }
    // Tools and images are never sent to a model whose declared capabilities lack them (it
    // would fail or silently ignore them); a model that declares no capabilities at all is not
    // judged. Other capabilities are enforced only under `require_parameters`.
    if !model.capabilities.is_empty() {
        if req.needs.contains(&Capability::Tools)
            && !model.capabilities.contains(&Capability::Tools)
        {
            return Some("does not support tools (its capabilities do not list `tools`)");
        }
        if req.needs.contains(&Capability::Vision)
            && !model.capabilities.contains(&Capability::Vision)
        {
            return Some("does not accept images (its capabilities do not list `vision`)");
        }
    }
    if prefs.require_parameters && !req.needs.iter().all(|c| model.capabilities.contains(c)) {
        return Some("lacks a capability the request uses (require_parameters)");
    }
    None
}

fn plan_model<'a>(
    runtime: &'a Runtime,
    route: &'a RouteConfig,
    variant: Option<Variant>,
    req: &RoutingRequest<'_>,
    view: &dyn Fn(&str, &str, bool) -> TargetView,
    rng: &mut impl Rng,
    out: &mut Plan<'a>,
) -> Vec<Candidate<'a>> {
    let sort = req.prefs.sort.or(match variant {
        Some(Variant::Floor) => Some(SortBy::Price),
        Some(Variant::Nitro) => Some(SortBy::Throughput),
        _ => route.sort.map(|s| match s {
            RouteSort::Price => SortBy::Price,
            RouteSort::Latency => SortBy::Latency,
            RouteSort::Throughput => SortBy::Throughput,
        }),
    });
    let measured = matches!(sort, Some(SortBy::Latency | SortBy::Throughput));
    let eligible = eligible(
        runtime,
        route,
        variant,
        req,
        &|p, m| view(p, m, measured),
        out,
    );
    order(eligible, req, sort, rng)
        .into_iter()
        .map(|e| Candidate {
            public_model: &route.model,
            provider: e.provider.clone(),
            upstream_model: &e.target.model,
            model: e.model,
            tier: e.view.tier,
        })
        .collect()
}

/// The route's targets the request may use, in declared order; the others are noted on `out`
/// with the reason (no adapter, an [`exclusion`], cooling down after a `Retry-After`).
fn eligible<'a>(
    runtime: &'a Runtime,
    route: &'a RouteConfig,
    variant: Option<Variant>,
    req: &RoutingRequest<'_>,
    view: &dyn Fn(&str, &str) -> TargetView,
    out: &mut Plan<'a>,
) -> Vec<Eligible<'a>> {
    let mut eligible = Vec::new();
    for (index, target) in route.targets.iter().enumerate() {
        let Some(provider) = runtime.providers.get(&target.provider) else {
            continue;
        };
        let Some(model) = provider.config.models.get(&target.model) else {
            continue;
        };
        if let Adapter::Unsupported(ty) = provider.adapter {
            out.unsupported.push((provider.config.name.clone(), ty));
            continue;
        }
        if let Some(why) = exclusion(req, variant, provider, model) {
            out.excluded
                .push(format!("{}/{}: {why}", provider.config.name, target.model));
            continue;
        }
        let v = view(&target.provider, &target.model);
        if let Some(left) = v.cooling {
            out.excluded.push(format!(
                "{}/{}: asked to retry after {}s",
                provider.config.name,
                target.model,
                left.as_secs_f64().ceil()
            ));
            out.cooling = Some(out.cooling.map_or(left, |c| c.min(left)));
            continue;
        }
        eligible.push(Eligible {
            index,
            target,
            provider,
            model,
            view: v,
        });
    }
    eligible
}

/// The eligible targets in the order to try them: `provider.order` first when given (then the
/// rest if fallbacks are allowed), else ranked; `allow_fallbacks: false` keeps one.
fn order<'a>(
    eligible: Vec<Eligible<'a>>,
    req: &RoutingRequest<'_>,
    sort: Option<SortBy>,
    rng: &mut impl Rng,
) -> Vec<Eligible<'a>> {
    let prefs = req.prefs;
    if prefs.order.is_empty() {
        let mut all = rank(eligible, sort, req.sticky, rng);
        if !prefs.allow_fallbacks {
            all.truncate(1);
        }
        return all;
    }
    let mut named = Vec::new();
    let mut rest = Vec::new();
    for e in eligible {
        match prefs
            .order
            .iter()
            .position(|n| *n == e.provider.config.name)
        {
            Some(pos) => named.push((pos, e)),
            None => rest.push(e),
        }
    }
    named.sort_by_key(|(pos, e)| (*pos, e.view.tier == Tier::Ejected, e.index));
    let mut all: Vec<Eligible<'a>> = named.into_iter().map(|(_, e)| e).collect();
    if prefs.allow_fallbacks {
        all.extend(rank(rest, sort, req.sticky, rng));
    }
    all
}

/// A uniform number in (0, 1] from the sticky key and the target, or from `rng`.
fn uniform(sticky: Option<&str>, e: &Eligible<'_>, rng: &mut impl Rng) -> f64 {
    match sticky {
        Some(key) => {
            let mut h = DefaultHasher::new();
            (key, &e.target.provider, &e.target.model).hash(&mut h);
            ((h.finish() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        }
        None => 1.0 - rng.random::<f64>(),
    }
}

/// Orders targets by health tier, then by `sort`, or by priority and a weighted random pick.
fn rank<'a>(
    targets: Vec<Eligible<'a>>,
    sort: Option<SortBy>,
    sticky: Option<&str>,
    rng: &mut impl Rng,
) -> Vec<Eligible<'a>> {
    // Efraimidis–Spirakis: sorting by -ln(u)/w is a weighted random permutation.
    let mut keyed: Vec<(f64, Eligible<'a>)> = targets
        .into_iter()
        .map(|e| {
            let price = blended_price(e.model)
                .to_f64()
                .unwrap_or(f64::MAX)
                .max(1e-9);
            let weight = f64::from(e.target.weight.max(1)) / (price * price);
            let u = uniform(sticky, &e, rng);
            (-u.ln() / weight, e)
        })
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| {
        a.view.tier.cmp(&b.view.tier).then_with(|| {
            let by_sort = match sort {
                Some(SortBy::Price) => blended_price(a.model).cmp(&blended_price(b.model)),
                // Unmeasured targets first, so each gets measured.
                Some(SortBy::Latency) => a
                    .view
                    .latency_ms
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&b.view.latency_ms.unwrap_or(f64::NEG_INFINITY)),
                Some(SortBy::Throughput) => b
                    .view
                    .throughput
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&a.view.throughput.unwrap_or(f64::INFINITY)),
                None => a
                    .target
                    .priority
                    .cmp(&b.target.priority)
                    .then_with(|| ka.total_cmp(kb)),
            };
            by_sort
                .then_with(|| a.target.priority.cmp(&b.target.priority))
                .then_with(|| a.index.cmp(&b.index))
        })
    });
    keyed.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
