//! Budget resolution: a ready key as scopes see it ([`ReadyKey`]), the ready keys a Budget's
//! scope covers, found through the index ([`super::index`]), the digest sum of its members kept
//! beside it, and keys moving into and out of Budgets one by one as they change, each Budget's
//! entry re-digested from the kept sum rather than from its key list.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use foldhash::HashMap;

use super::{
    Compiler,
    api_keys::Moved,
    compiler::Entry,
    key::{Key, KeySet},
    order,
};
use crate::{
    resources::{ApiKey, BudgetScope},
    snapshot::{
        BudgetConfig, EntryDigest, RouterConfig, Section,
        digest::{Digested, MemberSum, budget_digest, member_digest},
    },
};

/// An ApiKey in the snapshot, as Budget scopes see it.
#[derive(Clone, Debug)]
pub(super) struct ReadyKey {
    /// Where its labels are read.
    pub labels: Labels,
    /// From `spec.team` or the `team` label.
    pub team: Option<String>,
    /// Its digest as a Budget member ([`member_digest`](crate::snapshot::digest::member_digest)).
    pub member: EntryDigest,
}

/// A ready key's labels: read from the ApiKey the compiler holds, or taken out of it when a
/// one-shot compile drops the object as soon as it is compiled (nothing else of it is read).
#[derive(Clone, Debug)]
pub(super) enum Labels {
    /// The ApiKey as held.
    Held(Arc<ApiKey>),
    /// The labels alone.
    Taken(Option<BTreeMap<String, String>>),
}

impl ReadyKey {
    fn label_map(&self) -> Option<&BTreeMap<String, String>> {
        match &self.labels {
            Labels::Held(key) => key.metadata.labels.as_ref(),
            Labels::Taken(labels) => labels.as_ref(),
        }
    }

    pub fn labels(&self) -> impl Iterator<Item = (&String, &String)> {
        self.label_map().into_iter().flatten()
    }

    pub fn label(&self, name: &str) -> Option<&String> {
        self.label_map()?.get(name)
    }
}

impl PartialEq for ReadyKey {
    fn eq(&self, other: &Self) -> bool {
        self.team == other.team && self.label_map() == other.label_map()
    }
}

/// Whether the ready key `id` is in a Budget `scope` (conditions combine with AND).
pub(super) fn in_scope(scope: &BudgetScope, id: &Key, key: &ReadyKey) -> bool {
    let team = scope.team.as_deref().filter(|t| !t.is_empty());
    (scope.api_keys.is_empty() || scope.api_keys.iter().any(|n| n == id.name()))
        && scope
            .match_labels
            .iter()
            .all(|(k, v)| key.label(k) == Some(v))
        && team.is_none_or(|t| key.team.as_deref() == Some(t))
}

/// What a Budget in the snapshot was resolved for: a Budget whose scope did not change keeps its
/// keys (and their digest sum) instead of resolving and re-hashing them.
pub(super) struct BudgetMembers {
    pub scope: BudgetScope,
    pub sum: MemberSum,
}

impl Compiler {
    /// The ready keys of namespace `ns` in `scope`, found through the index, and the sum of
    /// their member digests.
    pub(super) fn resolve_scope(
        &self,
        ns: &str,
        scope: &BudgetScope,
    ) -> (BTreeSet<Arc<str>>, MemberSum) {
        let mut keys = Vec::new();
        let mut sum = MemberSum::default();
        if let Some(index) = self.index.namespace(ns) {
            let (candidates, exact) = index.candidates(ns, scope);
            for (key, ready) in candidates {
                if exact || in_scope(scope, key, ready) {
                    keys.push(key.id_arc());
                    sum.add(&ready.member);
                }
            }
        }
        // Sorted first: the set is then built in one pass.
        (BTreeSet::from_iter(order::sort_shared(keys)), sum)
    }

    /// Moves each key of `moved` into or out of the Budgets it may have fallen into or out of
    /// (found through the index, not by testing every Budget), but those in `resolved` (resolved
    /// from the index just now), adding each Budget it looked at to `refresh`.
    pub(super) fn move_keys(&mut self, moved: Moved, resolved: &KeySet, refresh: &mut KeySet) {
        for (key, was) in moved {
            let now = self.index.ready_key(&key).cloned();
            for budget in self.index.budgets_for(&key, was.as_ref(), now.as_ref()) {
                if resolved.contains(&budget) {
                    continue;
                }
                let Some(b) = self.budgets.get(&budget).cloned() else {
                    continue;
                };
                let inside = now
                    .as_ref()
                    .is_some_and(|k| in_scope(&b.spec.scope, &key, k));
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
                    if let Some(members) = self.budget_members.get_mut(&budget) {
                        let member = member_digest(key.id());
                        if inside {
                            members.sum.add(&member);
                        } else {
                            members.sum.remove(&member);
                        }
                    }
                }
                refresh.insert(budget);
            }
        }
    }

    /// The Budget entry `id`, to change in place (its digest before is kept first).
    pub(super) fn budget_entry_mut(&mut self, id: &str) -> Option<&mut BudgetConfig> {
        let fresh = self.fresh();
        let entry = self.config.budgets.get_mut(id)?;
        if fresh {
            return Some(entry);
        }
        let before = self.before.entry(Section::Budgets).or_default();
        if !before.contains_key(id) {
            before.insert(
                id.to_string(),
                Some(entry.kept_digest(id, &self.budget_members)),
            );
        }
        Some(entry)
    }
}

impl Entry for BudgetConfig {
    const SECTION: Section = Section::Budgets;
    fn map(config: &mut RouterConfig) -> &mut BTreeMap<String, Self> {
        &mut config.budgets
    }
    fn kept_digest(&self, key: &str, members: &HashMap<Key, BudgetMembers>) -> EntryDigest {
        match members.get(key) {
            Some(m) => budget_digest(key, self, &m.sum),
            None => self.digest(Self::SECTION, key),
        }
    }
}
