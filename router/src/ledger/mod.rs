//! The spend and rate-limit ledger: named counters that requests reserve against before they are
//! sent and settle after they end. Two implementations behind one trait: in-process (standalone,
//! persisted to a state file) and Redis (shared by every replica, atomic Lua scripts).
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
pub mod settler;

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
pub(crate) mod contract_tests {
    //! The behaviour every ledger must show; run against each implementation.
    use super::*;

    fn charge(counter: &str, limit: Option<i64>, reserve: i64) -> Charge {
        Charge {
            counter: counter.into(),
            limit,
            reserve,
            keep_for: Some(Duration::from_secs(3600)),
        }
    }

    fn req(id: &str, charges: Vec<Charge>) -> ReserveRequest {
        ReserveRequest {
            id: id.to_string(),
            charges,
            hold_for: Duration::from_secs(60),
        }
    }

    /// Admission is exact at the limit, all-or-nothing, and settles add up.
    pub async fn admission_is_exact_and_atomic(ledger: &dyn Ledger, prefix: &str) {
        let b = format!("{prefix}b");
        let k = format!("{prefix}k");
        // limit 100: 60 fits, then 40 fits exactly, then 1 does not.
        let r = ledger
            .reserve(&req(
                &format!("{prefix}r1"),
                vec![charge(&b, Some(100), 60), charge(&k, None, 60)],
            ))
            .await
            .unwrap();
        assert_eq!(r, Reserved::Admitted { used: vec![60, 60] });
        let r = ledger
            .reserve(&req(
                &format!("{prefix}r2"),
                vec![charge(&b, Some(100), 40)],
            ))
            .await
            .unwrap();
        assert_eq!(r, Reserved::Admitted { used: vec![100] });
        let r = ledger
            .reserve(&req(
                &format!("{prefix}r3"),
                vec![charge(&k, None, 1), charge(&b, Some(100), 1)],
            ))
            .await
            .unwrap();
        assert_eq!(
            r,
            Reserved::Refused {
                index: 1,
                used: 100,
                limit: 100
            }
        );
        // The refused request held nothing on the unlimited counter either.
        assert_eq!(
            ledger.read(std::slice::from_ref(&k)).await.unwrap()[0],
            CounterState {
                spent: 0,
                reserved: 60
            }
        );
        // r1 really cost 25: 75 is now in use.
        ledger
            .settle(&Settlement {
                id: format!("{prefix}r1"),
                counters: vec![(b.clone(), 25, None), (k.clone(), 25, None)],
            })
            .await
            .unwrap();
        // Settling twice changes nothing.
        ledger
            .settle(&Settlement {
                id: format!("{prefix}r1"),
                counters: vec![(b.clone(), 25, None), (k.clone(), 25, None)],
            })
            .await
            .unwrap();
        let s = ledger.read(&[b.clone(), k.clone()]).await.unwrap();
        assert_eq!(
            s,
            vec![
                CounterState {
                    spent: 25,
                    reserved: 40
                },
                CounterState {
                    spent: 25,
                    reserved: 0
                }
            ]
        );
        let r = ledger
            .reserve(&req(
                &format!("{prefix}r4"),
                vec![charge(&b, Some(100), 35)],
            ))
            .await
            .unwrap();
        assert_eq!(r, Reserved::Admitted { used: vec![100] });
        let r = ledger
            .reserve(&req(&format!("{prefix}r5"), vec![charge(&b, Some(100), 1)]))
            .await
            .unwrap();
        assert!(matches!(r, Reserved::Refused { .. }));
        // A failed request releases everything.
        ledger
            .settle(&Settlement {
                id: format!("{prefix}r4"),
                counters: vec![(b.clone(), 0, None)],
            })
            .await
            .unwrap();
        ledger
            .settle(&Settlement {
                id: format!("{prefix}r2"),
                counters: vec![(b.clone(), 40, None)],
            })
            .await
            .unwrap();
        assert_eq!(
            ledger.read(&[b]).await.unwrap()[0],
            CounterState {
                spent: 65,
                reserved: 0
            }
        );
    }

    /// A reservation that is never settled lapses after `hold_for`.
    pub async fn reservations_lapse(ledger: &dyn Ledger, prefix: &str) {
        let b = format!("{prefix}lapse");
        let mut r = req(&format!("{prefix}lapse1"), vec![charge(&b, Some(10), 10)]);
        r.hold_for = Duration::from_millis(300);
        assert!(matches!(
            ledger.reserve(&r).await.unwrap(),
            Reserved::Admitted { .. }
        ));
        let again = req(&format!("{prefix}lapse2"), vec![charge(&b, Some(10), 10)]);
        assert!(matches!(
            ledger.reserve(&again).await.unwrap(),
            Reserved::Refused { .. }
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(matches!(
            ledger.reserve(&again).await.unwrap(),
            Reserved::Admitted { .. }
        ));
        // A late settlement of the lapsed reservation still records its spend.
        ledger
            .settle(&Settlement {
                id: format!("{prefix}lapse1"),
                counters: vec![(b.clone(), 3, None)],
            })
            .await
            .unwrap();
        assert_eq!(
            ledger.read(&[b]).await.unwrap()[0],
            CounterState {
                spent: 3,
                reserved: 10
            }
        );
    }
}
