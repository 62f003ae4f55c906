//! The Redis response store (the ledger's Redis, `--redis-url`): one key per record,
//! `sb:resp:<id>`, holding the record's JSON with the store's TTL.

use std::time::Duration;

use redis::{
    AsyncCommands,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::Mutex;

use super::{ResponseStore, StoreError, StoreFuture, StoredResponse};

/// A store in Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    ttl: Duration,
}

impl RedisStore {
    /// A store at `url` keeping records for `ttl`. Connects on first use.
    pub fn new(url: &str, ttl: Duration) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
        Ok(RedisStore {
            client,
            conn: Mutex::new(None),
            ttl,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError("connecting to Redis timed out".into()))?
        .map_err(|e| StoreError(format!("connecting to Redis failed: {e}")))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn read(&self, id: &str, key_id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let mut conn = self.connection().await?;
        let text: Option<String> = conn.get(key(id)).await.map_err(failed)?;
        Ok(text
            .and_then(|t| serde_json::from_str::<StoredResponse>(&t).ok())
            .filter(|r| r.key_id == key_id))
    }
}

fn key(id: &str) -> String {
    format!("sb:resp:{id}")
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError(format!("Redis: {e}"))
}

impl ResponseStore for RedisStore {
    fn put(&self, id: &str, record: StoredResponse) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(async move {
            let text = serde_json::to_string(&record).expect("a record serialises");
            let mut conn = self.connection().await?;
            let ttl_ms = u64::try_from(self.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            conn.pset_ex::<_, _, ()>(key(&id), text, ttl_ms)
                .await
                .map_err(failed)
        })
    }

    fn get(&self, id: &str, key_id: &str) -> StoreFuture<'_, Option<StoredResponse>> {
        let (id, key_id) = (id.to_string(), key_id.to_string());
        Box::pin(async move { self.read(&id, &key_id).await })
    }

    fn delete(&self, id: &str, key_id: &str) -> StoreFuture<'_, bool> {
        let (id, key_id) = (id.to_string(), key_id.to_string());
        Box::pin(async move {
            if self.read(&id, &key_id).await?.is_none() {
                return Ok(false);
            }
            let mut conn = self.connection().await?;
            let n: u64 = conn.del(key(&id)).await.map_err(failed)?;
            Ok(n > 0)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
