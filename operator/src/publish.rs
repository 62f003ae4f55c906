//! Snapshot versions and the snapshot Secret. Pure: the controller feeds compiled snapshots and
//! what the Secret holds, and publishes what comes out.
//!
//! Version rules (routers refuse a snapshot older than the one they run, so versions only go up):
//! - A compiled snapshot with the same content hash as the current one is not a new version.
//! - A new content gets `max(current, stored) + 1`, where `stored` is the version in the snapshot
//!   Secret: a restarted operator continues where the last one stopped.
//! - When the Secret holds the same content under a higher version (another replica, the leader,
//!   numbered it), this replica adopts that version and republishes, so every replica converges
//!   on the leader's numbering and routers can switch replicas without going backwards.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use switchboard_api::RouterConfig;

use crate::keys::MANAGED_BY;

/// The key of the snapshot Secret holding the snapshot JSON (the file routers mount).
pub const SNAPSHOT_KEY: &str = "snapshot.json";
/// Annotation with the snapshot version, for people reading the Secret.
pub const VERSION_ANNOTATION: &str = "switchboard.dev/snapshot-version";
/// Annotation with the snapshot hash.
pub const HASH_ANNOTATION: &str = "switchboard.dev/snapshot-hash";

/// Numbers snapshots.
#[derive(Debug, Default)]
pub struct Versioner {
    current: Option<RouterConfig>,
    stored: Option<(u64, String)>,
}

impl Versioner {
    /// A versioner continuing after what the snapshot Secret holds (`(version, hash)`), if any.
    pub fn new(stored: Option<(u64, String)>) -> Self {
        Versioner {
            current: None,
            stored,
        }
    }

    /// The snapshot being published, if any.
    pub fn current(&self) -> Option<&RouterConfig> {
        self.current.as_ref()
    }

    /// A freshly compiled snapshot: `Some` with its version assigned when its content is new.
    pub fn offer(&mut self, mut compiled: RouterConfig) -> Option<RouterConfig> {
        let current_version = self.current.as_ref().map_or(0, |c| c.version);
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.hash == compiled.hash)
        {
            return None;
        }
        compiled.version = match &self.stored {
            Some((v, h)) if *h == compiled.hash && *v > current_version => *v,
            Some((v, _)) => current_version.max(*v) + 1,
            None => current_version + 1,
        };
        self.current = Some(compiled.clone());
        Some(compiled)
    }

    /// The snapshot Secret now holds `version` with `hash`: `Some` (to republish) when that is our
    /// content under a higher version.
    pub fn observe_stored(&mut self, version: u64, hash: &str) -> Option<RouterConfig> {
        let stored_version = self.stored.as_ref().map_or(0, |(v, _)| *v);
        if version >= stored_version {
            self.stored = Some((version, hash.to_string()));
        }
        let current = self.current.as_mut()?;
        if current.hash == hash && version > current.version {
            current.version = version;
            return Some(current.clone());
        }
        None
    }

    /// Before the leader writes the snapshot Secret: when the Secret holds other content under a
    /// version at least ours (an earlier leader numbered further), renumber ours above it and
    /// return it to republish.
    pub fn reassert(&mut self) -> Option<RouterConfig> {
        let (stored_version, stored_hash) = self.stored.as_ref()?;
        let current = self.current.as_mut()?;
        if *stored_hash != current.hash && *stored_version >= current.version {
            current.version = stored_version + 1;
            return Some(current.clone());
        }
        None
    }

    /// Whether the snapshot Secret (as last observed) already holds the current snapshot.
    pub fn stored_is_current(&self) -> bool {
        match (&self.stored, &self.current) {
            (Some((v, h)), Some(c)) => *v == c.version && *h == c.hash,
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// Records that the snapshot Secret was written with the current snapshot.
    pub fn stored_now(&mut self) {
        if let Some(c) = &self.current {
            self.stored = Some((c.version, c.hash.clone()));
        }
    }
}

/// The snapshot Secret for `config`.
pub fn snapshot_secret(namespace: &str, name: &str, config: &RouterConfig) -> Secret {
    let json = serde_json::to_vec(config).expect("snapshot types always serialize");
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (VERSION_ANNOTATION.to_string(), config.version.to_string()),
                (HASH_ANNOTATION.to_string(), config.hash.clone()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            SNAPSHOT_KEY.to_string(),
            ByteString(json),
        )])),
        ..Secret::default()
    }
}

