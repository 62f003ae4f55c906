//! The in-process ledger for a standalone router. Counters live in memory; settled spend is
//! written to the state file (`--state-file`) by a background flusher within about 100 ms of each
//! change, atomically (temporary file, fsync, rename). So a crash loses at most the spend settled
//! in the last ~100 ms plus whatever was in flight; reservations are never persisted (they die with
//! the process, which is what a crash should do to them).

use std::{
    collections::{HashMap, VecDeque},
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    BoxFuture, COUNTER_MAX, CounterState, Ledger, LedgerError, MAX_KEEP, ReserveRequest, Reserved,
    Settlement, unix_ms_now, used,
};

#[derive(Default)]
struct Counter {
    spent: i64,
    reservations: HashMap<String, (i64, Instant)>,
    /// Unix milliseconds after which the counter is dropped.
    expires_at: Option<i64>,
}

impl Counter {
    fn purge(&mut self, now: Instant) {
        self.reservations.retain(|_, (_, until)| *until > now);
    }

    /// The live reservations' sum, exact.
    fn reserved_exact(&self) -> i128 {
        self.reservations
            .values()
            .fold(0i128, |sum, (a, _)| sum.saturating_add(i128::from(*a)))
    }

    /// The live reservations' sum (at most [`COUNTER_MAX`] by construction).
    fn reserved(&self) -> i64 {
        i64::try_from(self.reserved_exact()).unwrap_or(i64::MAX)
    }

    /// Adds `actual` to `spent`, saturating at [`COUNTER_MAX`].
    fn add_spent(&mut self, actual: i64) {
        let sum = i128::from(self.spent).saturating_add(i128::from(actual));
        self.spent = i64::try_from(sum.min(i128::from(COUNTER_MAX))).unwrap_or(COUNTER_MAX);
    }

    /// Whether `amount` more fits under `limit`: `spent + reserved + amount <= limit`, exact.
    fn admits(&self, amount: i64, limit: i64) -> bool {
        i128::from(self.spent)
            .saturating_add(self.reserved_exact())
            .saturating_add(i128::from(amount))
            <= i128::from(limit)
    }
}

#[derive(Default)]
struct State {
    counters: HashMap<String, Counter>,
    /// Ids settled in the last hour (a repeated settlement is ignored), with when.
    settled: HashMap<String, Instant>,
    /// The same ids in the order they were settled, so expired ones are dropped from the front
    /// instead of scanning every id on each settlement. An entry whose time no longer matches
    /// `settled` (the id was settled again later) is skipped.
    settled_order: VecDeque<(Instant, String)>,
}

/// How long a settled id is remembered.
const SETTLED_MEMORY: Duration = Duration::from_secs(3600);

/// At most this many settled ids are remembered, so memory stays bounded under heavy load. The
/// in-process ledger never fails a settlement, so nothing retries one: the memory only guards
/// against a caller settling twice.
const SETTLED_MAX: usize = 100_000;

impl State {
    /// Forgets ids settled `SETTLED_MEMORY` or longer ago.
    fn forget_settled(&mut self, now: Instant) {
        while let Some((at, _)) = self.settled_order.front() {
            if now.duration_since(*at) < SETTLED_MEMORY && self.settled_order.len() <= SETTLED_MAX {
                break;
            }
            let Some((at, id)) = self.settled_order.pop_front() else {
                break;
            };
            if self.settled.get(&id) == Some(&at) {
                self.settled.remove(&id);
            }
        }
    }
}

/// The persisted form: settled spend per counter.
#[derive(Serialize, Deserialize, Default)]
struct Persisted {
    version: u32,
    counters: HashMap<String, PersistedCounter>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedCounter {
    spent: i64,
    expires_at: Option<i64>,
}

/// The in-process ledger.
pub struct LocalLedger {
    state: Mutex<State>,
    path: Option<PathBuf>,
    dirty: Arc<Notify>,
    /// Held while the state file is written: the flusher and the final flush at shutdown share
    /// one temporary file, and the rename of the second would find it gone.
    writing: Mutex<()>,
}

impl Drop for LocalLedger {
    fn drop(&mut self) {
        // Wake the flusher so it sees the ledger is gone and ends.
        self.dirty.notify_one();
    }
}

impl LocalLedger {
    /// A ledger that keeps nothing across restarts.
    pub fn in_memory() -> Arc<LocalLedger> {
        Arc::new(LocalLedger {
            state: Mutex::default(),
            path: None,
            dirty: Arc::new(Notify::new()),
            writing: Mutex::default(),
        })
    }

