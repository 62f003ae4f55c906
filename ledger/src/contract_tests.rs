//! The behaviour every ledger must show; run against each implementation.

use std::time::Duration;

use crate::{Charge, CounterState, Ledger, ReserveRequest, Reserved, Settlement};

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