/// The snapshot a snapshot Secret holds, if it holds a readable one.
pub fn stored_snapshot(secret: &Secret) -> Option<RouterConfig> {
    let bytes = secret.data.as_ref()?.get(SNAPSHOT_KEY)?;
    serde_json::from_slice(&bytes.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(tag: &str) -> RouterConfig {
        RouterConfig {
            hash: format!("hash-{tag}"),
            ..RouterConfig::default()
        }
    }

    #[test]
    fn first_snapshot_is_version_one_without_a_stored_one() {
        let mut v = Versioner::new(None);
        assert_eq!(v.offer(snapshot("a")).unwrap().version, 1);
    }

    #[test]
    fn same_content_is_not_a_new_version() {
        let mut v = Versioner::new(None);
        v.offer(snapshot("a"));
        assert_eq!(v.offer(snapshot("a")), None);
        assert_eq!(v.offer(snapshot("b")).unwrap().version, 2);
        assert_eq!(v.current().unwrap().hash, "hash-b");
    }

    #[test]
    fn restart_continues_after_the_stored_version() {
        let mut v = Versioner::new(Some((41, "hash-old".into())));
        assert_eq!(v.offer(snapshot("new")).unwrap().version, 42);
    }

    #[test]
    fn restart_with_unchanged_content_keeps_the_stored_version() {
        let mut v = Versioner::new(Some((41, "hash-a".into())));
        assert_eq!(v.offer(snapshot("a")).unwrap().version, 41);
        assert_eq!(v.offer(snapshot("b")).unwrap().version, 42);
    }

    #[test]
    fn follower_adopts_the_leaders_higher_number_for_the_same_content() {
        let mut v = Versioner::new(Some((5, "hash-x".into())));
        assert_eq!(v.offer(snapshot("a")).unwrap().version, 6);
        // The leader stored the same content as version 9.
        let again = v.observe_stored(9, "hash-a").expect("republish");
        assert_eq!(again.version, 9);
        assert_eq!(v.observe_stored(9, "hash-a"), None);
        // Different content stored under a higher number only raises the floor.
        assert_eq!(v.observe_stored(12, "hash-other"), None);
        assert_eq!(v.offer(snapshot("b")).unwrap().version, 13);
    }

    #[test]
    fn a_lower_stored_version_never_lowers_ours() {
        let mut v = Versioner::new(Some((5, "hash-x".into())));
        v.offer(snapshot("a"));
        assert_eq!(v.observe_stored(3, "hash-a"), None);
        assert_eq!(v.current().unwrap().version, 6);
    }

    #[test]
    fn leader_renumbers_above_other_content_stored_under_a_higher_version() {
        let mut v = Versioner::new(None);
        v.offer(snapshot("a"));
        assert!(!v.stored_is_current());
        // A previous leader stored different content as version 12.
        assert_eq!(v.observe_stored(12, "hash-z"), None);
        let again = v.reassert().expect("renumbered");
        assert_eq!(again.version, 13);
        assert_eq!(v.reassert(), None);
        v.stored_now();
        assert!(v.stored_is_current());
    }

    #[test]
    fn snapshot_secret_round_trips() {
        let mut c = RouterConfig::default().seal();
        c.version = 7;
        let s = snapshot_secret("switchboard-system", "switchboard-config", &c);
        let annotations = s.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[VERSION_ANNOTATION], "7");
        assert_eq!(stored_snapshot(&s), Some(c));
    }
}
