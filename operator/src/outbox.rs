//! The leader's writes waiting to be made: status patches, the Events they bring and generated
//! key Secrets. The controller files objects here; a worker makes the writes at a bounded rate,
//! off the path from a change to the routers, so a first round over a hundred thousand objects
//! never holds up a real change:
//!
//! - An object is queued once (a newer reason to write replaces an older one) and its status is
//!   planned only when its turn comes, against the object as the watch last showed it: an object
//!   whose status already says what it should costs no write, so the operator's own writes coming
//!   back through the watch are free.
//! - `Urgent` (a verdict a real change just moved) goes before `Bulk` (the first round, a new
//!   leader's sweep, a periodic resync, spend figures); key Secrets go first of all; Events last.
//! - Writes share one token bucket (`--status-qps`, `--status-burst`), a few in flight at once,
//!   never two for one object. Events beyond [`MAX_EVENTS`] queued are dropped (counted), as
//!   client-go's event broadcaster does.
//! - A failed write is retried later at `Bulk`; a status that was just written is not written
//!   again until the watch echoes it or [`IN_FLIGHT`] passes.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;
use switchboard_api::ObjectRef;
use tokio::{
    sync::{Notify, watch},
    task::JoinSet,
};
use tracing::Instrument;

use crate::{
    keys::KeyToGenerate,
    metrics::Metrics,
    status::{StatusChange, StatusEvent},
    writer::Writer,
};

/// How soon an object's status is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A sweep: first round, new leader, resync, spend.
    Bulk,
    /// A verdict a change just moved.
    Urgent,
}

/// Most Events kept waiting; older ones are dropped beyond it.
pub const MAX_EVENTS: usize = 1024;

/// How long a status write is assumed to be in flight (the watch has not echoed it yet), during
/// which the same write is not repeated.
pub const IN_FLIGHT: Duration = Duration::from_secs(10);

/// What the worker asks of the controller's state when an object's turn comes.
pub trait StatusSource: Send + Sync {
    /// The status write `r` needs now, planned against its status as last seen, with the
    /// reference its Events are about; `None` when it needs none (or is gone). `now` is the
    /// RFC 3339 time a flipped condition is stamped with.
    fn plan(&self, r: &ObjectRef, now: &str) -> Option<(StatusChange, ObjectReference)>;
}

/// Rate and concurrency of the writes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Writes per second, sustained.
    pub qps: f64,
    /// Writes allowed at once after a quiet spell.
    pub burst: u32,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            qps: 100.0,
            burst: 200,
            concurrency: 8,
        }
    }
}

#[derive(Default)]
struct Queues {
    keys: VecDeque<KeyToGenerate>,
    urgent: VecDeque<ObjectRef>,
    bulk: VecDeque<ObjectRef>,
    /// Every object in `urgent` or `bulk`, with the queue it is in.
    queued: HashMap<ObjectRef, Priority>,
    events: VecDeque<(ObjectRef, ObjectReference, StatusEvent)>,
    /// ApiKeys (namespace, name) whose key Secret is being created: their status waits until the
    /// Secret is there and the key compiles, so no "Secret not found" flickers by.
    generating: HashSet<(String, String)>,
    /// Status patches written and not yet echoed, by object.
    recent: HashMap<ObjectRef, (Value, Instant)>,
}

/// The queues, shared by the controller (which files) and the worker (which writes).
#[derive(Default)]
pub struct Outbox {
    queues: Mutex<Queues>,
    filed: Notify,
}

