//! The batch writer: takes records off the bounded channel, writes them to the store in batches
//! (up to [`BATCH`] records, or what arrived within [`FLUSH`] of the first), and, when the store
//! fails, appends them to the spill file instead and replays that file in order once the store
//! answers again (tried with a backoff from half a second to 30 s). While anything waits in the
//! spill file, new records are appended behind it, so records reach the store in the order they
//! were handed over. On shutdown it writes (or spills) what is queued and syncs the spill file.

use std::{sync::Arc, time::Duration};

use prometheus::{Histogram, IntGauge};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use super::{
    Counters,
    record::UsageRecord,
    spill::Spill,
    store::{Store, StoreError},
};

/// Most records per batch.
pub const BATCH: usize = 512;
/// Longest a record waits for its batch to fill.
pub const FLUSH: Duration = Duration::from_millis(100);
/// How often the writer looks at the spill file when idle.
const TICK: Duration = Duration::from_millis(250);
/// Spilled records are `fdatasync`ed at most this long after they were appended.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Longest one replay turn runs before the writer takes new records again.
const REPLAY_TURN: Duration = Duration::from_millis(500);
/// Longest one batch may take before the store counts as failing (a database that stopped
/// answering without closing the connection would otherwise hold the writer for the length of a
/// TCP timeout). The batch is then spilled; if it did commit, its replay inserts nothing twice.
const BATCH_TIMEOUT: Duration = Duration::from_secs(15);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The writer's gauges and histogram.
pub struct Gauges {
    /// 1 while the store takes writes.
    pub store_up: IntGauge,
    /// Bytes waiting in the spill file.
    pub spill_bytes: IntGauge,
    /// Records waiting in the channel.
    pub queue_depth: IntGauge,
    /// Seconds per stored batch.
    pub batch_seconds: Histogram,
}

/// The task that owns the channel's receiving end.
pub struct Writer {
    /// The store.
    pub store: Arc<Store>,
    /// The spill file.
    pub spill: Arc<Spill>,
    /// Records handed over by requests.
    pub rx: mpsc::Receiver<Arc<UsageRecord>>,
    /// Record counters.
    pub counters: Counters,
    /// Gauges.
    pub gauges: Gauges,
    /// How far the spill file has been replayed.
    replay_offset: u64,
    /// Set while the store is failing: when to try it again.
    retry_at: Option<Instant>,
    backoff: Duration,
    next_sync: Instant,
}

impl Writer {
    /// A writer over these parts.
    pub fn new(
        store: Arc<Store>,
        spill: Arc<Spill>,
        rx: mpsc::Receiver<Arc<UsageRecord>>,
        counters: Counters,
        gauges: Gauges,
    ) -> Writer {
        gauges.store_up.set(1);
        Writer {
            store,
            spill,
            rx,
            counters,
            gauges,
            replay_offset: 0,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            next_sync: Instant::now() + SYNC_EVERY,
        }
    }

