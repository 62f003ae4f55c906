use serde_json::json;

use super::*;

fn r(kind: &'static str, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: "team-a".into(),
        name: name.into(),
    }
}

fn key(name: &str) -> KeyToGenerate {
    KeyToGenerate {
        namespace: "team-a".into(),
        api_key: name.into(),
        uid: format!("uid-{name}"),
        secret: format!("switchboard-apikey-{name}"),
    }
}

/// The order jobs come out in, as `kind name` strings.
fn drain(outbox: &Outbox) -> Vec<String> {
    let busy = HashSet::new();
    std::iter::from_fn(|| outbox.next(&busy))
        .map(|job| match job {
            Job::Key(k) => format!("key {}", k.api_key),
            Job::Status(r) => format!("status {}", r.name),
            Job::Event(r, _, e) => format!("event {} {}", r.name, e.reason),
        })
        .collect()
}

#[test]
fn keys_go_first_then_urgent_then_bulk_then_events_each_object_once() {
    let outbox = Outbox::new();
    outbox.status_all([r("Provider", "a"), r("Provider", "b")], Priority::Bulk);
    outbox.status(r("Provider", "c"), Priority::Urgent);
    outbox.generate(key("k"));
    outbox.generate(key("k"));
    // Filed again at the same or a lower priority: still once, where it was.
    outbox.status(r("Provider", "a"), Priority::Bulk);
    outbox.status(r("Provider", "c"), Priority::Bulk);
    // Raised: leaves the bulk queue for the urgent one.
    outbox.status(r("Provider", "b"), Priority::Urgent);
    let event = StatusEvent {
        warning: false,
        reason: "Ready".into(),
        note: "n".into(),
    };
    outbox.add_events(&r("Provider", "a"), &ObjectReference::default(), &[event]);
    assert_eq!(
        drain(&outbox),
        ["key k", "status c", "status b", "status a", "event a Ready"]
    );
    assert_eq!(outbox.lengths(), (0, 0, 0, 0));
}

#[test]
fn an_object_with_a_write_in_flight_waits_its_turn() {
    let outbox = Outbox::new();
    outbox.status_all([r("Budget", "x"), r("Budget", "y")], Priority::Bulk);
    let busy = HashSet::from([r("Budget", "x")]);
    match outbox.next(&busy) {
        Some(Job::Status(got)) => assert_eq!(got.name, "y"),
        _ => panic!("y is next"),
    }
    assert!(outbox.next(&busy).is_none(), "x waits while busy");
    match outbox.next(&HashSet::new()) {
        Some(Job::Status(got)) => assert_eq!(got.name, "x"),
        _ => panic!("then x"),
    }
}

#[test]
fn events_beyond_the_limit_drop_the_oldest() {
    let outbox = Outbox::new();
    let events: Vec<StatusEvent> = (0..MAX_EVENTS + 5)
        .map(|i| StatusEvent {
            warning: true,
            reason: format!("R{i}"),
            note: String::new(),
        })
        .collect();
    let dropped = outbox.add_events(&r("ApiKey", "k"), &ObjectReference::default(), &events);
    assert_eq!(dropped, 5);
    let first = drain(&outbox).into_iter().next().unwrap();
    assert_eq!(first, "event k R5");
}

#[test]
fn a_write_just_made_is_not_repeated_until_echoed() {
    let outbox = Outbox::new();
    let patch = json!({"status": {"models": 1}});
    outbox.written(&r("Provider", "a"), patch.clone());
    assert!(outbox.recently_written(&r("Provider", "a"), &patch));
    assert!(!outbox.recently_written(&r("Provider", "a"), &json!({"status": {}})));
    assert_eq!(outbox.echoed(&r("Provider", "a")), Some(patch.clone()));
    assert!(!outbox.recently_written(&r("Provider", "a"), &patch));
    assert_eq!(
        outbox.echoed(&r("Provider", "a")),
        None,
        "someone else's change"
    );
}

#[test]
fn generating_keys_hold_their_status_until_the_secret_appears() {
    let outbox = Outbox::new();
    outbox.generate(key("alice"));
    assert!(outbox.is_generating("team-a", "alice"));
    outbox.generated("team-a", "alice");
    assert!(!outbox.is_generating("team-a", "alice"));
}

#[tokio::test(start_paused = true)]
async fn the_bucket_spends_its_burst_then_paces_at_the_rate() {
    let mut bucket = Bucket::new(Limits {
        qps: 10.0,
        burst: 3,
        concurrency: 1,
    });
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        bucket.take().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
    for _ in 0..10 {
        bucket.take().await;
    }
    // Ten more at ten a second: one second of (virtual) time.
    let paced = start.elapsed();
    assert!(
        paced >= Duration::from_millis(990) && paced <= Duration::from_millis(1010),
        "{paced:?}"
    );
}
