//! The spend and rate-limit ledger: named counters that requests reserve against before they are
//! sent and settle after they end. Two implementations behind one trait: in-process (standalone,
//! persisted to a state file) and Redis (shared by every replica, atomic Lua scripts). The router
//! reserves and settles; the operator only reads spend back into Budget and ApiKey status. Counter
//! names are `switchboard_api::counters`'; the ledger gives them no meaning.
//!
//! Units: money counters count **nano-dollars** (1e-9 USD) in `i64`. Costs are rounded *up* to the
//! nano-dollar before they are charged or reported, so nothing rounds to zero. Token and request
//! counters count tokens and requests.
//!
//! A counter holds `spent` plus live reservations. A reservation is admitted only when, for every
//! counter with a limit, `spent + reserved + amount <= limit`, checked and applied atomically for
//! all counters of the request. Reservations expire on their own after `hold_for` (longer than the
//! request can live), so a router that dies mid-request leaks nothing for longer than that.
//!
//! Bounds, the same in every implementation, so that no sum can wrap whatever callers send:
//! every amount and limit lies in `0..=`[`MAX_AMOUNT`] (2^53 - 1, where Redis's Lua doubles are
//! still exact), or the call fails with a [`LedgerError`] and changes nothing; the admission test
//! is exact; `spent` saturates at [`COUNTER_MAX`] (2^62); a reservation that would take a
//! counter's reservations past [`COUNTER_MAX`] fails. Sums are computed in `i128`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

pub mod lease;
pub mod local;
pub mod redis;

use std::{future::Future, pin::Pin, time::Duration};

/// The largest amount a charge may reserve, a settlement add, or a limit allow: 2^53 - 1.
pub const MAX_AMOUNT: i64 = (1 << 53) - 1;

/// Where a counter's `spent` saturates, and the most its live reservations may add up to: 2^62,
/// so that `spent + reserved` never leaves `i64`.
pub const COUNTER_MAX: i64 = 1 << 62;

/// The longest a reservation is held or a counter kept (a hundred years): longer values are
/// shortened to it, so no clock arithmetic overflows.
pub const MAX_KEEP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A boxed future, so the trait is object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One counter a request is charged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Counter name (window included), e.g. `b:default/team-a:m2026-11`.
    pub counter: String,
    /// Most `spent + reserved` may reach; `None` counts without limiting.
    pub limit: Option<i64>,
    /// Amount held until the request settles.
    pub reserve: i64,
    /// How long the counter must be kept after this charge (its window's end plus a grace);
    /// `None` keeps it forever.
    pub keep_for: Option<Duration>,
}

/// A reservation request: every charge is admitted, or none.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    /// Unique id (the generation id).
    pub id: String,
    /// Counters to charge.
    pub charges: Vec<Charge>,
    /// How long the reservation may live before it lapses on its own.
    pub hold_for: Duration,
}

/// The ledger's answer to a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Admitted; `used[i]` is `spent + reserved` of charge `i` including this reservation.
    Admitted {
        /// Per charge.
        used: Vec<i64>,
    },
    /// Refused by charge `index`, whose counter stood at `used` (spent + reserved) of `limit`.
    Refused {
        /// Which charge.
        index: usize,
        /// `spent + reserved` before this request.
        used: i64,
        /// The limit.
        limit: i64,
    },
}

/// What a finished request really cost, per counter of its reservation.
#[derive(Clone, Debug)]
pub struct Settlement {
    /// The reservation id.
    pub id: String,
    /// `(counter, actual amount, keep_for)`; the reservation on each counter is released and the
    /// actual amount added to `spent`.
    pub counters: Vec<(String, i64, Option<Duration>)>,
}

impl ReserveRequest {
    /// Checks the bounds every ledger enforces: amounts and limits in `0..=MAX_AMOUNT`, each
    /// counter charged once.
    pub fn check(&self) -> Result<(), LedgerError> {
        for (i, c) in self.charges.iter().enumerate() {
            if self.charges[..i].iter().any(|d| d.counter == c.counter) {
                return Err(LedgerError(format!(
                    "invalid reservation {}: counter {} is charged twice",
                    self.id, c.counter
                )));
            }
            if !in_range(c.reserve) || c.limit.is_some_and(|l| !in_range(l)) {
                return Err(LedgerError(format!(
                    "invalid reservation {}: charge {i} on {} (reserve {}, limit {:?}) is outside \
                     0..={MAX_AMOUNT}",
                    self.id, c.counter, c.reserve, c.limit
                )));
            }
        }
        Ok(())
    }
}

impl Settlement {
    /// Checks the bounds every ledger enforces: actual amounts in `0..=MAX_AMOUNT`, each counter
    /// once.
    pub fn check(&self) -> Result<(), LedgerError> {
        for (i, (counter, actual, _)) in self.counters.iter().enumerate() {
            if self.counters[..i].iter().any(|(c, _, _)| c == counter) {
                return Err(LedgerError(format!(
                    "invalid settlement {}: counter {counter} is settled twice",
                    self.id
                )));
            }
            if !in_range(*actual) {
                return Err(LedgerError(format!(
                    "invalid settlement {}: {actual} on {counter} is outside 0..={MAX_AMOUNT}",
                    self.id
                )));
            }
        }
        Ok(())
    }
}

fn in_range(amount: i64) -> bool {
    (0..=MAX_AMOUNT).contains(&amount)
}

/// `spent + reserved + amount` as a ledger reports it: exact (in `i128`), kept within `i64`.
pub(crate) fn used(spent: i64, reserved: i64, amount: i64) -> i64 {
    let sum = i128::from(spent)
        .saturating_add(i128::from(reserved))
        .saturating_add(i128::from(amount));
    i64::try_from(sum).unwrap_or(i64::MAX)
}

/// Spent and reserved amounts of a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterState {
    /// Settled.
    pub spent: i64,
    /// Held by live reservations.
    pub reserved: i64,
}

/// Why the ledger could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("spend ledger unavailable: {0}")]
pub struct LedgerError(pub String);

/// A spend and rate-limit ledger.
pub trait Ledger: Send + Sync {
    /// Atomically admits and holds every charge, or refuses naming the first that does not fit.
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>>;
    /// Releases a reservation and records what was really spent. Idempotent per reservation id.
    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// [`Ledger::settle`], then the state of each of the settlement's counters, in its order (for
    /// gauges refreshed at settlement). Implementations answer both in one round trip.
    fn settle_and_read<'a>(
        &'a self,
        s: &'a Settlement,
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async move {
            self.settle(s).await?;
            let names: Vec<String> = s.counters.iter().map(|(c, _, _)| c.clone()).collect();
            self.read(&names).await
        })
    }
    /// Current state of counters.
    fn read<'a>(
        &'a self,
        counters: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>>;
    /// Which implementation (`local`, `redis`, `redis-lease`), for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Whether generation records kept with [`Ledger::put_generation`] reach other replicas.
    fn shares_generations(&self) -> bool {
        false
    }

    /// Records what is not yet written and hands back what this process holds (a lease
    /// ledger's unused slices); called once at shutdown, after the last request settled.
    fn close(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }

    /// Keeps a generation record (JSON) for `ttl` where every replica can read it. The in-process
    /// ledger has no shared store: records stay on the replica that served them.
    fn put_generation<'a>(
        &'a self,
        _id: &'a str,
        _record: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }

    /// A generation record another replica kept, if any.
    fn get_generation<'a>(
        &'a self,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds of a duration (at most [`MAX_KEEP`]), for the wire.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.min(MAX_KEEP).as_millis()).unwrap_or(i64::MAX)
}

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests;
