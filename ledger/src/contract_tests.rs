//! The behaviour every ledger must show; run against each implementation (here for the
//! in-process ledger, and by `switchboard-e2e`'s tests against a real `redis-server`, with the
//! `contract-tests` feature): two scripted scenarios, and a model every random workload of
//! reservations and settlements must agree with ([`workload`], [`check_workload`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use std::{collections::HashMap, time::Duration};

use proptest::prelude::*;

use crate::{
    COUNTER_MAX, Charge, CounterState, Ledger, MAX_AMOUNT, ReserveRequest, Reserved, Settlement,
};

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

/// One step of a random workload over a handful of counters.
#[derive(Clone, Debug)]
pub enum Op {
    /// Reserve on these counters (index, limit, amount); the reservation takes the next id.
    Reserve(Vec<(usize, Option<i64>, i64)>),
    /// Settle reservation `n` (counted from the first; may be one never made, or settled already)
    /// with these actual amounts per counter.
    Settle(usize, Vec<(usize, i64)>),
    /// Read every counter.
    Read,
}

/// How many counters a workload touches.
const COUNTERS: usize = 4;

/// Amounts that probe the edges: zero, one, the maximum and its neighbours, small values (so
/// limits are reached), anything in range, and out-of-range values the ledger must refuse.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..=1_000,
        2 => 0i64..=MAX_AMOUNT,
        1 => Just(0i64),
        1 => Just(MAX_AMOUNT),
        1 => Just(MAX_AMOUNT - 1),
        1 => prop_oneof![Just(-1i64), Just(i64::MIN), Just(MAX_AMOUNT + 1), Just(i64::MAX)],
    ]
}

fn limit() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        2 => Just(None),
        3 => (0i64..=3_000).prop_map(Some),
        1 => prop_oneof![Just(0i64), Just(MAX_AMOUNT), Just(MAX_AMOUNT - 1)].prop_map(Some),
        1 => prop_oneof![Just(-1i64), Just(MAX_AMOUNT + 1)].prop_map(Some),
    ]
}

/// A random workload: reservations, settlements in any order (some repeated, some of
/// reservations never made), reads.
pub fn workload() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => proptest::collection::vec((0..COUNTERS, limit(), amount()), 1..=3).prop_map(Op::Reserve),
        3 => (0usize..12, proptest::collection::vec((0..COUNTERS, amount()), 0..=3))
            .prop_map(|(n, a)| Op::Settle(n, a)),
        1 => Just(Op::Read),
    ];
    proptest::collection::vec(op, 1..40)
}

/// What a ledger must hold after each step, computed exactly.
#[derive(Default)]
struct Model {
    spent: [i128; COUNTERS],
    /// Live reservations: id -> amount per counter.
    reserved: HashMap<String, Vec<(usize, i64)>>,
    settled: std::collections::HashSet<String>,
}

impl Model {
    fn reserved_on(&self, counter: usize) -> i128 {
        self.reserved
            .values()
            .flatten()
            .filter(|(c, _)| *c == counter)
            .map(|(_, a)| i128::from(*a))
            .sum()
    }

    fn state(&self, counter: usize) -> CounterState {
        CounterState {
            spent: i64::try_from(self.spent[counter]).unwrap(),
            reserved: i64::try_from(self.reserved_on(counter)).unwrap(),
        }
    }
}

fn valid(amount: i64) -> bool {
    (0..=MAX_AMOUNT).contains(&amount)
}

