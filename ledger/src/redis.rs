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
//!
//! Lua computes in doubles, exact up to 2^53: the admission test is written as
//! `amount > (limit - spent) - reserved`, which decides exactly for every value the ledger allows
//! (amounts and limits up to [`MAX_AMOUNT`](super::MAX_AMOUNT)); counters themselves are changed
//! only with Redis's exact integer commands, and read back as the strings Redis keeps, so what a
//! script reports is exact and summed in Rust.

use std::time::Duration;

use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::Mutex;

use super::{
    BoxFuture, CounterState, Ledger, LedgerError, ReserveRequest, Reserved, Settlement, millis,
    used,
};

pub(crate) const PURGE: &str = r#"
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
-- 2^62; a number here (Lua compares doubles), the same as a string where Redis stores it.
local COUNTER_MAX = 4611686018427387904
local function num(key)
  return tonumber(redis.call('GET', key)) or 0
end
local function str(key)
  return redis.call('GET', key) or '0'
end
"#;

/// KEYS: 4 per charge (s, r, z, h). ARGV: id, hold_ms, then per charge: limit (-1 for none),
/// amount, keep_ms (0 forever). Returns {1, spent, reserved, ...} (each charge's counter before
/// this reservation, as strings), {0, index, spent, reserved} when charge `index` refuses, or
/// {-1, index} when its reservations would pass `COUNTER_MAX`. Time is Redis's own clock, so
/// replicas with skewed clocks agree on when reservations lapse.
const RESERVE: &str = r#"
local id = ARGV[1]
local now = now_ms()
local untl = now + tonumber(ARGV[2])
local n = #KEYS / 4
local before = {}
for i = 0, n - 1 do
  local s, t, z, h = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  purge(z, h, t, now)
  local limit, amount = tonumber(ARGV[3+3*i]), tonumber(ARGV[4+3*i])
  local spent, reserved = num(s), num(t)
  if limit >= 0 and amount > (limit - spent) - reserved then
    return {0, i, str(s), str(t)}
  end
  if reserved + amount > COUNTER_MAX then
    return {-1, i}
  end
  before[#before + 1] = str(s)
  before[#before + 1] = str(t)
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
table.insert(before, 1, 1)
return before
"#;

/// KEYS: settled marker, then 4 per counter. ARGV: id, then per counter: actual, keep_ms.
/// `spent` saturates at `COUNTER_MAX`. Returns each counter's spent and reserved afterwards (as
/// strings), whether or not this settlement was a repeat.
const SETTLE: &str = r#"
local id = ARGV[1]
local first = redis.call('SET', KEYS[1], 1, 'NX', 'PX', 600000) ~= false
local now = now_ms()
local n = (#KEYS - 1) / 4
local out = {}
for i = 0, n - 1 do
  local s, t, z, h = KEYS[2+4*i], KEYS[3+4*i], KEYS[4+4*i], KEYS[5+4*i]
  if first then
    local a = redis.call('HGET', h, id)
    if a then
      redis.call('DECRBY', t, a)
      redis.call('HDEL', h, id)
      redis.call('ZREM', z, id)
    end
    local actual, ttl = tonumber(ARGV[2+2*i]), tonumber(ARGV[3+2*i])
    if num(s) + actual >= COUNTER_MAX then
      redis.call('SET', s, '4611686018427387904')
    else
      redis.call('INCRBY', s, actual)
    end
    keep(s, ttl)
  end
  purge(z, h, t, now)
  out[#out + 1] = str(s)
  out[#out + 1] = str(t)
end
return out
"#;

/// KEYS: 4 per counter. Returns spent, reserved pairs (as strings).
const READ: &str = r#"
local now = now_ms()
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local s, t, z, h = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  purge(z, h, t, now)
  out[#out + 1] = str(s)
  out[#out + 1] = str(t)
end
return out
"#;

/// An integer a script answered, as a string (a counter) or a number (a status).
pub(crate) fn int(v: &redis::Value) -> Result<i64, LedgerError> {
    match v {
        redis::Value::Int(n) => Ok(*n),
        redis::Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LedgerError(format!("Redis answered a non-integer counter {b:?}"))),
        other => Err(LedgerError(format!("unexpected Redis value {other:?}"))),
    }
}

/// Counter states from `spent, reserved` pairs.
fn states(values: &[redis::Value]) -> Result<Vec<CounterState>, LedgerError> {
    values
        .chunks(2)
        .map(|pair| match pair {
            [spent, reserved] => Ok(CounterState {
                spent: int(spent)?,
                reserved: int(reserved)?,
            }),
            _ => Err(LedgerError("Redis answered an odd number of values".into())),
        })
        .collect()
}

fn keys(counter: &str) -> [String; 4] {
    ["s", "r", "z", "h"].map(|suffix| format!("sb:{{{counter}}}:{suffix}"))
}

fn keep_ms(keep_for: Option<Duration>) -> i64 {
    keep_for.map_or(0, |d| millis(d).max(1))
}

/// A Redis connection opened on first use and kept: 0.5 s to connect, 1 s for a reply, one
/// retry, 2 s in all. Shared by the ledger and the router's other Redis users (its response
/// store), so they meet an unreachable Redis the same way.
pub struct LazyConnection {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
}

impl LazyConnection {
    /// A connection to `client`'s server, not opened yet.
    pub fn new(client: redis::Client) -> LazyConnection {
        LazyConnection {
            client,
            conn: Mutex::new(None),
        }
    }

    /// The open connection, opening it first if needed; why not, as a message.
    pub async fn get(&self) -> Result<ConnectionManager, String> {
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
        .map_err(|_| "connecting to Redis timed out".to_string())?
        .map_err(|e| format!("connecting to Redis failed: {e}"))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

/// The Redis ledger.
pub struct RedisLedger {
    conn: LazyConnection,
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
            conn: LazyConnection::new(client),
            reserve: Script::new(&format!("{PURGE}{RESERVE}")),
            settle: Script::new(&format!("{PURGE}{SETTLE}")),
            read: Script::new(&format!("{PURGE}{READ}")),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, LedgerError> {
        self.conn.get().await.map_err(LedgerError)
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
            req.check()?;
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
            let out: Vec<redis::Value> = self.run(inv).await?;
            let charge = |index: &redis::Value| {
                let i = usize::try_from(int(index)?).unwrap_or(usize::MAX);
                req.charges
                    .get(i)
                    .map(|c| (i, c))
                    .ok_or_else(|| LedgerError(format!("Redis named charge {i} of a reservation")))
            };
            match out.split_first() {
                Some((status, rest)) => match (int(status)?, rest) {
                    (1, before) => Ok(Reserved::Admitted {
                        used: states(before)?
                            .iter()
                            .zip(&req.charges)
                            .map(|(s, c)| used(s.spent, s.reserved, c.reserve))
                            .collect(),
                    }),
                    (0, [index, spent, reserved]) => {
                        let (index, c) = charge(index)?;
                        Ok(Reserved::Refused {
                            index,
                            used: used(int(spent)?, int(reserved)?, 0),
                            limit: c.limit.unwrap_or(0),
                        })
                    }
                    (-1, [index]) => {
                        let (_, c) = charge(index)?;
                        Err(LedgerError(format!(
                            "counter {} cannot hold more reservations",
                            c.counter
                        )))
                    }
                    _ => Err(LedgerError(format!("unexpected reserve reply {out:?}"))),
                },
                None => Err(LedgerError("empty reserve reply".into())),
            }
        })
    }

    fn settle<'a>(&'a self, s: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move { self.settle_and_read(s).await.map(drop) })
    }

    fn settle_and_read<'a>(
        &'a self,
        s: &'a Settlement,
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async move {
            s.check()?;
            let mut inv = self.settle.prepare_invoke();
            inv.key(format!("sb:settled:{}", s.id));
            inv.arg(&s.id);
            for (counter, actual, keep_for) in &s.counters {
                for k in keys(counter) {
                    inv.key(k);
                }
                inv.arg(*actual).arg(keep_ms(*keep_for));
            }
            let out: Vec<redis::Value> = self.run(inv).await?;
            states(&out)
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
            let out: Vec<redis::Value> = self.run(inv).await?;
            states(&out)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn shares_generations(&self) -> bool {
        true
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
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::contract_tests;

    /// The ledger contract and random workloads against a real `redis-server`, started by the
    /// e2e harness (`SWITCHBOARD_TEST_REDIS_SERVER`, which `make test` sets, else `PATH`).
    #[test]
    fn satisfies_the_ledger_contract() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(switchboard_e2e::redis::RedisServer::start());
        let l = RedisLedger::new(&server.url()).unwrap();
        let prefix = format!("test:{}:{}:", std::process::id(), rand::random::<u64>());
        rt.block_on(async {
            contract_tests::admission_is_exact_and_atomic(&l, &prefix).await;
            contract_tests::reservations_lapse(&l, &prefix).await;
        });
        contract_tests::check_random_workloads(&rt, &l, &format!("{prefix}p:"), 64);
        drop(server);
    }
}
