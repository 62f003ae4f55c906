//! The compiler's state between two changes: the objects, their verdicts, the snapshot content and
//! the indexes between them ([`super::index`]). [`Compiler::apply`] and [`Compiler::remove`] take
//! one watched change each and mark what it touches; [`Compiler::recompile`] settles the marked
//! objects and whatever depends on them, kind by kind in dependency order (Secrets, Providers,
//! ModelRoutes, ApiKeys, Budgets), and says which snapshot entries and verdicts changed. The
//! snapshot hash follows entry by entry ([`SnapshotDigest`]), so one change costs what it touches,
//! not the size of the cluster.

use std::{
    collections::{BTreeMap, BTreeSet, btree_map, hash_map},
    sync::Arc,
};

use foldhash::HashMap;

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};

use super::{
    Compiled, ObjectOutcome, ObjectResult, Rejection,
    budget_scope::BudgetMembers,
    index::Index,
    key::{Key, KeySet, Objects},
    order,
    secrets::SecretEntry,
};
use crate::{
    identity::IssuerConfig,
    manifest::{Object, ObjectRef},
    resources::{ApiKey, Budget, ModelRoute, Provider},
    snapshot::{
        ApiKeyConfig, EntryDigest, ProviderConfig, RouteConfig, RouterConfig, Section,
        SnapshotDigest,
        digest::{Digested, MemberSum},
    },
};

/// An object as the compiler holds it: shared, not copied.
#[derive(Clone, Debug)]
pub enum Held {
    /// A Provider.
    Provider(Arc<Provider>),
    /// A ModelRoute.
    ModelRoute(Arc<ModelRoute>),
    /// An ApiKey.
    ApiKey(Arc<ApiKey>),
    /// A Budget.
    Budget(Arc<Budget>),
}

/// What a watched change did to the compiler's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Something compile reads changed (spec, labels, generation, Secret data): the object and
    /// what depends on it are recompiled by the next [`Compiler::recompile`].
    Changed,
    /// Only what compile does not read changed (status, resourceVersion, annotations): the object
    /// is stored, nothing is recompiled. The operator's own status writes come back as these.
    Unchanged,
}

/// What one [`Compiler::recompile`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The first recompile: everything is new, and `entries` and `results` list nothing.
    pub first: bool,
    /// Snapshot entries added, changed or removed, by section: the keys of
    /// `providers`/`routes`/`apiKeys`/`budgets`.
    pub entries: BTreeMap<Section, BTreeSet<String>>,
    /// Objects whose verdict was added, changed or removed.
    pub results: BTreeSet<ObjectRef>,
}

impl Changes {
    /// Whether the snapshot content changed.
    pub fn snapshot_changed(&self) -> bool {
        self.first || self.entries.values().any(|keys| !keys.is_empty())
    }

    /// Whether nothing changed at all.
    pub fn is_empty(&self) -> bool {
        !self.snapshot_changed() && self.results.is_empty()
    }
}

/// Objects marked for recompiling, by kind.
#[derive(Default)]
pub(super) struct Dirty {
    pub secrets: KeySet,
    pub providers: KeySet,
    pub routes: KeySet,
    pub api_keys: KeySet,
    pub budgets: KeySet,
}