    /// A ledger persisted to `path`, loading what is there, and starting its flusher.
    pub fn open(path: &Path) -> anyhow::Result<Arc<LocalLedger>> {
        let mut state = State::default();
        if path.exists() {
            let text = fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read state file {}: {e}", path.display()))?;
            let persisted: Persisted = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("state file {} is corrupt: {e}", path.display()))?;
            let now = unix_ms_now();
            for (name, c) in persisted.counters {
                if c.expires_at.is_none_or(|t| t > now) {
                    state.counters.insert(
                        name,
                        Counter {
                            spent: c.spent,
                            reservations: HashMap::new(),
                            expires_at: c.expires_at,
                        },
                    );
                }
            }
        }
        let ledger = Arc::new(LocalLedger {
            state: Mutex::new(state),
            path: Some(path.to_path_buf()),
            dirty: Arc::new(Notify::new()),
            writing: Mutex::default(),
        });
        let flusher = Arc::downgrade(&ledger);
        let dirty = ledger.dirty.clone();
        tokio::spawn(async move {
            loop {
                dirty.notified().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(l) = flusher.upgrade() else { return };
                if let Err(e) = l.flush() {
                    tracing::error!("writing the ledger state file failed: {e}");
                }
            }
        });
        Ok(ledger)
    }

    /// Writes settled spend to the state file now (also called on shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let persisted = {
            let state = self.lock();
            Persisted {
                version: 1,
                counters: state
                    .counters
                    .iter()
                    .filter(|(_, c)| c.spent != 0)
                    .map(|(k, c)| {
                        (
                            k.clone(),
                            PersistedCounter {
                                spent: c.spent,
                                expires_at: c.expires_at,
                            },
                        )
                    })
                    .collect(),
            }
        };
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&persisted)?)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    }

    /// The state; a panic while it was held (impossible: nothing in here panics) would not make
    /// it unusable, since every change is applied whole or not at all.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut state = self.lock();
        f(&mut state, Instant::now())
    }
}

fn expiry(keep_for: Option<Duration>) -> Option<i64> {
    keep_for.map(|d| unix_ms_now().saturating_add(super::millis(d)))
}

/// `now + hold_for`, with `hold_for` at most [`MAX_KEEP`].
fn until(now: Instant, hold_for: Duration) -> Instant {
    now.checked_add(hold_for.min(MAX_KEEP)).unwrap_or(now)
}

