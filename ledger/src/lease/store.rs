//! Where leases live: one atomic exchange per batch of counters ([`LeaseStore::sync`]), in Redis
//! as one Lua script ([`RedisLeaseStore`]) over the very keys the per-request
//! [`RedisLedger`](crate::redis::RedisLedger) uses, so the two agree on every counter (a rolling
//! upgrade mixes them safely).
//!
//! A replica's slice of counter `c` is a reservation like any other, named `lease:<replica>`: its
//! amount sits in `sb:{c}:h`, counts in `sb:{c}:r`, and lapses through `sb:{c}:z` when the
//! replica stops renewing it (killed), purged by the next script that touches the counter.
//! `sb:{c}:q:<replica>` holds the sequence number of the replica's last batch applied there, so a
//! batch sent again after a lost reply changes nothing twice; `sb:{c}:w` marks, for a second, that
//! a replica was refused for want of room, which tells the others to return their unused slices.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

use crate::{BoxFuture, LedgerError, redis::LazyConnection};

/// What one replica tells the store about one counter, and asks of it. Amounts are in the
/// counter's unit and within `0..=COUNTER_MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    /// Counter name.
    pub counter: String,
    /// The counter's limit (`None`: it only counts, nothing is leased).
    pub limit: Option<i64>,
    /// Spent out of the replica's slice since its last batch: moves from the slice to `spent`.
    pub spent_from_slice: i64,
    /// Spent beyond any slice (settlements larger than their reservation, late ones, counters
    /// without a limit): added to `spent`.
    pub spent_beyond: i64,
    /// Returned from the slice unused.
    pub returned: i64,
    /// The least the slice must grow by (a reservation waits on it); refused when the counter
    /// has not that much room.
    pub need: i64,
    /// How much more than `need` the replica would like, at most: the store grants at most an
    /// eighth of the room left beyond `need`.
    pub want: i64,
    /// How long the slice lives unless renewed, milliseconds.
    pub ttl_ms: i64,
    /// How long the counter is kept, milliseconds (0: forever; negative: as it is).
    pub keep_ms: i64,
}

/// One replica's batch: its items, applied at most once per `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The replica (unique per process).
    pub replica: String,
    /// Increases with every new batch of the replica; a batch sent again keeps its number.
    pub seq: u64,
    /// Per counter, each at most once.
    pub items: Vec<Item>,
}

/// A counter after a batch, as the store holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemState {
    /// Settled spend, every replica's flushed batches included.
    pub spent: i64,
    /// Every live reservation and slice, this replica's slice included.
    pub reserved: i64,
    /// This replica's slice.
    pub slice: i64,
    /// Whether some replica was refused on this counter in the last second.
    pub contended: bool,
}

/// The shared side of the lease ledger.
pub trait LeaseStore: Send + Sync {
    /// Applies `batch` atomically (or nothing, when its `seq` was applied already), then
    /// answers each item's counter state, in order.
    fn sync<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<ItemState>, LedgerError>>;

    /// Keeps generation records (id, JSON) for `ttl` where every replica finds them.
    fn put_generations<'a>(
        &'a self,
        records: &'a [(String, String)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// A generation record any replica kept, if any.
    fn get_generation<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>>;
}

/// KEYS: 6 per item (s, r, z, h, q, w). ARGV: replica, seq, then 8 per item: limit (-1 none),
/// spent_from_slice, spent_beyond, returned, need, want, ttl_ms, keep_ms (negative: leave
/// the keys' expiry alone). Returns per item
/// spent, reserved, slice (strings) and contended (0/1). Money moves with Redis's exact integer
/// commands; decisions compare doubles, exact for every amount the ledger allows (up to 2^53).
const SYNC: &str = r#"
local replica = ARGV[1]
local seq = tonumber(ARGV[2])
local member = 'lease:' .. replica
local now = now_ms()
local out = {}
local function int(x) return string.format('%d', x) end
local function add_spent(s, amount)
  if tonumber(amount) == 0 then return end
  if num(s) + tonumber(amount) >= COUNTER_MAX then
    redis.call('SET', s, '4611686018427387904')
  else
    redis.call('INCRBY', s, amount)
  end
