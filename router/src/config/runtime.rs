//! The config a router is serving right now: the snapshot plus what is derived from it once per
//! version (resolved credentials, providers ready to call with their upstream clients). Swapped
//! atomically; requests read it without locks.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use switchboard_api::{
    compile::ObjectOutcome,
    manifest::ObjectRef,
    snapshot::{CredentialSource, ProviderConfig, RouterConfig, SecretValue, SnapshotDigest},
};

use crate::providers::{ProviderRuntime, clients::ClientPool};

/// The status of one object from the last compile, for `/config` and logs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectStatus {
    /// `Kind namespace/name`.
    pub object: String,
    /// In the snapshot or not.
    pub ready: bool,
    /// Condition reason.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

impl ObjectStatus {
    /// From a compile verdict.
    pub fn new(object: &ObjectRef, outcome: &ObjectOutcome) -> Self {
        let (ready, reason, message) = match outcome {
            ObjectOutcome::Ready { reason, message } => (true, *reason, message.clone()),
            ObjectOutcome::Rejected { reason, message } => (false, *reason, message.clone()),
        };
        ObjectStatus {
            object: object.to_string(),
            ready,
            reason,
            message,
        }
    }
}

/// One loaded config version.
#[derive(Debug)]
pub struct Runtime {
    /// The snapshot.
    pub config: RouterConfig,
    /// Providers by id, ready to call.
    pub providers: HashMap<String, Arc<ProviderRuntime>>,
    /// Verdicts of the compile that produced the snapshot (empty when it came pre-compiled).
    pub objects: Vec<ObjectStatus>,
    /// The snapshot's digest, which a delta from the operator is applied to: set when it was
    /// computed anyway (validating a whole snapshot, applying a delta), else on first need.
    pub digest: OnceLock<SnapshotDigest>,
    /// The Budgets covering each key, by key id.
    budgets_by_key: HashMap<String, Vec<Arc<str>>>,
}

impl Runtime {
    /// The ids of the Budgets covering the key `key_id` (`namespace/name`), in id order.
    pub fn budgets_of(&self, key_id: &str) -> &[Arc<str>] {
        self.budgets_by_key.get(key_id).map_or(&[], Vec::as_slice)
    }

    /// Builds the runtime for a validated snapshot. `env` resolves `credentials.env` names.
    pub fn build(
        config: RouterConfig,
        objects: Vec<ObjectStatus>,
        clients: &ClientPool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Runtime, String> {
        let mut providers = HashMap::new();
        for (id, p) in &config.providers {
            let credential = resolve_credential(p, env);
            if let Err(why) = &credential {
                tracing::warn!(provider = %id, "{why}");
            }
            let clients = clients.get(p.timeouts.connect_ms)?;
            let provider = ProviderRuntime::new(id, p.clone(), credential, clients);
            providers.insert(id.clone(), Arc::new(provider));
        }
        Ok(Runtime {
            budgets_by_key: switchboard_api::snapshot::budgets_by_key(&config),
            config,
            providers,
            objects,
            digest: OnceLock::new(),
        })
    }
}

/// The provider's credential: from the snapshot, or from the router's environment, or why it is
/// unavailable.
fn resolve_credential(
    p: &ProviderConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretValue>, String> {
    match &p.credential {
        None => Ok(None),
        Some(CredentialSource::Value(v)) => Ok(Some(v.clone())),
        Some(CredentialSource::Env(name)) => match env(name) {
            Some(v) if !v.trim().is_empty() => Ok(Some(SecretValue::new(v.trim()))),
            _ => Err(format!(
                "provider {} reads its credential from environment variable {name}, \
                 which is not set on this router",
                p.name
            )),
        },
    }
}
