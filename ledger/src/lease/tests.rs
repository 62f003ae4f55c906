//! The lease ledger against a real `redis-server` (the e2e harness starts one): the ledger
//! contract for one replica, and three replicas under a seeded random workload of concurrent
//! reservations and settlements, kills (a replica dropped mid-work, its slices left to lapse),
//! window turns and lost replies, checked against exact invariants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::RwLock;

use super::{
    LeaseLedger, LeaseSettings,
    store::{Batch, ItemState, LeaseStore, RedisLeaseStore},
};
use crate::{
    BoxFuture, Charge, Ledger, LedgerError, ReserveRequest, Reserved, Settlement, contract_tests,
    redis::RedisLedger,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn prefix() -> String {
    format!("lease:{}:{}:", std::process::id(), rand::random::<u64>())
}

#[test]
fn satisfies_the_ledger_contract() {
    let rt = runtime();
    let server = rt.block_on(switchboard_e2e::redis::RedisServer::start());
    let prefix = prefix();
    let l = rt.block_on(async {
        let l = LeaseLedger::redis(&server.url(), LeaseSettings::default()).unwrap();
        contract_tests::admission_is_exact_and_atomic(l.as_ref(), &prefix).await;
        contract_tests::reservations_lapse(l.as_ref(), &prefix).await;
        l
    });
    contract_tests::check_random_workloads(&rt, l.as_ref(), &format!("{prefix}p:"), 64);
    drop(server);
}

/// The store's side alone: a grant is the need plus at most an eighth of the room beyond it,
/// never more than the room; a need the room cannot cover gets nothing and marks the counter
/// contended; a batch sent again is applied once; a returned slice is room again.
#[test]
fn slices_shrink_with_the_remainder_and_never_pass_the_limit() {
    let rt = runtime();
    let server = rt.block_on(switchboard_e2e::redis::RedisServer::start());
    rt.block_on(async {
        let store = RedisLeaseStore::new(&server.url()).unwrap();
        let counter = format!("{}b", prefix());
        let item = |need, want, spent, returned| crate::lease::store::Item {
            counter: counter.clone(),
            limit: Some(100),
            spent_from_slice: spent,
            spent_beyond: 0,
            returned,
            need,
            want,
            ttl_ms: 60_000,
            keep_ms: 60_000,
        };
        let batch = |replica: &str, seq, item| Batch {
            replica: replica.into(),
            seq,
            items: vec![item],
        };
        // 10 + min(1000, (100 - 10) / 8) = 21.
        let a = store
            .sync(&batch("a", 1, item(10, 1000, 0, 0)))
            .await
            .unwrap();
        assert_eq!((a[0].slice, a[0].reserved), (21, 21));
        // Room 79: a need of 80 gets nothing.
        let b = store
            .sync(&batch("b", 1, item(80, 1000, 0, 0)))
            .await
            .unwrap();
        assert_eq!((b[0].slice, b[0].reserved, b[0].contended), (0, 21, true));
        // 79 fits exactly, with no headroom left to give.
        let b = store
            .sync(&batch("b", 2, item(79, 1000, 0, 0)))
            .await
            .unwrap();
        assert_eq!((b[0].slice, b[0].reserved), (79, 100));
        let a = store.sync(&batch("a", 2, item(1, 0, 0, 0))).await.unwrap();
        assert_eq!(a[0].slice, 21, "no room: nothing granted");
        // a spends 5 of its slice and returns 6; sent twice, counted once.
        for _ in 0..2 {
            let a = store.sync(&batch("a", 3, item(0, 0, 5, 6))).await.unwrap();
            assert_eq!((a[0].spent, a[0].slice, a[0].reserved), (5, 10, 89));
        }
        // The 6 returned is room again: 6 + 0 headroom.
        let b = store
            .sync(&batch("b", 3, item(6, 1000, 0, 0)))
            .await
            .unwrap();
        assert_eq!((b[0].slice, b[0].reserved), (85, 95));
    });
    drop(server);
}

/// A store that loses some batches before they reach Redis and some replies after, and
/// remembers which batches Redis applied.
struct Faulty {
    inner: RedisLeaseStore,
    rng: Mutex<StdRng>,
    applied: Mutex<HashSet<(String, u64)>>,
}

impl LeaseStore for Faulty {
    fn sync<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<ItemState>, LedgerError>> {
        Box::pin(async move {
            let roll: f64 = self.rng.lock().unwrap().random();
            if roll < 0.05 {
                return Err(LedgerError("lost before Redis".into()));
            }
            let states = self.inner.sync(batch).await?;
            self.applied
                .lock()
                .unwrap()
                .insert((batch.replica.clone(), batch.seq));
            if roll < 0.10 {
                return Err(LedgerError("reply lost".into()));
            }
            Ok(states)
        })
    }

    fn put_generations<'a>(
        &'a self,
        records: &'a [(String, String)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        self.inner.put_generations(records, ttl)
    }

    fn get_generation<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        self.inner.get_generation(id, ttl)
    }
}

