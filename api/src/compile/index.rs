//! The indexes between objects that make a change cost what it touches (linkerd2's
//! policy-controller index, kube-rs' reflector store): who reads a Secret, which routes target a
//! Provider or fall back to a model, which routes claim a public model name, which ApiKeys hold a
//! key, and per namespace the ready ApiKeys by label and team (so a Budget's selector costs its
//! matches, not the namespace) and the Budgets a key could fall into.

use std::collections::BTreeSet;

use foldhash::HashMap;

use super::{budget_scope::ReadyKey, key::Key};
use crate::{
    resources::{ApiKey, BudgetScope, Credentials, ModelRoute, Provider},
    snapshot::RouteConfig,
};

/// A ModelRoute that compiled on its own, before duplicate public names are settled.
pub(super) struct RouteDraft {
    pub config: RouteConfig,
    /// Which targets did not resolve, when some did not.
    pub warning: Option<String>,
}

/// What a Budget is filed under, so that a changed key finds the Budgets it may fall into: its
/// listed names, else its first label, else its team, else the whole namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Anchor {
    Names(Vec<String>),
    Label(String, String),
    Team(String),
    All,
}

impl Anchor {
    fn of(scope: &BudgetScope) -> Anchor {
        if !scope.api_keys.is_empty() {
            Anchor::Names(scope.api_keys.clone())
        } else if let Some((k, v)) = scope.match_labels.iter().next() {
            Anchor::Label(k.clone(), v.clone())
        } else if let Some(t) = scope.team.as_deref().filter(|t| !t.is_empty()) {
            Anchor::Team(t.to_string())
        } else {
            Anchor::All
        }
    }
}

/// Objects, in no particular order.
type Keys = foldhash::HashSet<Key>;

/// Ready keys of a namespace by slot ([`Namespace::slots`]), in no particular order: a number is
/// cheaper to hash, compare, copy and drop than a shared name.
type Slots = foldhash::HashSet<u32>;

/// One namespace's ready ApiKeys and Budget anchors.
#[derive(Default)]
pub(super) struct Namespace {
    /// The slot of each ready key in `ready`.
    slots: HashMap<Key, u32>,
    /// Ready keys by slot; `None` is a free slot, listed in `free`.
    ready: Vec<Option<(Key, ReadyKey)>>,
    free: Vec<u32>,
    /// Label name → value → ready keys holding it.
    by_label: HashMap<String, HashMap<String, Slots>>,
    /// Team → ready keys of the team.
    by_team: HashMap<String, Slots>,
    /// Budgets by anchor: key name, label, team, or the whole namespace.
    budgets_by_name: HashMap<String, Keys>,
    budgets_by_label: HashMap<String, HashMap<String, Keys>>,
    budgets_by_team: HashMap<String, Keys>,
    budgets_all: Keys,
    anchors: HashMap<Key, Anchor>,
}

/// A set filed under a name, as the index keeps them.
trait Set<T>: Default {
    fn put(&mut self, item: T);
    fn take(&mut self, item: &T);
    fn one(item: T) -> Self {
        let mut set = Self::default();
        set.put(item);
        set
    }
    fn is_empty(&self) -> bool;
}

