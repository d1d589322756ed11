//! PROXY protocol v2 from the load balancers (issue 19 point 6): a
//! connection from a network in `[ssh] proxy_protocol_from` must begin
//! with a v2 header, and the client address it carries is the connection's
//! source from then on (canonical, like any accepted address). Nobody else
//! may send one: from anywhere else the bytes are SSH, and a header is
//! garbage that ends the handshake (sshpiper GHSA-4w53-6jvp-gg52). The
//! header is read on the connection's own task, bounded in size and time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The v2 signature every header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part: signature, version/command, family/protocol, length.
const FIXED: usize = 16;
/// Longest header taken: two IPv6 addresses (36 bytes) and TLVs. HAProxy's
/// own are well under this; the peer's length never sizes an allocation.
pub const MAX_HEADER: usize = 512;
/// How long a load balancer may take to send its header.
pub const HEADER_TIME: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY protocol v2 header from a load balancer")]
    Missing,
    #[error("PROXY header of {0} bytes, more than {MAX_HEADER}")]
    TooLong(usize),
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// `PROXY` with a TCP client address: that is the source.
    Client(SocketAddr),
    /// `LOCAL` (the balancer's own health check) or an address family
    /// without an IP: the balancer itself is the source.
    Local,
}

/// Whether `ip` is a configured load balancer.
pub fn from_balancer(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The whole header's length from its fixed part, checked.
pub fn header_len(fixed: &[u8; FIXED]) -> Result<usize, ProxyError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyError::Missing);
    }
    let len = FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_HEADER {
        return Err(ProxyError::TooLong(len));
    }
    Ok(len)
}

/// Parses one complete header (pure; fuzzed). Bytes past the header are
/// an error: the balancer sends the header alone first.
pub fn parse(header: &[u8]) -> Result<Said, ProxyError> {
    let fixed: &[u8; FIXED] = header
        .get(..FIXED)
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| ProxyError::Malformed("shorter than 16 bytes".into()))?;
    if header_len(fixed)? != header.len() {
        return Err(ProxyError::Malformed("length does not match".into()));
    }
    let h = ppp::v2::Header::try_from(header).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    use ppp::v2::{Addresses, Command, Protocol};
    if h.command == Command::Local {
        return Ok(Said::Local);
    }
    if h.protocol != Protocol::Stream {
        return match h.addresses {
            Addresses::Unspecified => Ok(Said::Local),
            _ => Err(ProxyError::Malformed("not a stream connection".into())),
        };
    }
    let client = match h.addresses {
        Addresses::IPv4(a) => SocketAddr::new(a.source_address.into(), a.source_port),
        Addresses::IPv6(a) => SocketAddr::new(a.source_address.into(), a.source_port),
        Addresses::Unspecified | Addresses::Unix(_) => return Ok(Said::Local),
    };
    // Canonical, as at accept: an IPv4 client behind an IPv6 balancer
    // arrives as ::ffff:a.b.c.d.
    Ok(Said::Client(SocketAddr::new(
        client.ip().to_canonical(),
        client.port(),
    )))
}

/// Reads the header from a balancer's connection; the source to use.
pub async fn read<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    balancer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let read = async {
        let mut buf = [0u8; MAX_HEADER];
        let mut fixed = [0u8; FIXED];
        stream
            .read_exact(&mut fixed)
            .await
            .map_err(|e| ProxyError::Io(e.to_string()))?;
        let len = header_len(&fixed)?;
        buf[..FIXED].copy_from_slice(&fixed);
        stream
            .read_exact(&mut buf[FIXED..len])
            .await
            .map_err(|e| ProxyError::Io(e.to_string()))?;
        Ok(match parse(&buf[..len])? {
            Said::Client(a) => a,
            Said::Local => balancer,
        })
    };
    tokio::time::timeout(HEADER_TIME, read)
        .await
        .map_err(|_| ProxyError::Timeout(HEADER_TIME))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, fam: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(addr.len()).unwrap().to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn headers_say_the_client_or_the_balancer() {
        let v4 = [10, 1, 2, 3, 192, 168, 0, 1, 0x30, 0x39, 0, 22];
        assert_eq!(
            parse(&v2(1, 0x11, &v4)),
            Ok(Said::Client("10.1.2.3:12345".parse().unwrap()))
        );
        let mut v6 = vec![0u8; 36];
        v6[10] = 0xff;
        v6[11] = 0xff;
        v6[12..16].copy_from_slice(&[10, 9, 8, 7]);
        v6[32..34].copy_from_slice(&[0, 80]);
        assert_eq!(
            parse(&v2(1, 0x21, &v6)),
            Ok(Said::Client("10.9.8.7:80".parse().unwrap()))
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(Said::Local));
        // SSH where a header must be, a short or overlong one.
        assert_eq!(
            parse(b"SSH-2.0-OpenSSH_9.2\r\n\0\0\0\0\0"),
            Err(ProxyError::Missing)
        );
        assert!(parse(&v2(1, 0x11, &v4[..8])).is_err());
        let mut long = v2(1, 0x11, &v4);
        long[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&long), Err(ProxyError::TooLong(2016)));
        let mut extra = v2(1, 0x11, &v4);
        extra.push(0);
        assert!(parse(&extra).is_err());
        // Version 1 bits, or a datagram: refused.
        let mut v1 = v2(1, 0x11, &v4);
        v1[12] = 0x11;
        assert!(parse(&v1).is_err());
        assert!(parse(&v2(1, 0x12, &v4)).is_err());
    }

    #[tokio::test]
    async fn read_takes_the_header_and_leaves_the_ssh_bytes() {
        let v4 = [10, 1, 2, 3, 192, 168, 0, 1, 0x30, 0x39, 0, 22];
        let mut bytes = v2(1, 0x11, &v4);
        bytes.extend_from_slice(b"SSH-2.0-x\r\n");
        let mut r = &bytes[..];
        let lb = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            read(&mut r, lb).await,
            Ok("10.1.2.3:12345".parse().unwrap())
        );
        assert_eq!(r, b"SSH-2.0-x\r\n");
        let mut plain = &b"SSH-2.0-OpenSSH_9.2\r\n"[..];
        assert_eq!(read(&mut plain, lb).await, Err(ProxyError::Missing));
    }
}
