//! The reconcile loop: reflectors keep in-memory copies of every Provider, ModelRoute, ApiKey,
//! Budget and Secret; any change (debounced) gathers them, runs the pure `compile()`, publishes a
//! new snapshot version when the content changed, and — on the leader only — writes the snapshot
//! Secret, generated key Secrets, status and Events. With a ledger, the leader also reads spend
//! (one `Ledger::read` for every counter) and passes the figures to the pure status decision.

use std::{
    collections::{BTreeSet, HashMap},
    fmt::Debug,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use k8s_openapi::{
    api::core::v1::{ObjectReference, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef as StoreRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_api::{
    Compiled, Object, ObjectRef, RouterConfig,
    compile::generated_key_secret_name,
    compile_trusting,
    identity::IssuerConfig,
    resources::{ApiKey, Budget, Credentials, ModelRoute, Provider},
};
use switchboard_ledger::Ledger;
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use crate::{
    keys::keys_to_generate,
    metrics::Metrics,
    publish::{Versioner, stored_snapshot},
    push::Published,
    status::{self, SpendFigures, StatusChange},
    writer::Writer,
};

/// How long a status write is assumed to be in flight (the watch has not echoed it yet), during
/// which the same write is not repeated.
const IN_FLIGHT: Duration = Duration::from_secs(10);

/// Longest a spend read may hold up a leader round (the Redis ledger gives up within about 2 s
/// itself).
const SPEND_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// What the controller needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (`None`: all).
    pub namespace: Option<String>,
    /// Namespace and name of the snapshot Secret.
    pub snapshot_secret: (String, String),
    /// This replica's identity (Events).
    pub identity: String,
    /// Quiet period after a change before compiling.
    pub debounce: Duration,
    /// Compile (and retry failed writes) at least this often.
    pub resync: Duration,
    /// With a ledger, the leader reads spend at least this often (and at once when the config
    /// holds a Budget or ApiKey the last read did not cover).
    pub spend_interval: Duration,
}

/// The in-memory copies of the watched objects.
#[derive(Clone)]
pub struct Stores {
    /// Providers.
    pub providers: Store<Provider>,
    /// ModelRoutes.
    pub routes: Store<ModelRoute>,
    /// ApiKeys.
    pub api_keys: Store<ApiKey>,
    /// Budgets.
    pub budgets: Store<Budget>,
    /// Secrets.
    pub secrets: Store<Secret>,
}

/// Secrets the objects reference, as (namespace, name): Provider and ApiKey `secretRef`s and the
/// generated key Secret of each ApiKey without one (and without subjects). Only these go into
/// compile.
pub fn referenced_secrets<'a>(
    providers: impl IntoIterator<Item = &'a Provider>,
    api_keys: impl IntoIterator<Item = &'a ApiKey>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in providers {
        if let Some(Credentials {
            secret_ref: Some(r),
            ..
        }) = &p.spec.credentials
        {
            out.insert((p.namespace().unwrap_or_default(), r.name.clone()));
        }
    }
    for k in api_keys {
        let name = match &k.spec.secret_ref {
            Some(r) => r.name.clone(),
            None if !k.spec.subjects.is_empty() => continue,
            None => generated_key_secret_name(&k.name_any()),
        };
        out.insert((k.namespace().unwrap_or_default(), name));
    }
    out
}

impl Stores {
    /// Every object compile needs, from the stores.
    pub fn gather(&self) -> Vec<Object> {
        let providers = self.providers.state();
        let api_keys = self.api_keys.state();
        let wanted = referenced_secrets(
            providers.iter().map(|p| &**p),
            api_keys.iter().map(|k| &**k),
        );
        let mut objects: Vec<Object> = Vec::new();
        objects.extend(providers.iter().map(|o| Object::Provider((**o).clone())));
        objects.extend(
            self.routes
                .state()
                .iter()
                .map(|o| Object::ModelRoute((**o).clone())),
        );
        objects.extend(api_keys.iter().map(|o| Object::ApiKey((**o).clone())));
        objects.extend(
            self.budgets
                .state()
                .iter()
                .map(|o| Object::Budget((**o).clone())),
        );
        for (ns, name) in &wanted {
            if let Some(s) = self.secrets.get(&StoreRef::new(name).within(ns)) {
                objects.push(Object::Secret((*s).clone()));
            }
        }
        objects
    }

