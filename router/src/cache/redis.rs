//! Cached answers in the ledger's Redis (`--redis-url`), shared by every replica: one key per
//! answer, `sb:cache:<hash>`, expiring with its TTL. A Redis that fails is left alone for a
//! second (every lookup meanwhile is a miss at once), so an outage costs requests no waiting.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use redis::AsyncCommands;
use switchboard_ledger::redis::LazyConnection;

use super::backend::{Backend, BackendError, BackendFuture, Labels};

/// How long a failed Redis is left alone.
const BACK_OFF: Duration = Duration::from_secs(1);
/// The longest a lookup waits for Redis before it is a miss.
const GET_TIMEOUT: Duration = Duration::from_millis(250);
/// The longest a store waits (it runs after the response, off the request's path).
const PUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers in Redis.
pub struct RedisBackend {
    conn: LazyConnection,
    /// Unix milliseconds until which Redis is not asked (it failed).
    down_until_ms: AtomicU64,
}

impl RedisBackend {
    /// A backend on the Redis at `url`; connects on first use.
    pub fn new(url: &str) -> Result<RedisBackend, BackendError> {
        let client = redis::Client::open(url)
            .map_err(|e| BackendError(format!("invalid Redis URL: {e}")))?;
        Ok(RedisBackend {
            conn: LazyConnection::new(client),
            down_until_ms: AtomicU64::new(0),
        })
    }

    async fn run<T, F>(
        &self,
        limit: Duration,
        op: impl FnOnce(redis::aio::ConnectionManager) -> F,
    ) -> Result<T, BackendError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(BackendError("Redis failed recently; not asked".into()));
        }
        let result = tokio::time::timeout(limit, async {
            let conn = self.conn.get().await.map_err(BackendError)?;
            op(conn)
                .await
                .map_err(|e| BackendError(format!("Redis: {e}")))
        })
        .await
        .unwrap_or_else(|_| Err(BackendError(format!("Redis: no answer within {limit:?}"))));
        if result.is_err() {
            let until = now_ms() + BACK_OFF.as_millis() as u64;
            self.down_until_ms.store(until, Ordering::Relaxed);
        }
        result
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(hash: &str) -> String {
    format!("sb:cache:{hash}")
}

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn get(&self, hash: &str) -> BackendFuture<'_, Option<Bytes>> {
        let k = key(hash);
        Box::pin(async move {
            let value: Option<Vec<u8>> = self
                .run(GET_TIMEOUT, |mut c| async move { c.get(&k).await })
                .await?;
            Ok(value.map(Bytes::from))
        })
    }

    fn put(&self, hash: &str, value: Bytes, ttl: Duration, _: Labels) -> BackendFuture<'_, ()> {
        let k = key(hash);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            self.run(PUT_TIMEOUT, |mut c| async move {
                c.pset_ex::<_, _, ()>(&k, value.as_ref(), ttl_ms).await
            })
            .await
        })
    }
}
