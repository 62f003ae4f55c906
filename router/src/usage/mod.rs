//! The usage of record: every generation request stored durably, and the reports built on it
//! (docs/usage.md).
//!
//! When an access record drops, it builds one [`record::UsageRecord`] and hands it to the
//! [`Recorder`], which never blocks the request: the record goes into a bounded channel, or, when
//! that is full, straight to the spill file, and is dropped (counted, logged, alerted on) only
//! when the spill file cannot take it either. The [`writer`] batches the channel into the
//! [`store`] (SQLite or Postgres), maintaining the daily [`rollup`]s in the same transaction;
//! [`retention`] deletes what is past its time. The reports read the store ([`store::read`],
//! with requests parsed by [`query`]).

pub mod attribution;
pub mod query;
pub mod record;
pub mod retention;
pub mod rollup;
pub mod spill;
pub mod store;
pub mod writer;

use std::{
    path::PathBuf,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use prometheus::IntCounter;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use self::{
    record::UsageRecord,
    retention::Retention,
    spill::Spill,
    store::Store,
    writer::{Gauges, Writer},
};
use crate::{error::ApiError, observability::metrics::Metrics};

/// Records the channel holds before requests spill straight to the file.
pub const QUEUE: usize = 16_384;

/// How the usage store is set up (`--usage-*` flags).
#[derive(Clone, Debug)]
pub struct UsageOptions {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// The spill file.
    pub spill_file: PathBuf,
    /// Largest the spill file may grow, in bytes.
    pub spill_max_bytes: u64,
    /// How long records and rollups are kept.
    pub retention: Retention,
    /// How long shutdown may spend writing what is queued.
    pub drain: Duration,
}

/// Counters of records by stage (`switchboard_usage_records_total{stage}`).
#[derive(Clone)]
pub struct Counters {
    /// Handed to the writer's channel.
    pub queued: IntCounter,
    /// Inserted into the store.
    pub written: IntCounter,
    /// Already in the store when written again (a retried batch, a replay after a crash).
    pub duplicate: IntCounter,
    /// Appended to the spill file.
    pub spilled: IntCounter,
    /// Read back from the spill file and stored.
    pub replayed: IntCounter,
    /// Lost.
    dropped: IntCounter,
    /// Unix seconds of the last "dropped" log line (one per 10 s at most).
    last_drop_log: Arc<AtomicI64>,
}

impl Counters {
    /// The counters of `metrics`.
    pub fn new(metrics: &Metrics) -> Counters {
        let stage = |s: &str| metrics.usage_records.with_label_values(&[s]);
        Counters {
            queued: stage("queued"),
            written: stage("written"),
            duplicate: stage("duplicate"),
            spilled: stage("spilled"),
            replayed: stage("replayed"),
            dropped: stage("dropped"),
            last_drop_log: Arc::default(),
        }
    }

    /// Counts `n` records lost, and says so at ERROR (at most every 10 s).
    pub fn dropped(&self, n: u64, why: &dyn std::fmt::Display) {
        self.dropped.inc_by(n);
        let now = jiff::Timestamp::now().as_second();
        let last = self.last_drop_log.load(Ordering::Relaxed);
        if now - last >= 10
            && self
                .last_drop_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                lost = n,
                total_lost = self.dropped.get(),
                "usage records dropped: {why}"
            );
        }
    }
}

/// What requests hand their usage records to, and the store the usage APIs read.
pub struct Recorder {
    tx: mpsc::Sender<Arc<UsageRecord>>,
    spill: Arc<Spill>,
    store: Arc<Store>,
    counters: Counters,
}

impl Recorder {
    /// Takes a record without waiting: into the channel, else the spill file, else counted as
    /// dropped.
    pub fn submit(&self, record: Arc<UsageRecord>) {
        match self.tx.try_send(record) {
            Ok(()) => self.counters.queued.inc(),
            Err(
                mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record),
            ) => match self.spill.append([&*record]) {
                Ok(()) => self.counters.spilled.inc(),
                Err(e) => self.counters.dropped(1, &e),
            },
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// The query string of a usage API as name–value pairs, or a 400.
pub fn query_params(
    q: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Vec<(String, String)>, ApiError> {
    q.map(|axum::extract::Query(p)| p)
        .map_err(|e| ApiError::BadRequest {
            message: format!("Invalid query string: {e}"),
            param: None,
        })
}

/// A failed read, as the APIs answer it (503; the detail is logged, not sent).
pub fn unavailable(e: store::StoreError) -> ApiError {
    ApiError::UsageStoreUnavailable(e.to_string())
}

/// The usage store's background tasks.
pub struct UsageTasks {
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
    retention: JoinHandle<()>,
}

impl UsageTasks {
    /// Stops the tasks; the writer stores or spills what is queued first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.writer.await;
        let _ = self.retention.await;
    }
}

/// Opens the store and the spill file, installs the [`Recorder`] in `slot` (the router's
/// `AppState::usage`) and starts the writer and retention. Fails when the store's URL is wrong, a SQLite file cannot be opened, or
/// the spill file is unusable (or in use by another router); a Postgres that is down is not an
/// error: records spill until it answers.
pub async fn start(
    metrics: &Metrics,
    slot: &OnceLock<Arc<Recorder>>,
    options: UsageOptions,
) -> anyhow::Result<UsageTasks> {
    let store = Store::open(&options.url)
        .await
        .context("opening the usage store")?;
    let (spill, torn) =
        Spill::open(&options.spill_file, options.spill_max_bytes).with_context(|| {
            format!(
                "opening the usage spill file {}",
                options.spill_file.display()
            )
        })?;
    let spill = Arc::new(spill);
    let counters = Counters::new(metrics);
    if torn > 0 {
        counters.dropped(
            1,
            &format!("a torn last line ({torn} bytes) in the spill file"),
        );
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    let recorder = Recorder {
        tx,
        spill: spill.clone(),
        store: store.clone(),
        counters: counters.clone(),
    };
    if slot.set(Arc::new(recorder)).is_err() {
        anyhow::bail!("the usage store is already started");
    }
    let m = metrics;
    let gauges = Gauges {
        store_up: m.usage_store_up.clone(),
        spill_bytes: m.usage_spill_bytes.clone(),
        queue_depth: m.usage_queue_depth.clone(),
        batch_seconds: m
            .usage_batch_seconds
            .with_label_values(&[store.backend().name()]),
    };
    tracing::info!(
        store = store.backend().name(),
        path = store.path().map(|p| p.display().to_string()),
        spill = %options.spill_file.display(),
        spilled_bytes = spill.len(),
        "usage store ready: recording every generation request"
    );
    let (stop, stop_rx) = watch::channel(false);
    let writer = Writer::new(store.clone(), spill, rx, counters, gauges);
    Ok(UsageTasks {
        writer: tokio::spawn(writer.run(stop_rx.clone(), options.drain)),
        retention: tokio::spawn(retention::run(store, options.retention, stop_rx)),
        stop,
    })
}