impl Ledger for LocalLedger {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
        if let Err(e) = req.check() {
            return Box::pin(async move { Err(e) });
        }
        let result = self.with(|state, now| {
            let mut in_use = Vec::with_capacity(req.charges.len());
            for (index, c) in req.charges.iter().enumerate() {
                let counter = state.counters.entry(c.counter.clone()).or_default();
                counter.purge(now);
                if let Some(limit) = c.limit
                    && !counter.admits(c.reserve, limit)
                {
                    return Ok(Reserved::Refused {
                        index,
                        used: used(counter.spent, counter.reserved(), 0),
                        limit,
                    });
                }
                if counter
                    .reserved_exact()
                    .saturating_add(i128::from(c.reserve))
                    > i128::from(COUNTER_MAX)
                {
                    return Err(LedgerError(format!(
                        "counter {} cannot hold more reservations",
                        c.counter
                    )));
                }
                in_use.push(used(counter.spent, counter.reserved(), c.reserve));
            }
            let until = until(now, req.hold_for);
            for c in &req.charges {
                let counter = state.counters.entry(c.counter.clone()).or_default();
                counter
                    .reservations
                    .insert(req.id.clone(), (c.reserve, until));
                counter.expires_at = expiry(c.keep_for);
            }
            Ok(Reserved::Admitted { used: in_use })
        });
        Box::pin(async move { result })
    }

    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        let settled = self.settle_and_read(s);
        Box::pin(async move { settled.await.map(drop) })
    }

    fn settle_and_read<'a>(
        &'a self,
        s: &'a Settlement,
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        if let Err(e) = s.check() {
            return Box::pin(async move { Err(e) });
        }
        let (changed, states) = self.with(|state, now| {
            state.forget_settled(now);
            state.settled_order.push_back((now, s.id.clone()));
            let first = state.settled.insert(s.id.clone(), now).is_none();
            let states = s
                .counters
                .iter()
                .map(|(name, actual, keep_for)| {
                    let counter = state.counters.entry(name.clone()).or_default();
                    if first {
                        counter.reservations.remove(&s.id);
                        counter.add_spent(*actual);
                        counter.expires_at = expiry(*keep_for);
                    }
                    counter.purge(now);
                    CounterState {
                        spent: counter.spent,
                        reserved: counter.reserved(),
                    }
                })
                .collect();
            (first, states)
        });
        if changed {
            self.dirty.notify_one();
        }
        Box::pin(async move { Ok(states) })
    }

    fn read<'a>(
        &'a self,
        counters: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        let states = self.with(|state, now| {
            counters
                .iter()
                .map(|name| match state.counters.get_mut(name) {
                    Some(c) => {
                        c.purge(now);
                        CounterState {
                            spent: c.spent,
                            reserved: c.reserved(),
                        }
                    }
                    None => CounterState::default(),
                })
                .collect()
        });
        Box::pin(async move { Ok(states) })
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_settled_ids_is_bounded() {
        let mut s = State::default();
        let now = Instant::now();
        for i in 0..SETTLED_MAX + 10 {
            s.settled_order.push_back((now, i.to_string()));
            s.settled.insert(i.to_string(), now);
        }
        s.forget_settled(now);
        assert_eq!(s.settled_order.len(), SETTLED_MAX);
        assert_eq!(s.settled.len(), SETTLED_MAX);
        assert!(
            !s.settled.contains_key("0") && s.settled.contains_key(&(SETTLED_MAX + 9).to_string())
        );
    }

    #[test]
    fn settled_ids_are_forgotten_an_hour_after_their_last_settlement() {
        let mut s = State::default();
        let t0 = Instant::now();
        for (i, id) in ["a", "b", "a"].iter().enumerate() {
            let at = t0 + Duration::from_secs(i as u64 * 1000);
            s.settled_order.push_back((at, id.to_string()));
            s.settled.insert(id.to_string(), at);
        }
        // "a" at 0 s and "b" at 1000 s are an hour old; "a" was settled again at 2000 s.
        s.forget_settled(t0 + SETTLED_MEMORY + Duration::from_secs(1000));
        assert!(s.settled.contains_key("a"));
        assert!(!s.settled.contains_key("b"));
        assert_eq!(s.settled_order.len(), 1);
        s.forget_settled(t0 + SETTLED_MEMORY + Duration::from_secs(2000));
        assert!(s.settled.is_empty() && s.settled_order.is_empty());
    }
    use crate::{Charge, MAX_AMOUNT, contract_tests};

    #[tokio::test]
    async fn satisfies_the_ledger_contract() {
        let l = LocalLedger::in_memory();
        contract_tests::admission_is_exact_and_atomic(l.as_ref(), "t:").await;
        contract_tests::reservations_lapse(l.as_ref(), "t:").await;
    }

    /// #16.1: reservations and settlements in random order with random values, extremes and
    /// out-of-range ones included, agree with the exact model: nothing wraps, no invalid amount
    /// is taken, and admission never lets `spent + reserved` pass a limit.
    #[test]
    fn random_workloads_agree_with_the_exact_model() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let l = LocalLedger::in_memory();
        contract_tests::check_random_workloads(&rt, l.as_ref(), "p:", 512);
    }

    /// #16.1: what a hostile upstream made the router send before the fix (a settlement of
    /// `i64::MAX`, then one more) wrapped the counter negative; now it is refused, whole.
    #[tokio::test]
    async fn amounts_outside_the_ledger_range_are_refused_and_change_nothing() {
        let l = LocalLedger::in_memory();
        let settle = |id: &str, actual| Settlement {
            id: id.into(),
            counters: vec![("b".into(), 5, None), ("k".into(), actual, None)],
        };
        assert!(l.settle(&settle("a", i64::MAX)).await.is_err());
        assert!(l.settle(&settle("b", -1)).await.is_err());
        l.settle(&settle("c", MAX_AMOUNT)).await.unwrap();
        let read = l.read(&["b".into(), "k".into()]).await.unwrap();
        assert_eq!(read[0].spent, 5, "refused settlements changed nothing");
        assert_eq!(read[1].spent, MAX_AMOUNT);
        let reserve = |amount, limit| ReserveRequest {
            id: "r".into(),
            charges: vec![Charge {
                counter: "b".into(),
                limit,
                reserve: amount,
                keep_for: None,
            }],
            hold_for: Duration::from_secs(60),
        };
        // `spent + reserved + amount <= limit` overflowed before and admitted this.
        assert!(l.reserve(&reserve(i64::MAX, Some(1_000))).await.is_err());
        assert!(l.reserve(&reserve(1, Some(i64::MAX))).await.is_err());
        assert_eq!(
            l.reserve(&reserve(MAX_AMOUNT, Some(MAX_AMOUNT)))
                .await
                .unwrap(),
            Reserved::Refused {
                index: 0,
                used: 5,
                limit: MAX_AMOUNT
            }
        );
        // Spent saturates at COUNTER_MAX rather than wrapping.
        for i in 0..600 {
            l.settle(&Settlement {
                id: format!("s{i}"),
                counters: vec![("k".into(), MAX_AMOUNT, None)],
            })
            .await
            .unwrap();
        }
        assert_eq!(l.read(&["k".into()]).await.unwrap()[0].spent, COUNTER_MAX);
    }

    #[tokio::test]
    async fn settled_spend_survives_a_restart_and_reservations_do_not() {
        let dir = std::env::temp_dir().join(format!("sb-ledger-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = fs::remove_file(&path);
        {
            let l = LocalLedger::open(&path).unwrap();
            let charge = |reserve| Charge {
                counter: "b".into(),
                limit: Some(100),
                reserve,
                keep_for: Some(Duration::from_secs(3600)),
            };
            let req = |id: &str, reserve| ReserveRequest {
                id: id.into(),
                charges: vec![charge(reserve)],
                hold_for: Duration::from_secs(60),
            };
            l.reserve(&req("a", 50)).await.unwrap();
            l.reserve(&req("b", 30)).await.unwrap();
            l.settle(&Settlement {
                id: "a".into(),
                counters: vec![("b".into(), 42, Some(Duration::from_secs(3600)))],
            })
            .await
            .unwrap();
            // The flusher writes within ~100 ms; no explicit flush here.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let l = LocalLedger::open(&path).unwrap();
        assert_eq!(
            l.read(&["b".into()]).await.unwrap()[0],
            CounterState {
                spent: 42,
                reserved: 0
            }
        );
    }
}
