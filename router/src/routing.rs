//! Route planning: which provider models to try, in which order, for the requested model names.
//! Pure: reads the runtime config, does no I/O.
//!
//! Order: the requested model, then the request's `models` list, then each route's
//! `fallbackModels`, each name once. Within a model, targets by ascending `priority`, declared
//! order breaking ties. Names the key may not use are skipped (the first one is checked by the
//! caller and refused with 403). Providers whose type has no adapter yet are left out and
//! reported, so a route served only by them answers 501.

use std::{collections::HashSet, sync::Arc};

use switchboard_api::snapshot::{ApiKeyConfig, ModelConfig, ProviderType};

use crate::runtime::{Adapter, ProviderRuntime, Runtime};

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
}

/// The ordered candidates, and providers that were skipped for lack of an adapter.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Candidates in the order to try.
    pub candidates: Vec<Candidate<'a>>,
    /// `(provider name, type)` of targets left out because their adapter is not built yet.
    pub unsupported: Vec<(String, ProviderType)>,
}

/// Plans the attempts for `models` (the primary model first).
pub fn plan<'a>(runtime: &'a Runtime, key: &ApiKeyConfig, models: &[&'a str]) -> Plan<'a> {
    let mut out = Plan::default();
    let mut seen = HashSet::new();
    let mut queue: Vec<&'a str> = models.to_vec();
    let mut i = 0;
    while i < queue.len() {
        let name = queue[i];
        i += 1;
        if !seen.insert(name) || !key.may_use(name) {
            continue;
        }
        let Some(route) = runtime.config.routes.get(name) else {
            continue;
        };
        let mut targets: Vec<_> = route.targets.iter().collect();
        targets.sort_by_key(|t| t.priority);
        for t in targets {
            let Some(provider) = runtime.providers.get(&t.provider) else {
                continue;
            };
            let Some(model) = provider.config.models.get(&t.model) else {
                continue;
            };
            if let Adapter::Unsupported(ty) = provider.adapter {
                out.unsupported.push((provider.config.name.clone(), ty));
                continue;
            }
            out.candidates.push(Candidate {
                public_model: &route.model,
                provider: provider.clone(),
                upstream_model: &t.model,
                model,
            });
        }
        queue.extend(route.fallback_models.iter().map(String::as_str));
    }
    out
}
