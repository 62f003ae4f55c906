//! Passive health of upstream targets (a provider's model), as this router replica sees it:
//! outlier ejection with growing backoff and a single probe to return, upstream `Retry-After`,
//! per-provider concurrency caps, and rolling latency/throughput measurements for `sort`.
//!
//! Every function takes `now` so the state machine is testable without sleeping.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use foldhash::HashMap;

/// When a target is ejected and for how long.
#[derive(Clone, Debug)]
pub struct HealthPolicy {
    /// Consecutive failures that eject a target.
    pub consecutive_failures: u32,
    /// Failure ratio over the window that ejects a target (with at least `min_requests`).
    pub error_rate: f64,
    /// Requests in the window before `error_rate` applies.
    pub min_requests: usize,
    /// How far back failures count ("recent") and the error rate is measured.
    pub window: Duration,
    /// First ejection; each further one doubles, up to `max_ejection`.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// How a target stands for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Its ejection is over and this caller holds the one probe: try it first.
    Probe,
    /// No failure within the window.
    Healthy,
    /// Failed within the window, not ejected.
    Degraded,
    /// Ejected: tried only when nothing else is left.
    Ejected,
}

/// A target's standing and measurements, read once per request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetView {
    /// Health tier.
    pub tier: Tier,
    /// Left of an upstream `Retry-After`; the target is not tried while this runs.
    pub cooling: Option<Duration>,
    /// Median time to first token, milliseconds.
    pub latency_ms: Option<f64>,
    /// Median output tokens per second.
    pub throughput: Option<f64>,
}

impl Default for TargetView {
    fn default() -> Self {
        TargetView {
            tier: Tier::Healthy,
            cooling: None,
            latency_ms: None,
            throughput: None,
        }
    }
}

/// A target's health as the console shows it ([`Health::stats`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetStats {
    /// Standing and medians, as routing sees them.
    pub view: TargetView,
    /// Outcomes within the policy's window.
    pub outcomes: usize,
    /// Failures among them.
    pub failures: usize,
    /// Ejections in a row (reset by a successful probe).
    pub ejections: u32,
    /// What is left of the current ejection.
    pub ejected_for: Option<Duration>,
}

const SAMPLES: usize = 64;
const PROBE_CLAIM: Duration = Duration::from_secs(30);

#[derive(Default)]
struct TargetState {
    consecutive_failures: u32,
    outcomes: VecDeque<(Instant, bool)>,
    last_failure: Option<Instant>,
    ejections: u32,
    ejected_until: Option<Instant>,
    probe_claimed: Option<Instant>,
    cooling_until: Option<Instant>,
    ttft_ms: VecDeque<f64>,
    throughput: VecDeque<f64>,
}

/// The upper median, by selection in a stack copy: read on every request, so no allocation
/// and no full sort.
fn median(samples: &VecDeque<f64>) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = [0.0; SAMPLES];
    let n = samples.len().min(SAMPLES);
    for (slot, x) in v.iter_mut().zip(samples.iter()) {
        *slot = *x;
    }
    let (_, mid, _) = v[..n].select_nth_unstable_by(n / 2, f64::total_cmp);
    Some(*mid)
}

fn push_sample(samples: &mut VecDeque<f64>, value: f64) {
    if samples.len() == SAMPLES {
        samples.pop_front();
    }
    samples.push_back(value);
}

/// Health of every target this replica has talked to, shared by all requests and config versions.
pub struct Health {
    policy: HealthPolicy,
    /// By provider id, then upstream model: looked up with `&str`s, so a hit allocates nothing.
    targets: Mutex<HashMap<String, HashMap<String, TargetState>>>,
    in_flight: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

/// A slot under a provider's concurrency cap, released on drop.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Health {
    /// Empty health state under `policy`.
    pub fn new(policy: HealthPolicy) -> Health {
        Health {
            policy,
            targets: Mutex::default(),
            in_flight: Mutex::default(),
        }
    }