/// The incremental compiler. [`super::compile`] is one [`Compiler::recompile`] over every object;
/// the operator keeps one alive and feeds it watch events.
#[derive(Default)]
pub struct Compiler {
    pub(super) providers: Objects<Arc<Provider>>,
    pub(super) routes: Objects<Arc<ModelRoute>>,
    pub(super) api_keys: Objects<Arc<ApiKey>>,
    pub(super) budgets: Objects<Arc<Budget>>,
    pub(super) secrets: Objects<SecretEntry>,
    pub(super) config: RouterConfig,
    pub(super) results: HashMap<ObjectRef, ObjectResult>,
    /// ApiKey entries of the first recompile, put into the snapshot at once at its end (one
    /// sorted bulk build instead of a hundred thousand searches of a growing tree).
    fresh_api_keys: Vec<(String, ApiKeyConfig)>,
    pub(super) index: Index,
    pub(super) dirty: Dirty,
    digest: SnapshotDigest,
    /// Per Budget in the snapshot: the scope its keys were resolved for and their digest sum.
    pub(super) budget_members: HashMap<Key, BudgetMembers>,
    /// Entries changed since the last recompile, with their digest before the first change.
    pub(super) before: BTreeMap<Section, HashMap<String, Option<EntryDigest>>>,
    changed_results: Vec<ObjectRef>,
    /// Whether a recompile ran: the first one builds everything, so it neither records what
    /// changed entry by entry nor moves keys between Budgets one by one ([`Compiler::fresh`]).
    compiled: bool,
    /// Sealed after its first recompile ([`super::Batch`]): who reads which Secret, which only
    /// later changes look up, is not filed.
    pub(super) one_shot: bool,
}

/// The reference results are filed under.
pub(super) fn object_ref(kind: &'static str, key: &Key) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: key.namespace().to_string(),
        name: key.name().to_string(),
    }
}

/// Whether two versions of an object's metadata compile the same: labels (Budget scopes, team),
/// generation (reported back) and creation time (oldest route wins).
fn same_metadata(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.labels == b.labels
        && a.generation == b.generation
        && a.creation_timestamp == b.creation_timestamp
}

/// Stores `new` under `key`; `Changed` unless an equal spec and metadata were stored before.
/// Returns the replaced object and the stored one too.
fn store<T, S: PartialEq>(
    map: &mut Objects<Arc<T>>,
    key: &Key,
    new: T,
    meta: impl Fn(&T) -> &ObjectMeta,
    spec: impl Fn(&T) -> &S,
) -> (Option<Arc<T>>, Arc<T>, Applied) {
    let new = Arc::new(new);
    let old = map.insert(key.clone(), new.clone());
    let same = old
        .as_ref()
        .is_some_and(|o| same_metadata(meta(o), meta(&new)) && spec(o) == spec(&new));
    let applied = if same {
        Applied::Unchanged
    } else {
        Applied::Changed
    };
    (old, new, applied)
}

impl Compiler {
    /// An empty compiler.
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// A compiler that is sealed after its first recompile ([`Compiler::into_compiled`]), so
    /// files nothing only later changes read.
    pub(super) fn one_shot() -> Compiler {
        Compiler {
            one_shot: true,
            ..Compiler::default()
        }
    }

    /// Whether this is the first recompile.
    pub(super) fn fresh(&self) -> bool {
        !self.compiled
    }

    /// Takes in an added or modified object; what it changes is compiled by the next
    /// [`Compiler::recompile`].
    pub fn apply(&mut self, object: Object) -> Applied {
        let (_, namespace, name) = object.ref_parts();
        let key = Key::new(namespace, name);
        self.apply_keyed(key, object)
    }

    /// [`Compiler::apply`] of an object whose `namespace/name` is `key` (as
    /// [`Object::ref_parts`]: no namespace means `default`).
    pub(super) fn apply_keyed(&mut self, key: Key, object: Object) -> Applied {
        match object {
            Object::Provider(p) => {
                let (old, new, applied) =
                    store(&mut self.providers, &key, p, |p| &p.metadata, |p| &p.spec);
                if applied == Applied::Changed {
                    if !self.one_shot {
                        self.index
                            .provider_changed(&key, old.as_deref(), Some(&new));
                    }
                    self.dirty.providers.insert(key);
                }
                applied
            }
            Object::ModelRoute(r) => {
                let (old, new, applied) =
                    store(&mut self.routes, &key, r, |r| &r.metadata, |r| &r.spec);
                if applied == Applied::Changed {
                    self.index.route_changed(&key, old.as_deref(), Some(&new));
                    self.dirty.routes.insert(key);
                }
                applied
            }
            Object::ApiKey(k) => {
                let (old, new, applied) =
                    store(&mut self.api_keys, &key, k, |k| &k.metadata, |k| &k.spec);
                if applied == Applied::Changed {
                    if !self.one_shot {
                        self.index.api_key_changed(&key, old.as_deref(), Some(&new));
                    }
                    self.dirty.api_keys.insert(key);
                }
                applied
            }
            Object::Budget(b) => {
                let (_, _, applied) =
                    store(&mut self.budgets, &key, b, |b| &b.metadata, |b| &b.spec);
                if applied == Applied::Changed {
                    self.dirty.budgets.insert(key);
                }
                applied
            }
            Object::Secret(s) => self.apply_secret(key, s, 1),
        }
    }

