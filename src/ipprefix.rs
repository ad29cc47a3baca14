//! Address prefixes such as `10.0.0.0/8`: the client-IP binding of signed links
//! ([`crate::access`]) and `server.trusted_proxies` ([`crate::config`]) both match them. A leaf
//! module so that neither of those two has to import the other.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// An address prefix such as `10.0.0.0/8`; a bare address is a `/32` or `/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl IpPrefix {
    /// Parses `addr`, `addr/len`. Host bits are cleared; IPv4-mapped IPv6 becomes IPv4.
    pub fn parse(s: &str) -> Option<IpPrefix> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, Some(l.parse::<u8>().ok()?))
            }
            None => (s, None),
        };
        let raw: IpAddr = a.parse().ok()?;
        let (addr, len) = match (raw, unmap(raw)) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                // ::ffff:a.b.c.d/len: the IPv4 part is the last 32 bits.
                let l = len.unwrap_or(128);
                if !(96..=128).contains(&l) {
                    return None;
                }
                (IpAddr::V4(v4), l - 96)
            }
            (_, a) => {
                let max = if a.is_ipv4() { 32 } else { 128 };
                let l = len.unwrap_or(max);
                if l > max {
                    return None;
                }
                (a, l)
            }
        };
        Some(IpPrefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The prefix length in bits (of 32 for IPv4, of 128 for IPv6).
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The first address of the prefix.
    pub fn network(&self) -> IpAddr {
        self.addr
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) lies inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
