//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the holder renews the Lease every retry period; a replica takes it over when the record (holder
//! and renew time) has not changed for a lease duration *as this replica observed it* (its own
//! monotonic clock, so clock skew between nodes does not matter); writes use the Lease's
//! `resourceVersion`, so two replicas can never both win. A leader that cannot renew within the
//! renew deadline steps down before its lease could be taken over.
//!
//! Every replica compiles and serves snapshots; only the leader writes status and Secrets.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::watch;

/// Lease timing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (must be < `lease_duration`).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

/// What to do with the Lease on this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// It is free or expired: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides, from the Lease as read and how long its record has been unchanged as we observed it.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Action {
    let Some(spec) = lease else {
        return Action::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Action::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    if holder.is_empty() || unchanged_for >= duration {
        return Action::TakeOver;
    }
    Action::Follow {
        holder: holder.to_string(),
    }
}

/// The Lease spec with us as holder, renewed now; a takeover also stamps the acquire time and
/// counts a transition.
pub fn held_spec(
    previous: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(me);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if ours {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// The part of a Lease that changes on every renewal: holder and renew time.
type LeaseRecord = (Option<String>, Option<MicroTime>);

/// One replica's view of the election, kept across rounds.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The lease record last seen (holder, renew time) and when we first saw it.
    observed: Option<(LeaseRecord, Instant)>,
    /// When we last renewed successfully.
    last_renew: Option<Instant>,
}

impl Elector {
    /// An elector over the configured Lease.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            last_renew: None,
        }
    }

    /// One round: read the Lease, act, and say whether we lead now.
    pub async fn step(&mut self) -> bool {
        let now = Instant::now();
        let result = self.try_step(now).await;
        if let Err(e) = &result {
            let s = &self.settings;
            tracing::warn!(lease = %format!("{}/{}", s.namespace, s.name), "leader election: {e}");
            // A conflict means someone else wrote the Lease since we read it: we do not lead.
            if matches!(e, kube::Error::Api(status) if status.is_conflict()) {
                self.last_renew = None;
            }
        }
        match self.last_renew {
            Some(t) if now.duration_since(t) < self.settings.renew_deadline => true,
            _ => {
                self.last_renew = None;
                false
            }
        }
    }

    async fn try_step(&mut self, now: Instant) -> Result<(), kube::Error> {
        let s = self.settings.clone();
        let current = self.api.get_opt(&s.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let record = (
            spec.and_then(|sp| sp.holder_identity.clone()),
            spec.and_then(|sp| sp.renew_time.clone()),
        );
        let unchanged_since = match &self.observed {
            Some((seen, since)) if *seen == record => *since,
            _ => {
                self.observed = Some((record, now));
                now
            }
        };
        let action = decide(
            current
                .as_ref()
                .map(|l| l.spec.clone().unwrap_or_default())
                .as_ref(),
            &s.identity,
            now.duration_since(unchanged_since),
            s.lease_duration,
        );
        let stamp = Timestamp::now();
        match action {
            Action::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(s.name.clone()),
                        namespace: Some(s.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_spec(None, &s.identity, s.lease_duration, stamp)),
                };
                self.api.create(&PostParams::default(), &lease).await?;
                tracing::info!(identity = %s.identity, "created the lease: leading");
                self.last_renew = Some(now);
            }
            Action::Renew | Action::TakeOver => {
                let mut lease = current.expect("a lease to renew or take over");
                let spec = held_spec(lease.spec.as_ref(), &s.identity, s.lease_duration, stamp);
                lease.spec = Some(spec);
                // The resourceVersion read above makes this a compare-and-swap.
                self.api
                    .replace(&s.name, &PostParams::default(), &lease)
                    .await?;
                if action == Action::TakeOver {
                    tracing::info!(identity = %s.identity, "took over the lease: leading");
                }
                self.last_renew = Some(now);
            }
            Action::Follow { holder } => {
                if self.last_renew.take().is_some() {
                    tracing::info!(%holder, "lost the lease: following");
                }
            }
        }
        Ok(())
    }

    /// Gives the lease up so another replica can take over at once (on shutdown).
    pub async fn release(&mut self) {
        if self.last_renew.take().is_none() {
            return;
        }
        let name = self.settings.name.clone();
        if let Ok(Some(mut lease)) = self.api.get_opt(&name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.settings.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            if let Err(e) = self
                .api
                .replace(&name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!("releasing the lease failed: {e}");
            }
        }
    }

    /// Runs rounds until `shutdown` turns true, publishing leadership on `leader`; releases the
    /// lease on the way out.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let leading = self.step().await;
            leader.send_if_modified(|l| std::mem::replace(l, leading) != leading);
            tokio::select! {
                _ = tokio::time::sleep(self.settings.retry_period) => {}
                _ = crate::stopped(&mut shutdown) => break,
            }
        }
        leader.send_replace(false);
        self.release().await;
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
