//! The spend and rate-limit ledger: named counters that requests reserve against before they are
//! sent and settle after they end. Two implementations behind one trait: in-process (standalone,
//! persisted to a state file) and Redis (shared by every replica, atomic Lua scripts). The router
//! reserves and settles; the operator only reads spend back into Budget and ApiKey status. Counter
//! names are `switchboard_api::counters`'; the ledger gives them no meaning.
//!
//! Units: money counters count **nano-dollars** (1e-9 USD) in `i64` — exact, and exact in Redis's
//! Lua numbers up to $9,007,199 per counter. Costs are rounded *up* to the nano-dollar before they
//! are charged or reported, so nothing rounds to zero. Token and request counters count tokens and
//! requests.
//!
//! A counter holds `spent` plus live reservations. A reservation is admitted only when, for every
//! counter with a limit, `spent + reserved + amount <= limit`, checked and applied atomically for
//! all counters of the request. Reservations expire on their own after `hold_for` (longer than the
//! request can live), so a router that dies mid-request leaks nothing for longer than that.

pub mod local;
pub mod redis;

use std::{future::Future, pin::Pin, time::Duration};

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
    /// Current state of counters.
    fn read<'a>(
        &'a self,
        counters: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>>;
    /// Which implementation (`local`, `redis`), for logs and metrics.
    fn kind(&self) -> &'static str;

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

/// Milliseconds of a duration, for the wire.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod contract_tests;
