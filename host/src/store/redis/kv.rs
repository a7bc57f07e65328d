//! The filter key/value store on Redis: one command or script (one round trip) per call.
//! A counter is a Redis integer, so `get` returns it as decimal text as the local store
//! does; a counter's window is the key's expiry, set when the counter is created.

use super::RedisStore;
use crate::store::StoreError;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// `INCRBY` that refuses a key holding bytes and gives a new counter its window.
/// KEYS[1]: the key; ARGV: delta, window in ms (0: none). Returns {counter?, value, pttl}.
static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and not string.match(cur, '^%-?%d+$') then return {0, 0, 0} end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local window = tonumber(ARGV[2])
if not cur and window > 0 then redis.call('PEXPIRE', KEYS[1], window) end
return {1, v, redis.call('PTTL', KEYS[1])}
",
    )
});

/// What an increment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The counter's new value and the time left in its window (`None`: no window).
    Value(i64, Option<Duration>),
    /// The key holds bytes, not a counter.
    NotACounter,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// The value at `key` of `filter`'s namespace.
    pub async fn kv_get(
        &self,
        filter: &str,
        key: &str,
        budget: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("kv", filter, key);
        self.call(budget, async |c| {
            redis::cmd("GET").arg(&key).query_async(c).await
        })
        .await
    }

    /// Store `value` at `key`, expiring after `ttl`.
    pub async fn kv_set(
        &self,
        filter: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let key = self.key("kv", filter, key);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ms(ttl));
        }
        self.call(budget, async |c| cmd.query_async(c).await).await
    }

    /// Remove `key`.
    pub async fn kv_delete(
        &self,
        filter: &str,
        key: &str,
        budget: Duration,
    ) -> Result<(), StoreError> {
        let key = self.key("kv", filter, key);
        self.call(budget, async |c| {
            redis::cmd("DEL").arg(&key).query_async::<i64>(c).await
        })
        .await
        .map(|_| ())
    }

    /// Add `delta` to the counter at `key`; a new counter expires `window` after creation.
    pub async fn kv_incr(
        &self,
        filter: &str,
        key: &str,
        delta: i64,
        window: Option<Duration>,
        budget: Duration,
    ) -> Result<Counted, StoreError> {
        let key = self.key("kv", filter, key);
        let window = window.map_or(0, ms);
        let (counter, value, pttl): (i64, i64, i64) = self
            .call(budget, async |c| {
                INCR.key(&key).arg(delta).arg(window).invoke_async(c).await
            })
            .await?;
        if counter == 0 {
            return Ok(Counted::NotACounter);
        }
        let left = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok(Counted::Value(value, left))
    }
}