const REPLICAS: usize = 3;
const WORKERS: usize = 6;
const OPS: usize = 120;
const BUDGET: i64 = 20_000;
const PER_MINUTE: i64 = 60;
const CONCURRENT: i64 = 8;
const HOLD: Duration = Duration::from_millis(600);

fn settings() -> LeaseSettings {
    LeaseSettings {
        flush_every: Duration::from_millis(20),
        idle_return: Duration::from_millis(200),
        slack: Duration::from_millis(300),
    }
}

/// What the test knows happened, per counter: settled by replicas alive at the time, spend a
/// killed replica had not flushed (lost with it), reservations live on live replicas.
#[derive(Default)]
struct Model {
    settled: HashMap<String, i128>,
    lost: HashMap<String, i128>,
    held: HashMap<String, i128>,
    limits: HashMap<String, i64>,
    admitted: usize,
    refused: usize,
    refused_by: [usize; 3],
    failed: usize,
    kills: usize,
}

impl Model {
    /// Recorded spend plus what live replicas hold: never above the limit.
    fn committed(&self, c: &str) -> i128 {
        let get = |m: &HashMap<String, i128>| m.get(c).copied().unwrap_or(0);
        get(&self.settled) - get(&self.lost) + get(&self.held)
    }
}

struct Slot {
    generation: usize,
    ledger: Arc<LeaseLedger>,
}

struct World {
    store: Arc<Faulty>,
    slots: Vec<RwLock<Slot>>,
    model: Mutex<Model>,
    window: AtomicUsize,
    prefix: String,
    seed: u64,
}

impl World {
    fn replica(&self) -> Arc<LeaseLedger> {
        LeaseLedger::start(self.store.clone(), super::new_replica_id(), settings())
    }

    /// Kills replica `r` between two batches: nothing it holds is returned; its unflushed
    /// spend is lost (the part of a batch whose reply was lost counts as flushed when Redis
    /// applied it); its slices lapse in Redis on their own.
    async fn kill(&self, r: usize) {
        let mut slot = self.slots[r].write().await;
        let ledger = slot.ledger.clone();
        let control = ledger.control.lock().await;
        ledger.halted.store(true, Ordering::SeqCst);
        let applied = self.store.applied.lock().unwrap().clone();
        let in_flight_applied = |name: &str| {
            control.unacked.iter().any(|b| {
                b.items.iter().any(|i| i.counter == name)
                    && applied.contains(&(b.replica.clone(), b.seq))
            })
        };
        let mut model = self.model.lock().unwrap();
        let local = ledger.local();
        for (name, c) in &local.counters {
            assert!(
                c.available() >= 0,
                "seed {}: {name} holds more than its slice",
                self.seed
            );
            let mut lost = c.pending.spent();
            if !in_flight_applied(name) {
                lost += c.sending.spent();
            }
            *model.lost.entry(name.clone()).or_default() += lost;
        }
        model.kills += 1;
        drop(local);
        drop(control);
        slot.generation += 1;
        slot.ledger = self.replica();
    }

    fn counters(&self, window: usize) -> [String; 4] {
        let p = &self.prefix;
        [
            format!("{p}budget:w{window}"),
            format!("{p}rpm:w{window}"),
            format!("{p}concurrent"),
            format!("{p}tally:w{window}"),
        ]
    }

    /// One request on a random replica: reserve, maybe wait, settle — unless the replica was
    /// killed meanwhile (then the request died with it).
    async fn request(&self, rng: &mut StdRng, n: usize) {
        let r = rng.random_range(0..REPLICAS);
        let [budget, rpm, concurrent, tally] = self.counters(self.window.load(Ordering::SeqCst));
        let worst = rng.random_range(0..=1_500);
        let id = format!("{}q{n}", self.prefix);
        let charge = |counter: &String, limit, reserve| Charge {
            counter: counter.clone(),
            limit: Some(limit),
            reserve,
            keep_for: Some(Duration::from_secs(600)),
        };
        let req = ReserveRequest {
            id: id.clone(),
            charges: vec![
                charge(&budget, BUDGET, worst),
                charge(&rpm, PER_MINUTE, 1),
                charge(&concurrent, CONCURRENT, 1),
            ],
            hold_for: HOLD,
        };
        let generation = {
            let slot = self.slots[r].read().await;
            let answer = slot.ledger.reserve(&req).await;
            let mut model = self.model.lock().unwrap();
            match answer {
                Ok(Reserved::Admitted { .. }) => {
                    model.admitted += 1;
                    for c in &req.charges {
                        *model.held.entry(c.counter.clone()).or_default() += i128::from(c.reserve);
                        model
                            .limits
                            .insert(c.counter.clone(), c.limit.unwrap_or(i64::MAX));
                        let committed = model.committed(&c.counter);
                        assert!(
                            committed <= i128::from(c.limit.unwrap()),
                            "seed {}: {} overspent: {committed} > {:?}",
                            self.seed,
                            c.counter,
                            c.limit
                        );
                    }
                    slot.generation
                }
                Ok(Reserved::Refused { index, .. }) => {
                    model.refused += 1;
                    model.refused_by[index] += 1;
                    return;
                }
                Err(_) => {
                    model.failed += 1;
                    return;
                }
            }
        };
        if rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
        }
        let actual = rng.random_range(0..=worst);
        let slot = self.slots[r].read().await;
        {
            let mut model = self.model.lock().unwrap();
            for c in &req.charges {
                *model.held.get_mut(&c.counter).unwrap() -= i128::from(c.reserve);
            }
            if slot.generation != generation {
                return;
            }
            // Counted before the ledger releases, so the model never lags a release.
            for (c, a) in [(&budget, actual), (&rpm, 1), (&tally, actual)] {
                *model.settled.entry(c.clone()).or_default() += i128::from(a);
            }
        }
        let keep = Some(Duration::from_secs(600));
        slot.ledger
            .settle(&Settlement {
                id,
                counters: vec![
                    (budget, actual, keep),
                    (rpm, 1, keep),
                    (concurrent, 0, keep),
                    (tally, actual, keep),
                ],
            })
            .await
            .unwrap();
    }
}

