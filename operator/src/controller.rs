//! The reconcile loop: watches ([`crate::watches`]) feed each change to an incremental
//! [`Compiler`]; a debounced burst of changes recompiles what they touch; a new content is
//! numbered and published at once — to routers as a delta when the change is small — and only
//! then, on the leader, are writes filed: status in the [`Outbox`] (a real change's before any
//! sweep), the snapshot for the store task ([`crate::store`]), key Secrets to generate. Nothing on
//! the path from a change to the routers waits for an API write.
//!
//! The operator's own status writes come back as watch events that change nothing compile reads:
//! they are stored (status planning reads them) and recompile nothing.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use switchboard_api::{
    Compiler, Object, ObjectOutcome, ObjectRef,
    compile::{Applied, Changes, Held, generated_key_secret_name},
    snapshot::SnapshotText,
};
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::{
    keys::keys_to_generate,
    metrics::Metrics,
    outbox::{self, Outbox, Priority, StatusSource, TRACE},
    publish::{Versioner, stored_version},
    push::Published,
    status::{self, SpendFigures, StatusChange},
    watches::{self, Change},
};

/// A delta at most this big is always sent as one (beyond it, only when much smaller than the
/// whole snapshot).
const SMALL_DELTA_BYTES: usize = 64 * 1024;

/// What the controller needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (`None`: all).
    pub namespace: Option<String>,
    /// Namespace and name of the snapshot Secret (the manifest; shards are `<name>-<i>`).
    pub snapshot_secret: (String, String),
    /// This replica's identity (Events).
    pub identity: String,
    /// Quiet period after a change before compiling.
    pub debounce: Duration,
    /// The leader re-checks every object's status at least this often.
    pub resync: Duration,
    /// With a ledger, the leader reads spend at least this often (and at once when the config
    /// holds a Budget or ApiKey the last read did not cover).
    pub spend_interval: Duration,
    /// Most shard Secrets the snapshot may take.
    pub max_shards: usize,
    /// Rate of the leader's status and Event writes.
    pub limits: outbox::Limits,
}

/// What the controller loop and the leader's writers share.
#[derive(Default)]
pub struct Shared {
    /// The compiler, with every watched object.
    pub compiler: Mutex<Compiler>,
    /// The last spend figures read, if any.
    pub figures: Mutex<Option<SpendFigures>>,
}

impl Shared {
    /// Locks the compiler.
    pub fn compiler(&self) -> std::sync::MutexGuard<'_, Compiler> {
        self.compiler.lock().expect("compiler lock poisoned")
    }
}

/// The `status` of a held object as JSON (`Null` when unset) and a reference for Events.
fn current(held: &Held) -> (Value, ObjectReference) {
    fn of<K: Resource<DynamicType = ()>, S: serde::Serialize>(
        o: &K,
        status: &S,
    ) -> (Value, ObjectReference) {
        (
            serde_json::to_value(status).unwrap_or(Value::Null),
            o.object_ref(&()),
        )
    }
    match held {
        Held::Provider(o) => of(&**o, &o.status),
        Held::ModelRoute(o) => of(&**o, &o.status),
        Held::ApiKey(o) => of(&**o, &o.status),
        Held::Budget(o) => of(&**o, &o.status),
    }
}

impl StatusSource for Shared {
    fn plan(&self, r: &ObjectRef, now: &str) -> Option<(StatusChange, ObjectReference)> {
        let compiler = self.compiler();
        let result = compiler.result(r)?;
        let (current, reference) = current(&compiler.held(r)?);
        let figures = self.figures.lock().expect("figures lock poisoned");
        let desired = status::desired(r, result, &*compiler, figures.as_ref());
        status::plan(&current, &desired, now).map(|change| (change, reference))
    }
}

/// The reconcile loop of one replica.
pub struct Controller {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    snapshots: watch::Sender<Option<Arc<Published>>>,
    leader: watch::Receiver<bool>,
    versioner: Versioner,
    /// Every entry's JSON, kept up to date with the compiler.
    text: SnapshotText,
    /// Objects seen changed since the last round.
    dirty: bool,
    /// Budgets or ApiKeys entered the snapshot: the spend reader may lack their figures.
    new_spenders: Arc<Notify>,
    /// Rejected objects by (kind, reason), for the gauge.
    rejected: BTreeMap<ObjectRef, (&'static str, &'static str)>,
}

