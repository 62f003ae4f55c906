//! Budgets: limits checked, scopes resolved against the ApiKeys that compiled.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::{
    Compiler, Issues, Rejection,
    api_keys::Moved,
    check_fit,
    compiler::object_ref,
    globs,
    index::in_scope,
    join,
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
        for key in &dirty {
            self.settle_budget(key);
        }
        let mut refresh = KeySet::default();
        for (key, was) in moved {
            let now = self.index.ready_key(&key).cloned();
            for budget in self.index.budgets_for(&key, was.as_ref(), now.as_ref()) {
                if dirty.contains(&budget) {
                    continue;
                }
                let Some(b) = self.budgets.get(&budget).cloned() else {
                    continue;
                };
                let inside = now
                    .as_ref()
                    .is_some_and(|k| in_scope(&b.spec.scope, key.name(), k));
                let Some(entry) = self.config.budgets.get(budget.id()) else {
                    continue;
                };
                if entry.api_keys.contains(key.id()) != inside
                    && let Some(entry) = self.budget_entry_mut(budget.id())
                {
                    if inside {
                        entry.api_keys.insert(key.id_arc());
                    } else {
                        entry.api_keys.remove(key.id());
                    }
                }
                refresh.insert(budget);
            }
        }
        for key in refresh {
            let b = self.budgets[&key].clone();
            let covered = self
                .config
                .budgets
                .get(key.id())
                .map_or(0, |e| e.api_keys.len());
            let (reason, message) = self.budget_verdict(key.namespace(), &b, covered);
            let r = object_ref("Budget", &key);
            self.ready(r, b.metadata.generation, reason, message);
        }
    }

    /// Recompiles one Budget from scratch: checks, scope resolved through the index, verdict.
    fn settle_budget(&mut self, key: &Key) {
        let r = object_ref("Budget", key);
        let id = key.id();
        let Some(b) = self.budgets.get(key).cloned() else {
            self.index.anchor_budget(key, None);
            self.put::<BudgetConfig>(id, None);
            self.forget(r);
            return;
        };
        let generation = b.metadata.generation;
        match self.compile_budget(&r, &b) {
            Ok(config) => {
                let (reason, message) =
                    self.budget_verdict(key.namespace(), &b, config.api_keys.len());
                self.index.anchor_budget(key, Some(&b.spec.scope));
                self.put(id, Some(config));
                self.ready(r, generation, reason, message);
            }
            Err(rejection) => {
                self.index.anchor_budget(key, None);
                self.put::<BudgetConfig>(id, None);
                self.reject(r, generation, rejection);
            }
        }
    }

    fn compile_budget(&self, r: &ObjectRef, b: &Budget) -> Result<BudgetConfig, Rejection> {
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

        let ns = r.namespace.as_str();
        let mut keys = Vec::new();
        if let Some(index) = self.index.namespace(ns) {
            for (key, ready) in index.candidates(ns, scope) {
                if in_scope(scope, key.name(), ready) {
                    keys.push(key.id_arc());
                }
            }
        }
        // Sorted first: the set is then built in one pass.
        keys.sort_unstable();
        let keys = BTreeSet::from_iter(keys);
        Ok(BudgetConfig {
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
