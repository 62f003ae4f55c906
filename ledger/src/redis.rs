//! The Redis ledger, shared by every router replica. Each reservation and settlement is one Lua
//! script, so admission across all of a request's counters is atomic however many replicas race.
//!
//! Per counter `c`: `sb:{c}:s` spent, `sb:{c}:r` total reserved, `sb:{c}:z` reservation expiries
//! (sorted set), `sb:{c}:h` reservation amounts (hash). Lapsed reservations are purged by the
//! next script that touches the counter. Keys expire with their window (plus a grace). Settled
//! reservation ids are remembered for ten minutes so a retried settlement (the first attempt may
//! have been applied although its reply was lost) is not counted twice; deferred settlements are
//! retried every second, so ten minutes covers any retry that happens while Redis is up.
//! Not for Redis Cluster (a request's keys span hash slots).

use std::time::Duration;

use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::Mutex;

use super::{
    BoxFuture, CounterState, Ledger, LedgerError, ReserveRequest, Reserved, Settlement, millis,
};

const PURGE: &str = r#"
local function purge(z, h, t, now)
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, m in ipairs(dead) do
    local a = redis.call('HGET', h, m)
    if a then
      redis.call('DECRBY', t, a)
      redis.call('HDEL', h, m)
    end
  end
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep(key, ttl)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
"#;

