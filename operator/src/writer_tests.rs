//! The exact API calls each write makes.

use serde_json::json;
use switchboard_api::ObjectRef;

use super::*;
use crate::{
    fixtures::{client, status_error},
    keys::KeyToGenerate,
    status::StatusEvent,
};

fn provider_ref() -> ObjectRef {
    ObjectRef {
        kind: "Provider",
        namespace: "team-a".into(),
        name: "mock".into(),
    }
}

#[tokio::test]
async fn status_is_a_merge_patch_of_the_status_subresource() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let change = StatusChange {
        patch: json!({"status": {"models": 2}}),
        events: vec![],
    };
    let server = tokio::spawn(async move {
        let call = api
            .expect(
                "PATCH",
                "/apis/switchboard.dev/v1alpha1/namespaces/team-a/providers/mock/status",
                200,
                json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Provider",
                       "metadata": {"name": "mock", "namespace": "team-a"},
                       "spec": {"type": "mock", "models": [{"name": "chat"}]}}),
            )
            .await;
        assert_eq!(call.content_type, "application/merge-patch+json");
        assert_eq!(call.body, json!({"status": {"models": 2}}));
        api.expect_no_more().await;
    });
    writer.patch_status(&provider_ref(), &change).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn transition_event_is_created_in_the_objects_namespace() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let regarding = ObjectReference {
        api_version: Some("switchboard.dev/v1alpha1".into()),
        kind: Some("Provider".into()),
        name: Some("mock".into()),
        namespace: Some("team-a".into()),
        uid: Some("uid-1".into()),
        ..ObjectReference::default()
    };
    let server = tokio::spawn(async move {
        let (call, send) = api.next().await;
        assert_eq!(call.method, "POST");
        assert_eq!(call.path, "/apis/events.k8s.io/v1/namespaces/team-a/events");
        assert_eq!(call.body["type"], "Warning");
        assert_eq!(call.body["reason"], "SecretNotFound");
        assert_eq!(call.body["note"], "Secret team-a/x not found");
        assert_eq!(call.body["regarding"]["uid"], "uid-1");
        assert_eq!(call.body["reportingController"], "switchboard-operator");
        assert_eq!(call.body["reportingInstance"], "op-0");
        crate::fixtures::respond(send, 201, call.body);
    });
    let event = StatusEvent {
        warning: true,
        reason: "SecretNotFound".into(),
        note: "Secret team-a/x not found".into(),
    };
    writer.event(&regarding, &event).await.unwrap();
    server.await.unwrap();
}

fn target() -> KeyToGenerate {
    KeyToGenerate {
        namespace: "team-a".into(),
        api_key: "alice".into(),
        uid: "uid-alice".into(),
        secret: "switchboard-apikey-alice".into(),
    }
}

#[tokio::test]
async fn key_secret_is_created_once_with_an_owner_reference() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let server = tokio::spawn(async move {
        let (call, send) = api.next().await;
        assert_eq!(call.method, "POST");
        assert_eq!(call.path, "/api/v1/namespaces/team-a/secrets");
        assert!(
            call.query.contains("fieldManager=switchboard-operator"),
            "{}",
            call.query
        );
        assert_eq!(call.body["metadata"]["name"], "switchboard-apikey-alice");
        assert_eq!(
            call.body["metadata"]["ownerReferences"][0]["kind"],
            "ApiKey"
        );
        assert_eq!(
            call.body["metadata"]["ownerReferences"][0]["uid"],
            "uid-alice"
        );
        let encoded = call.body["data"]["key"].as_str().unwrap();
        let key = String::from_utf8(base64_decode(encoded)).unwrap();
        assert!(
            key.starts_with("sk-sb-") && key.len() == 54,
            "generated key has the documented shape"
        );
        crate::fixtures::respond(send, 201, call.body);
        // A second writer racing the store: the Secret exists already.
        api.expect(
            "POST",
            "/api/v1/namespaces/team-a/secrets",
            409,
            status_error(409, "AlreadyExists"),
        )
        .await;
    });
    assert!(writer.create_key_secret(&target()).await.unwrap());
    assert!(
        !writer.create_key_secret(&target()).await.unwrap(),
        "AlreadyExists is not an error"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn the_manifest_is_patched_dropping_the_whole_snapshot_key_and_created_when_missing() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let manifest = switchboard_api::snapshot::shards::ShardManifest {
        version: 3,
        hash: "h".into(),
        shards: vec![],
    };
    let secret =
        crate::publish::manifest_secret("switchboard-system", "switchboard-config", &manifest);
    let server = tokio::spawn(async move {
        let path = "/api/v1/namespaces/switchboard-system/secrets/switchboard-config";
        let call = api
            .expect("PATCH", path, 404, status_error(404, "NotFound"))
            .await;
        assert_eq!(call.content_type, "application/merge-patch+json");
        assert_eq!(
            call.body["metadata"]["annotations"]["switchboard.dev/snapshot-version"],
            "3"
        );
        // A merge patch removes the key an earlier release kept the whole snapshot under.
        assert!(call.body["data"]["snapshot.json"].is_null());
        let back: switchboard_api::snapshot::shards::ShardManifest = serde_json::from_slice(
            &base64_decode(call.body["data"]["manifest.json"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(back.version, 3);
        let (call, send) = api.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", "/api/v1/namespaces/switchboard-system/secrets")
        );
        assert_eq!(call.body["metadata"]["name"], "switchboard-config");
        assert!(call.body["data"].get("snapshot.json").is_none());
        crate::fixtures::respond(send, 201, call.body);
        api.expect_no_more().await;
    });
    writer
        .write_manifest("switchboard-system", "switchboard-config", &secret)
        .await
        .unwrap();
    server.await.unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}