impl Controller {
    /// A controller publishing on `snapshots` and filing writes in `outbox` while `leader`.
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        shared: Arc<Shared>,
        outbox: Arc<Outbox>,
        snapshots: watch::Sender<Option<Arc<Published>>>,
        leader: watch::Receiver<bool>,
    ) -> Self {
        Controller {
            client,
            settings,
            metrics,
            shared,
            outbox,
            snapshots,
            leader,
            versioner: Versioner::default(),
            text: SnapshotText::default(),
            dirty: false,
            new_spenders: Arc::new(Notify::new()),
            rejected: BTreeMap::new(),
        }
    }

    /// Notified when Budgets or ApiKeys enter the snapshot (for the spend reader).
    pub fn new_spenders(&self) -> Arc<Notify> {
        self.new_spenders.clone()
    }

    fn leading(&self) -> bool {
        *self.leader.borrow()
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (tx, mut changes) = mpsc::channel(4096);
        let watch_tasks = watches::start(&self.client, self.settings.namespace.as_deref(), tx);
        let _abort = AbortOnDrop(watch_tasks);
        let mut stored = self.watch_snapshot_secret();

        // Never publish from half-listed kinds: routers would drop whatever is missing.
        let mut listed = HashSet::new();
        while listed.len() < watches::KINDS.len() {
            tokio::select! {
                Some(change) = changes.recv() => match change {
                    Change::Listed(kind) => {
                        listed.insert(kind);
                    }
                    other => self.take(other),
                },
                _ = crate::stopped(&mut shutdown) => return Ok(()),
            }
        }
        let Some(initial) = self.read_snapshot_secret(&mut shutdown).await else {
            return Ok(());
        };
        self.versioner = Versioner::new(initial);
        tracing::info!("every kind listed; compiling");
        self.round(Priority::Bulk);
        if self.leading() {
            self.sweep();
        }

        let mut resync = tokio::time::interval(self.settings.resync);
        resync.tick().await;
        loop {
            tokio::select! {
                Some(change) = changes.recv() => {
                    self.take(change);
                    // Let a burst of changes (a `kubectl apply -f dir/`) settle into one round.
                    let deadline = tokio::time::Instant::now() + self.settings.debounce;
                    loop {
                        tokio::select! {
                            Some(change) = changes.recv() => self.take(change),
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                    if self.dirty {
                        self.round(Priority::Urgent);
                    }
                }
                Some((version, hash)) = stored.recv() => {
                    if let Some(version) = self.versioner.observe_stored(version, &hash) {
                        self.republish(version);
                    }
                }
                Ok(()) = self.leader.changed() => {
                    if self.leading() {
                        tracing::info!("leading: checking every object's status");
                        if let Some(version) = self.versioner.reassert() {
                            self.republish(version);
                        }
                        self.sweep();
                    } else {
                        self.outbox.clear();
                    }
                    self.metrics.leader.set(i64::from(self.leading()));
                }
                _ = resync.tick() => {
                    if self.leading() {
                        self.sweep();
                    }
                }
                _ = crate::stopped(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Takes one watched change into the compiler.
    fn take(&mut self, change: Change) {
        match change {
            Change::Listed(_) => {}
            Change::Apply(object) => {
                let (kind, namespace, name) = object.ref_parts();
                let r = ObjectRef {
                    kind,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                };
                let shared = self.shared.clone();
                let mut compiler = shared.compiler();
                let generate = match &*object {
                    Object::ApiKey(k) if self.leading() => {
                        keys_to_generate([k], |ns, name| compiler.has_secret(ns, name))
                    }
                    _ => Vec::new(),
                };
                let applied = compiler.apply(*object);
                drop(compiler);
                match (applied, kind) {
                    (Applied::Changed, "Secret") => {
                        if let Some(api_key) = r.name.strip_prefix(&generated_key_secret_name("")) {
                            self.outbox.generated(&r.namespace, api_key);
                        }
                        self.dirty = true;
                    }
                    (Applied::Changed, _) => self.dirty = true,
                    // A status change only: ours coming back costs nothing; anyone else's is
                    // put right on the next pass.
                    (Applied::Unchanged, "Secret") => {}
                    (Applied::Unchanged, _) => {
                        if self.outbox.echoed(&r).is_none() && self.leading() {
                            self.outbox.status(r.clone(), Priority::Bulk);
                        }
                    }
                }
                for target in generate {
                    self.outbox.generate(target);
                }
            }
            Change::Delete(r) => {
                if self.shared.compiler().remove(&r) {
                    self.dirty = true;
                }
                // A deleted generated key Secret rotates the key: generate a new one.
                if r.kind == "Secret"
                    && let Some(api_key) = r.name.strip_prefix(&generated_key_secret_name(""))
                    && self.leading()
                {
                    let key = self.shared.compiler().held(&ObjectRef {
                        kind: "ApiKey",
                        namespace: r.namespace.clone(),
                        name: api_key.to_string(),
                    });
                    if let Some(Held::ApiKey(key)) = key {
                        self.generate_keys(std::iter::once(&*key));
                    }
                }
            }
        }
    }

    /// Files a key Secret for each of `api_keys` that needs one generated.
    fn generate_keys<'a>(
        &self,
        api_keys: impl IntoIterator<Item = &'a switchboard_api::resources::ApiKey>,
    ) {
        let compiler = self.shared.compiler();
        let targets = keys_to_generate(api_keys, |ns, name| compiler.has_secret(ns, name));
        drop(compiler);
        for target in targets {
            self.outbox.generate(target);
        }
    }

    /// The leader's pass over everything: every object's status, every missing key Secret.
    fn sweep(&self) {
        let compiler = self.shared.compiler();
        let mut refs: Vec<ObjectRef> = compiler.object_refs().collect();
        refs.sort_unstable();
        let keys: Vec<_> = compiler.api_keys().cloned().collect();
        drop(compiler);
        self.generate_keys(keys.iter().map(|k| &**k));
        self.outbox.status_all(refs, Priority::Bulk);
    }

    /// One round: recompile what changed, publish a new content, file the status writes.
    /// Traced as a `reconcile` span.
    pub fn round(&mut self, priority: Priority) {
        let span = tracing::info_span!(
            target: TRACE,
            "reconcile",
            otel.name = "reconcile",
            switchboard.changed = tracing::field::Empty,
            switchboard.rejected = tracing::field::Empty,
            switchboard.snapshot.version = tracing::field::Empty,
            switchboard.published = tracing::field::Empty,
            switchboard.leader = tracing::field::Empty,
        );
        let _entered = span.enter();
        self.dirty = false;
        let started = Instant::now();
        let compiler = self.shared.clone();
        let mut compiler = compiler.compiler();
        let changes = compiler.recompile();
        self.metrics
            .compile_seconds
            .observe(started.elapsed().as_secs_f64());
        self.count_rejected(&compiler, &changes);
        span.record("switchboard.changed", changes.results.len());
        span.record("switchboard.rejected", self.rejected.len());
        let published = if changes.snapshot_changed() {
            self.update_text(&compiler, &changes);
            let hash = compiler.config().hash.clone();
            drop(compiler);
            self.offer(&hash, &changes)
        } else {
            drop(compiler);
            false
        };
        self.metrics
            .reconciles
            .with_label_values(&[if published { "true" } else { "false" }])
            .inc();
        let leading = self.leading();
        span.record("switchboard.published", published);
        span.record("switchboard.leader", leading);
        if let Some((version, _)) = self.versioner.current() {
            span.record("switchboard.snapshot.version", version);
        }
        self.metrics.leader.set(i64::from(leading));
        if leading {
            if changes.first {
                self.sweep();
            } else {
                self.outbox.status_all(changes.results, priority);
            }
        }
        let spenders = changes.first
            || changes.entries.keys().any(|s| {
                matches!(
                    s,
                    switchboard_api::snapshot::Section::ApiKeys
                        | switchboard_api::snapshot::Section::Budgets
                )
            });
        if spenders {
            self.new_spenders.notify_one();
        }
    }

    fn update_text(&mut self, compiler: &Compiler, changes: &Changes) {
        if changes.first {
            self.text = SnapshotText::of(compiler.config());
            return;
        }
        for (section, keys) in &changes.entries {
            self.text
                .update(compiler.config(), *section, keys.iter().map(String::as_str));
        }
    }

    /// Numbers a new content and publishes it, as a delta from the version before when the
    /// change is small. `false` when the content is not new.
    fn offer(&mut self, hash: &str, changes: &Changes) -> bool {
        let before = self.versioner.current().map(|(v, h)| (v, h.to_string()));
        let Some(version) = self.versioner.offer(hash) else {
            return false;
        };
        let delta = before.filter(|_| !changes.first).and_then(|from| {
            let json = self
                .text
                .delta((from.0, &from.1), (version, hash), &changes.entries);
            // A large change goes whole: a delta only saves when it is much smaller.
            (json.len() <= SMALL_DELTA_BYTES || json.len() <= self.text.len() / 4)
                .then_some((from, json))
        });
        self.publish(Published::new(version, hash, self.text.clone(), delta));
        true
    }

    /// Publishes the current content again under `version` (an empty delta from the one before).
    fn republish(&mut self, version: u64) {
        let current = self.snapshots.borrow().clone();
        let Some(current) = current else { return };
        let from = (current.version, current.hash.clone());
        let json = self.text.delta(
            (from.0, &from.1),
            (version, &current.hash),
            &BTreeMap::new(),
        );
        let hash = current.hash.clone();
        self.publish(Published::new(
            version,
            &hash,
            self.text.clone(),
            Some((from, json)),
        ));
    }

    fn publish(&self, published: Arc<Published>) {
        tracing::info!(version = published.version, hash = %published.hash, "publishing snapshot");
        self.metrics
            .snapshot_version
            .set(i64::try_from(published.version).unwrap_or(i64::MAX));
        self.snapshots.send_replace(Some(published));
    }

    /// Keeps the rejected-objects gauge in step with the verdicts that changed.
    fn count_rejected(&mut self, compiler: &Compiler, changes: &Changes) {
        let mut moved = |r: &ObjectRef, now: Option<(&'static str, &'static str)>| {
            let was = match now {
                Some(n) => self.rejected.insert(r.clone(), n),
                None => self.rejected.remove(r),
            };
            if was == now {
                return;
            }
            if let Some((kind, reason)) = was {
                self.metrics
                    .rejected_objects
                    .with_label_values(&[kind, reason])
                    .dec();
            }
            if let Some((kind, reason)) = now {
                self.metrics
                    .rejected_objects
                    .with_label_values(&[kind, reason])
                    .inc();
            }
        };
        let rejected = |r: &ObjectRef| match compiler.result(r).map(|res| &res.outcome) {
            Some(ObjectOutcome::Rejected { reason, .. }) => Some((r.kind, *reason)),
            _ => None,
        };
        if changes.first {
            for (r, _) in compiler.results() {
                moved(r, rejected(r));
            }
        } else {
            for r in &changes.results {
                moved(r, rejected(r));
            }
        }
    }

    /// Reads the manifest's (version, hash) once at start (retrying), so versions continue
    /// monotonically. `None` when shut down first.
    async fn read_snapshot_secret(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Option<(u64, String)>> {
        let (ns, name) = &self.settings.snapshot_secret;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let mut backoff = Duration::from_millis(200);
        loop {
            match api.get_opt(name).await {
                Ok(secret) => return Some(secret.as_ref().and_then(stored_version)),
                Err(e) => {
                    tracing::warn!(secret = %format!("{ns}/{name}"), "reading the snapshot Secret failed (retrying): {e}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(10)),
                _ = crate::stopped(shutdown) => return None,
            }
        }
    }

    /// Watches the manifest Secret: (version, hash) each time it changes.
    fn watch_snapshot_secret(&self) -> mpsc::UnboundedReceiver<(u64, String)> {
        let (ns, name) = &self.settings.snapshot_secret;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = watcher(api, cfg).default_backoff().applied_objects();
        tokio::spawn(
            async move {
                futures_util::pin_mut!(stream);
                while let Some(secret) = stream.next().await {
                    match secret {
                        Ok(secret) => {
                            if let Some(stored) = stored_version(&secret)
                                && tx.send(stored).is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("watching the snapshot Secret failed (retrying): {e}")
                        }
                    }
                }
            }
            .in_current_span(),
        );
        rx
    }
}

/// Aborts the watch tasks when the controller stops.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