    /// (namespace, name) of every Secret known.
    fn secret_names(&self) -> BTreeSet<(String, String)> {
        self.secrets
            .state()
            .iter()
            .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
            .collect()
    }

    /// The `status` of the object `r` as JSON (`Null` when unset) and a reference for Events.
    fn current(&self, r: &ObjectRef) -> Option<(Value, ObjectReference)> {
        fn look<K>(
            store: &Store<K>,
            r: &ObjectRef,
            status: impl Fn(&K) -> Value,
        ) -> Option<(Value, ObjectReference)>
        where
            K: Resource<DynamicType = ()> + Clone + 'static,
        {
            let obj = store.get(&StoreRef::new(&r.name).within(&r.namespace))?;
            Some((status(&obj), obj.object_ref(&())))
        }
        match r.kind {
            "Provider" => look(&self.providers, r, |o| {
                serde_json::to_value(&o.status).unwrap_or(Value::Null)
            }),
            "ModelRoute" => look(&self.routes, r, |o| {
                serde_json::to_value(&o.status).unwrap_or(Value::Null)
            }),
            "ApiKey" => look(&self.api_keys, r, |o| {
                serde_json::to_value(&o.status).unwrap_or(Value::Null)
            }),
            "Budget" => look(&self.budgets, r, |o| {
                serde_json::to_value(&o.status).unwrap_or(Value::Null)
            }),
            _ => None,
        }
    }
}

/// Starts a reflector over `api`, poking `notify` on every change.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: Arc<Notify>,
    what: &'static str,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        futures_util::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::warn!(kind = what, "watch failed (retrying): {e}"),
            }
        }
    });
    reader
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts reflectors over the five kinds.
pub fn start_stores(client: &Client, namespace: Option<&str>, notify: Arc<Notify>) -> Stores {
    let cfg = watcher::Config::default;
    Stores {
        providers: reflect(api(client, namespace), cfg(), notify.clone(), "Provider"),
        routes: reflect(api(client, namespace), cfg(), notify.clone(), "ModelRoute"),
        api_keys: reflect(api(client, namespace), cfg(), notify.clone(), "ApiKey"),
        budgets: reflect(api(client, namespace), cfg(), notify.clone(), "Budget"),
        secrets: reflect(api(client, namespace), cfg(), notify, "Secret"),
    }
}

/// The reconcile loop of one replica.
pub struct Controller {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    snapshots: watch::Sender<Option<Arc<Published>>>,
    leader: watch::Receiver<bool>,
    writer: Writer,
    versioner: Versioner,
    /// Status writes recently made, by object, so a write is not repeated before its watch event.
    recent: HashMap<ObjectRef, (Value, Instant)>,
    /// Where spend is read from; `None`: spend fields are not written.
    ledger: Option<Arc<dyn Ledger>>,
    /// The last spend read that succeeded, unless a later one failed.
    spend: Option<SpendFigures>,
    /// When spend was last read (or tried).
    spend_read_at: Option<Instant>,
    /// The token issuers routers trust (see [`crate::issuers`]).
    issuers: watch::Receiver<Vec<IssuerConfig>>,
}

