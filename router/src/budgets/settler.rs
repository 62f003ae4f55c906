//! Settling in the background: a request's settlement is submitted when its access record drops
//! (response sent, stream ended, client gone, error), so it is never lost to an early return. A
//! settlement the ledger cannot take (Redis down) is kept and retried every second; shutdown waits
//! for the queue to drain, within the drain timeout.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use switchboard_ledger::{Ledger, Settlement};

/// Submits settlements and retries the ones that failed.
pub struct Settler {
    ledger: Arc<dyn Ledger>,
    pending: Mutex<VecDeque<Settlement>>,
    in_flight: AtomicUsize,
    /// Count of failed settlement attempts (for metrics).
    pub errors: AtomicUsize,
    retrying: std::sync::Once,
}

impl Settler {
    /// A settler over `ledger`; its retry loop starts with the first submission.
    pub fn start(ledger: Arc<dyn Ledger>) -> Arc<Settler> {
        Arc::new(Settler {
            ledger,
            pending: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            retrying: std::sync::Once::new(),
        })
    }

    fn ensure_retry_loop(self: &Arc<Self>) {
        self.retrying.call_once(|| {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let Some(s) = weak.upgrade() else { return };
                    s.retry_pending().await;
                }
            });
        });
    }

    /// The ledger settled into.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Settles in the background.
    pub fn submit(self: &Arc<Self>, s: Settlement) {
        self.ensure_retry_loop();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.ledger.settle(&s).await {
                me.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %s.id, "settlement deferred: {e}");
                me.pending
                    .lock()
                    .expect("settler lock poisoned")
                    .push_back(s);
            }
            me.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn retry_pending(&self) {
        loop {
            let Some(s) = self
                .pending
                .lock()
                .expect("settler lock poisoned")
                .pop_front()
            else {
                return;
            };
            if let Err(e) = self.ledger.settle(&s).await {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = %s.id, "settlement still deferred: {e}");
                self.pending
                    .lock()
                    .expect("settler lock poisoned")
                    .push_front(s);
                return;
            }
            tracing::info!(id = %s.id, "deferred settlement recorded");
        }
    }

    /// Settlements submitted or deferred and not yet recorded.
    pub fn outstanding(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
            + self.pending.lock().expect("settler lock poisoned").len()
    }

    /// Waits until every submitted settlement is recorded (retrying deferred ones), or `limit`.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.outstanding() > 0 && tokio::time::Instant::now() < deadline {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                self.retry_pending().await;
            }
            if self.outstanding() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
