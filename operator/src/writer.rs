//! The leader's writes to the API server: status patches, Events, generated key Secrets and the
//! snapshot Secrets. Thin: every decision is made before these are called ([`crate::status`],
//! [`crate::keys`], [`crate::publish`]).

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use serde::de::DeserializeOwned;
use switchboard_api::{
    ObjectRef,
    resources::{ApiKey, Budget, ModelRoute, Provider},
};

use crate::{
    keys::{KeyToGenerate, generate_key, key_secret},
    publish::LEGACY_SNAPSHOT_KEY,
    status::{StatusChange, StatusEvent},
};

/// Field manager named on every write.
pub const FIELD_MANAGER: &str = "switchboard-operator";

/// Writes to the API server on behalf of the leader.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    recorder: Recorder,
}

impl Writer {
    /// A writer; `instance` identifies this replica in Events.
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance.to_string()),
        };
        Writer {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    /// Patches the status subresource of the object `r` (JSON merge patch).
    pub async fn patch_status(
        &self,
        r: &ObjectRef,
        change: &StatusChange,
    ) -> Result<(), kube::Error> {
        match r.kind {
            "Provider" => self.patch_status_of::<Provider>(r, change).await,
            "ModelRoute" => self.patch_status_of::<ModelRoute>(r, change).await,
            "ApiKey" => self.patch_status_of::<ApiKey>(r, change).await,
            "Budget" => self.patch_status_of::<Budget>(r, change).await,
            other => unreachable!("compile judges no {other}"),
        }
    }

    async fn patch_status_of<K>(
        &self,
        r: &ObjectRef,
        change: &StatusChange,
    ) -> Result<(), kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &r.namespace);
        let params = PatchParams::default();
        api.patch_status(&r.name, &params, &Patch::Merge(&change.patch))
            .await
            .map(drop)
    }

    /// Emits a condition transition Event about `regarding`.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        event: &StatusEvent,
    ) -> Result<(), kube::Error> {
        let ev = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            note: Some(event.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        self.recorder.publish(&ev, regarding).await
    }

    /// Creates the Secret holding a newly generated key for `target`. An existing Secret (the
    /// store had not seen it yet) is left alone. The key is never logged.
    pub async fn create_key_secret(&self, target: &KeyToGenerate) -> Result<bool, kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &target.namespace);
        let secret = key_secret(target, &generate_key());
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, &secret).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `secret` as `namespace/name`: a merge patch, or a create when it does not exist.
    pub async fn write_secret(
        &self,
        namespace: &str,
        name: &str,
        secret: &Secret,
    ) -> Result<(), kube::Error> {
        let patch = serde_json::to_value(secret).expect("Secrets serialize");
        self.patch_or_create(namespace, name, &patch, secret).await
    }

    /// Writes the snapshot manifest Secret, removing the whole-snapshot key earlier releases
    /// stored there (it would keep the Secret near the size limit).
    pub async fn write_manifest(
        &self,
        namespace: &str,
        name: &str,
        secret: &Secret,
    ) -> Result<(), kube::Error> {
        let mut patch = serde_json::to_value(secret).expect("Secrets serialize");
        patch["data"][LEGACY_SNAPSHOT_KEY] = serde_json::Value::Null;
        self.patch_or_create(namespace, name, &patch, secret).await
    }

    async fn patch_or_create(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        secret: &Secret,
    ) -> Result<(), kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(name, &params, &Patch::Merge(patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                api.create(&params, secret).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
