//! One counter as one replica sees it: what the store said at the last batch (spent, reserved,
//! this replica's slice), the reservations held here, and what has moved since (spent from the
//! slice, spent beyond it, returned) — in the batch in flight and after it. Pure bookkeeping; the
//! ledger decides when to talk to the store.
//!
//! The slice is partitioned: `slice = available + held (leased reservations) + outflows` where
//! outflows are what this replica spent from it or returned and the store has not yet
//! acknowledged. A reservation is admitted from `available` only; so whatever this replica ever
//! holds or spends of a limited counter is covered by a slice the store granted under the limit.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::store::{Item, ItemState};
use crate::{COUNTER_MAX, CounterState, MAX_AMOUNT};

/// Amounts spent or returned and not yet acknowledged by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flows {
    /// Spent out of the slice.
    pub from_slice: i64,
    /// Spent beyond any slice.
    pub beyond: i64,
    /// Returned unused.
    pub returned: i64,
}

impl Flows {
    fn is_zero(&self) -> bool {
        *self == Flows::default()
    }

    /// What leaves the slice.
    fn out_of_slice(&self) -> i128 {
        i128::from(self.from_slice).saturating_add(i128::from(self.returned))
    }

    pub fn spent(&self) -> i128 {
        i128::from(self.from_slice).saturating_add(i128::from(self.beyond))
    }
}

/// A reservation held by this replica.
#[derive(Clone, Copy, Debug)]
struct Hold {
    amount: i64,
    until: Instant,
    /// Taken out of the slice (the counter had a limit when it was made).
    leased: bool,
}

/// One counter, on one replica.
#[derive(Debug)]
pub(crate) struct Counter {
    /// The store has answered for this counter at least once.
    pub known: bool,
    /// The limit of the last charge on it.
    pub limit: Option<i64>,
    /// The store's answer at the last acknowledged batch.
    pub store: ItemState,
    /// Reservations from the slice may end no later than this (the slice lives at least that
    /// long in the store unless renewed).
    pub valid_until: Option<Instant>,
    holds: HashMap<String, Hold, foldhash::fast::RandomState>,
    /// No hold lapses before this (it may be earlier than the earliest hold left).
    first_lapse: Option<Instant>,
    /// Sum of leased holds.
    held_leased: i64,
    /// Sum of holds on no slice (counters without a limit), exact.
    held_free: i128,
    /// In the batch in flight.
    pub sending: Flows,
    /// Since.
    pub pending: Flows,
    /// When a reservation last charged it.
    pub last_used: Instant,
    /// The longest reservation it has held: slices live that much plus the slack.
    pub longest_hold: Duration,
    /// How much beyond the need the next grant asks for; grows while grants come fast.
    pub slice_want: i64,
    /// When the store last granted it a slice.
    pub last_grant: Option<Instant>,
    /// Another replica was refused here lately: lease nothing ahead, return what is unused.
    pub contended_until: Option<Instant>,
    /// How long the store keeps the counter, milliseconds (0: forever; -1: not known here, so
    /// its expiry is left alone).
    pub keep_ms: i64,
    /// When `keep_ms` was last sent, and what: sent again after [`KEEP_EVERY`] or a change.
    keep_sent: Option<(Instant, i64)>,
}

/// How often a counter's expiry is refreshed in the store while this replica uses it (its
/// keys live at least a window's length, or two minutes for rate limits, beyond it).
const KEEP_EVERY: Duration = Duration::from_secs(30);

/// Sum of `a` and `b`, kept within `0..=COUNTER_MAX`.
fn add_capped(a: i64, b: i64) -> i64 {
    i64::try_from(
        i128::from(a)
            .saturating_add(i128::from(b))
            .clamp(0, i128::from(COUNTER_MAX)),
    )
    .unwrap_or(COUNTER_MAX)
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX))).unwrap_or(0)
}

impl Counter {
    /// A counter this replica has not asked the store about yet.
    pub fn new(now: Instant) -> Counter {
        Counter {
            known: false,
            limit: None,
            store: ItemState::default(),
            valid_until: None,
            holds: HashMap::default(),
            first_lapse: None,
            held_leased: 0,
            held_free: 0,
            sending: Flows::default(),
            pending: Flows::default(),
            last_used: now,
            longest_hold: Duration::ZERO,
            slice_want: 0,
            last_grant: None,
            contended_until: None,
            keep_ms: -1,
            keep_sent: None,
        }
    }