/// One write the worker takes on.
enum Job {
    Key(KeyToGenerate),
    Status(ObjectRef),
    Event(ObjectRef, ObjectReference, StatusEvent),
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Queues) -> T) -> T {
        f(&mut self.queues.lock().expect("outbox lock poisoned"))
    }

    /// Files `r` for a status write at `priority` (raising it if it waits at a lower one).
    pub fn status(&self, r: ObjectRef, priority: Priority) {
        self.status_all([r], priority);
    }

    /// Files every object of `refs`.
    pub fn status_all(&self, refs: impl IntoIterator<Item = ObjectRef>, priority: Priority) {
        let filed = self.with(|q| {
            let mut filed = false;
            for r in refs {
                // Raised from bulk: its place there goes stale and is skipped (see `next`).
                if q.queued.get(&r).is_some_and(|p| *p >= priority) {
                    continue;
                }
                q.queued.insert(r.clone(), priority);
                match priority {
                    Priority::Urgent => q.urgent.push_back(r),
                    Priority::Bulk => q.bulk.push_back(r),
                }
                filed = true;
            }
            filed
        });
        if filed {
            self.filed.notify_one();
        }
    }

    /// Files a key Secret to create; the ApiKey's status waits for it.
    pub fn generate(&self, target: KeyToGenerate) {
        self.with(|q| {
            let id = (target.namespace.clone(), target.api_key.clone());
            if q.generating.insert(id) {
                q.keys.push_back(target);
            }
        });
        self.filed.notify_one();
    }

    /// The generated key Secret of ApiKey `namespace/name` is there: its status may be written.
    pub fn generated(&self, namespace: &str, name: &str) {
        self.with(|q| {
            q.generating
                .remove(&(namespace.to_string(), name.to_string()))
        });
    }

    /// Whether the key Secret of ApiKey `namespace/name` is being created.
    pub fn is_generating(&self, namespace: &str, name: &str) -> bool {
        self.with(|q| {
            q.generating
                .contains(&(namespace.to_string(), name.to_string()))
        })
    }

    /// Drops everything waiting (leadership lost: the next leader sweeps anyway).
    pub fn clear(&self) {
        self.with(|q| *q = Queues::default());
    }

    /// (key Secrets, urgent, bulk, Events) waiting.
    pub fn lengths(&self) -> (usize, usize, usize, usize) {
        self.with(|q| (q.keys.len(), q.urgent.len(), q.bulk.len(), q.events.len()))
    }

    /// The next job, skipping objects with a write in flight.
    fn next(&self, busy: &HashSet<ObjectRef>) -> Option<Job> {
        self.with(|q| {
            if let Some(k) = q.keys.pop_front() {
                return Some(Job::Key(k));
            }
            for priority in [Priority::Urgent, Priority::Bulk] {
                let queue = match priority {
                    Priority::Urgent => &mut q.urgent,
                    Priority::Bulk => &mut q.bulk,
                };
                // Entries whose object waits elsewhere (raised, or taken already) are stale.
                let queued = &q.queued;
                while queue
                    .front()
                    .is_some_and(|r| queued.get(r) != Some(&priority))
                {
                    queue.pop_front();
                }
                let ready = |r: &ObjectRef| !busy.contains(r) && queued.get(r) == Some(&priority);
                if let Some(at) = queue.iter().position(ready) {
                    let r = queue.remove(at).expect("position is in range");
                    q.queued.remove(&r);
                    return Some(Job::Status(r));
                }
            }
            q.events
                .pop_front()
                .map(|(r, reference, e)| Job::Event(r, reference, e))
        })
    }

    fn add_events(
        &self,
        r: &ObjectRef,
        reference: &ObjectReference,
        events: &[StatusEvent],
    ) -> usize {
        self.with(|q| {
            for e in events {
                q.events
                    .push_back((r.clone(), reference.clone(), e.clone()));
            }
            let over = q.events.len().saturating_sub(MAX_EVENTS);
            q.events.drain(..over);
            over
        })
    }

    /// Whether `patch` was written for `r` recently (and not echoed yet).
    fn recently_written(&self, r: &ObjectRef, patch: &Value) -> bool {
        self.with(|q| {
            q.recent.retain(|_, (_, at)| at.elapsed() < IN_FLIGHT);
            q.recent.get(r).is_some_and(|(p, _)| p == patch)
        })
    }

    fn written(&self, r: &ObjectRef, patch: Value) {
        self.with(|q| q.recent.insert(r.clone(), (patch, Instant::now())));
    }

    /// The watch showed `r` with a new status: what was written is no longer in flight.
    /// `None` when nothing was (the change is someone else's).
    pub fn echoed(&self, r: &ObjectRef) -> Option<Value> {
        self.with(|q| q.recent.remove(r).map(|(patch, _)| patch))
    }
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: tokio::time::Instant,
    limits: Limits,
}

impl Bucket {
    fn new(limits: Limits) -> Bucket {
        Bucket {
            tokens: f64::from(limits.burst.max(1)),
            at: tokio::time::Instant::now(),
            limits,
        }
    }

