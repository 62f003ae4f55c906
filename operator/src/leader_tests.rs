use super::*;

const D: Duration = Duration::from_secs(15);

fn spec(holder: Option<&str>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_string),
        lease_duration_seconds: Some(15),
        lease_transitions: Some(3),
        acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        ..LeaseSpec::default()
    }
}

#[test]
fn no_lease_is_created() {
    assert_eq!(decide(None, "me", Duration::ZERO, D), Action::Create);
}

#[test]
fn our_lease_is_renewed_however_old() {
    assert_eq!(
        decide(Some(&spec(Some("me"))), "me", D * 10, D),
        Action::Renew
    );
}

#[test]
fn a_live_lease_of_another_replica_is_followed() {
    assert_eq!(
        decide(Some(&spec(Some("other"))), "me", Duration::from_secs(14), D),
        Action::Follow {
            holder: "other".into()
        }
    );
}

#[test]
fn a_lease_unchanged_for_its_duration_is_taken_over() {
    assert_eq!(
        decide(Some(&spec(Some("other"))), "me", Duration::from_secs(15), D),
        Action::TakeOver
    );
}

#[test]
fn the_leases_own_duration_wins_over_ours() {
    let mut s = spec(Some("other"));
    s.lease_duration_seconds = Some(60);
    assert!(matches!(
        decide(Some(&s), "me", Duration::from_secs(30), D),
        Action::Follow { .. }
    ));
}

#[test]
fn a_released_lease_is_taken_over_at_once() {
    assert_eq!(
        decide(Some(&spec(None)), "me", Duration::ZERO, D),
        Action::TakeOver
    );
    assert_eq!(
        decide(Some(&spec(Some(""))), "me", Duration::ZERO, D),
        Action::TakeOver
    );
}

#[test]
fn takeover_counts_a_transition_and_stamps_acquire_time() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let held = held_spec(Some(&spec(Some("other"))), "me", D, now);
    assert_eq!(held.holder_identity.as_deref(), Some("me"));
    assert_eq!(held.lease_transitions, Some(4));
    assert_eq!(held.acquire_time, Some(MicroTime(now)));
    assert_eq!(held.renew_time, Some(MicroTime(now)));
    assert_eq!(held.lease_duration_seconds, Some(15));
}

#[test]
fn renewal_keeps_acquire_time_and_transitions() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let held = held_spec(Some(&spec(Some("me"))), "me", D, now);
    assert_eq!(held.lease_transitions, Some(3));
    assert_eq!(held.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
    assert_eq!(held.renew_time, Some(MicroTime(now)));
}
