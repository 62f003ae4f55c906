//! ModelRoutes: each on its own, then one route per public model name, oldest first.

use std::collections::BTreeMap;

use super::{Compiler, Issues, Rejection, duration_ms, join, plural, quoted_list, reason::*};
use crate::{
    manifest::ObjectRef,
    resources::ModelRoute,
    snapshot::{RetryConfig, RouteConfig, TargetConfig},
};

impl<'a> Compiler<'a> {
    pub(super) fn routes(&mut self, routes: Vec<(ObjectRef, &'a ModelRoute)>) {
        // Each route on its own: the config and any warning about targets that did not resolve.
        let mut drafts = Vec::new();
        for (r, route) in routes {
            match self.compile_route(&r, route) {
                Ok((config, warning)) => drafts.push(RouteDraft {
                    r,
                    route,
                    config,
                    warning,
                }),
                Err(rejection) => self.reject(r, route.metadata.generation, rejection),
            }
        }

        // One route per public model name: oldest first, then namespace/name. `None` timestamps
        // (manifests that never saw an API server) count as newest.
        drafts.sort_by_cached_key(|d| {
            let created = d.route.metadata.creation_timestamp.clone();
            (created.is_none(), created, d.r.clone())
        });
        let mut winners = Vec::new();
        let mut served_by: BTreeMap<String, String> = BTreeMap::new();
        for d in drafts {
            if let Some(winner) = served_by.get(&d.config.model) {
                let message = format!(
                    "spec.model: {:?} is already served by ModelRoute {winner}; the oldest \
                     ModelRoute claiming a name wins (then the first by namespace/name)",
                    d.config.model
                );
                let generation = d.route.metadata.generation;
                self.reject(d.r, generation, Rejection::new(DUPLICATE_MODEL, message));
                continue;
            }
            let id = format!("{}/{}", d.r.namespace, d.r.name);
            served_by.insert(d.config.model.clone(), id);
            winners.push(d);
        }

        for d in winners {
            let mut notes: Vec<String> = d.warning.iter().cloned().collect();
            if d.warning.is_none() {
                notes.push(plural(d.config.targets.len(), "target", "targets"));
            }
            for fallback in &d.config.fallback_models {
                if !served_by.contains_key(fallback) {
                    notes.push(format!("fallback model {fallback:?} is not served yet"));
                }
            }
            let reason = match d.warning {
                Some(_) => SOME_TARGETS_UNRESOLVED,
                None => COMPILED,
            };
            self.config.routes.insert(d.config.model.clone(), d.config);
            let message = join(notes.iter().map(String::as_str));
            self.ready(d.r, d.route.metadata.generation, reason, message);
        }
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

/// A ModelRoute that compiled on its own, before duplicate public names are settled.
struct RouteDraft<'a> {
    r: ObjectRef,
    route: &'a ModelRoute,
    config: RouteConfig,
    /// Which targets did not resolve, when some did not.
    warning: Option<String>,
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
