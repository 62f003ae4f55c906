//! The response stores against their contract: a record belongs to the key that created it,
//! lapses after the TTL, and only its owner deletes it — in process and in a real
//! `redis-server` (from `make test`), where an outage is an error, never a silent miss.

use std::time::Duration;

use serde_json::value::RawValue;
use switchboard_e2e::redis::RedisServer;
use switchboard_router::response_store::{
    ResponseStore, StoreSettings, StoredResponse, memory::MemoryStore, redis::RedisStore,
};

fn record(key: &str) -> StoredResponse {
    StoredResponse {
        key_id: key.into(),
        response: RawValue::from_string(r#"{"id":"resp_1","object":"response"}"#.into()).unwrap(),
        input_items: RawValue::from_string(r#"[{"type":"message","id":"msg_1"}]"#.into()).unwrap(),
    }
}

async fn contract(store: &dyn ResponseStore, ttl: Duration) {
    store.put("resp_1", record("ns/a")).await.unwrap();
    let got = store.get("resp_1", "ns/a").await.unwrap().expect("stored");
    assert_eq!(got.response.get(), r#"{"id":"resp_1","object":"response"}"#);
    assert_eq!(
        got.input_items.get(),
        r#"[{"type":"message","id":"msg_1"}]"#
    );
    assert!(
        store.get("resp_1", "ns/b").await.unwrap().is_none(),
        "another key sees nothing"
    );
    assert!(
        !store.delete("resp_1", "ns/b").await.unwrap(),
        "nor deletes it"
    );
    assert!(store.delete("resp_1", "ns/a").await.unwrap());
    assert!(store.get("resp_1", "ns/a").await.unwrap().is_none());
    assert!(store.get("resp_missing", "ns/a").await.unwrap().is_none());

    store.put("resp_2", record("ns/a")).await.unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(
        store.get("resp_2", "ns/a").await.unwrap().is_none(),
        "lapsed after the TTL"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_store_keeps_the_contract() {
    let ttl = Duration::from_millis(300);
    let store = MemoryStore::new(StoreSettings {
        ttl,
        max_bytes: 1 << 20,
    });
    contract(&store, ttl).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_store_keeps_the_contract_and_reports_an_outage() {
    let mut redis = RedisServer::start().await;
    let ttl = Duration::from_millis(500);
    let store = RedisStore::new(&redis.url(), ttl).unwrap();
    contract(&store, ttl).await;
    redis.stop().await;
    assert!(
        store.get("resp_1", "ns/a").await.is_err(),
        "an outage is an error"
    );
}