/// #22: three replicas, randomized concurrent reservations and settlements, kills, window
/// turns and lost replies (seeded: `LEASE_SEED=n` replays one). After every admission the
/// recorded spend plus what live replicas hold stays within each limit; at the end, once the
/// live replicas close and the killed ones' slices lapse, Redis holds exactly what was settled
/// minus what the killed replicas had not flushed, and nothing reserved.
#[test]
fn three_replicas_never_overspend_and_never_lose() {
    let seed = std::env::var("LEASE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(22);
    let rt = runtime();
    let server = rt.block_on(switchboard_e2e::redis::RedisServer::start());
    rt.block_on(async {
        let store = Arc::new(Faulty {
            inner: RedisLeaseStore::new(&server.url()).unwrap(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            applied: Mutex::default(),
        });
        let mut world = World {
            store,
            slots: Vec::new(),
            model: Mutex::default(),
            window: AtomicUsize::new(0),
            prefix: prefix(),
            seed,
        };
        for _ in 0..REPLICAS {
            let ledger = world.replica();
            world.slots.push(RwLock::new(Slot {
                generation: 0,
                ledger,
            }));
        }
        let world = Arc::new(world);
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let world = world.clone();
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(w as u64));
                    for i in 0..OPS {
                        let roll: f64 = rng.random();
                        // Some kills at random, and one every 40 steps of the first worker.
                        if roll < 0.004 || (w == 0 && i % 40 == 20) {
                            world.kill(rng.random_range(0..REPLICAS)).await;
                        } else if roll < 0.03 {
                            world.window.fetch_add(1, Ordering::SeqCst);
                        } else {
                            world.request(&mut rng, w * OPS + i).await;
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        // Live replicas shut down cleanly; the killed ones' slices lapse.
        for slot in &world.slots {
            let slot = slot.read().await;
            for _ in 0..20 {
                if slot.ledger.close().await.is_ok()
                    && slot.ledger.control.lock().await.unacked.is_empty()
                {
                    break;
                }
            }
            assert!(
                slot.ledger.control.lock().await.unacked.is_empty(),
                "seed {seed}: a replica could not close"
            );
        }
        tokio::time::sleep(HOLD + settings().slack + Duration::from_millis(500)).await;
        let reader = RedisLedger::new(&server.url()).unwrap();
        let windows = world.window.load(Ordering::SeqCst);
        let names: Vec<String> = (0..=windows).flat_map(|w| world.counters(w)).collect();
        let names: Vec<String> = names
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let states = reader.read(&names).await.unwrap();
        let model = world.model.lock().unwrap();
        for (name, s) in names.iter().zip(&states) {
            let settled = model.settled.get(name).copied().unwrap_or(0);
            let lost = model.lost.get(name).copied().unwrap_or(0);
            assert_eq!(
                i128::from(s.spent),
                settled - lost,
                "seed {seed}: {name}: Redis holds {} spent; settled {settled}, lost with kills {lost}",
                s.spent
            );
            assert_eq!(s.reserved, 0, "seed {seed}: {name} leaks a reservation");
            if let Some(limit) = model.limits.get(name) {
                assert!(i128::from(s.spent) <= i128::from(*limit), "seed {seed}: {name}");
            }
        }
        assert!(
            model.admitted > 80 && model.refused > 10 && model.kills > 0 && windows > 0,
            "seed {seed}: the workload exercised too little: {} admitted, {} refused {:?}, {} kills, {windows} window turns",
            model.admitted,
            model.refused,
            model.refused_by,
            model.kills
        );
        eprintln!(
            "seed {seed}: {} admitted, {} refused (budget, rate, concurrency: {:?}), {} failed, \
             {} kills, {windows} window turns",
            model.admitted, model.refused, model.refused_by, model.failed, model.kills
        );
    });
    drop(server);
}
