//! Budgets: limits checked, scopes resolved against the ApiKeys that compiled.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::{Compiler, Issues, Rejection, check_fit, globs, join, plural, reason::*};
use crate::{manifest::ObjectRef, resources::Budget, snapshot::BudgetConfig};

impl Compiler<'_> {
    pub(super) fn budget(&mut self, r: ObjectRef, b: &Budget) {
        let generation = b.metadata.generation;
        match self.compile_budget(&r, b) {
            Ok((config, reason, message)) => {
                self.config
                    .budgets
                    .insert(format!("{}/{}", r.namespace, r.name), config);
                self.ready(r, generation, reason, message);
            }
            Err(rejection) => self.reject(r, generation, rejection),
        }
    }

    fn compile_budget(
        &self,
        r: &ObjectRef,
        b: &Budget,
    ) -> Result<(BudgetConfig, &'static str, String), Rejection> {
        let spec = &b.spec;
        let scope = &spec.scope;
        let mut issues = Issues::default();

        let limit = match spec.limit_usd.value() {
            Ok(limit) => limit,
            Err(e) => {
                issues.add(INVALID_LIMIT, format!("spec.limitUSD: {e}"));
                Decimal::ZERO
            }
        };
        if let Some(p) = spec.soft_limit_percent
            && !(1..=100).contains(&p)
        {
            issues.add(
                INVALID_SOFT_LIMIT,
                format!("spec.softLimitPercent: {p} is not between 1 and 100"),
            );
        }
        globs("spec.scope.models", &scope.models, &mut issues);
        check_fit(spec.fit_max_tokens.as_ref(), &mut issues);
        issues.finish()?;

        let ns = r.namespace.as_str();
        let team = scope.team.as_deref().filter(|t| !t.is_empty());
        let mut keys = BTreeSet::new();
        let in_namespace = self.ready_keys.range((ns.to_string(), String::new())..);
        for ((key_ns, key_name), (key, key_team)) in in_namespace {
            if key_ns != ns {
                break;
            }
            let labels = key.metadata.labels.as_ref();
            let named = scope.api_keys.is_empty() || scope.api_keys.contains(key_name);
            let labelled = scope
                .match_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            let teamed = team.is_none_or(|t| key_team.as_deref() == Some(t));
            if named && labelled && teamed {
                keys.insert(format!("{key_ns}/{key_name}"));
            }
        }

        let unresolved: Vec<String> = scope
            .api_keys
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|name| {
                !self
                    .ready_keys
                    .contains_key(&(ns.to_string(), (*name).clone()))
            })
            .map(|name| match self.rejected_reason("ApiKey", ns, name) {
                Some(reason) => format!("ApiKey {ns}/{name} is not ready: {reason}"),
                None => format!("ApiKey {ns}/{name} not found"),
            })
            .collect();

        let covers = if keys.is_empty() {
            "covers no keys yet".to_string()
        } else {
            format!("covers {}", plural(keys.len(), "key", "keys"))
        };
        let (reason, message) = if unresolved.is_empty() {
            (COMPILED, covers)
        } else {
            (
                SOME_KEYS_UNRESOLVED,
                format!(
                    "{covers}; spec.scope.apiKeys: {}",
                    join(unresolved.iter().map(String::as_str))
                ),
            )
        };

        Ok((
            BudgetConfig {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                limit_usd: limit,
                window: spec.window,
                api_keys: keys,
                models: scope.models.clone(),
                soft_limit_percent: spec.soft_limit_percent,
                action: spec.action,
                failure_mode: spec.failure_mode,
                fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
            },
            reason,
            message,
        ))
    }
}

#[cfg(test)]
#[path = "budgets_tests.rs"]
mod tests;
