//! Networks in CIDR notation as the tree needs them: the address left-aligned in a `u128`
//! (first bit = most significant) and the prefix length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One CIDR network, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network's first address, left-aligned (IPv4 in the top 32 bits).
    pub bits: u128,
    /// The prefix length.
    pub prefix: u8,
    /// True for IPv4.
    pub v4: bool,
}

impl Network {
    /// Parses `a.b.c.d/n` or `x::y/n`; host bits are cleared. None when malformed.
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, len) = s.split_once('/')?;
        let prefix: u8 = len.parse().ok()?;
        let (bits, v4, max) = match parse_v4(addr) {
            Some(a) => ((a as u128) << 96, true, 32),
            None => (u128::from(addr.parse::<Ipv6Addr>().ok()?), false, 128),
        };
        if prefix > max {
            return None;
        }
        Some(Network {
            bits: bits & mask(prefix),
            prefix,
            v4,
        })
    }

    /// The first address.
    pub fn first(&self) -> IpAddr {
        self.addr(self.bits)
    }

    /// The last address.
    pub fn last(&self) -> IpAddr {
        self.addr(self.bits | !mask(self.prefix) & self.family_mask())
    }

    /// An address inside the network chosen by `r` (any value; its low bits pick the host).
    pub fn pick(&self, r: u128) -> IpAddr {
        self.addr(self.bits | (r & !mask(self.prefix) & self.family_mask()))
    }

    fn family_mask(&self) -> u128 {
        if self.v4 {
            mask(32)
        } else {
            u128::MAX
        }
    }

    fn addr(&self, bits: u128) -> IpAddr {
        if self.v4 {
            IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// The left-aligned bits of an address, as [`Network::bits`] holds them.
pub fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => (u32::from(a) as u128) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// A mask with the first `prefix` bits set.
fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// A fast dotted-quad parser (the std one is fine but this runs millions of times).
fn parse_v4(s: &str) -> Option<u32> {
    let mut out: u32 = 0;
    let mut parts = 0;
    for p in s.split('.') {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: u32 = p.parse().ok()?;
        if v > 255 {
            return None;
        }
        out = out << 8 | v;
        parts += 1;
    }
    (parts == 4).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6() {
        let n = Network::parse("1.2.3.0/24").unwrap();
        assert!(n.v4);
        assert_eq!(n.prefix, 24);
        assert_eq!(n.first().to_string(), "1.2.3.0");
        assert_eq!(n.last().to_string(), "1.2.3.255");
        assert_eq!(n.pick(7 << 96).to_string(), "1.2.3.7");
        let n = Network::parse("2001:db8::/32").unwrap();
        assert!(!n.v4);
        assert_eq!(
            n.last().to_string(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(
            Network::parse("0.0.0.0/0").unwrap().last().to_string(),
            "255.255.255.255"
        );
        assert_eq!(
            Network::parse("1.2.3.4/32").unwrap().last().to_string(),
            "1.2.3.4"
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "1.2.3.4",
            "1.2.3/8",
            "1.2.3.256/8",
            "1.2.3.4/33",
            "::/129",
            "x/1",
            "1.2.3.4/",
        ] {
            assert_eq!(Network::parse(s), None, "{s}");
        }
    }
}
