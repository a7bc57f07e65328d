//! The PROXY protocol (HAProxy's, v1 text and v2 binary), for listeners behind a TCP load
//! balancer: the header it sends first names the client, which then stands for the peer.
//!
//! The header is read exactly, never past its end, so the bytes after it reach TLS or HTTP
//! untouched. A listener with `proxy-protocol = true` requires it on every connection: one
//! without it (or with a malformed one) is closed, so a client reaching the listener
//! directly can't pose as another. `LOCAL` (v2) and `UNKNOWN` (v1) headers, sent by
//! balancers' own health checks, keep the TCP peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// Largest v2 address block accepted (addresses and TLVs).
const V2_MAX: usize = 4096;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a PROXY header at all.
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    /// A PROXY header that doesn't parse.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    /// The connection ended or failed while the header was read.
    #[error("the connection ended inside the PROXY protocol header")]
    Truncated,
}

/// Read the header from `stream`: the client address it names, or `None` when it names
/// none (`LOCAL`, `UNKNOWN`, or a non-IP family) and the TCP peer stands.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, HeaderError> {
    let mut start = [0u8; 6];
    read(stream, &mut start).await?;
    if &start == b"PROXY " {
        return v1(stream).await;
    }
    if start[..] != V2_SIGNATURE[..6] {
        return Err(HeaderError::Missing);
    }
    let mut rest = [0u8; 10];
    read(stream, &mut rest).await?;
    if rest[..6] != V2_SIGNATURE[6..] {
        return Err(HeaderError::Missing);
    }
    let (ver_cmd, family) = (rest[6], rest[7]);
    let len = usize::from(u16::from_be_bytes([rest[8], rest[9]]));
    if ver_cmd >> 4 != 2 {
        return Err(HeaderError::Malformed("version is not 2"));
    }
    if len > V2_MAX {
        return Err(HeaderError::Malformed("address block too large"));
    }
    let mut block = vec![0u8; len];
    read(stream, &mut block).await?;
    match ver_cmd & 0x0f {
        0 => Ok(None),
        1 => v2_address(family, &block),
        _ => Err(HeaderError::Malformed("unknown command")),
    }
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), HeaderError> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| HeaderError::Truncated)
}

/// The address of a v2 `PROXY` command: TCP or UDP over IPv4 or IPv6; other families
/// (UNIX sockets, unspecified) name none.
fn v2_address(family: u8, block: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    let short = HeaderError::Malformed("address block shorter than its family's addresses");
    match family >> 4 {
        1 => {
            let a: &[u8; 12] = block
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            )))
        }
        2 => {
            let a: &[u8; 36] = block
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(src);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([a[32], a[33]]),
            )))
        }
        _ => Ok(None),
    }
}

/// The rest of a v1 header after `PROXY `, read a byte at a time up to its LF so that
/// nothing after it is consumed.
async fn v1<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<SocketAddr>, HeaderError> {
    let mut line = Vec::with_capacity(V1_MAX);
    loop {
        let mut b = [0u8; 1];
        read(stream, &mut b).await?;
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
        if line.len() + 6 >= V1_MAX {
            return Err(HeaderError::Malformed("v1 header longer than 107 bytes"));
        }
    }
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or(HeaderError::Malformed("v1 header does not end in CRLF"))?;
    let text = std::str::from_utf8(text).map_err(|_| HeaderError::Malformed("not ASCII"))?;
    parse_v1(text)
}

