//! The Redis response store (the ledger's Redis, `--redis-url`): one key per record,
//! `sb:resp:<id>`, holding the record's JSON with the store's TTL.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};
use switchboard_ledger::redis::LazyConnection;

use super::{ResponseStore, StoreError, StoreFuture, StoredResponse};

/// A store in Redis.
pub struct RedisStore {
    conn: LazyConnection,
    ttl: Duration,
}

impl RedisStore {
    /// A store at `url` keeping records for `ttl`. Connects on first use.
    pub fn new(url: &str, ttl: Duration) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError(format!("invalid Redis URL: {e}")))?;
        Ok(RedisStore {
            conn: LazyConnection::new(client),
            ttl,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.conn.get().await.map_err(StoreError)
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