end
for i = 0, #KEYS / 6 - 1 do
  local s, t, z, h, q, w = KEYS[6*i+1], KEYS[6*i+2], KEYS[6*i+3], KEYS[6*i+4], KEYS[6*i+5], KEYS[6*i+6]
  local a = 2 + 8 * i
  local limit = tonumber(ARGV[a+1])
  local from_slice, beyond = ARGV[a+2], ARGV[a+3]
  local returned, need, want = tonumber(ARGV[a+4]), tonumber(ARGV[a+5]), tonumber(ARGV[a+6])
  local ttl, keepms = tonumber(ARGV[a+7]), tonumber(ARGV[a+8])
  purge(z, h, t, now)
  if seq > (tonumber(redis.call('GET', q)) or 0) then
    redis.call('SET', q, int(seq), 'PX', 86400000)
    local slice = tonumber(redis.call('HGET', h, member)) or 0
    local take = math.min(tonumber(from_slice) + returned, slice)
    if take > 0 then
      redis.call('HINCRBY', h, member, int(-take))
      redis.call('DECRBY', t, int(take))
    end
    add_spent(s, from_slice)
    add_spent(s, beyond)
    if limit >= 0 and (need > 0 or want > 0) then
      local room = (limit - num(s)) - num(t)
      if need > room then
        if need > 0 then redis.call('SET', w, 1, 'PX', 1000) end
      else
        local extra = math.floor((room - need) / 8)
        if extra > want then extra = want end
        if extra < 0 then extra = 0 end
        local grant = need + extra
        if grant > 0 then
          redis.call('HINCRBY', h, member, int(grant))
          redis.call('INCRBY', t, int(grant))
        end
      end
    end
  end
  local slice = redis.call('HGET', h, member) or '0'
  if tonumber(slice) > 0 then
    redis.call('ZADD', z, now + ttl, member)
  else
    redis.call('HDEL', h, member)
    redis.call('ZREM', z, member)
  end
  if keepms >= 0 then
    if redis.call('EXISTS', s) == 0 then redis.call('SET', s, 0) end
    keep(s, keepms) keep(t, keepms) keep(z, keepms) keep(h, keepms)
  end
  out[#out + 1] = str(s)
  out[#out + 1] = str(t)
  out[#out + 1] = slice
  out[#out + 1] = redis.call('EXISTS', w)
end
return out
"#;

/// The Redis lease store.
pub struct RedisLeaseStore {
    conn: LazyConnection,
    sync: Script,
}

impl RedisLeaseStore {
    /// A store on `url` (`redis://host:port/db`), connected on first use.
    pub fn new(url: &str) -> anyhow::Result<RedisLeaseStore> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid --redis-url: {e}"))?;
        Ok(RedisLeaseStore {
            conn: LazyConnection::new(client),
            sync: Script::new(&format!("{}{SYNC}", crate::redis::PURGE)),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, LedgerError> {
        self.conn.get().await.map_err(LedgerError)
    }
}

fn keys(counter: &str, replica: &str) -> [String; 6] {
    [
        format!("sb:{{{counter}}}:s"),
        format!("sb:{{{counter}}}:r"),
        format!("sb:{{{counter}}}:z"),
        format!("sb:{{{counter}}}:h"),
        format!("sb:{{{counter}}}:q:{replica}"),
        format!("sb:{{{counter}}}:w"),
    ]
}

/// The hash holding the generation records kept in minute `m` (Unix minutes).
fn generation_bucket(minute: i64) -> String {
    format!("sb:gens:{minute}")
}

fn unix_minute() -> i64 {
    crate::unix_ms_now().div_euclid(60_000)
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LedgerError> {
    tokio::time::timeout(Duration::from_secs(2), f)
        .await
        .map_err(|_| LedgerError("Redis did not answer in time".into()))?
        .map_err(|e| LedgerError(format!("Redis: {e}")))
}

impl LeaseStore for RedisLeaseStore {
    fn sync<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<ItemState>, LedgerError>> {
        Box::pin(async move {
            let mut inv = self.sync.prepare_invoke();
            inv.arg(&batch.replica).arg(batch.seq);
            for item in &batch.items {
                for k in keys(&item.counter, &batch.replica) {
                    inv.key(k);
                }
                inv.arg(item.limit.unwrap_or(-1))
                    .arg(item.spent_from_slice)
                    .arg(item.spent_beyond)
                    .arg(item.returned)
                    .arg(item.need)
                    .arg(item.want)
                    .arg(item.ttl_ms)
                    .arg(item.keep_ms);
            }
            let mut conn = self.connection().await?;
            let out: Vec<redis::Value> = timed(inv.invoke_async(&mut conn)).await?;
            if out.len() != batch.items.len().saturating_mul(4) {
                return Err(LedgerError(format!("unexpected lease reply {out:?}")));
            }
            out.chunks(4)
                .map(|v| match v {
                    [spent, reserved, slice, contended] => Ok(ItemState {
                        spent: crate::redis::int(spent)?,
                        reserved: crate::redis::int(reserved)?,
                        slice: crate::redis::int(slice)?,
                        contended: crate::redis::int(contended)? != 0,
                    }),
                    _ => Err(LedgerError("unexpected lease reply".into())),
                })
                .collect()
        })
    }

    fn put_generations<'a>(
        &'a self,
        records: &'a [(String, String)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            // One hash per minute, kept for the records' lifetime after the minute ends: two
            // commands per batch, however many records.
            let minute = unix_minute();
            let bucket = generation_bucket(minute);
            let expire = crate::millis(ttl).saturating_add(120_000);
            let mut pipe = redis::pipe();
            pipe.cmd("HSET").arg(&bucket);
            for (id, json) in records {
                pipe.arg(id).arg(json);
            }
            pipe.ignore()
                .cmd("PEXPIRE")
                .arg(&bucket)
                .arg(expire)
                .ignore();
            let mut conn = self.connection().await?;
            timed(pipe.query_async::<()>(&mut conn)).await
        })
    }

    fn get_generation<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async move {
            // The per-request ledger's key first, then the minutes a record may still live in.
            let now = unix_minute();
            let minutes = i64::try_from(ttl.as_secs() / 60)
                .unwrap_or(0)
                .saturating_add(2);
            let mut pipe = redis::pipe();
            pipe.cmd("GET").arg(format!("sb:gen:{id}"));
            for m in 0..=minutes.min(24 * 60) {
                pipe.cmd("HGET")
                    .arg(generation_bucket(now.saturating_sub(m)))
                    .arg(id);
            }
            let mut conn = self.connection().await?;
            let found: Vec<Option<String>> = timed(pipe.query_async(&mut conn)).await?;
            Ok(found.into_iter().flatten().next())
        })
    }
}
