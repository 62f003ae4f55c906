//! The lease ledger: budgets and rate limits shared by every replica at in-process speed. Each
//! replica takes *slices* of a counter's remaining allowance from the shared store ahead of need
//! ([`store`]: one Lua script per batch of counters), admits and settles reservations locally
//! against them ([`counter`]), and every [`LeaseSettings::flush_every`] sends one batch: spend
//! settled since the last (exact amounts, out of the slice or beyond it), slices returned (idle
//! counters — a window that turned —, a changed limit, a contended counter), slices renewed.
//! A reservation the slice cannot cover asks the store for the difference at once (with some
//! headroom: at most an eighth of what remains, so slices shrink with the remainder); the store
//! grants it only when `spent + reserved + need <= limit`, every replica's slices counted as
//! reserved. So the sum of all replicas' spend never exceeds a limit, and a replica that cannot
//! get a slice for a request's worst case refuses it, as the per-request ledger does.
//!
//! Batches are numbered; the store applies each number once, so one sent again after a lost
//! reply is never counted twice, and the reply always carries the slice the store really holds
//! for this replica. A replica that dies without [`Ledger::close`] loses its slices (with the
//! reservations and unflushed spend in them) until they lapse: each lives the longest
//! reservation made from it plus [`LeaseSettings::slack`], renewed by every batch. The design,
//! its bounds and its proof sketch are in `docs/budgets.md`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

mod counter;
pub mod store;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use counter::Counter;
use store::{Batch, Item, ItemState, LeaseStore};

use crate::{
    BoxFuture, CounterState, Ledger, LedgerError, MAX_KEEP, ReserveRequest, Reserved, Settlement,
};

/// How the lease ledger paces itself.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// How often settled spend is sent to the store, slices renewed and unused ones returned:
    /// the staleness of spend read from the store.
    pub flush_every: Duration,
    /// A slice whose counter took no reservation for this long is returned (its window
    /// turned, or its key went quiet).
    pub idle_return: Duration,
    /// How much longer than its longest reservation a slice lives without renewal.
    pub slack: Duration,
}

impl Default for LeaseSettings {
    fn default() -> LeaseSettings {
        LeaseSettings {
            flush_every: Duration::from_millis(100),
            idle_return: Duration::from_secs(1),
            slack: Duration::from_secs(1),
        }
    }
}

/// Counters a replica forgets after this long without use and with nothing held or owed.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// At most this many counters per batch.
const BATCH_MAX: usize = 512;

/// Reservation rounds (a grant taken meanwhile by a concurrent request on this replica) before a
/// refusal stands.
const ROUNDS: usize = 4;

/// How long a settled id is remembered, and at most how many: settlements here never fail, so
/// nothing retries one; the memory only guards against a caller settling twice.
const SETTLED_MEMORY: Duration = Duration::from_secs(3600);
const SETTLED_MAX: usize = 10_000;

type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Local {
    counters: Map<Counter>,
    settled: Map<Instant>,
    settled_order: VecDeque<(Instant, String)>,
    /// Generation records waiting for the next batch.
    generations: Vec<(String, String)>,
    generation_ttl: Duration,
}

