//! Which HTTP a new connection speaks: HTTP/2 when its first bytes are the HTTP/2 connection
//! preface (prior knowledge, or TLS whose ALPN chose `h2`), HTTP/1.1 otherwise.

use super::io::ConnIo;
use bytes::Bytes;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What every HTTP/2 connection starts with.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read until the first bytes are the preface or cannot become it; what was read is served
/// again to whichever protocol takes the connection.
pub async fn is_h2<T: AsyncRead + Unpin>(io: &mut ConnIo<T>) -> io::Result<bool> {
    let mut buf = [0u8; PREFACE.len()];
    let mut filled = 0;
    let h2 = loop {
        let Some(room) = buf.get_mut(filled..) else {
            break false;
        };
        let n = io.get_mut().read(room).await?;
        if n == 0 {
            break false;
        }
        filled += n;
        if buf.get(..filled) != PREFACE.get(..filled) {
            break false;
        }
        if filled == PREFACE.len() {
            break true;
        }
    };
    io.unread(Bytes::copy_from_slice(
        buf.get(..filled).unwrap_or_default(),
    ));
    Ok(h2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Activity;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;

    async fn sniff(chunks: &[&[u8]]) -> (bool, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(256);
        let mut io = ConnIo::new(server, Arc::new(Activity::default()));
        for c in chunks {
            client.write_all(c).await.unwrap();
        }
        drop(client);
        let h2 = is_h2(&mut io).await.unwrap();
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        (h2, all)
    }

    #[tokio::test]
    async fn the_preface_means_http2_and_nothing_read_is_lost() {
        let (h2, all) = sniff(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n\x00\x00"]).await;
        assert!(h2);
        assert_eq!(all, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00");
        let (h2, all) = sniff(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert!(!h2);
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        // A head that starts like the preface and then differs is HTTP/1.1.
        let (h2, all) = sniff(&[b"PRI", b" * HTTP/1.1\r\n"]).await;
        assert!(!h2);
        assert_eq!(all, b"PRI * HTTP/1.1\r\n");
        // A client that closes early.
        let (h2, all) = sniff(&[b"PR"]).await;
        assert!(!h2);
        assert_eq!(all, b"PR");
    }
}