    fn with<R>(&self, provider: &str, model: &str, f: impl FnOnce(&mut TargetState) -> R) -> R {
        let mut targets = self.targets.lock().expect("health lock poisoned");
        // One lookup per level when the target is known (every request but its first).
        if let Some(s) = targets.get_mut(provider).and_then(|m| m.get_mut(model)) {
            return f(s);
        }
        let models = targets.entry(provider.to_string()).or_default();
        f(models.entry(model.to_string()).or_default())
    }

    /// The target's standing. When its ejection is over and nobody holds the probe, it is
    /// [`Tier::Probe`]: planned first, but only the caller that [`Health::claim_probe`]s it when
    /// about to send gets to try it; the probe's outcome decides whether the target returns.
    pub fn view(&self, provider: &str, model: &str, now: Instant) -> TargetView {
        self.view_of(provider, model, now, true)
    }

    /// [`Health::view`], with the medians only when `measured` (they are read only when targets
    /// are sorted by latency or throughput; a plan without such a sort skips two selections).
    pub fn view_of(&self, provider: &str, model: &str, now: Instant, measured: bool) -> TargetView {
        let window = self.policy.window;
        self.with(provider, model, |s| {
            let tier = match s.ejected_until {
                Some(until) if until > now => Tier::Ejected,
                Some(_) => match s.probe_claimed {
                    Some(at) if now.saturating_duration_since(at) < PROBE_CLAIM => Tier::Ejected,
                    _ => Tier::Probe,
                },
                None if s
                    .last_failure
                    .is_some_and(|t| now.saturating_duration_since(t) < window) =>
                {
                    Tier::Degraded
                }
                None => Tier::Healthy,
            };
            TargetView {
                tier,
                cooling: s
                    .cooling_until
                    .and_then(|until| until.checked_duration_since(now))
                    .filter(|d| !d.is_zero()),
                latency_ms: if measured { median(&s.ttft_ms) } else { None },
                throughput: if measured {
                    median(&s.throughput)
                } else {
                    None
                },
            }
        })
    }

    /// Claims the single probe of a target whose ejection is over. `false` when another request
    /// holds it (or the target is not due a probe): skip the target then.
    pub fn claim_probe(&self, provider: &str, model: &str, now: Instant) -> bool {
        self.with(provider, model, |s| {
            match (s.ejected_until, s.probe_claimed) {
                (Some(until), _) if until > now => false,
                (Some(_), Some(at)) if now.saturating_duration_since(at) < PROBE_CLAIM => false,
                (Some(_), _) => {
                    s.probe_claimed = Some(now);
                    true
                }
                (None, _) => true,
            }
        })
    }

    /// Records a success with its time to first token and output rate, when measured.
    pub fn record_success(
        &self,
        provider: &str,
        model: &str,
        now: Instant,
        ttft: Option<Duration>,
        tokens_per_second: Option<f64>,
    ) {
        self.with(provider, model, |s| {
            s.consecutive_failures = 0;
            s.outcomes.push_back((now, true));
            if s.ejected_until.is_some() {
                // The probe succeeded: back in service, backoff reset.
                s.ejected_until = None;
                s.probe_claimed = None;
                s.ejections = 0;
                s.last_failure = None;
            }
            if let Some(t) = ttft {
                push_sample(&mut s.ttft_ms, t.as_secs_f64() * 1000.0);
            }
            if let Some(r) = tokens_per_second.filter(|r| r.is_finite()) {
                push_sample(&mut s.throughput, r);
            }
            self.trim(s, now);
        });
    }

    /// Records the output rate of a completed stream.
    pub fn record_throughput(&self, provider: &str, model: &str, tokens_per_second: f64) {
        if tokens_per_second.is_finite() {
            self.with(provider, model, |s| {
                push_sample(&mut s.throughput, tokens_per_second)
            });
        }
    }