    /// Runs until `stop` turns true, then writes what is queued within `drain` and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, drain: Duration) {
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            let stopping = self.collect(&mut batch, &mut stop).await;
            self.write(batch).await;
            if stopping {
                break;
            }
            self.maintain().await;
        }
        self.finish(drain).await;
    }

    /// Waits for records (or a tick); returns whether to stop.
    async fn collect(
        &mut self,
        batch: &mut Vec<Arc<UsageRecord>>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return true,
            n = self.rx.recv_many(batch, BATCH) => if n == 0 { return true },
            () = tokio::time::sleep(TICK) => return false,
        }
        let deadline = Instant::now() + FLUSH;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                n = self.rx.recv_many(batch, room) => if n == 0 { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        false
    }

    /// Stores a batch, or spills it when the store is failing or records wait in the spill file.
    async fn write(&mut self, batch: Vec<Arc<UsageRecord>>) {
        if batch.is_empty() {
            return;
        }
        if !self.spill.is_empty() || self.retry_at.is_some() {
            self.spill_batch(&batch);
            return;
        }
        if let Err(e) = self.store_batch(&batch).await {
            self.failed(&e);
            self.spill_batch(&batch);
        }
    }

    async fn store_batch(&mut self, batch: &[Arc<UsageRecord>]) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let inserted = tokio::time::timeout(BATCH_TIMEOUT, self.store.insert(batch))
            .await
            .map_err(|_| StoreError::Timeout(BATCH_TIMEOUT))??;
        self.gauges
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        self.counters.written.inc_by(inserted);
        self.counters
            .duplicate
            .inc_by(batch.len() as u64 - inserted);
        self.answered();
        Ok(())
    }

    fn spill_batch(&self, batch: &[Arc<UsageRecord>]) {
        match self.spill.append(batch.iter().map(|r| &**r)) {
            Ok(()) => self.counters.spilled.inc_by(batch.len() as u64),
            Err(e) => self.counters.dropped(batch.len() as u64, &e),
        }
    }

    /// Replays the spill file when the store is due to be tried, syncs it, updates gauges.
    async fn maintain(&mut self) {
        let now = Instant::now();
        if !self.spill.is_empty() && self.retry_at.is_none_or(|at| now >= at) {
            self.replay().await;
        }
        if now >= self.next_sync {
            self.next_sync = now + SYNC_EVERY;
            if let Err(e) = self.spill.sync().await {
                tracing::error!(path = %self.spill.path().display(), "syncing the usage spill file failed: {e}");
            }
        }
        self.gauges
            .spill_bytes
            .set(i64::try_from(self.spill.len()).unwrap_or(i64::MAX));
        self.gauges.queue_depth.set(self.rx.len() as i64);
    }

    /// Writes spilled records back to the store in order, for one turn at most.
    async fn replay(&mut self) {
        let deadline = Instant::now() + REPLAY_TURN;
        while Instant::now() < deadline {
            let chunk = match self.spill.read(self.replay_offset, BATCH) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(path = %self.spill.path().display(), "reading the usage spill file failed: {e}");
                    return;
                }
            };
            if chunk.corrupt > 0 {
                self.counters.dropped(
                    chunk.corrupt,
                    &format!("{} unreadable line(s) in the spill file", chunk.corrupt),
                );
            }
            if chunk.records.is_empty() {
                if chunk.end > self.replay_offset {
                    self.replay_offset = chunk.end;
                    continue;
                }
                match self.spill.finish(self.replay_offset) {
                    Ok(true) => {
                        tracing::info!("usage spill file replayed into the store");
                        self.replay_offset = 0;
                        return;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!("truncating the usage spill file failed: {e}");
                        return;
                    }
                }
            }
            let batch: Vec<Arc<UsageRecord>> = chunk.records.into_iter().map(Arc::new).collect();
            match self.store_batch(&batch).await {
                Ok(()) => {
                    self.counters.replayed.inc_by(batch.len() as u64);
                    self.replay_offset = chunk.end;
                }
                Err(e) => {
                    self.failed(&e);
                    return;
                }
            }
        }
    }

    /// The store failed: try again after the backoff, which doubles up to [`MAX_BACKOFF`].
    fn failed(&mut self, e: &StoreError) {
        if self.retry_at.is_none() {
            tracing::warn!(
                spill = %self.spill.path().display(),
                "usage store unavailable, spilling records until it answers: {e}"
            );
            self.backoff = FIRST_BACKOFF;
        } else {
            tracing::debug!("usage store still unavailable: {e}");
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        self.gauges.store_up.set(0);
    }

    fn answered(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!(
                waiting_bytes = self.spill.len(),
                "usage store answers again; replaying the spill file"
            );
        }
        self.gauges.store_up.set(1);
    }

    /// Shutdown: what is queued goes to the store (within `limit`) or to the spill file, which
    /// is then synced. Records handed over afterwards find the channel closed and are spilled by
    /// the request itself.
    async fn finish(mut self, limit: Duration) {
        self.rx.close();
        let deadline = Instant::now() + limit;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            batch.clear();
            if self.rx.recv_many(&mut batch, BATCH).await == 0 {
                break;
            }
            let healthy = self.spill.is_empty() && self.retry_at.is_none();
            let stored = healthy
                && matches!(
                    tokio::time::timeout_at(deadline, self.store_batch(&batch)).await,
                    Ok(Ok(()))
                );
            if !stored {
                // A batch cut off by the deadline may have been committed too: replaying it
                // inserts nothing twice.
                self.retry_at.get_or_insert(deadline);
                self.spill_batch(&batch);
            }
        }
        if let Err(e) = self.spill.sync().await {
            tracing::error!("syncing the usage spill file failed: {e}");
        }
        self.gauges
            .spill_bytes
            .set(i64::try_from(self.spill.len()).unwrap_or(i64::MAX));
        if !self.spill.is_empty() {
            tracing::info!(
                path = %self.spill.path().display(),
                bytes = self.spill.len(),
                "usage records left in the spill file are replayed at the next start"
            );
        }
    }
}