/// `TCP4 <src> <dst> <sport> <dport>`, `TCP6 ...` or `UNKNOWN ...`.
fn parse_v1(text: &str) -> Result<Option<SocketAddr>, HeaderError> {
    let bad = HeaderError::Malformed("v1 header is not \"TCP4|TCP6 src dst sport dport\"");
    let mut fields = text.split(' ');
    let proto = fields
        .next()
        .ok_or(HeaderError::Malformed("empty v1 header"))?;
    if proto == "UNKNOWN" {
        return Ok(None);
    }
    let f: Vec<&str> = fields.collect();
    let [src, dst, sport, _dport] = f.as_slice() else {
        return Err(bad);
    };
    let (src, dst): (IpAddr, IpAddr) = match (src.parse(), dst.parse()) {
        (Ok(s), Ok(d)) => (s, d),
        _ => return Err(bad),
    };
    let family_ok = match proto {
        "TCP4" => src.is_ipv4() && dst.is_ipv4(),
        "TCP6" => src.is_ipv6() && dst.is_ipv6(),
        _ => false,
    };
    let port_ok = |p: &str| !p.is_empty() && !p.starts_with('0') || p == "0";
    if !family_ok || !port_ok(sport) || !port_ok(_dport) {
        return Err(bad);
    }
    let sport: u16 = sport.parse().map_err(|_| bad)?;
    Ok(Some(SocketAddr::new(src, sport)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, HeaderError>, Vec<u8>) {
        let mut s = bytes;
        let r = read_header(&mut s).await;
        (r, s.to_vec())
    }

    fn v2(cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | cmd);
        b.push(family);
        b.extend_from_slice(&(block.len() as u16).to_be_bytes());
        b.extend_from_slice(block);
        b
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_rest() {
        let (r, rest) =
            parse(b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(r, Ok(Some("198.51.100.7:40000".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (r, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::7]:1".parse().unwrap())));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").await.0, Ok(None));
    }

    #[tokio::test]
    async fn bad_v1_headers_are_refused() {
        for bad in [
            &b"PROXY TCP4 198.51.100.7 10.0.0.1 40000\r\n"[..],
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 198.51.100.7 10.0.0.1 040000 443\r\n",
            b"PROXY TCP4 198.51.100.7 10.0.0.1 70000 443\r\n",
            b"PROXY TCP4 198.51.100.7 10.0.0.1 1 2\n",
            b"PROXY UDP4 198.51.100.7 10.0.0.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad).await.0, Err(HeaderError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(matches!(
            parse(long.as_bytes()).await.0,
            Err(HeaderError::Malformed(_))
        ));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n").await.0,
            Err(HeaderError::Missing)
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4").await.0,
            Err(HeaderError::Truncated)
        );
    }

    #[tokio::test]
    async fn v2_names_the_client_and_skips_tlvs() {
        let mut block = vec![198, 51, 100, 7, 10, 0, 0, 1, 0x9c, 0x40, 1, 187];
        block.extend_from_slice(&[0x04, 0x00, 0x01, 0xff]); // a TLV, ignored
        let mut bytes = v2(1, 0x11, &block);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (r, rest) = parse(&bytes).await;
        assert_eq!(r, Ok(Some("198.51.100.7:40000".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01", "TLS bytes after it are untouched");

        let mut block6 = vec![0u8; 36];
        block6[0] = 0x20;
        block6[1] = 0x01;
        block6[15] = 7;
        block6[32] = 0;
        block6[33] = 80;
        let (r, _) = parse(&v2(1, 0x21, &block6)).await;
        assert_eq!(r, Ok(Some("[2001::7]:80".parse().unwrap())));
        assert_eq!(
            parse(&v2(0, 0x00, &[])).await.0,
            Ok(None),
            "LOCAL keeps the peer"
        );
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])).await.0,
            Ok(None),
            "UNIX names none"
        );
    }

    #[tokio::test]
    async fn bad_v2_headers_are_refused() {
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])).await.0,
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(5, 0x11, &[0; 12])).await.0,
            Err(HeaderError::Malformed(_))
        ));
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            parse(&wrong_version).await.0,
            Err(HeaderError::Malformed(_))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            parse(&huge).await.0,
            Err(HeaderError::Malformed(_))
        ));
        let mut truncated = v2(1, 0x11, &[0; 12]);
        truncated.truncate(20);
        assert_eq!(parse(&truncated).await.0, Err(HeaderError::Truncated));
    }
}
