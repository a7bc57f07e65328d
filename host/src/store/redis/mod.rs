//! One Redis deployment (a server or a cluster) shared by the filters configured with it:
//! its connection, kept up by a background task, and the calls made through it.
//!
//! No request ever waits for a connection: while Redis is unreachable the connection is
//! absent, calls fail at once with [`StoreError::Down`], and a task on the main runtime
//! reconnects with backoff. A call that fails on the connection or times out marks the store
//! down and wakes that task. Calls in flight are bounded (`max-pending`) and each has a
//! timeout, so a slow Redis builds no queue.
//!
//! Each worker thread also opens a connection of its own (in the background, on its first
//! call; [`local`]), so that its calls are written and answered on that thread rather than
//! handed to the main runtime and back; until it is up, and after any failure, the worker
//! uses the main connection.

mod local;

pub mod kv;
pub mod purges;
pub mod rate_limit;

use super::{RedisSettings, StoreError, StoreMetrics};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// First wait between reconnection attempts; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a connected store is pinged, so that a silent outage is seen without traffic.
const PING_EVERY: Duration = Duration::from_secs(1);

/// A connection to a single server or to a cluster (cheap to clone: calls are multiplexed).
#[derive(Clone)]
pub enum Conn {
    /// To one server.
    Single(MultiplexedConnection),
    /// To the nodes of a cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis deployment and this node's connection to it.
pub struct RedisStore {
    settings: RedisSettings,
    client: Arc<Client>,
    /// Distinguishes this store's per-worker connections from other stores'.
    id: u64,
    /// Bumped whenever the store goes down: per-worker connections of an older generation
    /// are not used again.
    generation: std::sync::atomic::AtomicU64,
    /// `None` while down.
    conn: RwLock<Option<Conn>>,
    /// Why it is down, for the calls refused meanwhile.
    down_reason: RwLock<String>,
    /// Wakes the connection task when a call finds the connection broken.
    broken: Notify,
    pending: AtomicUsize,
    metrics: StoreMetrics,
}

impl RedisStore {
    /// The store for `settings`, connecting in the background on the current (main)
    /// runtime; it is down until the first connection succeeds.
    pub fn open(settings: RedisSettings) -> Result<Arc<Self>, String> {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let client = Arc::new(Client::new(&settings)?);
        let store = Arc::new(RedisStore {
            settings,
            client: client.clone(),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            generation: std::sync::atomic::AtomicU64::new(0),
            conn: RwLock::new(None),
            down_reason: RwLock::new("not connected yet".to_string()),
            broken: Notify::new(),
            pending: AtomicUsize::new(0),
            metrics: StoreMetrics::default(),
        });
        tokio::spawn(keep_connected(Arc::downgrade(&store), client));
        Ok(store)
    }

    /// Its settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// What it recorded.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// Whether it is connected now.
    pub fn is_up(&self) -> bool {
        self.conn.read().is_ok_and(|c| c.is_some())
    }

    /// The key `key` of kind `kind` in filter `filter`'s namespace. The hash tag is the
    /// filter and key, so a cluster spreads one filter's keys over its shards.
    pub fn key(&self, kind: &str, filter: &str, key: &str) -> String {
        format!("{}:{kind}:{{{filter}:{key}}}", self.settings.prefix)
    }

    /// Run one command or script within `budget` (and the store's own timeout).
    pub async fn call<T, F>(&self, budget: Duration, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let Some(mut conn) = self.connection() else {
            self.metrics.unavailable();
            let why = self
                .down_reason
                .read()
                .map(|r| r.clone())
                .unwrap_or_default();
            return Err(StoreError::Down(why));
        };
        let max = self.settings.max_pending;
        if self.pending.fetch_add(1, Ordering::AcqRel) >= max {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.metrics.busy();
            return Err(StoreError::Busy(max));
        }
        let timeout = budget.min(self.settings.timeout);
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, f(&mut conn)).await;
        self.pending.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(Ok(v)) => {
                self.metrics.answered(started.elapsed());
                Ok(v)
            }
            Ok(Err(e)) if e.is_timeout() => {
                self.metrics.timeout();
                self.mark_down(format!("a call took over {timeout:?}"));
                Err(StoreError::Timeout(timeout))
            }
            Ok(Err(e)) if refused(&e) => {
                self.metrics.error();
                Err(StoreError::Refused(one_line(&e)))
            }
            Ok(Err(e)) => {
                self.metrics.error();
                self.mark_down(one_line(&e));
                Err(StoreError::Down(one_line(&e)))
            }
            Err(_) => {
                self.metrics.timeout();
                self.mark_down(format!("a call took over {timeout:?}"));
                Err(StoreError::Timeout(timeout))
            }
        }
    }

    /// The connection a call on this thread uses: the worker's own when it has one, else
    /// the main one; `None` while the store is down.
    fn connection(&self) -> Option<Conn> {
        let main = self.conn.read().ok().and_then(|c| c.clone())?;
        Some(local::connection(self).unwrap_or(main))
    }

    fn mark_down(&self, why: String) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let was_up = match self.conn.write() {
            Ok(mut c) => c.take().is_some(),
            Err(_) => false,
        };
        if was_up {
            tracing::warn!(redis = %self.settings.shown(), "shared store unavailable: {why}");
            if let Ok(mut r) = self.down_reason.write() {
                *r = why;
            }
            self.metrics.set_up(false, false);
            self.broken.notify_one();
        }
    }

    fn set_up(&self, conn: Conn, reconnect: bool) {
        if let Ok(mut c) = self.conn.write() {
            *c = Some(conn);
        }
        self.metrics.set_up(true, reconnect);
    }
}