/// KEYS: 4 per charge (s, r, z, h). ARGV: id, hold_ms, then per charge: limit (-1 for none),
/// amount, keep_ms (0 forever). Returns {1, used...} or {0, index, used, limit}. Time is Redis's
/// own clock, so replicas with skewed clocks agree on when reservations lapse.
const RESERVE: &str = r#"
local id = ARGV[1]
local now = now_ms()
local untl = now + tonumber(ARGV[2])
local n = #KEYS / 4
local used = {}
for i = 0, n - 1 do
  local s, t, z, h = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  purge(z, h, t, now)
  local limit, amount = tonumber(ARGV[3+3*i]), tonumber(ARGV[4+3*i])
  local cur = (tonumber(redis.call('GET', s)) or 0) + (tonumber(redis.call('GET', t)) or 0)
  if limit >= 0 and cur + amount > limit then
    return {0, i, cur, limit}
  end
  used[#used + 1] = cur + amount
end
for i = 0, n - 1 do
  local s, t, z, h = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  local amount, ttl = ARGV[4+3*i], tonumber(ARGV[5+3*i])
  redis.call('ZADD', z, untl, id)
  redis.call('HSET', h, id, amount)
  redis.call('INCRBY', t, amount)
  if redis.call('EXISTS', s) == 0 then redis.call('SET', s, 0) end
  keep(s, ttl) keep(t, ttl) keep(z, ttl) keep(h, ttl)
end
return {1, unpack(used)}
"#;

/// KEYS: settled marker, then 4 per counter. ARGV: id, then per counter: actual, keep_ms.
const SETTLE: &str = r#"
local id = ARGV[1]
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', 600000) == false then
  return 0
end
local n = (#KEYS - 1) / 4
for i = 0, n - 1 do
  local s, t, z, h = KEYS[2+4*i], KEYS[3+4*i], KEYS[4+4*i], KEYS[5+4*i]
  local a = redis.call('HGET', h, id)
  if a then
    redis.call('DECRBY', t, a)
    redis.call('HDEL', h, id)
    redis.call('ZREM', z, id)
  end
  local actual, ttl = tonumber(ARGV[2+2*i]), tonumber(ARGV[3+2*i])
  redis.call('INCRBY', s, actual)
  keep(s, ttl)
end
return 1
"#;

/// KEYS: 4 per counter. Returns spent, reserved pairs.
const READ: &str = r#"
local now = now_ms()
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local s, t, z, h = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  purge(z, h, t, now)
  out[#out + 1] = tonumber(redis.call('GET', s)) or 0
  out[#out + 1] = tonumber(redis.call('GET', t)) or 0
end
return out
"#;

fn keys(counter: &str) -> [String; 4] {
    ["s", "r", "z", "h"].map(|suffix| format!("sb:{{{counter}}}:{suffix}"))
}

fn keep_ms(keep_for: Option<Duration>) -> i64 {
    keep_for.map_or(0, |d| millis(d).max(1))
}

/// The Redis ledger.
pub struct RedisLedger {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    reserve: Script,
    settle: Script,
    read: Script,
}

impl RedisLedger {
    /// A ledger on `url` (`redis://host:port/db`). Connects lazily, so a router starts while
    /// Redis is down and follows each budget's `failureMode` until it is back.
    pub fn new(url: &str) -> anyhow::Result<RedisLedger> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid --redis-url: {e}"))?;
        Ok(RedisLedger {
            client,
            conn: Mutex::new(None),
            reserve: Script::new(&format!("{PURGE}{RESERVE}")),
            settle: Script::new(&format!("{PURGE}{SETTLE}")),
            read: Script::new(&format!("{PURGE}{READ}")),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, LedgerError> {
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
        .map_err(|_| LedgerError("connecting to Redis timed out".into()))?
        .map_err(|e| LedgerError(format!("connecting to Redis failed: {e}")))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, LedgerError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(Duration::from_secs(2), inv.invoke_async(&mut conn))
            .await
            .map_err(|_| LedgerError("Redis did not answer in time".into()))?
            .map_err(|e| LedgerError(format!("Redis: {e}")))
    }
}

impl Ledger for RedisLedger {
    fn reserve<'a>(
        &'a self,
        req: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
        Box::pin(async move {
            let mut inv = self.reserve.prepare_invoke();
            inv.arg(&req.id).arg(millis(req.hold_for));
            for c in &req.charges {
                for k in keys(&c.counter) {
                    inv.key(k);
                }
                inv.arg(c.limit.unwrap_or(-1))
                    .arg(c.reserve)
                    .arg(keep_ms(c.keep_for));
            }
            let out: Vec<i64> = self.run(inv).await?;
            match out.as_slice() {
                [1, used @ ..] => Ok(Reserved::Admitted {
                    used: used.to_vec(),
                }),
                [0, index, used, limit] => Ok(Reserved::Refused {
                    index: *index as usize,
                    used: *used,
                    limit: *limit,
                }),
                other => Err(LedgerError(format!("unexpected reserve reply {other:?}"))),
            }
        })
    }

    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut inv = self.settle.prepare_invoke();
            inv.key(format!("sb:settled:{}", s.id));
            inv.arg(&s.id);
            for (counter, actual, keep_for) in &s.counters {
                for k in keys(counter) {
                    inv.key(k);
                }
                inv.arg(*actual).arg(keep_ms(*keep_for));
            }
            let _: i64 = self.run(inv).await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        counters: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async move {
            let mut inv = self.read.prepare_invoke();
            for c in counters {
                for k in keys(c) {
                    inv.key(k);
                }
            }
            let out: Vec<i64> = self.run(inv).await?;
            Ok(out
                .chunks(2)
                .map(|p| CounterState {
                    spent: p[0],
                    reserved: p.get(1).copied().unwrap_or(0),
                })
                .collect())
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn put_generation<'a>(
        &'a self,
        id: &'a str,
        record: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("sb:gen:{id}"))
                .arg(record)
                .arg("PX")
                .arg(millis(ttl));
            tokio::time::timeout(Duration::from_secs(2), cmd.query_async::<()>(&mut conn))
                .await
                .map_err(|_| LedgerError("Redis did not answer in time".into()))?
                .map_err(|e| LedgerError(format!("Redis: {e}")))
        })
    }

    fn get_generation<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let mut cmd = redis::cmd("GET");
            cmd.arg(format!("sb:gen:{id}"));
            tokio::time::timeout(
                Duration::from_secs(2),
                cmd.query_async::<Option<String>>(&mut conn),
            )
            .await
            .map_err(|_| LedgerError("Redis did not answer in time".into()))?
            .map_err(|e| LedgerError(format!("Redis: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract_tests;

    /// Runs against `SWITCHBOARD_TEST_REDIS_URL` when set, else against a `redis-server`
    /// (`SWITCHBOARD_TEST_REDIS_SERVER`, else PATH) it starts itself; fails when neither is possible.
    #[tokio::test]
    async fn satisfies_the_ledger_contract() {
        let mut own = None;
        let url = match std::env::var("SWITCHBOARD_TEST_REDIS_URL") {
            Ok(url) => url,
            Err(_) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let program = std::env::var_os("SWITCHBOARD_TEST_REDIS_SERVER")
                    .unwrap_or_else(|| "redis-server".into());
                let child = std::process::Command::new(program)
                    .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("redis-server is needed: run `make test` (it provides one), or set SWITCHBOARD_TEST_REDIS_SERVER or SWITCHBOARD_TEST_REDIS_URL");
                own = Some(child);
                for _ in 0..100 {
                    if tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                format!("redis://127.0.0.1:{port}/0")
            }
        };
        let l = RedisLedger::new(&url).unwrap();
        let prefix = format!("test:{}:{}:", std::process::id(), rand::random::<u64>());
        contract_tests::admission_is_exact_and_atomic(&l, &prefix).await;
        contract_tests::reservations_lapse(&l, &prefix).await;
        if let Some(mut c) = own {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