    /// Records a failure; `retry_after` comes from an upstream 429/503. Returns true when this
    /// failure ejected the target.
    pub fn record_failure(
        &self,
        provider: &str,
        model: &str,
        now: Instant,
        retry_after: Option<Duration>,
    ) -> bool {
        let p = &self.policy;
        self.with(provider, model, |s| {
            s.consecutive_failures += 1;
            s.outcomes.push_back((now, false));
            s.last_failure = Some(now);
            if let Some(ra) = retry_after {
                s.cooling_until = Some(now + ra.min(p.max_retry_after));
            }
            self.trim(s, now);
            let failures = s.outcomes.iter().filter(|(_, ok)| !ok).count();
            let rate_exceeded = s.outcomes.len() >= p.min_requests
                && failures as f64 / s.outcomes.len() as f64 >= p.error_rate;
            let probing = s.ejected_until.is_some();
            if probing || s.consecutive_failures >= p.consecutive_failures || rate_exceeded {
                let factor = 2u32.saturating_pow(s.ejections.min(16));
                let backoff = p.base_ejection.saturating_mul(factor).min(p.max_ejection);
                s.ejected_until = Some(now + backoff);
                s.probe_claimed = None;
                s.ejections = s.ejections.saturating_add(1);
                s.outcomes.clear();
                true
            } else {
                false
            }
        })
    }

