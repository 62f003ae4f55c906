//! Budgets: limits checked, scopes resolved against the ApiKeys that compiled.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::{
    Compiler, Issues, Rejection,
    api_keys::Moved,
    budget_scope::BudgetMembers,
    check_fit,
    compiler::object_ref,
    globs, join,
    key::{Key, KeySet},
    plural,
    reason::*,
};
use crate::{manifest::ObjectRef, resources::Budget, snapshot::BudgetConfig};

impl Compiler {
    /// Recompiles the marked Budgets, then moves each key of `moved` into or out of the Budgets
    /// it may have fallen into or out of (found through the index, not by testing every
    /// Budget), and rewrites their verdicts.
    pub(super) fn settle_budgets(&mut self, dirty: KeySet, moved: Moved) {
        // Budgets whose keys were just resolved from the index: moved keys are in them already.
        let mut resolved = KeySet::default();
        for key in &dirty {
            if self.settle_budget(key) {
                resolved.insert(key.clone());
            }
        }
        let mut refresh: KeySet = dirty.difference(&resolved).cloned().collect();
        self.move_keys(moved, &resolved, &mut refresh);
        for key in refresh {
            let Some(b) = self.budgets.get(&key).cloned() else {
                continue;
            };
            let Some(entry) = self.config.budgets.get(key.id()) else {
                continue;
            };
            let covered = entry.api_keys.len();
            let (reason, message) = self.budget_verdict(key.namespace(), &b, covered);
            let r = object_ref("Budget", &key);
            self.ready(r, b.metadata.generation, reason, message);
        }
    }

    /// Recompiles one Budget: checks, then its keys, resolved through the index when its scope
    /// is new or changed (`true`, with the verdict set) or kept when only its limits changed
    /// (`false`: the caller settles the keys that moved since and sets the verdict).
    fn settle_budget(&mut self, key: &Key) -> bool {
        let r = object_ref("Budget", key);
        let id = key.id();
        let Some(b) = self.budgets.get(key).cloned() else {
            self.index.anchor_budget(key, None);
            self.put::<BudgetConfig>(id, None);
            self.budget_members.remove(key);
            self.forget(r);
            return true;
        };
        let generation = b.metadata.generation;
        let scope = &b.spec.scope;
        match self.check_budget(&r, &b) {
            Ok(mut config) => {
                let kept = self
                    .budget_members
                    .get(key)
                    .is_some_and(|m| m.scope == *scope);
                if kept && let Some(entry) = self.budget_entry_mut(id) {
                    config.api_keys = std::mem::take(&mut entry.api_keys);
                    *entry = config;
                    return false;
                }
                let (keys, sum) = self.resolve_scope(key.namespace(), scope);
                config.api_keys = keys;
                let (reason, message) =
                    self.budget_verdict(key.namespace(), &b, config.api_keys.len());
                self.index.anchor_budget(key, Some(scope));
                // The entry it replaces is digested with the sum kept for it, so set it after.
                self.put(id, Some(config));
                let scope = scope.clone();
                self.budget_members
                    .insert(key.clone(), BudgetMembers { scope, sum });
                self.ready(r, generation, reason, message);
            }
            Err(rejection) => {
                self.index.anchor_budget(key, None);
                self.put::<BudgetConfig>(id, None);
                self.budget_members.remove(key);
                self.reject(r, generation, rejection);
            }
        }
        true
    }

    /// A Budget checked, with no keys yet.
    fn check_budget(&self, r: &ObjectRef, b: &Budget) -> Result<BudgetConfig, Rejection> {
        let spec = &b.spec;
        let scope = &spec.scope;
        let mut issues = Issues::default();

        let limit = match spec.limit_usd.limit_value() {
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

        Ok(BudgetConfig {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            limit_usd: limit,
            window: spec.window,
            api_keys: BTreeSet::new(),
            models: scope.models.clone(),
            soft_limit_percent: spec.soft_limit_percent,
            action: spec.action,
            failure_mode: spec.failure_mode,
            fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
        })
    }

    /// The verdict of a Budget covering `covered` keys: the names it lists that are not ready
    /// make it `SomeKeysUnresolved`.
    fn budget_verdict(&self, ns: &str, b: &Budget, covered: usize) -> (&'static str, String) {
        let unresolved: Vec<String> = b
            .spec
            .scope
            .api_keys
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|name| self.index.ready_key(&Key::new(ns, name)).is_none())
            .map(|name| match self.rejected_reason("ApiKey", ns, name) {
                Some(reason) => format!("ApiKey {ns}/{name} is not ready: {reason}"),
                None => format!("ApiKey {ns}/{name} not found"),
            })
            .collect();
        let covers = if covered == 0 {
            "covers no keys yet".to_string()
        } else {
            format!("covers {}", plural(covered, "key", "keys"))
        };
        if unresolved.is_empty() {
            (COMPILED, covers)
        } else {
            (
                SOME_KEYS_UNRESOLVED,
                format!(
                    "{covers}; spec.scope.apiKeys: {}",
                    join(unresolved.iter().map(String::as_str))
                ),
            )
        }
    }
}

#[cfg(test)]
#[path = "budgets_tests.rs"]
mod tests;