    /// Waits for a token.
    async fn take(&mut self) {
        loop {
            let now = tokio::time::Instant::now();
            let burst = f64::from(self.limits.burst.max(1));
            self.tokens =
                (self.tokens + (now - self.at).as_secs_f64() * self.limits.qps).min(burst);
            self.at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.limits.qps.max(0.001);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// The tracing target of operator spans: exported with traces, kept out of log lines.
pub const TRACE: &str = switchboard_telemetry::TARGET;

/// A span for one write, naming the object it touches.
pub fn write_span(op: &str, kind: &str, namespace: &str, name: &str) -> tracing::Span {
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

/// The worker: makes the writes while `leader` is true, until `shutdown`.
pub async fn run(
    outbox: Arc<Outbox>,
    source: Arc<dyn StatusSource>,
    writer: Writer,
    metrics: Arc<Metrics>,
    limits: Limits,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut bucket = Bucket::new(limits);
    let mut in_flight: JoinSet<ObjectRef> = JoinSet::new();
    let mut busy: HashSet<ObjectRef> = HashSet::new();
    loop {
        let (k, u, b, e) = outbox.lengths();
        metrics.outbox(k, u, b, e);
        if !*leader.borrow() {
            tokio::select! {
                _ = leader.changed() => continue,
                _ = crate::stopped(&mut shutdown) => break,
            }
        }
        if in_flight.len() >= limits.concurrency.max(1) {
            tokio::select! {
                Some(Ok(r)) = in_flight.join_next() => { busy.remove(&r); }
                _ = crate::stopped(&mut shutdown) => break,
            }
            continue;
        }
        let Some(job) = outbox.next(&busy) else {
            tokio::select! {
                _ = outbox.filed.notified() => {}
                Some(Ok(r)) = in_flight.join_next() => { busy.remove(&r); }
                _ = leader.changed() => {}
                _ = crate::stopped(&mut shutdown) => break,
            }
            continue;
        };
        // Plan before taking a token: an object already right costs nothing.
        let (r, write) = match job {
            Job::Key(target) => {
                let r = ObjectRef {
                    kind: "ApiKey",
                    namespace: target.namespace.clone(),
                    name: target.api_key.clone(),
                };
                (r, Write::Key(target))
            }
            Job::Status(r) => {
                if r.kind == "ApiKey" && outbox.is_generating(&r.namespace, &r.name) {
                    continue;
                }
                let now = crate::status::rfc3339(jiff::Timestamp::now());
                let Some((change, reference)) = source.plan(&r, &now) else {
                    continue;
                };
                if outbox.recently_written(&r, &change.patch) {
                    continue;
                }
                (r, Write::Status(change, reference))
            }
            Job::Event(r, reference, event) => (r, Write::Event(reference, event)),
        };
        tokio::select! {
            _ = bucket.take() => {}
            _ = crate::stopped(&mut shutdown) => break,
        }
        busy.insert(r.clone());
        let (outbox, writer, metrics) = (outbox.clone(), writer.clone(), metrics.clone());
        in_flight.spawn(async move {
            write.make(&r, &outbox, &writer, &metrics).await;
            r
        });
    }
    in_flight.abort_all();
}

/// A write the worker makes.
enum Write {
    Key(KeyToGenerate),
    Status(StatusChange, ObjectReference),
    Event(ObjectReference, StatusEvent),
}

impl Write {
    async fn make(self, r: &ObjectRef, outbox: &Outbox, writer: &Writer, metrics: &Metrics) {
        match self {
            Write::Key(target) => {
                let span = write_span("generate_key", "ApiKey", &target.namespace, &target.api_key);
                let result = writer.create_key_secret(&target).instrument(span).await;
                metrics.write("key_secret", result.is_ok());
                match result {
                    Ok(created) => {
                        if created {
                            tracing::info!(api_key = %format!("{}/{}", target.namespace, target.api_key), secret = %target.secret, "generated a client key");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(secret = %format!("{}/{}", target.namespace, target.secret), "creating the key Secret failed: {e}");
                        outbox.generated(&target.namespace, &target.api_key);
                        outbox.status(r.clone(), Priority::Bulk);
                    }
                }
            }
            Write::Status(change, reference) => {
                let span = write_span("write_status", r.kind, &r.namespace, &r.name);
                let result = writer
                    .patch_status(r, &change)
                    .instrument(span.clone())
                    .await;
                metrics.write("status", result.is_ok());
                match result {
                    Ok(()) => {
                        outbox.written(r, change.patch);
                        let dropped = outbox.add_events(r, &reference, &change.events);
                        metrics.events_dropped(dropped);
                    }
                    // Deleted since the watch saw it: nothing to report.
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => {
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(object = %r, "writing status failed (retrying later): {e}");
                        outbox.status(r.clone(), Priority::Bulk);
                    }
                }
            }
            Write::Event(reference, event) => {
                let result = writer.event(&reference, &event).await;
                metrics.write("event", result.is_ok());
                if let Err(e) = result {
                    tracing::warn!(object = %r, "emitting an Event failed: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