/// Runs `ops` against `ledger` (counters named under `prefix`, which must be fresh) and against
/// the exact model; the first disagreement is the error. Checks on the way that no budget ends
/// above its limit through admissions.
pub async fn check_workload(ledger: &dyn Ledger, prefix: &str, ops: &[Op]) -> Result<(), String> {
    let name = |c: usize| format!("{prefix}c{c}");
    let id = |n: usize| format!("{prefix}r{n}");
    let mut model = Model::default();
    let mut made = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step} ({op:?})");
        match op {
            Op::Reserve(charges) => {
                let rid = id(made);
                made += 1;
                let req = ReserveRequest {
                    id: rid.clone(),
                    charges: charges
                        .iter()
                        .map(|(c, limit, amount)| Charge {
                            counter: name(*c),
                            limit: *limit,
                            reserve: *amount,
                            keep_for: Some(Duration::from_secs(3600)),
                        })
                        .collect(),
                    hold_for: Duration::from_secs(600),
                };
                let answer = ledger.reserve(&req).await;
                let repeated = charges
                    .iter()
                    .enumerate()
                    .any(|(i, (c, _, _))| charges[..i].iter().any(|(d, _, _)| d == c));
                let invalid = repeated
                    || charges
                        .iter()
                        .any(|(_, l, a)| !valid(*a) || l.is_some_and(|l| !valid(l)));
                if invalid {
                    if answer.is_ok() {
                        return Err(format!(
                            "{at}: an invalid reservation was accepted: {answer:?}"
                        ));
                    }
                    continue;
                }
                let refused = charges.iter().enumerate().find(|(_, (c, limit, amount))| {
                    limit.is_some_and(|l| {
                        model.spent[*c] + model.reserved_on(*c) + i128::from(*amount)
                            > i128::from(l)
                    })
                });
                let expected = match refused {
                    Some((index, (c, limit, _))) => Reserved::Refused {
                        index,
                        used: i64::try_from(model.spent[*c] + model.reserved_on(*c)).unwrap(),
                        limit: limit.unwrap(),
                    },
                    None => Reserved::Admitted {
                        used: charges
                            .iter()
                            .map(|(c, _, a)| {
                                i64::try_from(
                                    model.spent[*c] + model.reserved_on(*c) + i128::from(*a),
                                )
                                .unwrap()
                            })
                            .collect(),
                    },
                };
                let answer = answer.map_err(|e| format!("{at}: {e}"))?;
                if answer != expected {
                    return Err(format!("{at}: ledger said {answer:?}, model {expected:?}"));
                }
                if refused.is_none() {
                    model
                        .reserved
                        .insert(rid, charges.iter().map(|(c, _, a)| (*c, *a)).collect());
                }
            }
            Op::Settle(n, actuals) => {
                let s = Settlement {
                    id: id(*n),
                    counters: actuals
                        .iter()
                        .map(|(c, a)| (name(*c), *a, Some(Duration::from_secs(3600))))
                        .collect(),
                };
                let answer = ledger.settle_and_read(&s).await;
                let repeated = actuals
                    .iter()
                    .enumerate()
                    .any(|(i, (c, _))| actuals[..i].iter().any(|(d, _)| d == c));
                if repeated || actuals.iter().any(|(_, a)| !valid(*a)) {
                    if answer.is_ok() {
                        return Err(format!("{at}: an invalid settlement was accepted"));
                    }
                    continue;
                }
                let states = answer.map_err(|e| format!("{at}: {e}"))?;
                if model.settled.insert(id(*n)) {
                    // The reservation is released on the counters settled; others keep it.
                    if let Some(held) = model.reserved.get_mut(&id(*n)) {
                        held.retain(|(c, _)| !actuals.iter().any(|(d, _)| d == c));
                        if held.is_empty() {
                            model.reserved.remove(&id(*n));
                        }
                    }
                    for (c, a) in actuals {
                        model.spent[*c] =
                            (model.spent[*c] + i128::from(*a)).min(i128::from(COUNTER_MAX));
                    }
                }
                let expected: Vec<CounterState> =
                    actuals.iter().map(|(c, _)| model.state(*c)).collect();
                if states != expected {
                    return Err(format!("{at}: ledger holds {states:?}, model {expected:?}"));
                }
            }
            Op::Read => {
                let names: Vec<String> = (0..COUNTERS).map(name).collect();
                let states = ledger
                    .read(&names)
                    .await
                    .map_err(|e| format!("{at}: {e}"))?;
                let expected: Vec<CounterState> = (0..COUNTERS).map(|c| model.state(c)).collect();
                if states != expected {
                    return Err(format!("{at}: ledger holds {states:?}, model {expected:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Runs [`check_workload`] on `cases` random workloads, each on fresh counters under `prefix`.
pub fn check_random_workloads(
    runtime: &tokio::runtime::Runtime,
    ledger: &dyn Ledger,
    prefix: &str,
    cases: u32,
) {
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..Default::default()
    });
    let counter = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&workload(), |ops| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime
            .block_on(check_workload(ledger, &format!("{prefix}w{n}:"), &ops))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
