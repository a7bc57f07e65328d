//! GCRA on Redis: one Lua script per check (one round trip), atomic with every other check
//! of the key on every node, on Redis's clock (`TIME`) so that nodes need not agree on
//! theirs. A key's state is its theoretical arrival time in microseconds, expiring when the
//! key is back to its full burst, so an emptied or restarted Redis only forgets spent burst.

use super::RedisStore;
use crate::filter::rate_limit::{Decision, Quota};
use crate::store::StoreError;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS[1]: the key; ARGV: interval (µs per unit), burst, cost. All arithmetic is on whole
/// microseconds below 2^53, exact in Lua's numbers. Returns {allowed, remaining,
/// retry-after µs, reset µs}, as `gcra::decide` does.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local limit = now + interval * burst
local new_tat = tat + interval * cost
if new_tat <= limit then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
  return {1, math.floor((limit - new_tat) / interval), 0, new_tat - now}
end
return {0, math.floor((limit - tat) / interval), new_tat - limit, tat - now}
",
    )
});

impl RedisStore {
    /// Charge `cost` units to `key` of `filter`'s namespace under `quota` if they fit.
    pub async fn rate_limit(
        &self,
        filter: &str,
        key: &str,
        quota: &Quota,
        cost: u32,
        budget: Duration,
    ) -> Result<Decision, StoreError> {
        let key = self.key("rl", filter, key);
        // Whole microseconds (at least one) per unit.
        let interval = u64::try_from(quota.interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .call(budget, async |c| {
                GCRA.key(&key)
                    .arg(interval)
                    .arg(quota.burst())
                    .arg(cost)
                    .invoke_async(c)
                    .await
            })
            .await?;
        let us = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(0),
            retry_after: us(retry_us),
            reset: us(reset_us),
        })
    }
}
