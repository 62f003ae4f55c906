//! ModelRoutes: each on its own, then one route per public model name, oldest first.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Compiler, Issues, Rejection,
    compiler::object_ref,
    duration_ms,
    index::RouteDraft,
    join,
    key::{Key, KeySet},
    plural, quoted_list,
    reason::*,
};
use crate::{
    manifest::ObjectRef,
    resources::ModelRoute,
    snapshot::{RetryConfig, RouteConfig, TargetConfig},
};

impl Compiler {
    /// Recompiles the marked routes on their own, settles the public model names they claimed
    /// or claim (one route per name: the oldest, then the first by namespace/name), and
    /// rewrites the verdicts that depend on those names.
    pub(super) fn settle_routes(&mut self, dirty: KeySet) {
        let mut names = BTreeSet::new();
        for key in dirty {
            names.extend(self.index.unclaim(&key));
            let r = object_ref("ModelRoute", &key);
            let Some(route) = self.routes.get(&key).cloned() else {
                self.forget(r);
                continue;
            };
            match self.compile_route(&r, &route) {
                Ok((config, warning)) => {
                    names.insert(config.model.clone());
                    self.index.claim(key, RouteDraft { config, warning });
                }
                Err(rejection) => self.reject(r, route.metadata.generation, rejection),
            }
        }
        let mut finish = BTreeSet::new();
        for name in names {
            self.settle_model(&name, &mut finish);
        }
        for key in finish {
            self.finish_route(&key);
        }
    }

    /// Gives the public model name `model` to the oldest route claiming it and rejects the
    /// others. The winner, and the routes falling back to `model` when whether it is served
    /// changed, go into `finish`.
    fn settle_model(&mut self, model: &str, finish: &mut BTreeSet<Key>) {
        // `None` timestamps (manifests that never saw an API server) count as newest.
        let mut claimants: Vec<&Key> = self.index.claims.get(model).into_iter().flatten().collect();
        claimants.sort_by_cached_key(|key| {
            let created = self.routes[*key].metadata.creation_timestamp.clone();
            (created.is_none(), created, *key)
        });
        let claimants: Vec<Key> = claimants.into_iter().cloned().collect();
        let was_served = self.config.routes.contains_key(model);
        let Some((winner, losers)) = claimants.split_first() else {
            self.put::<RouteConfig>(model, None);
            if was_served {
                finish.extend(self.index.fallback_users(model).cloned());
            }
            return;
        };
        let config = self.index.route_drafts[winner].config.clone();
        self.put(model, Some(config));
        finish.insert(winner.clone());
        for loser in losers {
            let message = format!(
                "spec.model: {model:?} is already served by ModelRoute {}; the oldest \
                 ModelRoute claiming a name wins (then the first by namespace/name)",
                winner.id()
            );
            let generation = self.routes[loser].metadata.generation;
            let r = object_ref("ModelRoute", loser);
            self.reject(r, generation, Rejection::new(DUPLICATE_MODEL, message));
        }
        if !was_served {
            finish.extend(self.index.fallback_users(model).cloned());
        }
    }

    /// The verdict of a route serving its model: its targets, and its fallbacks not served.
    fn finish_route(&mut self, key: &Key) {
        let Some(draft) = self.index.route_drafts.get(key) else {
            return;
        };
        let serves = self
            .config
            .routes
            .get(&draft.config.model)
            .is_some_and(|c| c.namespace == key.namespace() && c.name == key.name());
        if !serves {
            return;
        }
        let mut notes: Vec<String> = draft.warning.iter().cloned().collect();
        if draft.warning.is_none() {
            notes.push(plural(draft.config.targets.len(), "target", "targets"));
        }
        for fallback in &draft.config.fallback_models {
            if !self.config.routes.contains_key(fallback) {
                notes.push(format!("fallback model {fallback:?} is not served yet"));
            }
        }
        let reason = match draft.warning {
            Some(_) => SOME_TARGETS_UNRESOLVED,
            None => COMPILED,
        };
        let message = join(notes.iter().map(String::as_str));
        let generation = self.routes[key].metadata.generation;
        self.ready(object_ref("ModelRoute", key), generation, reason, message);
    }

    /// The route with the targets that resolve, plus a note about those that did not.
    fn compile_route(
        &self,
        r: &ObjectRef,
        route: &ModelRoute,
    ) -> Result<(RouteConfig, Option<String>), Rejection> {
        let spec = &route.spec;
        let mut issues = Issues::default();

        if spec.model.is_empty() {
            issues.add(INVALID_MODEL, "spec.model: must not be empty");
        } else if spec
            .model
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            issues.add(
                INVALID_MODEL,
                format!(
                    "spec.model: {:?} must not contain whitespace or control characters",
                    spec.model
                ),
            );
        }

