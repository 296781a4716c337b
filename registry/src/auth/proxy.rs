//! The client's address behind trusted proxies (`auth.trusted_proxies`): when the connection comes from one, the
//! address is the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy. Entries further left are
//! written by the client and never believed. With no trusted proxies the header is ignored. Pure logic.

use std::net::IpAddr;

use ipnet::IpNet;

/// Entries read from the right of `X-Forwarded-For`, at most: a longer chain of trusted proxies is not plausible.
const MAX_HOPS: usize = 16;

/// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a network of one).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a network (10.0.0.0/8)"))
}

/// The client address for a connection from `peer` carrying these `X-Forwarded-For` header values (in order).
pub fn client_ip<'a>(peer: IpAddr, forwarded: impl DoubleEndedIterator<Item = &'a str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let entries = forwarded.rev().flat_map(|v| v.rsplit(',')).take(MAX_HOPS);
    for entry in entries {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(&client) {
                    return client;
                }
            }
            // A malformed entry: nothing to its left can be believed; the last proxy that wrote one is the client.
            Err(_) => return client,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as a dual-stack listener reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let trusted = vec![parse_net("10.0.0.0/8").unwrap(), parse_net("127.0.0.1").unwrap()];
        // An untrusted peer: its header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted), ip("203.0.113.9"));
        // Through one proxy.
        assert_eq!(client_ip(ip("10.0.0.5"), ["198.51.100.7"].into_iter(), &trusted), ip("198.51.100.7"));
        // A client that forges entries: the rightmost untrusted one counts, not what the client wrote.
        let forged = ["6.6.6.6, 198.51.100.7"];
        assert_eq!(client_ip(ip("10.0.0.5"), forged.into_iter(), &trusted), ip("198.51.100.7"));
        // Two proxies, two header lines.
        let two = ["198.51.100.7", "10.1.1.1"];
        assert_eq!(client_ip(ip("127.0.0.1"), two.into_iter(), &trusted), ip("198.51.100.7"));
        // No header, or garbage: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.5"), [].into_iter(), &trusted), ip("10.0.0.5"));
        assert_eq!(client_ip(ip("10.0.0.5"), ["nonsense"].into_iter(), &trusted), ip("10.0.0.5"));
        assert_eq!(client_ip(ip("10.0.0.5"), ["1.1.1.1, x, 10.2.2.2"].into_iter(), &trusted), ip("10.2.2.2"));
        // Mapped IPv6 peers match IPv4 networks.
        assert_eq!(client_ip(ip("::ffff:10.0.0.5"), ["198.51.100.7"].into_iter(), &trusted), ip("198.51.100.7"));
        // No trusted proxies: never believed.
        assert_eq!(client_ip(ip("10.0.0.5"), ["198.51.100.7"].into_iter(), &[]), ip("10.0.0.5"));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("fd00::/8").is_ok());
    }
}