impl<T: std::hash::Hash + Eq> Set<T> for foldhash::HashSet<T> {
    fn put(&mut self, item: T) {
        self.insert(item);
    }
    fn take(&mut self, item: &T) {
        self.remove(item);
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Files `item` under `at`, allocating `at` only the first time.
fn add<T: Clone, S: Set<T>>(map: &mut HashMap<String, S>, at: &str, item: &T) {
    match map.get_mut(at) {
        Some(set) => set.put(item.clone()),
        None => {
            map.insert(at.to_string(), S::one(item.clone()));
        }
    }
}

/// [`add`] under a label name and value.
fn add_label<T: Clone, S: Set<T>>(
    map: &mut HashMap<String, HashMap<String, S>>,
    label: &str,
    value: &str,
    item: &T,
) {
    match map.get_mut(label) {
        Some(values) => add(values, value, item),
        None => {
            let values = HashMap::from_iter([(value.to_string(), S::one(item.clone()))]);
            map.insert(label.to_string(), values);
        }
    }
}

fn take<T, S: Set<T>>(map: &mut HashMap<String, S>, at: &str, item: &T) {
    if let Some(set) = map.get_mut(at) {
        set.take(item);
        if set.is_empty() {
            map.remove(at);
        }
    }
}

fn take_label<T, S: Set<T>>(
    map: &mut HashMap<String, HashMap<String, S>>,
    label: &str,
    value: &str,
    item: &T,
) {
    if let Some(values) = map.get_mut(label) {
        take(values, value, item);
        if values.is_empty() {
            map.remove(label);
        }
    }
}

impl Namespace {
    fn insert_key(&mut self, key: &Key, ready: ReadyKey) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.ready.push(None);
                u32::try_from(self.ready.len() - 1).expect("fewer than 2^32 keys")
            }
        };
        for (k, v) in ready.labels() {
            add_label(&mut self.by_label, k, v, &slot);
        }
        if let Some(team) = &ready.team {
            add(&mut self.by_team, team, &slot);
        }
        self.ready[slot as usize] = Some((key.clone(), ready));
        self.slots.insert(key.clone(), slot);
    }

    fn remove_key(&mut self, key: &Key) -> Option<ReadyKey> {
        let slot = self.slots.remove(key)?;
        let (_, ready) = self.ready[slot as usize].take().expect("a filed slot");
        self.free.push(slot);
        for (k, v) in ready.labels() {
            take_label(&mut self.by_label, k, v, &slot);
        }
        if let Some(team) = &ready.team {
            take(&mut self.by_team, team, &slot);
        }
        Some(ready)
    }

    /// The ready key `key`.
    fn get(&self, key: &Key) -> Option<&ReadyKey> {
        let slot = *self.slots.get(key)?;
        self.ready[slot as usize].as_ref().map(|(_, ready)| ready)
    }

    /// The ready key in `slot`.
    fn at(&self, slot: u32) -> Option<(&Key, &ReadyKey)> {
        self.ready[slot as usize].as_ref().map(|(k, r)| (k, r))
    }

    /// Makes room for `more` ready keys.
    fn reserve(&mut self, more: usize) {
        self.slots.reserve(more);
        self.ready.reserve(more);
    }

    /// The ready keys that may be in `scope`, each once: the smallest of the sets its conditions
    /// select (listed names, each label, the team), or every ready key for an empty scope. With
    /// `true` they are exactly the keys in scope (the scope has that one condition); else the
    /// caller still checks each with [`in_scope`].
    pub fn candidates(
        &self,
        namespace: &str,
        scope: &BudgetScope,
    ) -> (Vec<(&Key, &ReadyKey)>, bool) {
        let team = scope.team.as_deref().filter(|t| !t.is_empty());
        let conditions = usize::from(!scope.api_keys.is_empty())
            + scope.match_labels.len()
            + usize::from(team.is_some());
        let exact = conditions <= 1;
        if !scope.api_keys.is_empty() {
            // A name listed twice is one key.
            let mut slots: Vec<u32> = scope
                .api_keys
                .iter()
                .filter_map(|name| self.slots.get(Key::new(namespace, name).id()).copied())
                .collect();
            slots.sort_unstable();
            slots.dedup();
            let keys = slots.into_iter().filter_map(|slot| self.at(slot)).collect();
            return (keys, exact);
        }
        // `None`: a condition no key meets.
        let mut sets: Vec<Option<&Slots>> = scope
            .match_labels
            .iter()
            .map(|(k, v)| self.by_label.get(k).and_then(|values| values.get(v)))
            .collect();
        if let Some(team) = team {
            sets.push(self.by_team.get(team));
        }
        let keys = match sets.into_iter().min_by_key(|s| s.map_or(0, Slots::len)) {
            Some(None) => Vec::new(),
            Some(Some(smallest)) => smallest.iter().filter_map(|s| self.at(*s)).collect(),
            None => self.ready.iter().flatten().map(|(k, r)| (k, r)).collect(),
        };
        (keys, exact)
    }

    fn anchor_budget(&mut self, budget: &Key, scope: &BudgetScope) {
        self.unanchor_budget(budget);
        let anchor = Anchor::of(scope);
        match &anchor {
            Anchor::Names(names) => {
                for n in names {
                    add(&mut self.budgets_by_name, n, budget);
                }
            }
            Anchor::Label(k, v) => add_label(&mut self.budgets_by_label, k, v, budget),
            Anchor::Team(t) => add(&mut self.budgets_by_team, t, budget),
            Anchor::All => {
                self.budgets_all.insert(budget.clone());
            }
        }
        self.anchors.insert(budget.clone(), anchor);
    }

    fn unanchor_budget(&mut self, budget: &Key) {
        let Some(anchor) = self.anchors.remove(budget) else {
            return;
        };
        match anchor {
            Anchor::Names(names) => {
                for n in names {
                    take(&mut self.budgets_by_name, &n, budget);
                }
            }
            Anchor::Label(k, v) => take_label(&mut self.budgets_by_label, &k, &v, budget),
            Anchor::Team(t) => take(&mut self.budgets_by_team, &t, budget),
            Anchor::All => {
                self.budgets_all.remove(budget);
            }
        }
    }

    /// The Budgets the key `key` may fall into (or out of) when it is `ready`: those listing
    /// it, those anchored on one of its labels or its team, and those over the whole namespace.
    fn budgets_for(&self, key: &Key, ready: Option<&ReadyKey>, out: &mut Keys) {
        out.extend(
            self.budgets_by_name
                .get(key.name())
                .into_iter()
                .flatten()
                .cloned(),
        );
        out.extend(self.budgets_all.iter().cloned());
        let Some(ready) = ready else { return };
        for (k, v) in ready.labels() {
            if let Some(set) = self
                .budgets_by_label
                .get(k)
                .and_then(|values| values.get(v))
            {
                out.extend(set.iter().cloned());
            }
        }
        if let Some(set) = ready
            .team
            .as_ref()
            .and_then(|t| self.budgets_by_team.get(t))
        {
            out.extend(set.iter().cloned());
        }
    }
}