    /// Takes out a deleted object; `false` when it was not there.
    pub fn remove(&mut self, r: &ObjectRef) -> bool {
        let key = Key::new(&r.namespace, &r.name);
        match r.kind {
            "Provider" => {
                let Some(old) = self.providers.swap_remove(&key) else {
                    return false;
                };
                self.index.provider_changed(&key, Some(&old), None);
                self.dirty.providers.insert(key);
            }
            "ModelRoute" => {
                let Some(old) = self.routes.swap_remove(&key) else {
                    return false;
                };
                self.index.route_changed(&key, Some(&old), None);
                self.dirty.routes.insert(key);
            }
            "ApiKey" => {
                let Some(old) = self.api_keys.swap_remove(&key) else {
                    return false;
                };
                self.index.api_key_changed(&key, Some(&old), None);
                self.dirty.api_keys.insert(key);
            }
            "Budget" => {
                if self.budgets.swap_remove(&key).is_none() {
                    return false;
                }
                self.dirty.budgets.insert(key);
            }
            "Secret" => {
                if self.secrets.swap_remove(&key).is_none() {
                    return false;
                }
                self.dirty.secrets.insert(key);
            }
            _ => return false,
        }
        true
    }

    /// Compiles what the changes since the last call touched, and says what changed.
    pub fn recompile(&mut self) -> Changes {
        let Dirty {
            secrets,
            mut providers,
            mut routes,
            mut api_keys,
            budgets,
        } = std::mem::take(&mut self.dirty);
        // In the first recompile every Provider and ApiKey is marked already.
        for secret in secrets.iter().filter(|_| !self.fresh()) {
            for (kind, key) in self.index.secret_users(secret) {
                match kind {
                    "Provider" => providers.insert(key),
                    _ => api_keys.insert(key),
                };
            }
        }
        self.settle_providers(providers, &mut routes);
        self.settle_routes(routes);
        let moved = self.settle_api_keys(api_keys);
        self.settle_budgets(budgets, moved);
        if self.one_shot {
            self.drop_inputs();
        }
        let changes = self.finish_digests();
        self.compiled = true;
        changes
    }

    /// The snapshot content (`version` 0; `hash` as of the last [`Compiler::recompile`]).
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The verdict on every Provider, ModelRoute, ApiKey and Budget, in no particular order.
    pub fn results(&self) -> impl Iterator<Item = (&ObjectRef, &ObjectResult)> {
        self.results.iter()
    }

    /// The verdict on `r`.
    pub fn result(&self, r: &ObjectRef) -> Option<&ObjectResult> {
        self.results.get(r)
    }

    /// The Provider, ModelRoute, ApiKey or Budget `r` as last applied (status included).
    pub fn held(&self, r: &ObjectRef) -> Option<Held> {
        let key = Key::new(&r.namespace, &r.name);
        let held = match r.kind {
            "Provider" => Held::Provider(self.providers.get(&key)?.clone()),
            "ModelRoute" => Held::ModelRoute(self.routes.get(&key)?.clone()),
            "ApiKey" => Held::ApiKey(self.api_keys.get(&key)?.clone()),
            "Budget" => Held::Budget(self.budgets.get(&key)?.clone()),
            _ => return None,
        };
        Some(held)
    }