impl Local {
    /// Counter `name`, created when new (no allocation on the hot path, where it exists).
    fn counter(&mut self, name: &str, now: Instant) -> &mut Counter {
        if !self.counters.contains_key(name) {
            self.counters.insert(name.to_owned(), Counter::new(now));
        }
        self.counters
            .get_mut(name)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Whether `id` is settled for the first time now.
    fn first_settlement(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.settled_order.front() {
            if now.duration_since(*at) < SETTLED_MEMORY && self.settled_order.len() <= SETTLED_MAX {
                break;
            }
            if let Some((at, old)) = self.settled_order.pop_front()
                && self.settled.get(&old) == Some(&at)
            {
                self.settled.remove(&old);
            }
        }
        self.settled_order.push_back((now, id.to_string()));
        self.settled.insert(id.to_string(), now).is_none()
    }
}

struct Control {
    seq: u64,
    /// Batches sent whose reply was lost (or not sent yet): sent again, unchanged and in order,
    /// before any new one.
    unacked: VecDeque<Batch>,
}

/// One request for the next batch: a counter, what its slice must grow by, what more it wants.
struct Ask {
    counter: String,
    need: i64,
    want: i64,
}

/// The lease ledger.
pub struct LeaseLedger {
    replica: String,
    store: Arc<dyn LeaseStore>,
    settings: LeaseSettings,
    local: Mutex<Local>,
    /// One batch at a time; held across its round trip.
    control: tokio::sync::Mutex<Control>,
    /// Set by the tests' kill: the replica is dead and sends nothing more.
    #[cfg(test)]
    halted: std::sync::atomic::AtomicBool,
}

impl LeaseLedger {
    /// A lease ledger over `store`, as replica `replica` (unique per process), flushing in the
    /// background while it lives.
    pub fn start(
        store: Arc<dyn LeaseStore>,
        replica: String,
        settings: LeaseSettings,
    ) -> Arc<LeaseLedger> {
        let ledger = Arc::new(LeaseLedger {
            replica,
            store,
            settings,
            local: Mutex::default(),
            control: tokio::sync::Mutex::new(Control {
                seq: 0,
                unacked: VecDeque::new(),
            }),
            #[cfg(test)]
            halted: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&ledger);
        let every = ledger.settings.flush_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { return };
                if let Err(e) = l.flush().await {
                    tracing::warn!("lease ledger: batch deferred: {e}");
                }
            }
        });
        ledger
    }

    /// A lease ledger on the Redis at `url`, as a new replica.
    pub fn redis(url: &str, settings: LeaseSettings) -> anyhow::Result<Arc<LeaseLedger>> {
        let store = Arc::new(store::RedisLeaseStore::new(url)?);
        Ok(LeaseLedger::start(store, new_replica_id(), settings))
    }

    /// This replica's id in the store.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One background round: flushes settled spend, renews slices that reservations still need,
    /// returns unused slices of idle or contended counters, forgets idle counters, writes the
    /// generation records waiting.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let now = Instant::now();
        let (asks, generations) = {
            let mut local = self.local();
            let s = &self.settings;
            local
                .counters
                .retain(|_, c| !(c.is_idle() && now.duration_since(c.last_used) >= FORGET_AFTER));
            let mut asks = Vec::new();
            for (name, c) in local.counters.iter_mut() {
                c.purge(now);
                let quiet = now.duration_since(c.last_used);
                // Another replica was refused here: what this one is not using goes back.
                let yields = c.contended(now) && quiet >= s.flush_every;
                if (quiet >= s.idle_return || yields) && c.available() > 0 {
                    c.return_unused();
                    c.slice_want = 0;
                }
                let renew = c.store.slice > 0
                    && c.holds_any()
                    && c.valid_until.is_none_or(|v| {
                        v < now
                            .checked_add(
                                c.longest_hold
                                    .saturating_add(s.slack.checked_div(2).unwrap_or_default()),
                            )
                            .unwrap_or(now)
                    });
                // Near the limit (less room left than twice this slice), a slice held unused rides
                // along, so it hears when another replica is refused for want of it.
                if c.has_pending() || renew || (c.available() > 0 && c.near_limit()) {
                    asks.push(Ask {
                        counter: name.clone(),
                        need: 0,
                        want: 0,
                    });
                }
            }
            let ttl = local.generation_ttl;
            (asks, (std::mem::take(&mut local.generations), ttl))
        };
        if !generations.0.is_empty()
            && let Err(e) = self
                .store
                .put_generations(&generations.0, generations.1)
                .await
        {
            tracing::debug!("generation records not shared: {e}");
        }
        self.sync(asks).await
    }

    /// Sends the batches whose reply was lost, if any (unchanged, so each counts once), then
    /// `asks` and every counter with something pending, in batches of at most [`BATCH_MAX`].
    async fn sync(&self, asks: Vec<Ask>) -> Result<(), LedgerError> {
        let mut control = self.control.lock().await;
        #[cfg(test)]
        if self.halted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LedgerError("killed".into()));
        }
        self.send_unacked(&mut control).await?;
        {
            let mut local = self.local();
            let slack = self.settings.slack;
            let now = Instant::now();
            let mut named = std::collections::HashSet::with_capacity(asks.len());
            let mut items: Vec<Item> = Vec::with_capacity(asks.len());
            for ask in &asks {
                if named.insert(ask.counter.as_str()) {
                    let c = local.counter(&ask.counter, now);
                    items.push(c.item(&ask.counter, ask.need, ask.want, slack, now));
                }
            }
            for (name, c) in local.counters.iter_mut() {
                if c.has_pending() && !named.contains(name.as_str()) {
                    items.push(c.item(name, 0, 0, slack, now));
                }
            }
            while !items.is_empty() {
                let rest = items.split_off(items.len().min(BATCH_MAX));
                control.seq = control.seq.saturating_add(1);
                let seq = control.seq;
                control.unacked.push_back(Batch {
                    replica: self.replica.clone(),
                    seq,
                    items,
                });
                items = rest;
            }
        }
        self.send_unacked(&mut control).await
    }

    /// Sends the batches not yet acknowledged, in order, until one fails.
    async fn send_unacked(&self, control: &mut Control) -> Result<(), LedgerError> {
        while let Some(batch) = control.unacked.front() {
            let sent_at = Instant::now();
            let states = self.store.sync(batch).await?;
            self.acknowledge(batch, &states, sent_at);
            control.unacked.pop_front();
        }
        Ok(())
    }

    fn acknowledge(&self, batch: &Batch, states: &[ItemState], sent_at: Instant) {
        let now = Instant::now();
        let mut local = self.local();
        for (item, state) in batch.items.iter().zip(states) {
            local
                .counter(&item.counter, now)
                .acknowledged(item, *state, sent_at, now);
        }
    }

    /// Admits `req` from the slices held, or says what to ask the store for. After a batch
    /// (`fresh`), a charge whose counter has no room refuses (the first, in order).
    fn try_admit(&self, req: &ReserveRequest, fresh: bool) -> Result<Attempt, LedgerError> {
        let now = Instant::now();
        let hold_for = req.hold_for.min(MAX_KEEP);
        let until = now.checked_add(hold_for).unwrap_or(now);
        let mut local = self.local();
        let mut admitted = true;
        for c in &req.charges {
            let counter = local.counter(&c.counter, now);
            counter.purge(now);
            if !fresh {
                counter.charged(c.reserve, c.limit, hold_for, now);
                counter.keep_ms = keep_ms(c.keep_for);
            }
            admitted &= counter.admits(c.reserve, c.limit, until);
        }
        if admitted {
            let mut used = Vec::with_capacity(req.charges.len());
            for c in &req.charges {
                let counter = local.counter(&c.counter, now);
                used.push(crate::used(
                    counter.state().spent,
                    counter.state().reserved,
                    c.reserve,
                ));
                counter.hold(&req.id, c.reserve, until);
            }
            return Ok(Attempt::Admitted(used));
        }
        if fresh {
            for (index, c) in req.charges.iter().enumerate() {
                let counter = local.counter(&c.counter, now);
                if let Some(limit) = c.limit
                    && counter.refuses(c.reserve, c.limit)
                {
                    let s = counter.state();
                    let others_hold = counter.store.reserved > counter.store.slice;
                    return Ok(Attempt::Refused(
                        Reserved::Refused {
                            index,
                            used: crate::used(s.spent, s.reserved, 0),
                            limit,
                        },
                        others_hold,
                    ));
                }
                if c.limit.is_none() && counter.known && !counter.admits(c.reserve, None, until) {
                    return Err(LedgerError(format!(
                        "counter {} cannot hold more reservations",
                        c.counter
                    )));
                }
            }
        }
        let asks = req
            .charges
            .iter()
            .map(|c| {
                let counter = local.counter(&c.counter, now);
                let need = i128::from(c.reserve)
                    .saturating_sub(counter.available().max(0))
                    .max(0);
                let want = if counter.contended(now) || c.limit.is_none() {
                    0
                } else {
                    counter.slice_want
                };
                Ask {
                    counter: c.counter.clone(),
                    need: i64::try_from(need).unwrap_or(0),
                    want,
                }
            })
            .collect();
        Ok(Attempt::Ask(asks))
    }

    /// Records settlement `s` here (sent with the next batch); the counters it names that the
    /// store has not answered for yet.
    fn settle_here(&self, s: &Settlement) -> Result<Vec<Ask>, LedgerError> {
        s.check()?;
        let now = Instant::now();
        let mut local = self.local();
        let first = local.first_settlement(&s.id, now);
        Ok(s.counters
            .iter()
            .filter_map(|(name, actual, keep_for)| {
                let c = local.counter(name, now);
                if first {
                    c.settle(&s.id, *actual);
                    c.keep_ms = keep_ms(*keep_for);
                }
                (!c.known).then(|| Ask {
                    counter: name.clone(),
                    need: 0,
                    want: 0,
                })
            })
            .collect())
    }

    /// The refusal of `req` by its first charge this replica cannot cover now.
    fn first_short(&self, req: &ReserveRequest) -> Reserved {
        let now = Instant::now();
        let until = now.checked_add(req.hold_for.min(MAX_KEEP)).unwrap_or(now);
        let mut local = self.local();
        let short = req.charges.iter().enumerate().find_map(|(index, c)| {
            let counter = local.counter(&c.counter, now);
            (!counter.admits(c.reserve, c.limit, until)).then(|| (index, counter.state()))
        });
        let (index, s) = short.unwrap_or_default();
        Reserved::Refused {
            index,
            used: crate::used(s.spent, s.reserved, 0),
            limit: req.charges.get(index).and_then(|c| c.limit).unwrap_or(0),
        }
    }

    /// The state of `counters` as this replica knows them, for the names given.
    fn states(&self, counters: impl Iterator<Item = String>) -> Vec<CounterState> {
        let now = Instant::now();
        let mut local = self.local();
        counters
            .map(|name| {
                let c = local.counter(&name, now);
                c.purge(now);
                c.state()
            })
            .collect()
    }
}

