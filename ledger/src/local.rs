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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{BoxFuture, CounterState, Ledger, LedgerError, ReserveRequest, Reserved, Settlement};

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

    fn reserved(&self) -> i64 {
        self.reservations.values().map(|(a, _)| a).sum()
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
            let (at, id) = self.settled_order.pop_front().expect("front exists");
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

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The in-process ledger.
pub struct LocalLedger {
    state: Mutex<State>,
    path: Option<PathBuf>,
    dirty: Arc<Notify>,
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
        let persisted = {
            let state = self.state.lock().expect("ledger lock poisoned");
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
        f.write_all(&serde_json::to_vec(&persisted).expect("state serialises"))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let mut state = self.state.lock().expect("ledger lock poisoned");
        f(&mut state, Instant::now())
    }
}

fn expiry(keep_for: Option<Duration>) -> Option<i64> {
    keep_for.map(|d| unix_ms_now().saturating_add(super::millis(d)))
}

impl Ledger for LocalLedger {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
        let result = self.with(|state, now| {
            let mut used = Vec::with_capacity(req.charges.len());
            for (index, c) in req.charges.iter().enumerate() {
                let counter = state.counters.entry(c.counter.clone()).or_default();
                counter.purge(now);
                let current = counter.spent + counter.reserved();
                if let Some(limit) = c.limit
                    && current + c.reserve > limit
                {
                    return Reserved::Refused {
                        index,
                        used: current,
                        limit,
                    };
                }
                used.push(current + c.reserve);
            }
            let until = now + req.hold_for;
            for c in &req.charges {
                let counter = state.counters.entry(c.counter.clone()).or_default();
                counter
                    .reservations
                    .insert(req.id.clone(), (c.reserve, until));
                counter.expires_at = expiry(c.keep_for);
            }
            Reserved::Admitted { used }
        });
        Box::pin(async move { Ok(result) })
    }

    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        let changed = self.with(|state, now| {
            state.forget_settled(now);
            state.settled_order.push_back((now, s.id.clone()));
            if state.settled.insert(s.id.clone(), now).is_some() {
                return false;
            }
            for (name, actual, keep_for) in &s.counters {
                let counter = state.counters.entry(name.clone()).or_default();
                counter.reservations.remove(&s.id);
                counter.spent += actual;
                counter.expires_at = expiry(*keep_for);
            }
            true
        });
        if changed {
            self.dirty.notify_one();
        }
        Box::pin(async { Ok(()) })
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
    use crate::{Charge, contract_tests};

    #[tokio::test]
    async fn satisfies_the_ledger_contract() {
        let l = LocalLedger::in_memory();
        contract_tests::admission_is_exact_and_atomic(l.as_ref(), "t:").await;
        contract_tests::reservations_lapse(l.as_ref(), "t:").await;
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