        if spec.targets.is_empty() {
            issues.add(NO_TARGETS, "spec.targets: at least one target is required");
        }
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, t) in spec.targets.iter().enumerate() {
            if t.provider.is_empty() {
                issues.add(
                    INVALID_TARGET,
                    format!("spec.targets[{i}].provider: must not be empty"),
                );
            }
            if t.model.is_empty() {
                issues.add(
                    INVALID_TARGET,
                    format!("spec.targets[{i}].model: must not be empty"),
                );
            }
            if t.weight == Some(0) {
                issues.add(
                    INVALID_TARGET,
                    format!(
                        "spec.targets[{i}].weight: must be at least 1 (remove the target to stop \
                         sending it traffic)"
                    ),
                );
            }
            if let Some(first) = seen.insert((&t.provider, &t.model), i) {
                issues.add(
                    INVALID_TARGET,
                    format!(
                        "spec.targets[{i}]: provider {:?} model {:?} is already listed at \
                         spec.targets[{first}]",
                        t.provider, t.model
                    ),
                );
            }
        }

        let mut fallbacks_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, f) in spec.fallback_models.iter().enumerate() {
            if f.is_empty() || f.chars().any(|c| c.is_whitespace() || c.is_control()) {
                issues.add(
                    INVALID_FALLBACK,
                    format!(
                        "spec.fallbackModels[{i}]: {f:?} is not a model name (empty or has \
                         whitespace)"
                    ),
                );
            } else if *f == spec.model {
                issues.add(
                    INVALID_FALLBACK,
                    format!("spec.fallbackModels[{i}]: {f:?} is this route's own model"),
                );
            } else if let Some(first) = fallbacks_seen.insert(f, i) {
                issues.add(
                    INVALID_FALLBACK,
                    format!("spec.fallbackModels[{i}]: {f:?} is already listed at index {first}"),
                );
            }
        }
        let retry = route_retry(spec, &mut issues);
        let cache = super::cache::compile_cache(spec.cache.as_ref(), &mut issues);
        issues.finish()?;

        let mut targets = Vec::new();
        let mut failures = Vec::new();
        for (i, t) in spec.targets.iter().enumerate() {
            match self.resolve_target(&r.namespace, i, t) {
                Ok(target) => targets.push(target),
                Err(e) => failures.push(e),
            }
        }
        let failure_messages = || join(failures.iter().map(|f| f.message.as_str()));
        if targets.is_empty() {
            return Err(Rejection::new(
                failures[0].reason,
                format!("no target resolves: {}", failure_messages()),
            ));
        }
        let warning = (!failures.is_empty()).then(|| {
            format!(
                "{} of {} targets resolve: {}",
                targets.len(),
                spec.targets.len(),
                failure_messages()
            )
        });
        Ok((
            RouteConfig {
                model: spec.model.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                targets,
                fallback_models: spec.fallback_models.clone(),
                sort: spec.sort,
                retry: retry.0,
                deadline_ms: retry.1,
                record_content: spec.record_content,
                cache,
            },
            warning,
        ))
    }

    fn resolve_target(
        &self,
        namespace: &str,
        i: usize,
        t: &crate::resources::RouteTarget,
    ) -> Result<TargetConfig, Rejection> {
        let id = format!("{namespace}/{}", t.provider);
        let Some(provider) = self.config.providers.get(&id) else {
            let field = format!("spec.targets[{i}].provider");
            return Err(
                match self.rejected_reason("Provider", namespace, &t.provider) {
                    Some(reason) => Rejection::new(
                        PROVIDER_NOT_READY,
                        format!("{field}: Provider {id} is not ready: {reason}"),
                    ),
                    None => Rejection::new(
                        UNKNOWN_PROVIDER,
                        format!("{field}: Provider {id} not found"),
                    ),
                },
            );
        };
        if !provider.models.contains_key(&t.model) {
            return Err(Rejection::new(
                UNKNOWN_PROVIDER_MODEL,
                format!(
                    "spec.targets[{i}].model: Provider {id} does not offer {:?} (it offers {})",
                    t.model,
                    quoted_list(provider.models.keys())
                ),
            ));
        }
        Ok(TargetConfig {
            provider: id,
            model: t.model.clone(),
            weight: t.weight.unwrap_or(1),
            priority: t.priority.unwrap_or(0),
        })
    }
}

/// A ModelRoute's retry passes and overall deadline.
fn route_retry(
    spec: &crate::resources::ModelRouteSpec,
    issues: &mut Issues,
) -> (RetryConfig, Option<u64>) {
    let mut retry = RetryConfig::default();
    if let Some(policy) = &spec.retries {
        if let Some(n) = policy.attempts {
            if n > 5 {
                issues.add(
                    INVALID_RETRIES,
                    format!("spec.retries.attempts: {n} is more than 5"),
                );
            }
            retry.attempts = n.min(5);
        }
        for (field, value, slot) in [
            ("backoff", &policy.backoff, &mut retry.backoff_ms),
            ("maxBackoff", &policy.max_backoff, &mut retry.max_backoff_ms),
        ] {
            if let Some(v) = value {
                match duration_ms(v) {
                    Ok(ms) => *slot = ms,
                    Err(e) => issues.add(INVALID_RETRIES, format!("spec.retries.{field}: {e}")),
                }
            }
        }
    }
    let deadline = spec.timeout.as_ref().and_then(|t| match duration_ms(t) {
        Ok(0) => {
            issues.add(
                INVALID_RETRIES,
                format!("spec.timeout: {t:?} must be at least 1ms"),
            );
            None
        }
        Ok(ms) => Some(ms),
        Err(e) => {
            issues.add(INVALID_RETRIES, format!("spec.timeout: {e}"));
            None
        }
    });
    (retry, deadline)
}

#[cfg(test)]
#[path = "model_routes_tests.rs"]
mod tests;
