//! Settling in the background: a request's settlement is submitted when its access record drops
//! (response sent, stream ended, client gone, error), so it is never lost to an early return. A
//! settlement the ledger cannot take (Redis down) is kept and retried every second; shutdown waits
//! for the queue to drain, within the drain timeout. Once a settlement is recorded, the gauges of
//! the budgets it touched show what is left after it.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus::GaugeVec;
use switchboard_api::money::from_nanos;
use switchboard_ledger::{CounterState, Ledger, Settlement};

/// A budget a settlement touches: which of its counters, the budget's id and limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetGauge {
    /// Index of the budget's counter in the settlement.
    pub counter: usize,
    /// Budget id.
    pub id: String,
    /// Limit in nano-dollars.
    pub limit: i64,
}

/// A settlement, and the budgets whose gauges it refreshes.
type Job = (Settlement, Vec<BudgetGauge>);

/// The budget gauges refreshed at settlement.
#[derive(Clone)]
pub struct Gauges {
    /// `switchboard_budget_remaining_usd`.
    pub remaining_usd: GaugeVec,
    /// `switchboard_budget_used_ratio`.
    pub used_ratio: GaugeVec,
}

impl Gauges {
    /// Sets the gauges of `budget`, whose counter stands at `state`.
    pub fn show(&self, id: &str, limit: i64, used: i64) {
        let left = rust_decimal::prelude::ToPrimitive::to_f64(&from_nanos(
            limit.saturating_sub(used).max(0),
        ));
        self.remaining_usd
            .with_label_values(&[id])
            .set(left.unwrap_or(0.0));
        let ratio = if limit > 0 {
            used as f64 / limit as f64
        } else {
            1.0
        };
        self.used_ratio.with_label_values(&[id]).set(ratio);
    }

    fn refresh(&self, budgets: &[BudgetGauge], states: &[CounterState]) {
        for b in budgets {
            if let Some(s) = states.get(b.counter) {
                self.show(&b.id, b.limit, s.spent.saturating_add(s.reserved));
            }
        }
    }
}

/// Submits settlements and retries the ones that failed.
pub struct Settler {
    ledger: Arc<dyn Ledger>,
    gauges: Gauges,
    pending: Mutex<VecDeque<Job>>,
    in_flight: AtomicUsize,
    /// Count of failed settlement attempts (for metrics).
    pub errors: AtomicUsize,
    retrying: std::sync::Once,
}

impl Settler {
    /// A settler over `ledger`, refreshing `gauges`; its retry loop starts with the first
    /// submission.
    pub fn start(ledger: Arc<dyn Ledger>, gauges: Gauges) -> Arc<Settler> {
        Arc::new(Settler {
            ledger,
            gauges,
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

    /// The queue; nothing that holds it can panic, and every change to it is whole.
    fn pending(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ledger settled into.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// Settles in the background, then refreshes the gauges of `budgets`.
    pub fn submit(self: &Arc<Self>, s: Settlement, budgets: Vec<BudgetGauge>) {
        self.ensure_retry_loop();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            match me.ledger.settle_and_read(&s).await {
                Ok(states) => me.gauges.refresh(&budgets, &states),
                Err(e) => {
                    me.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = %s.id, "settlement deferred: {e}");
                    me.pending().push_back((s, budgets));
                }
            }
            me.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn retry_pending(&self) {
        loop {
            let Some((s, budgets)) = self.pending().pop_front() else {
                return;
            };
            match self.ledger.settle_and_read(&s).await {
                Ok(states) => {
                    self.gauges.refresh(&budgets, &states);
                    tracing::info!(id = %s.id, "deferred settlement recorded");
                }
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(id = %s.id, "settlement still deferred: {e}");
                    self.pending().push_front((s, budgets));
                    return;
                }
            }
        }
    }

    /// Settlements submitted or deferred and not yet recorded.
    pub fn outstanding(&self) -> usize {
        self.in_flight
            .load(Ordering::SeqCst)
            .saturating_add(self.pending().len())
    }

    /// Waits until every submitted settlement is recorded (retrying deferred ones), or `limit`.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now()
            .checked_add(limit)
            .unwrap_or_else(tokio::time::Instant::now);
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
