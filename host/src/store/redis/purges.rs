//! The Redis side of shared cache purges: publishing one (numbered, so that a node can
//! tell it missed some), reading the last number, and a subscriber connection.

use super::{one_line, tls_files, RedisStore};
use crate::store::StoreError;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS[1]: the sequence counter; ARGV[1]: the channel; ARGV[2]: the message. Numbers the
/// message and publishes `<number> <message>` in one atomic step, so messages are numbered
/// in the order subscribers receive them. Returns the number.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], n .. ' ' .. ARGV[2])
return n
",
    )
});

impl RedisStore {
    /// The channel shared purges are published on, and the key numbering them.
    pub fn purge_names(&self) -> (String, String) {
        let prefix = &self.settings.prefix;
        (format!("{prefix}:purges"), format!("{prefix}:purges:seq"))
    }

    /// Publish `message` to every subscribed node; its number.
    pub async fn publish_purge(&self, message: &str) -> Result<u64, StoreError> {
        let (channel, seq) = self.purge_names();
        self.call(Duration::MAX, async |c| {
            PUBLISH
                .key(&seq)
                .arg(&channel)
                .arg(message)
                .invoke_async(c)
                .await
        })
        .await
    }

    /// The number of the last purge published (0 when none, or Redis lost it).
    pub async fn last_purge(&self) -> Result<u64, StoreError> {
        let (_, seq) = self.purge_names();
        let n: Option<u64> = self
            .call(Duration::MAX, async |c| {
                redis::cmd("GET").arg(&seq).query_async(c).await
            })
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// A connection subscribed to the purge channel, to the `n`th of the store's URLs (a
    /// cluster delivers what is published to subscribers on every node).
    pub async fn subscribe_purges(&self, n: usize) -> Result<redis::aio::PubSub, String> {
        let urls = &self.settings.urls;
        let url = urls.get(n % urls.len().max(1)).ok_or("no Redis URL")?;
        let client = match tls_files(&self.settings)? {
            Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
            None => redis::Client::open(url.as_str()),
        }
        .map_err(|e| one_line(&e))?;
        let within = self.settings.connect_timeout;
        let subscribe = async {
            let mut sub = client.get_async_pubsub().await?;
            sub.subscribe(self.purge_names().0).await?;
            Ok::<_, redis::RedisError>(sub)
        };
        match tokio::time::timeout(within, subscribe).await {
            Ok(Ok(sub)) => Ok(sub),
            Ok(Err(e)) => Err(one_line(&e)),
            Err(_) => Err(format!("no subscription within {within:?}")),
        }
    }
}