impl Controller {
    /// A controller publishing on `snapshots`, writing only while `leader` is true.
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        snapshots: watch::Sender<Option<Arc<Published>>>,
        leader: watch::Receiver<bool>,
    ) -> Self {
        Controller {
            writer: Writer::new(client.clone(), &settings.identity),
            client,
            settings,
            metrics,
            snapshots,
            leader,
            versioner: Versioner::default(),
            recent: HashMap::new(),
            ledger: None,
            spend: None,
            spend_read_at: None,
            issuers: watch::channel(Vec::new()).1,
        }
    }

    /// Ships `issuers` (as they change) in the snapshot as the token issuers routers trust.
    pub fn with_issuers(mut self, issuers: watch::Receiver<Vec<IssuerConfig>>) -> Self {
        self.issuers = issuers;
        self
    }

    /// Reads spend from `ledger` and writes it into Budget and ApiKey status (leader only).
    pub fn with_ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let notify = Arc::new(Notify::new());
        let stores = start_stores(
            &self.client,
            self.settings.namespace.as_deref(),
            notify.clone(),
        );
        let mut stored = self.watch_snapshot_secret();

        // Never publish from half-filled caches: routers would drop whatever is missing.
        let synced = async {
            for ready in [
                stores.providers.wait_until_ready().await,
                stores.routes.wait_until_ready().await,
                stores.api_keys.wait_until_ready().await,
                stores.budgets.wait_until_ready().await,
                stores.secrets.wait_until_ready().await,
            ] {
                ready?;
            }
            Ok::<_, anyhow::Error>(())
        };
        tokio::select! {
            r = synced => r?,
            _ = crate::stopped(&mut shutdown) => return Ok(()),
        }
        let Some(initial) = self.read_snapshot_secret(&mut shutdown).await else {
            return Ok(());
        };
        self.versioner = Versioner::new(initial.map(|c| (c.version, c.hash)));
        tracing::info!("caches synced; compiling");

        loop {
            self.reconcile(&stores).await;
            // Wake for the next spend read only when there is something to read it for.
            let spend_due = self.spend_due_in();
            let spend_tick = async move {
                match spend_due {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notify.notified() => {
                    // Let a burst of changes (an `kubectl apply -f dir/`) settle into one compile.
                    tokio::time::sleep(self.settings.debounce).await;
                }
                Some((version, hash)) = stored.recv() => {
                    if let Some(cfg) = self.versioner.observe_stored(version, &hash) {
                        self.publish(&cfg);
                    }
                }
                Ok(()) = self.leader.changed() => {}
                Ok(()) = self.issuers.changed() => {}
                _ = tokio::time::sleep(self.settings.resync) => {}
                _ = spend_tick => {}
                _ = crate::stopped(&mut shutdown) => return Ok(()),
            }
        }
    }

    /// Time until spend is due to be read again; `None` when this replica reads none (no ledger,
    /// or not the leader).
    fn spend_due_in(&self) -> Option<Duration> {
        if self.ledger.is_none() || !*self.leader.borrow() {
            return None;
        }
        Some(self.spend_read_at.map_or(Duration::ZERO, |at| {
            self.settings.spend_interval.saturating_sub(at.elapsed())
        }))
    }

    /// Reads spend for `config` when due: the interval has passed since the last read, or the
    /// last successful read did not cover every Budget and ApiKey of `config`. A failed read is
    /// logged, counted, and forgets the figures (status keeps what it says) until the next
    /// interval. Rounds in between reuse the figures: the leader's own status writes wake it, and
    /// reading afresh each time would turn spend under traffic into a stream of status writes.
    async fn refresh_spend(&mut self, config: &RouterConfig) {
        let Some(ledger) = self.ledger.clone() else {
            return;
        };
        let due = self
            .spend_read_at
            .is_none_or(|at| at.elapsed() >= self.settings.spend_interval);
        let uncovered = self.spend.as_ref().is_some_and(|f| !f.covers(config));
        if !due && !uncovered {
            return;
        }
        self.spend_read_at = Some(Instant::now());
        let at = Timestamp::now();
        let counters = status::spend_counters(config, at);
        let states = if counters.is_empty() {
            Ok(Vec::new())
        } else {
            match tokio::time::timeout(SPEND_READ_TIMEOUT, ledger.read(&counters)).await {
                Ok(Ok(states)) if states.len() == counters.len() => Ok(states),
                Ok(Ok(states)) => Err(format!(
                    "the ledger answered {} counters for {}",
                    states.len(),
                    counters.len()
                )),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the spend ledger did not answer in time".into()),
            }
        };
        self.metrics.spend_read(states.is_ok());
        match states {
            Ok(states) => {
                if self.spend.is_none() {
                    tracing::info!(
                        ledger = ledger.kind(),
                        counters = counters.len(),
                        "reading spend from the ledger"
                    );
                }
                self.spend = Some(SpendFigures::new(at, counters, states));
            }
            Err(e) => {
                tracing::warn!(
                    ledger = ledger.kind(),
                    "reading spend failed; spend status left as it is until the next try in {:?}: {e}",
                    self.settings.spend_interval
                );
                self.spend = None;
            }
        }
    }

    /// Reads the snapshot Secret once at start (retrying), so versions continue monotonically.
    /// `None` when shut down first.
    async fn read_snapshot_secret(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Option<RouterConfig>> {
        let (ns, name) = &self.settings.snapshot_secret;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let mut backoff = Duration::from_millis(200);
        loop {
            match api.get_opt(name).await {
                Ok(secret) => return Some(secret.as_ref().and_then(stored_snapshot)),
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

    /// Watches the snapshot Secret: (version, hash) each time it changes.
    fn watch_snapshot_secret(&self) -> mpsc::UnboundedReceiver<(u64, String)> {
        let (ns, name) = &self.settings.snapshot_secret;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = watcher(api, cfg).default_backoff().applied_objects();
        tokio::spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(secret) = stream.next().await {
                match secret {
                    Ok(secret) => {
                        if let Some(c) = stored_snapshot(&secret)
                            && tx.send((c.version, c.hash)).is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("watching the snapshot Secret failed (retrying): {e}"),
                }
            }
        });
        rx
    }

    fn publish(&self, config: &RouterConfig) {
        tracing::info!(version = config.version, hash = %config.hash, routes = config.routes.len(), "publishing snapshot");
        self.metrics
            .snapshot_version
            .set(i64::try_from(config.version).unwrap_or(i64::MAX));
        self.snapshots.send_replace(Some(Published::new(config)));
    }

    /// One round: compile, publish if new, and write (leader only). Traced as a `reconcile` span
    /// with a child span per write, naming the object it touches.
    pub async fn reconcile(&mut self, stores: &Stores) {
        let span = tracing::info_span!(
            target: TRACE,
            "reconcile",
            otel.name = "reconcile",
            switchboard.objects = tracing::field::Empty,
            switchboard.rejected = tracing::field::Empty,
            switchboard.snapshot.version = tracing::field::Empty,
            switchboard.published = tracing::field::Empty,
            switchboard.leader = tracing::field::Empty,
        );
        self.reconcile_round(stores, &span)
            .instrument(span.clone())
            .await;
    }

    async fn reconcile_round(&mut self, stores: &Stores, span: &tracing::Span) {
        let issuers = self.issuers.borrow_and_update().clone();
        let compiled = compile_trusting(&stores.gather(), issuers);
        span.record("switchboard.objects", compiled.results.len());
        span.record(
            "switchboard.rejected",
            compiled
                .results
                .values()
                .filter(|r| !r.outcome.is_ready())
                .count(),
        );
        self.metrics.rejected_objects.reset();
        for ((kind, reason), n) in status::rejected_counts(&compiled) {
            self.metrics
                .rejected_objects
                .with_label_values(&[kind, reason])
                .set(n);
        }
        let published = self.versioner.offer(compiled.config.clone());
        if let Some(cfg) = &published {
            self.publish(cfg);
        }
        self.metrics
            .reconciles
            .with_label_values(&[if published.is_some() { "true" } else { "false" }])
            .inc();
        let leading = *self.leader.borrow();
        span.record("switchboard.published", published.is_some());
        span.record("switchboard.leader", leading);
        if let Some(cfg) = self.versioner.current() {
            span.record("switchboard.snapshot.version", cfg.version);
        }
        self.metrics.leader.set(i64::from(leading));
        if leading {
            self.lead(stores, &compiled).await;
        }
    }

    async fn lead(&mut self, stores: &Stores, compiled: &Compiled) {
        // The snapshot Secret, for routers starting while no operator answers.
        if let Some(cfg) = self.versioner.reassert() {
            self.publish(&cfg);
        }
        if !self.versioner.stored_is_current()
            && let Some(cfg) = self.versioner.current().cloned()
        {
            let (ns, name) = &self.settings.snapshot_secret;
            let result = self
                .writer
                .write_snapshot(ns, name, &cfg)
                .instrument(write_span("write_snapshot", "Secret", ns, name))
                .await;
            self.metrics.write("snapshot_secret", result.is_ok());
            match result {
                Ok(()) => self.versioner.stored_now(),
                Err(e) => {
                    tracing::warn!(secret = %format!("{ns}/{name}"), "writing the snapshot Secret failed: {e}")
                }
            }
        }

        // Keys for ApiKeys without secretRef; their status waits for the next round, when the
        // new Secret is in the store and the key compiles.
        let api_keys = stores.api_keys.state();
        let to_generate = keys_to_generate(api_keys.iter().map(|k| &**k), &stores.secret_names());
        let mut generating = BTreeSet::new();
        for target in &to_generate {
            let result = self
                .writer
                .create_key_secret(target)
                .instrument(write_span(
                    "generate_key",
                    "ApiKey",
                    &target.namespace,
                    &target.api_key,
                ))
                .await;
            self.metrics.write("key_secret", result.is_ok());
            match result {
                Ok(created) => {
                    if created {
                        tracing::info!(api_key = %format!("{}/{}", target.namespace, target.api_key), secret = %target.secret, "generated a client key");
                    }
                    generating.insert((target.namespace.clone(), target.api_key.clone()));
                }
                Err(e) => {
                    tracing::warn!(secret = %format!("{}/{}", target.namespace, target.secret), "creating the key Secret failed: {e}")
                }
            }
        }

        self.refresh_spend(&compiled.config).await;
        let now = status::rfc3339(Timestamp::now());
        self.recent.retain(|_, (_, at)| at.elapsed() < IN_FLIGHT);
        for (r, desired) in status::desired_all(compiled, self.spend.as_ref()) {
            if r.kind == "ApiKey" && generating.contains(&(r.namespace.clone(), r.name.clone())) {
                continue;
            }
            let Some((current, reference)) = stores.current(&r) else {
                continue;
            };
            let Some(change) = status::plan(&current, &desired, &now) else {
                self.recent.remove(&r);
                continue;
            };
            if self.recent.get(&r).is_some_and(|(p, _)| *p == change.patch) {
                continue;
            }
            self.write_status(&r, &change, &reference).await;
        }
    }

    async fn write_status(
        &mut self,
        r: &ObjectRef,
        change: &StatusChange,
        reference: &ObjectReference,
    ) {
        let span = write_span("write_status", r.kind, &r.namespace, &r.name);
        let result = self
            .writer
            .patch_status(r, change)
            .instrument(span.clone())
            .await;
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        self.metrics.write("status", result.is_ok());
        if let Err(e) = result {
            // A 404 means the object was deleted since the store saw it: nothing to report.
            if !matches!(&e, kube::Error::Api(s) if s.is_not_found()) {
                tracing::warn!(object = %r, "writing status failed: {e}");
            }
            return;
        }
        self.recent
            .insert(r.clone(), (change.patch.clone(), Instant::now()));
        for event in &change.events {
            let result = self.writer.event(reference, event).await;
            self.metrics.write("event", result.is_ok());
            if let Err(e) = result {
                tracing::warn!(object = %r, "emitting an Event failed: {e}");
            }
        }
    }
}

/// The tracing target of operator spans: exported with traces, kept out of log lines.
const TRACE: &str = switchboard_telemetry::TARGET;

/// A span for one write, naming the object it touches.
fn write_span(op: &str, kind: &str, namespace: &str, name: &str) -> tracing::Span {
    tracing::info_span!(
        target: TRACE,
        "write",
        otel.name = %format!("{op} {kind}"),
        otel.status_code = tracing::field::Empty,
        switchboard.operation = op,
        k8s.object.kind = kind,
        k8s.namespace.name = namespace,
        k8s.object.name = name,
    )
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