    fn trim(&self, s: &mut TargetState, now: Instant) {
        while s
            .outcomes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.policy.window)
        {
            s.outcomes.pop_front();
        }
    }

    /// What the console shows of a target: its standing, the share of failures among the
    /// outcomes within the policy's window, how many times in a row it has been ejected and how
    /// long its ejection has left. Read-only: a target never seen has no stats.
    pub fn stats(&self, provider: &str, model: &str, now: Instant) -> Option<TargetStats> {
        let seen = {
            let targets = self.targets.lock().expect("health lock poisoned");
            targets.get(provider).and_then(|m| m.get(model)).map(|s| {
                let recent: Vec<bool> = s
                    .outcomes
                    .iter()
                    .filter(|(t, _)| now.saturating_duration_since(*t) <= self.policy.window)
                    .map(|(_, ok)| *ok)
                    .collect();
                let failures = recent.iter().filter(|ok| !**ok).count();
                (
                    recent.len(),
                    failures,
                    s.ejections,
                    s.ejected_until
                        .and_then(|u| u.checked_duration_since(now))
                        .filter(|d| !d.is_zero()),
                )
            })
        };
        let (outcomes, failures, ejections, ejected_for) = seen?;
        Some(TargetStats {
            view: self.view(provider, model, now),
            outcomes,
            failures,
            ejections,
            ejected_for,
        })
    }

    /// A slot under `cap` concurrent requests to `provider`, or `None` when it is full.
    pub fn try_acquire(&self, provider: &str, cap: Option<u32>) -> Option<InFlight> {
        let counter = {
            let mut map = self.in_flight.lock().expect("in-flight lock poisoned");
            match map.get(provider) {
                Some(counter) => counter.clone(),
                None => map.entry(provider.to_string()).or_default().clone(),
            }
        };
        let limit = cap.unwrap_or(u32::MAX);
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(counter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            ..HealthPolicy::default()
        }
    }

    #[test]
    fn stats_count_the_windows_failures_and_the_ejection_left() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        assert!(h.stats("p", "m", t0).is_none());
        h.record_success("p", "m", t0, None, None);
        h.record_failure("p", "m", t0, None);
        let s = h.stats("p", "m", t0).unwrap();
        assert_eq!((s.outcomes, s.failures, s.ejections), (2, 1, 0));
        assert_eq!(s.view.tier, Tier::Degraded);
        h.record_failure("p", "m", t0, None);
        h.record_failure("p", "m", t0, None);
        let s = h.stats("p", "m", t0).unwrap();
        assert_eq!(s.view.tier, Tier::Ejected);
        assert_eq!(
            (s.ejections, s.ejected_for),
            (1, Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn consecutive_failures_eject_and_a_successful_probe_restores() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        assert_eq!(h.view("p", "m", t0).tier, Tier::Healthy);
        assert!(!h.record_failure("p", "m", t0, None));
        assert_eq!(h.view("p", "m", t0).tier, Tier::Degraded);
        assert!(!h.record_failure("p", "m", t0, None));
        assert!(h.record_failure("p", "m", t0, None), "third failure ejects");
        assert_eq!(
            h.view("p", "m", t0 + Duration::from_millis(999)).tier,
            Tier::Ejected
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(h.view("p", "m", t1).tier, Tier::Probe, "due a probe");
        assert!(h.claim_probe("p", "m", t1), "one caller gets the probe");
        assert!(!h.claim_probe("p", "m", t1), "only one");
        assert_eq!(
            h.view("p", "m", t1).tier,
            Tier::Ejected,
            "planned as ejected while probed"
        );
        h.record_success("p", "m", t1, None, None);
        assert_eq!(h.view("p", "m", t1).tier, Tier::Healthy);
    }

    #[test]
    fn a_failed_probe_ejects_again_for_twice_as_long() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure("p", "m", t0, None);
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(h.view("p", "m", t1).tier, Tier::Probe);
        assert!(h.claim_probe("p", "m", t1));
        assert!(h.record_failure("p", "m", t1, None));
        assert_eq!(
            h.view("p", "m", t1 + Duration::from_millis(1999)).tier,
            Tier::Ejected
        );
        assert_eq!(
            h.view("p", "m", t1 + Duration::from_secs(2)).tier,
            Tier::Probe
        );
    }

    #[test]
    fn an_abandoned_probe_is_offered_again_later() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure("p", "m", t0, None);
        }
        let t1 = t0 + Duration::from_secs(1);
        // Planning alone claims nothing: a target planned but never tried stays due a probe.
        assert_eq!(h.view("p", "m", t1).tier, Tier::Probe);
        assert_eq!(h.view("p", "m", t1).tier, Tier::Probe);
        assert!(h.claim_probe("p", "m", t1));
        assert_eq!(h.view("p", "m", t1).tier, Tier::Ejected);
        assert_eq!(
            h.view("p", "m", t1 + PROBE_CLAIM).tier,
            Tier::Probe,
            "a claim that never reported expires"
        );
    }

    #[test]
    fn the_error_rate_ejects_without_consecutive_failures() {
        let h = Health::new(HealthPolicy {
            consecutive_failures: 100,
            ..policy()
        });
        let t0 = Instant::now();
        let mut ejected = false;
        for i in 0..10 {
            if i % 2 == 0 {
                h.record_success("p", "m", t0, None, None);
            } else {
                ejected = h.record_failure("p", "m", t0, None);
            }
        }
        assert!(ejected, "5 of 10 failed: 50% ejects");
    }

    #[test]
    fn retry_after_cools_a_target_down() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        h.record_failure("p", "m", t0, Some(Duration::from_secs(7)));
        assert_eq!(h.view("p", "m", t0).cooling, Some(Duration::from_secs(7)));
        assert_eq!(h.view("p", "m", t0 + Duration::from_secs(7)).cooling, None);
    }

    #[test]
    fn concurrency_caps_hold_and_release() {
        let h = Health::new(policy());
        let a = h.try_acquire("p", Some(2)).unwrap();
        let _b = h.try_acquire("p", Some(2)).unwrap();
        assert!(h.try_acquire("p", Some(2)).is_none());
        drop(a);
        assert!(h.try_acquire("p", Some(2)).is_some());
        assert!(h.try_acquire("q", None).is_some());
    }

    #[test]
    fn measurements_are_medians_of_recent_samples() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        for ms in [10, 30, 20] {
            h.record_success(
                "p",
                "m",
                t0,
                Some(Duration::from_millis(ms)),
                Some(ms as f64),
            );
        }
        let v = h.view("p", "m", t0);
        assert_eq!(v.latency_ms, Some(20.0));
        assert_eq!(v.throughput, Some(20.0));
        let standing = h.view_of("p", "m", t0, false);
        assert_eq!((standing.latency_ms, standing.throughput), (None, None));
        assert_eq!(standing.tier, v.tier);
    }
}
