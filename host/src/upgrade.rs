//! Protocol upgrades (WebSocket and any other `Upgrade`): the request is forwarded with its
//! `Connection: upgrade` and `Upgrade` headers (hop-by-hop, so otherwise stripped), and when
//! the upstream answers 101 both connections are switched to the new protocol and bytes are
//! copied both ways until either side closes or nothing moves for the idle timeout. Request
//! filters see the upgrade request like any other.

use http::{header, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long an upgraded connection may stay silent in both directions. The default; the
/// manifest's `upgrade-idle-timeout` overrides it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The `Upgrade` value of an HTTP/1.1 request asking for a protocol switch.
pub fn requested(headers: &HeaderMap) -> Option<HeaderValue> {
    if !crate::forward::has_token(headers, &header::CONNECTION, "upgrade") {
        return None;
    }
    headers.get(header::UPGRADE).cloned()
}

/// Put the upgrade headers back after hop-by-hop stripping.
pub fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Once both sides have switched, copy bytes both ways until done or idle.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, idle: Duration) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        match pump(TokioIo::new(client), TokioIo::new(upstream), idle).await {
            Ok(Ended::Idle) => {
                tracing::debug!(?idle, "upgraded connection closed after being idle")
            }
            Ok(Ended::Closed) => {}
            Err(e) => tracing::debug!("upgraded connection ended: {e}"),
        }
    });
}

/// Why a spliced connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Both sides closed.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Copy `a` ⇄ `b`; a side that ends its writing has the other side's writing shut down, and
/// the copy goes on the other way until that ends too.
pub async fn pump<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<Ended>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let mut from_a = vec![0u8; 16 * 1024];
    let mut from_b = vec![0u8; 16 * 1024];
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            n = ar.read(&mut from_a), if a_open => {
                match n? {
                    0 => { a_open = false; bw.shutdown().await?; }
                    n => bw.write_all(&from_a[..n]).await?,
                }
            }
            n = br.read(&mut from_b), if b_open => {
                match n? {
                    0 => { b_open = false; aw.shutdown().await?; }
                    n => aw.write_all(&from_b[..n]).await?,
                }
            }
            _ = tokio::time::sleep(idle) => return Ok(Ended::Idle),
        }
    }
    Ok(Ended::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_upgrade_with_upgrade_asks() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&h), None);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(requested(&h), Some(HeaderValue::from_static("websocket")));
    }

    #[tokio::test]
    async fn pump_copies_both_ways_and_stops_when_idle() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (upstream, mut upstream_far) = tokio::io::duplex(64);
        let task = tokio::spawn(pump(client, upstream, Duration::from_millis(100)));
        client_far.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        upstream_far.write_all(b"pong").await.unwrap();
        client_far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(task.await.unwrap().unwrap(), Ended::Idle);
    }
}