    /// What of the slice is free for new reservations (negative when the store lost the slice
    /// under live reservations: a replica cut off for longer than a slice lives).
    pub fn available(&self) -> i128 {
        i128::from(self.store.slice)
            .saturating_sub(self.sending.out_of_slice())
            .saturating_sub(self.pending.out_of_slice())
            .saturating_sub(i128::from(self.held_leased))
    }

    /// Spent here and not yet acknowledged by the store.
    pub fn unflushed(&self) -> i128 {
        self.sending.spent().saturating_add(self.pending.spent())
    }

    /// Spent and reserved as this replica knows them: the store's figures at the last batch,
    /// with this replica's slice counted as what it really holds and spent. Exact when this
    /// replica is the only one; otherwise other replicas' slices count as reserved.
    pub fn state(&self) -> CounterState {
        let spent = i128::from(self.store.spent)
            .saturating_add(self.unflushed())
            .min(i128::from(COUNTER_MAX));
        let reserved = i128::from(self.store.reserved)
            .saturating_sub(i128::from(self.store.slice))
            .saturating_add(i128::from(self.held_leased))
            .saturating_add(self.held_free)
            .max(0);
        CounterState {
            spent: to_i64(spent),
            reserved: to_i64(reserved),
        }
    }

    /// `spent + reserved` as [`Counter::state`] tells it, exact.
    pub fn used(&self) -> i128 {
        let s = self.state();
        i128::from(s.spent).saturating_add(i128::from(s.reserved))
    }

    /// Whether a reservation of `amount` under `limit` ending at `until` is admitted here
    /// without asking the store.
    pub fn admits(&self, amount: i64, limit: Option<i64>, until: Instant) -> bool {
        if !self.known {
            return false;
        }
        match limit {
            None => self.held_free.saturating_add(i128::from(amount)) <= i128::from(COUNTER_MAX),
            Some(l) => {
                self.used().saturating_add(i128::from(amount)) <= i128::from(l)
                    && (amount == 0
                        || (self.available() >= i128::from(amount)
                            && self.valid_until.is_some_and(|v| v >= until)))
            }
        }
    }

    /// Whether the counter, as the store last answered, has no room for `amount` under `limit`.
    pub fn refuses(&self, amount: i64, limit: Option<i64>) -> bool {
        self.known
            && limit.is_some_and(|l| self.used().saturating_add(i128::from(amount)) > i128::from(l))
    }

    /// Notes that a charge of `amount` under `limit`, held for `hold_for`, comes: a changed
    /// limit returns the unused slice (granted under the old one).
    pub fn charged(&mut self, amount: i64, limit: Option<i64>, hold_for: Duration, now: Instant) {
        self.last_used = now;
        self.longest_hold = self.longest_hold.max(hold_for);
        if self.limit != limit {
            self.return_unused();
            self.limit = limit;
            self.slice_want = 0;
        }
        self.slice_want = self
            .slice_want
            .max(amount.saturating_mul(8).min(MAX_AMOUNT));
    }

    /// Holds `amount` for reservation `id` until `until`.
    pub fn hold(&mut self, id: &str, amount: i64, until: Instant) {
        let leased = self.limit.is_some();
        self.first_lapse = Some(self.first_lapse.map_or(until, |t| t.min(until)));
        if let Some(old) = self.holds.insert(
            id.to_string(),
            Hold {
                amount,
                until,
                leased,
            },
        ) {
            self.unhold(old);
        }
        if leased {
            self.held_leased = add_capped(self.held_leased, amount);
        } else {
            self.held_free = self.held_free.saturating_add(i128::from(amount));
        }
    }

    fn unhold(&mut self, h: Hold) {
        if h.leased {
            self.held_leased = self.held_leased.saturating_sub(h.amount).max(0);
        } else {
            self.held_free = self.held_free.saturating_sub(i128::from(h.amount)).max(0);
        }
    }

    /// Releases reservation `id` and records `actual` spent: out of the slice as far as the
    /// reservation covered it, beyond it otherwise.
    pub fn settle(&mut self, id: &str, actual: i64) {
        let covered = match self.holds.remove(id) {
            Some(h) => {
                self.unhold(h);
                if h.leased { actual.min(h.amount) } else { 0 }
            }
            None => 0,
        };
        self.pending.from_slice = add_capped(self.pending.from_slice, covered);
        self.pending.beyond = add_capped(self.pending.beyond, actual.saturating_sub(covered));
    }

