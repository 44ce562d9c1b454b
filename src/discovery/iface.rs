//! Which network interfaces a peer announces on and hears beacons from.
//!
//! Default: every up, non-loopback IPv4 interface with a broadcast address. `--iface NAME`
//! restricts the set (and may name `lo`, whose broadcast address 127.255.255.255 is computed from
//! its netmask, so that several peers on one machine find each other without touching the LAN).
//! The list is scanned again every few seconds, because laptops change networks.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::Error;

/// One usable IPv4 interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// OS name (`eth0`, `lo`, `Wi-Fi`...).
    pub name: String,
    /// Our address on it.
    pub ip: Ipv4Addr,
    /// Its netmask.
    pub netmask: Ipv4Addr,
    /// Where beacons go.
    pub broadcast: Ipv4Addr,
    /// Is it the loopback interface?
    pub loopback: bool,
}

impl Iface {
    /// Is `ip` on this interface's subnet?
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let m = u32::from(self.netmask);
                u32::from(v4) & m == u32::from(self.ip) & m
            }
            IpAddr::V6(_) => false,
        }
    }
}

/// Every IPv4 interface address that is up and can broadcast (loopback included).
pub fn scan() -> std::io::Result<Vec<Iface>> {
    let mut out = Vec::new();
    for i in if_addrs::get_if_addrs()? {
        let if_addrs::IfAddr::V4(v4) = &i.addr else { continue };
        let loopback = i.is_loopback();
        if !loopback && !i.is_oper_up() && !matches!(i.oper_status, if_addrs::IfOperStatus::Unknown) {
            continue;
        }
        let broadcast = match v4.broadcast {
            Some(b) => b,
            // Loopback has no broadcast flag, but 127.255.255.255 reaches every 127/8 socket.
            None if loopback => Ipv4Addr::from(u32::from(v4.ip) | !u32::from(v4.netmask)),
            None => continue,
        };
        out.push(Iface { name: i.name.clone(), ip: v4.ip, netmask: v4.netmask, broadcast, loopback });
    }
    Ok(out)
}

/// Pick from `all` the interfaces named in `wanted`, or by default every non-loopback one.
/// With `strict`, a wanted name that is absent is an error (at start); later rescans are lenient.
pub fn select(all: &[Iface], wanted: &[String], strict: bool) -> Result<Vec<Iface>, Error> {
    if wanted.is_empty() {
        let v: Vec<Iface> = all.iter().filter(|i| !i.loopback).cloned().collect();
        if v.is_empty() && strict {
            return Err(Error::NoInterface);
        }
        return Ok(v);
    }
    if strict && let Some(missing) = wanted.iter().find(|w| !all.iter().any(|i| &i.name == *w)) {
        let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        names.dedup();
        return Err(Error::UnknownInterface {
            name: missing.clone(),
            available: if names.is_empty() { "none".to_string() } else { names.join(", ") },
        });
    }
    Ok(all.iter().filter(|i| wanted.contains(&i.name)).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: [u8; 4], mask: [u8; 4], loopback: bool) -> Iface {
        let ip = Ipv4Addr::from(ip);
        let netmask = Ipv4Addr::from(mask);
        Iface {
            name: name.into(),
            ip,
            netmask,
            broadcast: Ipv4Addr::from(u32::from(ip) | !u32::from(netmask)),
            loopback,
        }
    }

    #[test]
    fn default_skips_loopback_and_names_restrict() {
        let all = vec![
            iface("lo", [127, 0, 0, 1], [255, 0, 0, 0], true),
            iface("eth0", [10, 1, 2, 3], [255, 255, 255, 0], false),
        ];
        let d = select(&all, &[], true).unwrap();
        assert_eq!(d.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["eth0"]);
        let lo = select(&all, &["lo".to_string()], true).unwrap();
        assert_eq!(lo[0].broadcast, Ipv4Addr::new(127, 255, 255, 255));
        match select(&all, &["wlan9".to_string()], true) {
            Err(Error::UnknownInterface { name, available }) => {
                assert_eq!(name, "wlan9");
                assert_eq!(available, "lo, eth0");
            }
            other => panic!("{other:?}"),
        }
        assert!(select(&all, &["wlan9".to_string()], false).unwrap().is_empty());
        assert!(matches!(select(&all[..1], &[], true), Err(Error::NoInterface)));
    }

    #[test]
    fn subnet_membership() {
        let e = iface("eth0", [10, 1, 2, 3], [255, 255, 255, 0], false);
        assert!(e.contains("10.1.2.200".parse().unwrap()));
        assert!(!e.contains("10.1.3.1".parse().unwrap()));
        assert!(!e.contains("::1".parse().unwrap()));
    }

    #[test]
    fn scan_finds_loopback() {
        let all = scan().unwrap();
        let lo = all.iter().find(|i| i.loopback).expect("a loopback interface");
        assert_eq!(lo.broadcast, Ipv4Addr::new(127, 255, 255, 255));
    }
}