/// Whether Redis answered with an error about this call (the connection is fine).
fn refused(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm)
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::Parse
    )
}

fn one_line(e: &RedisError) -> String {
    e.to_string().replace('\n', " ")
}

/// How to open a connection.
pub(super) enum Client {
    Single(redis::Client, redis::AsyncConnectionConfig),
    Cluster(redis::cluster::ClusterClient),
}

impl Client {
    fn new(s: &RedisSettings) -> Result<Self, String> {
        let bad = |e: RedisError| format!("invalid Redis URL: {}", one_line(&e));
        let certs = tls_files(s)?;
        if s.cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(s.urls.clone());
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            let client = builder
                .connection_timeout(s.connect_timeout)
                .response_timeout(s.timeout)
                .connection_concurrency_limit(s.max_pending)
                .retries(0)
                .build()
                .map_err(bad)?;
            return Ok(Client::Cluster(client));
        }
        let url = s.urls.first().ok_or("no Redis URL")?;
        let client = match certs {
            Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
            None => redis::Client::open(url.as_str()),
        }
        .map_err(bad)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.timeout))
            .set_concurrency_limit(s.max_pending);
        Ok(Client::Single(client, config))
    }

    async fn connect(&self, within: Duration) -> Result<Conn, String> {
        let attempt = async {
            match self {
                Client::Single(c, config) => c
                    .get_multiplexed_async_connection_with_config(config)
                    .await
                    .map(Conn::Single),
                Client::Cluster(c) => c.get_async_connection().await.map(Conn::Cluster),
            }
        };
        let mut conn = match tokio::time::timeout(within, attempt).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(one_line(&e)),
            Err(_) => return Err(format!("no connection within {within:?}")),
        };
        ping(&mut conn, within).await?;
        Ok(conn)
    }
}

/// The CA bundle and client certificate named in the settings, read now.
fn tls_files(s: &RedisSettings) -> Result<Option<redis::TlsCertificates>, String> {
    if s.ca.is_none() && s.client_cert.is_none() {
        return Ok(None);
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let root_cert = s.ca.as_deref().map(read).transpose()?;
    let client_tls = match &s.client_cert {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

async fn ping(conn: &mut Conn, within: Duration) -> Result<(), String> {
    let cmd = redis::cmd("PING");
    let ping = cmd.query_async::<String>(conn);
    match tokio::time::timeout(within, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(one_line(&e)),
        Err(_) => Err(format!("no answer to PING within {within:?}")),
    }
}

/// Connect, then watch the connection (a ping a second, and calls reporting it broken);
/// reconnect with backoff whenever it is lost. Ends when the store is dropped.
async fn keep_connected(store: Weak<RedisStore>, client: Arc<Client>) {
    let mut backoff = MIN_BACKOFF;
    let mut connected_before = false;
    let mut logged_failure = false;
    loop {
        let Some(s) = store.upgrade() else { return };
        let (connect_timeout, timeout) = (s.settings.connect_timeout, s.settings.timeout);
        match client.connect(connect_timeout).await {
            Ok(conn) => {
                tracing::info!(redis = %s.settings.shown(), "shared store connected");
                s.set_up(conn, connected_before);
                connected_before = true;
                logged_failure = false;
                backoff = MIN_BACKOFF;
                drop(s);
                watch(&store, timeout).await;
            }
            Err(why) => {
                if !logged_failure {
                    tracing::warn!(redis = %s.settings.shown(), "cannot connect to the shared store (retrying in the background): {why}");
                    logged_failure = true;
                }
                if let Ok(mut r) = s.down_reason.write() {
                    *r = why;
                }
                drop(s);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Until the connection is found broken (by a call, or by a failed ping).
async fn watch(store: &Weak<RedisStore>, timeout: Duration) {
    loop {
        let Some(s) = store.upgrade() else { return };
        let broken = s.broken.notified();
        tokio::select! {
            () = broken => {
                // A wake-up left over from an outage already handled does not count.
                if !s.is_up() {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep(PING_EVERY) => {}
        }
        let Some(mut conn) = s.conn.read().ok().and_then(|c| c.clone()) else {
            return;
        };
        if let Err(why) = ping(&mut conn, timeout.max(Duration::from_millis(500))).await {
            s.mark_down(why);
            return;
        }
    }
}