/// A small sorted set, as a vector: most of these hold one member (one ApiKey per key hash, one
/// route per model name, one reader per Secret), and a tree node per member is memory for nothing.
#[derive(Clone, Debug)]
pub(super) struct Few<T>(Vec<T>);

impl<T: Ord> Default for Few<T> {
    fn default() -> Self {
        Few(Vec::new())
    }
}

impl<T: Ord> Few<T> {
    pub fn one(item: T) -> Self {
        Few(vec![item])
    }

    pub fn insert(&mut self, item: T) {
        if let Err(at) = self.0.binary_search(&item) {
            if self.0.capacity() == 0 {
                // Room for one member, not the four a vector starts with: most stay at one.
                self.0.reserve_exact(1);
            }
            self.0.insert(at, item);
        }
    }

    pub fn remove(&mut self, item: &T) {
        if let Ok(at) = self.0.binary_search(item) {
            self.0.remove(at);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Every index, kept up to date by the compiler.
#[derive(Default)]
pub(super) struct Index {
    /// Secret → the Providers and ApiKeys (kind, object) of its namespace that read it.
    secret_users: HashMap<Key, Few<(&'static str, Key)>>,
    /// Provider → ModelRoutes of its namespace targeting it.
    provider_users: HashMap<Key, Keys>,
    /// Public model name → ModelRoutes naming it in `fallbackModels`.
    fallback_users: HashMap<String, Keys>,
    /// Public model name → ModelRoutes that compiled on their own claiming it.
    pub claims: HashMap<String, Few<Key>>,
    /// ModelRoutes that compiled on their own.
    pub route_drafts: HashMap<Key, RouteDraft>,
    /// Key hash → ApiKeys that compiled on their own holding it.
    pub holders: HashMap<String, Few<Key>>,
    /// ApiKey → the hash it holds, when it compiled on its own.
    pub key_hashes: HashMap<Key, String>,
    /// Caller ([`SubjectConfig::identity`](crate::identity::SubjectConfig::identity)) → ApiKeys
    /// that compiled on their own granting it.
    pub subject_holders: HashMap<String, Few<Key>>,
    /// ApiKey → the callers its subjects grant, when it compiled on its own with subjects.
    pub key_subjects: HashMap<Key, Vec<String>>,
    /// Per namespace: ready keys and Budget anchors.
    namespaces: HashMap<String, Namespace>,
}

fn provider_secret(p: &Provider) -> Option<&str> {
    match &p.spec.credentials {
        Some(Credentials {
            secret_ref: Some(r),
            ..
        }) => Some(&r.name),
        _ => None,
    }
}

/// The Secret an ApiKey reads: its `secretRef`, or the generated one.
pub(super) fn api_key_secret(key: &ApiKey, name: &str) -> String {
    match &key.spec.secret_ref {
        Some(r) => r.name.clone(),
        None => super::generated_key_secret_name(name),
    }
}

fn move_user(
    map: &mut HashMap<Key, Few<(&'static str, Key)>>,
    user: (&'static str, &Key),
    old: Option<String>,
    new: Option<String>,
) {
    if old == new {
        return;
    }
    let ns = user.1.namespace();
    let user = (user.0, user.1.clone());
    if let Some(old) = old {
        let at = Key::new(ns, &old);
        if let Some(set) = map.get_mut(&at) {
            set.remove(&user);
            if set.is_empty() {
                map.remove(&at);
            }
        }
    }
    if let Some(new) = new {
        map.entry(Key::new(ns, &new)).or_default().insert(user);
    }
}

fn take_key(map: &mut HashMap<Key, Keys>, at: &Key, key: &Key) {
    if let Some(set) = map.get_mut(at) {
        set.remove(key);
        if set.is_empty() {
            map.remove(at);
        }
    }
}

impl Index {
    /// Files a Provider's change (`None`: absent).
    pub fn provider_changed(&mut self, key: &Key, old: Option<&Provider>, new: Option<&Provider>) {
        let secret = |p: Option<&Provider>| p.and_then(provider_secret).map(str::to_string);
        move_user(
            &mut self.secret_users,
            ("Provider", key),
            secret(old),
            secret(new),
        );
    }

    /// Files an ApiKey's change (`None`: absent).
    pub fn api_key_changed(&mut self, key: &Key, old: Option<&ApiKey>, new: Option<&ApiKey>) {
        let secret = |k: Option<&ApiKey>| k.map(|k| api_key_secret(k, key.name()));
        move_user(
            &mut self.secret_users,
            ("ApiKey", key),
            secret(old),
            secret(new),
        );
    }

    /// Files a ModelRoute's change (`None`: absent).
    pub fn route_changed(&mut self, key: &Key, old: Option<&ModelRoute>, new: Option<&ModelRoute>) {
        let targets = |r: Option<&ModelRoute>| -> BTreeSet<Key> {
            r.into_iter()
                .flat_map(|r| r.spec.targets.iter())
                .map(|t| Key::new(key.namespace(), &t.provider))
                .collect()
        };
        let fallbacks = |r: Option<&ModelRoute>| -> BTreeSet<String> {
            r.into_iter()
                .flat_map(|r| r.spec.fallback_models.iter().cloned())
                .collect()
        };
        for provider in targets(old) {
            take_key(&mut self.provider_users, &provider, key);
        }
        for provider in targets(new) {
            self.provider_users
                .entry(provider)
                .or_default()
                .insert(key.clone());
        }
        for model in fallbacks(old) {
            take(&mut self.fallback_users, &model, key);
        }
        for model in fallbacks(new) {
            add(&mut self.fallback_users, &model, key);
        }
    }

    /// The Providers and ApiKeys (kind, object) reading the Secret `secret`.
    pub fn secret_users(&self, secret: &Key) -> Vec<(&'static str, Key)> {
        self.secret_users
            .get(secret)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The ModelRoutes targeting the Provider `provider`.
    pub fn provider_users(&self, provider: &Key) -> impl Iterator<Item = &Key> {
        self.provider_users.get(provider).into_iter().flatten()
    }

    /// The ModelRoutes naming `model` as a fallback.
    pub fn fallback_users(&self, model: &str) -> impl Iterator<Item = &Key> {
        self.fallback_users.get(model).into_iter().flatten()
    }

    /// Files a route draft claiming its model.
    pub fn claim(&mut self, key: Key, draft: RouteDraft) {
        self.claims
            .entry(draft.config.model.clone())
            .or_default()
            .insert(key.clone());
        self.route_drafts.insert(key, draft);
    }

    /// Takes a route's draft out, returning the model it claimed.
    pub fn unclaim(&mut self, key: &Key) -> Option<String> {
        let draft = self.route_drafts.remove(key)?;
        let model = draft.config.model;
        if let Some(set) = self.claims.get_mut(&model) {
            set.remove(key);
            if set.is_empty() {
                self.claims.remove(&model);
            }
        }
        Some(model)
    }

    /// Files an ApiKey that compiled on its own as a holder of `hash`.
    pub fn hold(&mut self, key: Key, hash: String) {
        self.holders
            .entry(hash.clone())
            .or_default()
            .insert(key.clone());
        self.key_hashes.insert(key, hash);
    }

    /// Takes an ApiKey out of the holders of its hash, returning the hash.
    pub fn release(&mut self, key: &Key) -> Option<String> {
        let hash = self.key_hashes.remove(key)?;
        if let Some(set) = self.holders.get_mut(&hash) {
            set.remove(key);
            if set.is_empty() {
                self.holders.remove(&hash);
            }
        }
        Some(hash)
    }

    /// Files an ApiKey that compiled on its own as granting `callers` (none: nothing is filed).
    pub fn hold_subjects(&mut self, key: &Key, callers: Vec<String>) {
        if callers.is_empty() {
            return;
        }
        for caller in &callers {
            match self.subject_holders.get_mut(caller) {
                Some(set) => set.insert(key.clone()),
                None => {
                    self.subject_holders
                        .insert(caller.clone(), Few::one(key.clone()));
                }
            }
        }
        self.key_subjects.insert(key.clone(), callers);
    }

    /// Takes an ApiKey out of the holders of its callers, returning them.
    pub fn release_subjects(&mut self, key: &Key) -> Vec<String> {
        let callers = self.key_subjects.remove(key).unwrap_or_default();
        for caller in &callers {
            if let Some(set) = self.subject_holders.get_mut(caller) {
                set.remove(key);
                if set.is_empty() {
                    self.subject_holders.remove(caller);
                }
            }
        }
        callers
    }

    /// ApiKeys that compiled on their own with subjects.
    pub fn keys_with_subjects(&self) -> impl Iterator<Item = &Key> {
        self.key_subjects.keys()
    }

    /// The namespace's index, if anything is filed in it.
    pub fn namespace(&self, namespace: &str) -> Option<&Namespace> {
        self.namespaces.get(namespace)
    }

    fn namespace_mut(&mut self, namespace: &str) -> &mut Namespace {
        if !self.namespaces.contains_key(namespace) {
            self.namespaces
                .insert(namespace.to_string(), Namespace::default());
        }
        self.namespaces.get_mut(namespace).expect("inserted above")
    }

    /// Makes room for `keys` more ApiKeys compiling (the first recompile), so that no map grows
    /// and rehashes its way up to them.
    pub fn reserve_keys<'a>(&mut self, keys: impl Iterator<Item = &'a Key>) {
        let mut per_namespace: HashMap<&str, usize> = HashMap::default();
        let mut all = 0;
        for key in keys {
            *per_namespace.entry(key.namespace()).or_default() += 1;
            all += 1;
        }
        self.key_hashes.reserve(all);
        self.holders.reserve(all);
        for (ns, n) in per_namespace {
            self.namespace_mut(ns).reserve(n);
        }
    }

    /// The ready key `key`, if it is ready.
    pub fn ready_key(&self, key: &Key) -> Option<&ReadyKey> {
        self.namespaces.get(key.namespace())?.get(key)
    }

    /// Files `key` as ready.
    pub fn make_ready(&mut self, key: &Key, ready: ReadyKey) {
        let ns = self.namespace_mut(key.namespace());
        ns.remove_key(key);
        ns.insert_key(key, ready);
    }

    /// Takes `key` out of the ready keys, returning what it was.
    pub fn unready(&mut self, key: &Key) -> Option<ReadyKey> {
        self.namespaces.get_mut(key.namespace())?.remove_key(key)
    }

    /// Files a Budget that compiled under its scope's anchor (`None`: not compiled or deleted).
    pub fn anchor_budget(&mut self, key: &Key, scope: Option<&BudgetScope>) {
        let ns = self.namespace_mut(key.namespace());
        match scope {
            Some(scope) => ns.anchor_budget(key, scope),
            None => ns.unanchor_budget(key),
        }
    }

    /// Budgets (of the key's namespace) the key `key` may have fallen into or out of, having
    /// been `old` and being `new`.
    pub fn budgets_for(&self, key: &Key, old: Option<&ReadyKey>, new: Option<&ReadyKey>) -> Keys {
        let mut out = Keys::default();
        if let Some(ns) = self.namespaces.get(key.namespace()) {
            ns.budgets_for(key, old, &mut out);
            ns.budgets_for(key, new, &mut out);
        }
        out
    }
}