enum Attempt {
    Admitted(Vec<i64>),
    /// Refused; whether others hold reservations or slices on the refusing counter (which
    /// they may be about to return).
    Refused(Reserved, bool),
    Ask(Vec<Ask>),
}

fn keep_ms(keep_for: Option<Duration>) -> i64 {
    keep_for.map_or(0, |d| crate::millis(d).max(1))
}

/// A random id for this process in the store.
pub fn new_replica_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Ledger for LeaseLedger {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
        Box::pin(async move {
            req.check()?;
            let mut fresh = false;
            let mut waited = false;
            let mut batches = 0;
            loop {
                match self.try_admit(req, fresh)? {
                    Attempt::Admitted(used) => return Ok(Reserved::Admitted { used }),
                    // Other replicas hear of the refusal at their next batch and return their
                    // unused slices at the one after: ask once more then.
                    Attempt::Refused(_, true) if !waited => {
                        waited = true;
                        fresh = false;
                        let wait = self.settings.flush_every.saturating_mul(5);
                        tokio::time::sleep(wait.checked_div(2).unwrap_or(wait)).await;
                    }
                    Attempt::Refused(r, _) => return Ok(r),
                    Attempt::Ask(asks) if batches < ROUNDS => {
                        self.sync(asks).await?;
                        batches = batches.saturating_add(1);
                        fresh = true;
                    }
                    // Grants kept going to concurrent requests on this replica.
                    Attempt::Ask(_) => return Ok(self.first_short(req)),
                }
            }
        })
    }

    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        let settled = self.settle_here(s).map(drop);
        Box::pin(async move { settled })
    }

    fn settle_and_read<'a>(
        &'a self,
        s: &'a Settlement,
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async move {
            let unknown = self.settle_here(s)?;
            // A counter first met in a settlement: what the store holds is needed to answer
            // (the settlement itself is recorded either way).
            if !unknown.is_empty()
                && let Err(e) = self.sync(unknown).await
            {
                tracing::debug!("lease ledger: counters read from this replica only: {e}");
            }
            Ok(self.states(s.counters.iter().map(|(c, _, _)| c.clone())))
        })
    }

    fn read<'a>(
        &'a self,
        counters: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async move {
            let asks = counters
                .iter()
                .map(|c| Ask {
                    counter: c.clone(),
                    need: 0,
                    want: 0,
                })
                .collect();
            self.sync(asks).await?;
            Ok(self.states(counters.iter().cloned()))
        })
    }

    fn kind(&self) -> &'static str {
        "redis-lease"
    }

    fn shares_generations(&self) -> bool {
        true
    }

    fn put_generation<'a>(
        &'a self,
        id: &'a str,
        record: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        {
            let mut local = self.local();
            local.generation_ttl = local.generation_ttl.max(ttl);
            local.generations.push((id.to_string(), record.to_string()));
        }
        Box::pin(async { Ok(()) })
    }

    fn get_generation<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async move {
            let (waiting, ttl) = {
                let local = self.local();
                let waiting = local
                    .generations
                    .iter()
                    .find(|(g, _)| g == id)
                    .map(|(_, r)| r.clone());
                (waiting, local.generation_ttl.max(Duration::from_secs(3600)))
            };
            match waiting {
                Some(r) => Ok(Some(r)),
                None => self.store.get_generation(id, ttl).await,
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move {
            // First a batch whose reply was lost, if any, so the slices are known exactly.
            self.flush().await?;
            {
                let mut local = self.local();
                for c in local.counters.values_mut() {
                    c.return_unused();
                }
            }
            self.flush().await
        })
    }
}

#[cfg(test)]
mod tests;
