use switchboard_api::{
    compile,
    snapshot::{SnapshotText, shards::ShardManifest},
    testing::scale::{self, Scale},
};

use super::*;
use crate::fixtures::{ApiServerVerifier, client, respond, status_error};

const SECRETS: &str = "/api/v1/namespaces/switchboard-system/secrets";

fn settings() -> StoreSettings {
    StoreSettings {
        secret: ("switchboard-system".into(), "switchboard-config".into()),
        max_shards: 32,
    }
}

/// Answers a merge patch of Secret `name` with 404 and the create that follows with 201;
/// returns the created Secret.
async fn expect_created(api: &mut ApiServerVerifier, name: &str) -> serde_json::Value {
    api.expect(
        "PATCH",
        &format!("{SECRETS}/{name}"),
        404,
        status_error(404, "NotFound"),
    )
    .await;
    let (call, send) = api.next().await;
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", SECRETS)
    );
    assert_eq!(call.body["metadata"]["name"], name);
    respond(send, 201, call.body.clone());
    call.body
}

#[tokio::test]
async fn shards_are_written_before_the_manifest_and_unchanged_ones_not_again() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let metrics = Metrics::new();
    let config = compile(&scale::objects(&Scale::keys(50))).config;
    let p = Published::new(3, &config.hash, SnapshotText::of(&config), None);
    let mut store = ShardStore::default();
    let server = tokio::spawn(async move {
        let shard = expect_created(&mut api, "switchboard-config-0").await;
        assert!(shard["data"]["shard-0.json.zst"].is_string());
        let manifest = expect_created(&mut api, "switchboard-config").await;
        assert_eq!(
            manifest["metadata"]["annotations"]["switchboard.dev/snapshot-hash"],
            config.hash
        );
        // The same content as version 4: only the manifest changes.
        let call = api
            .expect(
                "PATCH",
                &format!("{SECRETS}/switchboard-config"),
                200,
                manifest.clone(),
            )
            .await;
        use base64::Engine;
        let json = base64::engine::general_purpose::STANDARD
            .decode(call.body["data"]["manifest.json"].as_str().unwrap())
            .unwrap();
        let back: ShardManifest = serde_json::from_slice(&json).unwrap();
        assert_eq!((back.version, back.shards.len()), (4, 1));
        api.expect_no_more().await;
    });
    store_version(&settings(), &writer, &metrics, &mut store, &p)
        .await
        .unwrap();
    let again = Published::new(4, &p.hash, p.text().clone(), None);
    store_version(&settings(), &writer, &metrics, &mut store, &again)
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(metrics.snapshot_shards.get(), 1);
    assert!(metrics.snapshot_bytes.get() > 0);
}

#[tokio::test]
async fn a_failed_shard_write_leaves_the_manifest_alone() {
    let (client, mut api) = client();
    let writer = Writer::new(client, "op-0");
    let metrics = Metrics::new();
    let config = compile(&scale::objects(&Scale::keys(20))).config;
    let p = Published::new(1, &config.hash, SnapshotText::of(&config), None);
    let server = tokio::spawn(async move {
        api.expect(
            "PATCH",
            &format!("{SECRETS}/switchboard-config-0"),
            500,
            status_error(500, "InternalError"),
        )
        .await;
        api.expect_no_more().await;
    });
    let mut store = ShardStore::default();
    assert!(
        store_version(&settings(), &writer, &metrics, &mut store, &p)
            .await
            .is_err()
    );
    server.await.unwrap();
}
