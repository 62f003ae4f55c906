//! The pure compiler: custom resources plus the Secrets they reference in, one [`RouterConfig`]
//! plus a verdict per object out.
//!
//! Rules (each rejection names the field and what is wrong with it):
//! - Objects are processed in (kind, namespace, name) order, so input order never changes the
//!   snapshot or its hash. The same kind/namespace/name given twice rejects both copies.
//! - A rejected object is left out alone; everything that does not depend on it still compiles.
//!   A ModelRoute keeps the targets that resolve and is rejected only when none do.
//! - Two ModelRoutes claiming one public model name: the oldest (`creationTimestamp`, then
//!   namespace/name) wins, the others are rejected with `DuplicateModel`.
//! - Two ApiKeys holding the same key are both rejected (`DuplicateKey`): a key must identify one
//!   ApiKey. Likewise two ApiKeys whose subjects name the same caller (`OverlappingSubjects`).
//!
//! Choices the rules above leave open:
//! - Every problem of an object is reported at once: the condition reason is the first problem's,
//!   the message lists them all, separated by `; `.
//! - Secret values are read from `stringData` first, then `data`, and trimmed of surrounding
//!   whitespace (`echo key | base64` adds a newline). An empty or non-UTF-8 value is
//!   `InvalidSecret`; a Secret given twice is `DuplicateSecret`. Messages name Secrets and keys,
//!   never values.
//! - A ModelRoute target that is wrong in itself (empty names, weight 0, listed twice) rejects the
//!   whole route (`InvalidTarget`): that is a typo to fix, not a dependency that is not ready yet.
//!   Only targets whose Provider or model cannot be found, or whose Provider was rejected, are
//!   dropped.
//! - Only ModelRoutes that compile on their own compete for a public model name; a broken route
//!   never takes a name from a working one.
//! - `fallbackModels` may name models no route serves (yet): the route stays `Compiled` and the
//!   message says which are not served; the router skips them. Naming the route's own model is
//!   `InvalidFallback`.
//! - Budgets resolve their scope against ApiKeys that compiled; listed names that did not are
//!   reported (`SomeKeysUnresolved`) without rejecting the Budget.
//!
//! Cost follows the change, not the cluster ([`Compiler`]): objects are kept with indexes between
//! them ([`index`]), so a changed object recompiles itself and what depends on it (the routes of a
//! Provider, the Budgets a key falls into or out of, the routes competing for a model name), a
//! label selector is answered from a label → keys index (a Budget costs its matches), and the
//! snapshot hash is updated entry by entry. [`compile`] is one such recompile over everything.

mod api_keys;
mod budget_scope;
mod budgets;
mod cache;
mod compiler;
mod index;
mod key;
mod model_routes;
mod order;
mod providers;
pub mod reason;
mod secrets;
mod subjects;

use std::collections::BTreeMap;

use crate::{
    identity::IssuerConfig,
    manifest::{Object, ObjectRef},
    snapshot::{RouterConfig, validate_glob},
};

pub use api_keys::{GENERATED_KEY_SECRET_KEY, MIN_KEY_CHARS, generated_key_secret_name};
pub use compiler::{Applied, Changes, Compiler, Held};
use reason::*;
pub use subjects::subject_key_id;

/// The result of [`compile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The snapshot, sealed (hash set), with `version` 0 for the publisher to assign.
    pub config: RouterConfig,
    /// One result per Provider, ModelRoute, ApiKey and Budget given (Secrets get none).
    pub results: BTreeMap<ObjectRef, ObjectResult>,
}

/// The verdict on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectResult {
    /// The `metadata.generation` of the object the verdict is about.
    pub generation: Option<i64>,
    /// Accepted or rejected, and why.
    pub outcome: ObjectOutcome,
}

/// Accepted (possibly with a warning) or rejected with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// In the snapshot. `message` notes anything partial (e.g. a target that did not resolve).
    Ready {
        /// Condition reason (`Compiled`, or e.g. `SomeTargetsUnresolved`).
        reason: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Left out of the snapshot.
    Rejected {
        /// CamelCase condition reason, e.g. `SecretNotFound`, `InvalidPrice`, `UnknownProvider`.
        reason: &'static str,
        /// Exactly what is wrong, naming the field.
        message: String,
    },
}

impl ObjectOutcome {
    /// Whether the object is in the snapshot.
    pub fn is_ready(&self) -> bool {
        matches!(self, ObjectOutcome::Ready { .. })
    }

    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectOutcome::Ready { reason, .. } | ObjectOutcome::Rejected { reason, .. } => reason,
        }
    }

    /// The condition message.
    pub fn message(&self) -> &str {
        match self {
            ObjectOutcome::Ready { message, .. } | ObjectOutcome::Rejected { message, .. } => {
                message
            }
        }
    }
}

/// Compiles objects into a snapshot and a verdict per object, trusting no token issuer. Pure and
/// deterministic: one [`Compiler::recompile`] over every object.
pub fn compile(objects: &[Object]) -> Compiled {
    compile_trusting(objects, Vec::new())
}