    /// Drops reservations that lapsed; their amounts are free again.
    pub fn purge(&mut self, now: Instant) {
        if self.first_lapse.is_none_or(|t| t > now) {
            return;
        }
        self.first_lapse = self
            .holds
            .values()
            .map(|h| h.until)
            .filter(|u| *u > now)
            .min();
        let lapsed: Vec<String> = self
            .holds
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lapsed {
            if let Some(h) = self.holds.remove(&id) {
                self.unhold(h);
            }
        }
    }

    /// Whether any reservation is held here.
    pub fn holds_any(&self) -> bool {
        !self.holds.is_empty()
    }

    /// Returns the whole unused slice at the next batch.
    pub fn return_unused(&mut self) {
        let free = to_i64(self.available().max(0).min(i128::from(MAX_AMOUNT)));
        self.pending.returned = add_capped(self.pending.returned, free);
    }

    /// Whether nothing is held, owed or leased here (the counter can be forgotten).
    pub fn is_idle(&self) -> bool {
        self.holds.is_empty()
            && self.sending.is_zero()
            && self.pending.is_zero()
            && self.store.slice == 0
    }

    /// Whether there is something to tell the store.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_zero()
    }

    /// The item of the next batch: the pending flows move to `sending`; `need` and `want`
    /// as the caller asks, and how long the slice must live.
    pub fn item(
        &mut self,
        name: &str,
        need: i64,
        want: i64,
        slack: Duration,
        now: Instant,
    ) -> Item {
        let keep_due = self.keep_ms >= 0
            && self
                .keep_sent
                .is_none_or(|(at, ms)| ms != self.keep_ms || now.duration_since(at) >= KEEP_EVERY);
        if keep_due {
            self.keep_sent = Some((now, self.keep_ms));
        }
        self.sending = Flows {
            from_slice: add_capped(self.sending.from_slice, self.pending.from_slice),
            beyond: add_capped(self.sending.beyond, self.pending.beyond),
            returned: add_capped(self.sending.returned, self.pending.returned),
        };
        self.pending = Flows::default();
        Item {
            counter: name.to_string(),
            limit: self.limit,
            spent_from_slice: self.sending.from_slice,
            spent_beyond: self.sending.beyond,
            returned: self.sending.returned,
            need,
            want,
            ttl_ms: crate::millis(self.longest_hold.saturating_add(slack)).max(1),
            keep_ms: if keep_due { self.keep_ms } else { -1 },
        }
    }

    /// The store acknowledged a batch sent at `sent_at` with `item`, answering `state`.
    pub fn acknowledged(&mut self, item: &Item, state: ItemState, sent_at: Instant, now: Instant) {
        let grew = state.slice
            > self
                .store
                .slice
                .saturating_sub(to_i64(self.sending.out_of_slice()));
        self.known = true;
        self.store = state;
        self.sending = Flows::default();
        self.valid_until = (state.slice > 0)
            .then(|| {
                sent_at.checked_add(Duration::from_millis(
                    u64::try_from(item.ttl_ms).unwrap_or(0),
                ))
            })
            .flatten();
        if grew && item.need.saturating_add(item.want) > 0 {
            // A grant needed again soon after the last: ask for twice as much next time.
            if self
                .last_grant
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(500))
            {
                self.slice_want = self.slice_want.saturating_mul(2).min(MAX_AMOUNT);
            }
            self.last_grant = Some(now);
        }
        if state.contended {
            self.contended_until = now.checked_add(Duration::from_secs(1));
        }
    }

    /// Whether the counter had, at the last batch, less room left than twice this replica's
    /// slice: where another replica may soon be refused for want of it.
    pub fn near_limit(&self) -> bool {
        self.limit.is_some_and(|l| {
            let room = i128::from(l)
                .saturating_sub(i128::from(self.store.spent))
                .saturating_sub(i128::from(self.store.reserved));
            room < i128::from(self.store.slice).saturating_mul(2)
        })
    }

    /// Whether another replica was refused here in the last second.
    pub fn contended(&self, now: Instant) -> bool {
        self.contended_until.is_some_and(|t| t > now)
    }
}
