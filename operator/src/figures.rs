//! The leader's spend reader: with a ledger (`--redis-url`), reads every counter the status needs
//! in one `Ledger::read` — each Budget's current window and each ApiKey's current UTC month —
//! every `--spend-interval`, and at once when Budgets or ApiKeys entered the snapshot that the
//! last read did not cover. Objects whose figures moved are filed for a status write; a failed
//! read is logged, counted and forgets the figures (status keeps what it says) until the next
//! interval. Runs apart from the controller: a slow ledger never holds up a change.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use switchboard_ledger::Ledger;
use tokio::sync::{Notify, watch};

use crate::{
    controller::Shared,
    metrics::Metrics,
    outbox::{Outbox, Priority},
    status::{SpendFigures, spend_targets},
};

/// Longest a spend read may take (the Redis ledger gives up within about 2 s itself).
const SPEND_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads spend while `leader` is true, until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    interval: Duration,
    new_spenders: Arc<Notify>,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut read_at: Option<Instant> = None;
    loop {
        if !*leader.borrow_and_update() {
            read_at = None;
            tokio::select! {
                _ = leader.changed() => continue,
                _ = crate::stopped(&mut shutdown) => return,
            }
        }
        let due = read_at.map_or(Duration::ZERO, |at| interval.saturating_sub(at.elapsed()));
        if !due.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(due) => {}
                _ = new_spenders.notified() => {
                    let uncovered = {
                        let compiler = shared.compiler();
                        let figures = shared.figures.lock().expect("figures lock poisoned");
                        figures.as_ref().is_some_and(|f| !f.covers(compiler.config()))
                    };
                    if !uncovered {
                        continue;
                    }
                }
                _ = leader.changed() => continue,
                _ = crate::stopped(&mut shutdown) => return,
            }
        }
        read_at = Some(Instant::now());
        read(&shared, &outbox, &*ledger, &metrics, interval).await;
    }
}

pub(crate) async fn read(
    shared: &Shared,
    outbox: &Outbox,
    ledger: &dyn Ledger,
    metrics: &Metrics,
    interval: Duration,
) {
    let at = Timestamp::now();
    let targets = spend_targets(shared.compiler().config(), at);
    let counters: Vec<String> = targets.iter().map(|(c, _)| c.clone()).collect();
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
    metrics.spend_read(states.is_ok());
    let mut figures = shared.figures.lock().expect("figures lock poisoned");
    match states {
        Ok(states) => {
            if figures.is_none() {
                tracing::info!(
                    ledger = ledger.kind(),
                    counters = counters.len(),
                    "reading spend from the ledger"
                );
            }
            let new = SpendFigures::new(at, counters, states);
            // Objects whose counter is new or moved.
            let moved: BTreeSet<_> = targets
                .into_iter()
                .filter(|(c, _)| {
                    figures.as_ref().and_then(|f| f.counters.get(c)) != new.counters.get(c)
                })
                .map(|(_, r)| r)
                .collect();
            *figures = Some(new);
            drop(figures);
            outbox.status_all(moved, Priority::Bulk);
        }
        Err(e) => {
            tracing::warn!(
                ledger = ledger.kind(),
                "reading spend failed; spend status left as it is until the next try in {interval:?}: {e}"
            );
            *figures = None;
        }
    }
}