    /// Every Provider, ModelRoute, ApiKey and Budget held.
    pub fn object_refs(&self) -> impl Iterator<Item = ObjectRef> + '_ {
        let providers = self.providers.keys().map(|k| object_ref("Provider", k));
        let routes = self.routes.keys().map(|k| object_ref("ModelRoute", k));
        let keys = self.api_keys.keys().map(|k| object_ref("ApiKey", k));
        let budgets = self.budgets.keys().map(|k| object_ref("Budget", k));
        providers.chain(routes).chain(keys).chain(budgets)
    }

    /// The route the ModelRoute `namespace/name` serves, if it serves one.
    pub fn route_of(&self, namespace: &str, name: &str) -> Option<&RouteConfig> {
        let draft = self
            .index
            .route_drafts
            .get(Key::new(namespace, name).id())?;
        self.config
            .routes
            .get(&draft.config.model)
            .filter(|c| c.namespace == namespace && c.name == name)
    }

    /// The key of the ApiKey `namespace/name`, if it is in the snapshot.
    pub fn api_key_of(&self, namespace: &str, name: &str) -> Option<&ApiKeyConfig> {
        let hash = self.index.key_hashes.get(Key::new(namespace, name).id())?;
        self.config
            .api_keys
            .get(hash)
            .filter(|k| k.namespace == namespace && k.name == name)
    }

    /// Every ApiKey as last applied.
    pub fn api_keys(&self) -> impl Iterator<Item = &Arc<ApiKey>> {
        self.api_keys.values()
    }

    /// Whether the Secret `namespace/name` is known (whatever it holds).
    pub fn has_secret(&self, namespace: &str, name: &str) -> bool {
        self.secrets.contains_key(Key::new(namespace, name).id())
    }

    /// The snapshot and verdicts, sealed.
    pub fn into_compiled(self) -> Compiled {
        Compiled {
            config: self.config,
            results: order::by_object(self.results.into_iter().collect()),
        }
    }

    /// Whether an object of `kind` is held under `key`.
    pub(super) fn holds(&self, kind: &str, key: &Key) -> bool {
        match kind {
            "Provider" => self.providers.contains_key(key),
            "ModelRoute" => self.routes.contains_key(key),
            "ApiKey" => self.api_keys.contains_key(key),
            "Budget" => self.budgets.contains_key(key),
            "Secret" => self.secrets.contains_key(key),
            _ => false,
        }
    }

    /// Before the first recompile: the object of `kind` held under `key` was given `copies`
    /// times. A Secret keeps its first copy with every value ambiguous; any other object is taken
    /// out again and rejected ([`Compiler::duplicate`]).
    pub(super) fn given_again(&mut self, kind: &'static str, key: &Key, copies: usize) {
        if kind == "Secret" {
            if let Some(entry) = self.secrets.get_mut(key) {
                entry.copies = copies;
            }
            return;
        }
        let r = object_ref(kind, key);
        self.remove(&r);
        let dirty = &mut self.dirty;
        match kind {
            "Provider" => dirty.providers.swap_remove(key),
            "ModelRoute" => dirty.routes.swap_remove(key),
            "ApiKey" => dirty.api_keys.swap_remove(key),
            _ => dirty.budgets.swap_remove(key),
        };
        self.duplicate(r, copies);
    }

    /// Records that `r` was given more than once: rejected, and nothing else of it is compiled.
    pub(super) fn duplicate(&mut self, r: ObjectRef, copies: usize) {
        let message = format!(
            "{r} is given {copies} times; kind, namespace and name must identify one object, so \
             every copy is left out"
        );
        self.reject(
            r,
            None,
            Rejection::new(super::reason::DUPLICATE_OBJECT, message),
        );
    }

    /// Takes in a Secret filed under `key` given `copies` times (more than once: every value is
    /// ambiguous).
    fn apply_secret(&mut self, key: Key, secret: Secret, copies: usize) -> Applied {
        let mut entry = SecretEntry::new(secret);
        entry.copies = copies;
        if self.secrets.get(&key) == Some(&entry) {
            return Applied::Unchanged;
        }
        self.secrets.insert(key.clone(), entry);
        self.dirty.secrets.insert(key);
        Applied::Changed
    }

    // -----------------------------------------------------------------------------------------
    // Verdicts

    fn set_result(&mut self, r: ObjectRef, result: Option<ObjectResult>) {
        let changed = match result {
            Some(result) if self.fresh() => {
                self.results.insert(r, result);
                return;
            }
            Some(result) => match self.results.entry(r) {
                hash_map::Entry::Occupied(mut e) => {
                    if *e.get() == result {
                        return;
                    }
                    e.insert(result);
                    e.key().clone()
                }
                hash_map::Entry::Vacant(e) => {
                    let r = e.key().clone();
                    e.insert(result);
                    r
                }
            },
            None => match self.results.remove(&r) {
                Some(_) => r,
                None => return,
            },
        };
        if !self.fresh() {
            self.changed_results.push(changed);
        }
    }

    pub(super) fn ready(
        &mut self,
        r: ObjectRef,
        generation: Option<i64>,
        reason: &'static str,
        msg: String,
    ) {
        let outcome = ObjectOutcome::Ready {
            reason,
            message: msg,
        };
        self.set_result(
            r,
            Some(ObjectResult {
                generation,
                outcome,
            }),
        );
    }

    pub(super) fn reject(&mut self, r: ObjectRef, generation: Option<i64>, rejection: Rejection) {
        let outcome = ObjectOutcome::Rejected {
            reason: rejection.reason,
            message: rejection.message,
        };
        self.set_result(
            r,
            Some(ObjectResult {
                generation,
                outcome,
            }),
        );
    }

    /// Forgets the verdict on a deleted object.
    pub(super) fn forget(&mut self, r: ObjectRef) {
        self.set_result(r, None);
    }

    /// Why an object another one depends on is not in the snapshot: `Some(reason)` when it was
    /// rejected, `None` when it was not given at all.
    pub(super) fn rejected_reason(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Option<&'static str> {
        let r = ObjectRef {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match self.results.get(&r).map(|res| &res.outcome) {
            Some(ObjectOutcome::Rejected { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Snapshot entries, with the digest following

    /// Sets (or, with `None`, removes) a snapshot entry; `true` when that changed it.
    pub(super) fn put<V: Entry>(&mut self, key: &str, value: Option<V>) -> bool {
        if self.fresh() {
            let map = V::map(&mut self.config);
            return match value {
                Some(v) => map.insert(key.to_string(), v).is_none(),
                None => map.remove(key).is_some(),
            };
        }
        let before = self.before.entry(V::SECTION).or_default();
        let old = match V::map(&mut self.config).entry(key.to_string()) {
            btree_map::Entry::Occupied(mut e) => {
                if Some(e.get()) == value.as_ref() {
                    return false;
                }
                let old = Some(e.get().kept_digest(key, &self.budget_members));
                match value {
                    Some(v) => {
                        e.insert(v);
                    }
                    None => {
                        e.remove();
                    }
                }
                old
            }
            btree_map::Entry::Vacant(e) => {
                let Some(v) = value else {
                    return false;
                };
                e.insert(v);
                None
            }
        };
        before.entry(key.to_string()).or_insert(old);
        true
    }

    /// Makes room for `keys` ApiKeys compiling in the first recompile: their snapshot entries and
    /// the verdicts on every object.
    pub(super) fn reserve_fresh(&mut self, keys: usize) {
        self.fresh_api_keys.reserve(keys);
        let objects = self.providers.len() + self.routes.len() + keys + self.budgets.len();
        self.results
            .reserve(objects.saturating_sub(self.results.len()));
    }

    /// A one-shot compile hands over only the snapshot and the verdicts: once every object is
    /// settled, the objects and the index go before the keys are put in order and hashed.
    fn drop_inputs(&mut self) {
        self.secrets = Objects::default();
        self.providers = Objects::default();
        self.routes = Objects::default();
        self.api_keys = Objects::default();
        self.budgets = Objects::default();
        self.index = Index::default();
    }

    /// Puts a ready ApiKey into the snapshot (in the first recompile, at its end).
    pub(super) fn put_api_key(&mut self, config: ApiKeyConfig) {
        if self.fresh() {
            self.fresh_api_keys.push((config.key_hash.clone(), config));
        } else {
            let hash = config.key_hash.clone();
            self.put(&hash, Some(config));
        }
    }

    /// Brings the digest and hash up to date with the entries changed since the last call, and
    /// hands over what changed.
    fn finish_digests(&mut self) -> Changes {
        if self.fresh() {
            self.config.api_keys = order::by_text(std::mem::take(&mut self.fresh_api_keys));
            let members = &self.budget_members;
            self.digest = SnapshotDigest::with_members(&self.config, |id, budget| {
                members
                    .get(id)
                    .map_or_else(|| MemberSum::of(budget), |m| m.sum)
            });
            self.config.hash = self.digest.hash();
            return Changes {
                first: true,
                ..Changes::default()
            };
        }
        let mut changes = Changes {
            first: false,
            entries: BTreeMap::new(),
            results: std::mem::take(&mut self.changed_results)
                .into_iter()
                .collect(),
        };
        for (section, before) in std::mem::take(&mut self.before) {
            let keys = changes.entries.entry(section).or_default();
            for (key, old) in before {
                let members = &self.budget_members;
                let new = match section {
                    Section::Providers => digest_of(&self.config.providers, &key, members),
                    Section::Routes => digest_of(&self.config.routes, &key, members),
                    Section::ApiKeys => digest_of(&self.config.api_keys, &key, members),
                    Section::Budgets => digest_of(&self.config.budgets, &key, members),
                    Section::Issuers => digest_of(&self.config.issuers, &key, members),
                };
                if old == new {
                    continue;
                }
                if let Some(old) = &old {
                    self.digest.remove(section, old);
                }
                if let Some(new) = &new {
                    self.digest.add(section, new);
                }
                keys.insert(key);
            }
        }
        changes.entries.retain(|_, keys| !keys.is_empty());
        self.config.hash = self.digest.hash();
        changes
    }
}

fn digest_of<V: Entry>(
    map: &BTreeMap<String, V>,
    key: &str,
    members: &HashMap<Key, BudgetMembers>,
) -> Option<EntryDigest> {
    map.get(key).map(|v| v.kept_digest(key, members))
}

/// A type of snapshot entry, and the section of [`RouterConfig`] that holds it.
pub(super) trait Entry: Digested + PartialEq + Sized {
    /// Its section.
    const SECTION: Section;
    /// Its map in `config`.
    fn map(config: &mut RouterConfig) -> &mut BTreeMap<String, Self>;
    /// Its digest under `key`, a Budget's from the member sum kept in `members`.
    fn kept_digest(&self, key: &str, members: &HashMap<Key, BudgetMembers>) -> EntryDigest {
        let _ = members;
        self.digest(Self::SECTION, key)
    }
}

macro_rules! entry {
    ($ty:ty, $section:expr, $field:ident) => {
        impl Entry for $ty {
            const SECTION: Section = $section;
            fn map(config: &mut RouterConfig) -> &mut BTreeMap<String, Self> {
                &mut config.$field
            }
        }
    };
}
entry!(ProviderConfig, Section::Providers, providers);
entry!(RouteConfig, Section::Routes, routes);
entry!(ApiKeyConfig, Section::ApiKeys, api_keys);
entry!(IssuerConfig, Section::Issuers, issuers);

#[cfg(test)]
#[path = "compiler_tests.rs"]
mod tests;