/// [`compile`], trusting tokens from `issuers` ([`Compiler::set_issuers`]).
pub fn compile_trusting(objects: &[Object], issuers: Vec<IssuerConfig>) -> Compiled {
    let mut batch = Batch::new(issuers);
    batch.reserve(objects);
    for object in objects {
        batch.add(object.clone());
    }
    batch.finish()
}

/// [`compile`], taking the objects rather than copying them.
pub fn compile_owned(objects: Vec<Object>) -> Compiled {
    compile_owned_trusting(objects, Vec::new())
}

/// [`compile_trusting`], taking the objects rather than copying them.
pub fn compile_owned_trusting(objects: Vec<Object>, issuers: Vec<IssuerConfig>) -> Compiled {
    let mut batch = Batch::new(issuers);
    batch.reserve(&objects);
    for object in objects {
        batch.add(object);
    }
    batch.finish()
}

/// A compile from scratch fed one object at a time, as a manifest stream is read: nothing but
/// the compiler holds the objects, so no list of them all is kept beside it. The result is
/// [`compile`]'s for the same objects in any order.
pub struct Batch {
    compiler: Compiler,
    /// Objects given more than once, by kind and `namespace/name`: how many times. The first
    /// copy is held until [`Batch::finish`]; the others are dropped as they come.
    copies: foldhash::HashMap<(&'static str, key::Key), usize>,
}

impl Batch {
    /// An empty batch trusting tokens from `issuers`.
    pub fn new(issuers: Vec<IssuerConfig>) -> Batch {
        let mut compiler = Compiler::one_shot();
        compiler.set_issuers(issuers);
        Batch {
            compiler,
            copies: Default::default(),
        }
    }

    /// Makes room for `objects`, so that no map grows and rehashes its way up to them (a rehash
    /// reads every key's text again).
    fn reserve(&mut self, objects: &[Object]) {
        let mut counts = [0usize; 5];
        for object in objects {
            let at = match object {
                Object::Provider(_) => 0,
                Object::ModelRoute(_) => 1,
                Object::ApiKey(_) => 2,
                Object::Budget(_) => 3,
                Object::Secret(_) => 4,
            };
            counts[at] += 1;
        }
        let [providers, routes, api_keys, budgets, secrets] = counts;
        let compiler = &mut self.compiler;
        compiler.providers.reserve(providers);
        compiler.routes.reserve(routes);
        compiler.api_keys.reserve(api_keys);
        compiler.budgets.reserve(budgets);
        compiler.secrets.reserve(secrets);
        let dirty = &mut compiler.dirty;
        dirty.providers.reserve(providers);
        dirty.routes.reserve(routes);
        dirty.api_keys.reserve(api_keys);
        dirty.budgets.reserve(budgets);
        dirty.secrets.reserve(secrets);
    }

    /// Takes in one object.
    pub fn add(&mut self, object: Object) {
        let (kind, namespace, name) = object.ref_parts();
        let key = key::Key::new(namespace, name);
        if self.compiler.holds(kind, &key) {
            *self.copies.entry((kind, key)).or_insert(1) += 1;
            return;
        }
        self.compiler.apply_keyed(key, object);
    }

    /// Compiles everything taken in. An object given more than once is rejected in every copy
    /// (`DuplicateObject`); a Secret given more than once makes each of its values ambiguous.
    pub fn finish(mut self) -> Compiled {
        for ((kind, key), copies) in self.copies {
            self.compiler.given_again(kind, &key, copies);
        }
        self.compiler.recompile();
        self.compiler.into_compiled()
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping

/// Why an object is left out.
#[derive(Debug)]
struct Rejection {
    reason: &'static str,
    message: String,
}

impl Rejection {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// Every problem found in one object; the first one's reason becomes the condition reason.
#[derive(Default)]
struct Issues(Vec<Rejection>);

impl Issues {
    fn add(&mut self, reason: &'static str, message: impl Into<String>) {
        self.0.push(Rejection::new(reason, message));
    }

    fn finish(self) -> Result<(), Rejection> {
        match self.0.first() {
            None => Ok(()),
            Some(first) => Err(Rejection::new(
                first.reason,
                join(self.0.iter().map(|r| r.message.as_str())),
            )),
        }
    }
}

fn join<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts.into_iter().collect::<Vec<_>>().join("; ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    items
        .into_iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Shared field checks

/// A duration string as whole milliseconds.
fn duration_ms(value: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(value).map_err(|e| {
        format!("{value:?} is not a duration such as \"10s\", \"1500ms\" or \"2m\" ({e})")
    })?;
    Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A `fitMaxTokens` whose floor is 0 (a request fitted to no output at all is refused instead).
fn check_fit(fit: Option<&crate::resources::FitMaxTokens>, issues: &mut Issues) {
    if fit.is_some_and(|f| f.min_tokens == 0) {
        issues.add(
            INVALID_FIT,
            "spec.fitMaxTokens.minTokens: must be at least 1",
        );
    }
}

fn globs(path: &str, globs: &[String], issues: &mut Issues) {
    for (i, g) in globs.iter().enumerate() {
        if let Err(e) = validate_glob(g) {
            issues.add(INVALID_GLOB, format!("{path}[{i}]: {e}"));
        }
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
