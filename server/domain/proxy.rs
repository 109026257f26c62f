//! Which address a request came from, behind proxies Recount trusts.
//!
//! A proxy in front of Recount makes every connection come from the
//! proxy's address; the client's is in `X-Forwarded-For`, which each proxy
//! appends to. Only addresses added by proxies we trust are believed: the
//! client is the rightmost address in the chain that is not a trusted
//! proxy. A header from a peer we do not trust is ignored, so a client
//! cannot choose its own address.

use std::net::IpAddr;

/// Networks whose connections are proxies Recount trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks
    /// (`10.0.0.0/8, 192.168.1.7, fd00::/8`); empty trusts nobody.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or CIDR network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|&b| b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {max}"))?,
            };
            networks.push((addr, bits));
        }
        Ok(TrustedProxies { networks })
    }

    /// Whether `addr` is one of the trusted proxies.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.networks
            .iter()
            .any(|&(net, bits)| match (canonical(net), addr) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix(u32::from(n), u32::from(a), bits, 32),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(n), u128::from(a), bits, 128),
                _ => false,
            })
    }

    /// The client's address for a connection from `peer` carrying
    /// `forwarded_for` (the `X-Forwarded-For` values, in order).
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let chain = forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Ok(addr) = hop.parse::<IpAddr>() else {
                // Garbage in the chain: what lies left of it is unknown.
                return client;
            };
            client = addr;
            if !self.contains(addr) {
                return addr;
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix<T>(net: T, addr: T, bits: u8, width: u32) -> bool
where
    T: Copy + std::ops::Shr<u32, Output = T> + PartialEq,
{
    let shift = width - u32::from(bits);
    // A shift by the whole width is a /0: everything matches.
    shift == width || net >> shift == addr >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_addresses_are_parsed_and_matched() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7 ,fd00::/8").unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("::ffff:10.1.1.1")), "IPv4 mapped into IPv6");
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("8.8.8.8")));
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.1/x", "::/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_added() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let proxy = ip("10.0.0.2");
        // One proxy: the address it saw.
        assert_eq!(t.client(proxy, &["203.0.113.5"]), ip("203.0.113.5"));
        // A client that writes its own header cannot choose its address:
        // the trusted proxy appended the real one.
        assert_eq!(
            t.client(proxy, &["1.2.3.4, 203.0.113.5"]),
            ip("203.0.113.5")
        );
        // Two trusted proxies, the header over two lines.
        assert_eq!(
            t.client(proxy, &["198.51.100.9, 10.0.0.7", "10.0.0.3"]),
            ip("198.51.100.9")
        );
        // A peer we do not trust: its header means nothing.
        assert_eq!(
            t.client(ip("198.51.100.1"), &["203.0.113.5"]),
            ip("198.51.100.1")
        );
        // No header, or garbage: the nearest address known.
        assert_eq!(t.client(proxy, &[]), proxy);
        assert_eq!(t.client(proxy, &["unknown, 10.0.0.9"]), ip("10.0.0.9"));
    }
}
