//! Which network interfaces a peer announces on and hears beacons from.
//!
//! An [`Iface`] is one address of one interface: an IPv4 address with the address its beacons go
//! to (the subnet's broadcast address), or an IPv6 address (link-local or not) of an interface
//! that can multicast (beacons go to the group [`super::socket::GROUP_V6`] on the interface's
//! index).
//!
//! Default: every up, non-loopback interface with an IPv4 broadcast address or with an IPv6
//! address and multicast, so an IPv6-only interface is usable. `--iface NAME` restricts the set.
//! `lo` names the loopback interface on every system (Linux's `lo`, macOS's `lo0`, Windows'
//! "Loopback Pseudo-Interface 1"), so that several peers on one computer find each other
//! without touching the LAN. The list is scanned again every few seconds, because laptops change
//! networks.
//!
//! With only loopback selected no datagram may leave the computer, so where a loopback beacon
//! goes is chosen here, per system ([`LOOPBACK_BEACON`]), never taken from the system's
//! interface list: Windows reports `255.255.255.255` as the loopback's broadcast address (the
//! limited broadcast, which goes out on the LAN), and macOS's `lo0` has no broadcast address.
//! - Linux: `127.255.255.255`, the broadcast address of `lo`'s `127.0.0.0/8`. Linux delivers it
//!   to every socket bound to the port on this computer, and only there.
//! - Windows, macOS and the others: the loopback address itself (`127.0.0.1`), unicast, which
//!   no system sends out. Of the peers of this computer sharing the discovery port, the system
//!   gives each such datagram to one only; that peer dials the sender ([docs/protocol.md] 8.2),
//!   and the peers it is in session with learn of each other by gossip (14.2) and dial each
//!   other, so the room still forms, in at most a dial grace more.
//!
//! Loopback has no IPv6 entry: Linux's `lo` has no MULTICAST flag, and elsewhere loopback is
//! taken not to multicast, so on `lo` discovery is IPv4 only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::Error;

/// One usable interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// OS name (`eth0`, `lo`, `Wi-Fi`...).
    pub name: String,
    /// The interface's index (the scope id of its IPv6 link-local addresses); 0 if unknown.
    pub index: u32,
    /// Our address on it.
    pub ip: IpAddr,
    /// Its prefix length (netmask).
    pub prefix: u8,
    /// Where IPv4 beacons go: the subnet's broadcast address, or for a loopback address the
    /// one [`LOOPBACK_BEACON`] chooses (`None` for an IPv6 address: beacons go to the multicast
    /// group).
    pub broadcast: Option<Ipv4Addr>,
    /// Is it the loopback interface?
    pub loopback: bool,
}

/// Where beacons go on a loopback address (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackBeacon {
    /// To the loopback subnet's broadcast address (`127.255.255.255` on `127.0.0.1/8`).
    SubnetBroadcast,
    /// To the loopback address itself (`127.0.0.1`).
    Unicast,
}

/// This system's choice: the subnet broadcast where the kernel is Linux's (it delivers it to
/// every socket of the port, on this computer only), unicast elsewhere.
pub const LOOPBACK_BEACON: LoopbackBeacon = if cfg!(any(target_os = "linux", target_os = "android")) {
    LoopbackBeacon::SubnetBroadcast
} else {
    LoopbackBeacon::Unicast
};

/// Shortest prefix a loopback IPv4 address is taken to have: `127.0.0.0/8`, whatever the system
/// reports (Windows may report a prefix of 0, which would make every source "on loopback").
const LOOPBACK_MIN_PREFIX: u8 = 8;

fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) }
}

fn v6_mask(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) }
}

/// Is `ip` an IPv6 link-local unicast address (fe80::/10)?
pub fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

impl Iface {
    /// An IPv4 address with its netmask and broadcast address.
    pub fn v4(name: &str, index: u32, ip: Ipv4Addr, netmask: Ipv4Addr, broadcast: Ipv4Addr, loopback: bool) -> Iface {
        let prefix = u32::from(netmask).leading_ones() as u8;
        Iface { name: name.into(), index, ip: IpAddr::V4(ip), prefix, broadcast: Some(broadcast), loopback }
    }

    /// A loopback IPv4 address with the prefix length the system reports (taken as at least
    /// `/8`, so that only loopback sources are heard on it); its beacons go where `how` says,
    /// always to a loopback address.
    pub fn loopback_v4(name: &str, index: u32, ip: Ipv4Addr, prefix: u8, how: LoopbackBeacon) -> Iface {
        let prefix = prefix.clamp(LOOPBACK_MIN_PREFIX, 32);
        let beacon = match how {
            LoopbackBeacon::SubnetBroadcast => Ipv4Addr::from(u32::from(ip) | !v4_mask(prefix)),
            LoopbackBeacon::Unicast => ip,
        };
        Iface { name: name.into(), index, ip: IpAddr::V4(ip), prefix, broadcast: Some(beacon), loopback: true }
    }

    /// An IPv6 address with its prefix length.
    pub fn v6(name: &str, index: u32, ip: Ipv6Addr, prefix: u8, loopback: bool) -> Iface {
        Iface { name: name.into(), index, ip: IpAddr::V6(ip), prefix, broadcast: None, loopback }
    }

    /// Where this address's IPv4 beacons go, if anywhere: [`Iface::broadcast`], but never off
    /// this computer from a loopback address (whoever built the `Iface`).
    pub fn beacon_to(&self) -> Option<Ipv4Addr> {
        self.broadcast.filter(|b| !self.loopback || b.is_loopback())
    }

    /// Is this an IPv6 address (beacons by multicast on [`Iface::index`])?
    pub fn is_v6(&self) -> bool {
        self.ip.is_ipv6()
    }

    /// Is `ip` on this address's subnet (IPv4 `src & mask == ip & mask`, IPv6 the same on the
    /// prefix)? An IPv6 link-local address has no meaning without its scope: see [`Iface::accepts`].
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(me), IpAddr::V4(v4)) => {
                let m = v4_mask(self.prefix);
                u32::from(v4) & m == u32::from(me) & m
            }
            (IpAddr::V6(me), IpAddr::V6(v6)) => {
                let m = v6_mask(self.prefix);
                u128::from(v6) & m == u128::from(me) & m
            }
            _ => false,
        }
    }

    /// May a beacon from `from` be heard on this address? IPv4: `from` is on the subnet. IPv6
    /// link-local source: this is a link-local address of the interface whose index is the
    /// source's scope id. Other IPv6 sources (ULA, global): by prefix.
    pub fn accepts(&self, from: SocketAddr) -> bool {
        match from {
            SocketAddr::V4(a) => self.contains(IpAddr::V4(*a.ip())),
            SocketAddr::V6(a) if a.ip().is_unicast_link_local() => {
                is_link_local(self.ip) && self.index != 0 && self.index == a.scope_id()
            }
            SocketAddr::V6(a) => !is_link_local(self.ip) && self.contains(IpAddr::V6(*a.ip())),
        }
    }

    /// The address others reach us at, as a socket address on `port` (with the scope id for
    /// a link-local address).
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, self.index))
            }
            ip => SocketAddr::new(ip, port),
        }
    }
}

/// Is a beacon from `from` heard on the selected `ifaces`? It must come from a selected
/// address's subnet, link or prefix ([`Iface::accepts`]). An IPv6 beacon is moreover taken only
/// on an interface where no IPv4 address is selected: on a dual-stack link the IPv4 broadcast
/// beacons are used, exactly as before IPv6 (so dual-stack peers talk over IPv4, and one peer is
/// not heard at two addresses of one link); IPv6 multicast is what finds peers on links without
/// IPv4 (an IPv6-only peer on a dual-stack link still hears our multicast beacons and dials us).
pub fn hears(ifaces: &[Iface], from: SocketAddr) -> bool {
    ifaces.iter().any(|i| i.accepts(from) && (from.is_ipv4() || !ifaces.iter().any(|o| !o.is_v6() && o.name == i.name)))
}

/// The interface indexes of `ifaces` that take IPv6 beacons (each once, in order).
pub fn v6_indexes(ifaces: &[Iface]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for i in ifaces.iter().filter(|i| i.is_v6() && i.index != 0) {
        if !out.contains(&i.index) {
            out.push(i.index);
        }
    }
    out
}

/// Can the interface `name` multicast? On Linux from its flags in sysfs (IFF_MULTICAST); where
/// that cannot be read, every interface but loopback is taken to.
fn multicast(name: &str, loopback: bool) -> bool {
    const IFF_MULTICAST: u32 = 0x1000;
    match std::fs::read_to_string(format!("/sys/class/net/{name}/flags")) {
        Ok(s) => u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).is_ok_and(|f| f & IFF_MULTICAST != 0),
        Err(_) => !loopback,
    }
}

/// Every interface address that is up and usable: IPv4 with a broadcast address (loopback
/// included), IPv6 on an interface that can multicast and has an index.
pub fn scan() -> std::io::Result<Vec<Iface>> {
    let mut out = Vec::new();
    for i in if_addrs::get_if_addrs()? {
        let loopback = i.is_loopback();
        if !loopback && !i.is_oper_up() && !matches!(i.oper_status, if_addrs::IfOperStatus::Unknown) {
            continue;
        }
        let index = i.index.unwrap_or(0);
        match &i.addr {
            if_addrs::IfAddr::V4(v4) if loopback => {
                // Never the system's broadcast address: see the module's documentation.
                out.push(Iface::loopback_v4(&i.name, index, v4.ip, v4.prefixlen, LOOPBACK_BEACON));
            }
            if_addrs::IfAddr::V4(v4) => {
                let Some(broadcast) = v4.broadcast else { continue };
                out.push(Iface::v4(&i.name, index, v4.ip, v4.netmask, broadcast, loopback));
            }
            if_addrs::IfAddr::V6(v6) => {
                if index == 0 || v6.ip.is_multicast() || v6.ip.is_unspecified() || !multicast(&i.name, loopback) {
                    continue;
                }
                out.push(Iface::v6(&i.name, index, v6.ip, v6.prefixlen, loopback));
            }
        }
    }
    Ok(out)
}

/// The name that selects the loopback interface on every system, whatever the system calls it.
pub const LOOPBACK_NAME: &str = "lo";

/// Does the name `wanted` (given with `--iface`) select `i`? Its own name, or [`LOOPBACK_NAME`]
/// for a loopback address.
fn named(i: &Iface, wanted: &str) -> bool {
    i.name == wanted || (i.loopback && wanted == LOOPBACK_NAME)
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
    if strict && let Some(missing) = wanted.iter().find(|w| !all.iter().any(|i| named(i, w))) {
        let mut names: Vec<&str> = Vec::new();
        for i in all {
            if !names.contains(&i.name.as_str()) {
                names.push(&i.name);
            }
        }
        return Err(Error::UnknownInterface {
            name: missing.clone(),
            available: if names.is_empty() { "none".to_string() } else { names.join(", ") },
        });
    }
    Ok(all.iter().filter(|i| wanted.iter().any(|w| named(i, w))).cloned().collect())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV6;

    use super::*;

    fn iface(name: &str, ip: [u8; 4], mask: [u8; 4], loopback: bool) -> Iface {
        let ip = Ipv4Addr::from(ip);
        let netmask = Ipv4Addr::from(mask);
        if loopback {
            return Iface::loopback_v4(name, 1, ip, netmask_prefix(netmask), LoopbackBeacon::SubnetBroadcast);
        }
        let brd = Ipv4Addr::from(u32::from(ip) | !u32::from(netmask));
        Iface::v4(name, 2, ip, netmask, brd, false)
    }

    fn netmask_prefix(m: Ipv4Addr) -> u8 {
        u32::from(m).leading_ones() as u8
    }

    fn v6(name: &str, index: u32, ip: &str, prefix: u8) -> Iface {
        Iface::v6(name, index, ip.parse().unwrap(), prefix, false)
    }

    #[test]
    fn default_skips_loopback_and_names_restrict() {
        let all = vec![
            iface("lo", [127, 0, 0, 1], [255, 0, 0, 0], true),
            iface("eth0", [10, 1, 2, 3], [255, 255, 255, 0], false),
        ];
        let d = select(&all, &[], true).unwrap();
        assert_eq!(d.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["eth0"]);
        assert_eq!(d[0].prefix, 24);
        let lo = select(&all, &["lo".to_string()], true).unwrap();
        assert_eq!(lo[0].broadcast, Some(Ipv4Addr::new(127, 255, 255, 255)));
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
    fn ipv6_only_interfaces_are_selected() {
        let all = vec![
            iface("lo", [127, 0, 0, 1], [255, 0, 0, 0], true),
            v6("eth0", 2, "fe80::1", 64),
            v6("eth0", 2, "fd00:77::11", 64),
            iface("eth1", [10, 1, 2, 3], [255, 255, 255, 0], false),
            v6("eth1", 3, "fe80::2", 64),
            v6("wlan0", 4, "fe80::3", 64),
        ];
        let d = select(&all, &[], true).unwrap();
        assert_eq!(d.len(), 5, "everything but lo: {d:?}");
        assert_eq!(v6_indexes(&d), [2, 3, 4]);
        let only = select(&all, &["eth0".to_string()], true).unwrap();
        assert_eq!(only.len(), 2);
        assert!(only.iter().all(|i| i.is_v6() && i.broadcast.is_none()));
        assert_eq!(v6_indexes(&only), [2]);
        let lo = select(&all, &["lo".to_string()], true).unwrap();
        assert!(v6_indexes(&lo).is_empty(), "lo is IPv4 only");
        // An IPv6-only host with default selection is not "no interface".
        assert!(select(&all[1..3], &[], true).is_ok());
    }

    #[test]
    fn subnet_membership() {
        let e = iface("eth0", [10, 1, 2, 3], [255, 255, 255, 0], false);
        assert!(e.contains("10.1.2.200".parse().unwrap()));
        assert!(!e.contains("10.1.3.1".parse().unwrap()));
        assert!(!e.contains("::1".parse().unwrap()));
        assert!(e.accepts("10.1.2.9:1".parse().unwrap()));
        assert!(!e.accepts("[fe80::9%2]:1".parse().unwrap()));
        let ula = v6("eth0", 2, "fd00:77::11", 64);
        assert!(ula.contains("fd00:77::99".parse().unwrap()));
        assert!(!ula.contains("fd00:78::99".parse().unwrap()));
        assert!(!ula.contains("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn link_local_sources_by_scope_id() {
        let ll = v6("eth0", 2, "fe80::1", 64);
        let ula = v6("eth0", 2, "fd00:77::11", 64);
        let src = |ip: &str, scope: u32| SocketAddr::V6(SocketAddrV6::new(ip.parse().unwrap(), 5681, 0, scope));
        // Link-local: the scope id must be the interface's index; the prefix alone says nothing.
        assert!(ll.accepts(src("fe80::99", 2)));
        assert!(!ll.accepts(src("fe80::99", 3)), "heard on another interface");
        assert!(!ll.accepts(src("fe80::99", 0)), "no scope");
        assert!(!ula.accepts(src("fe80::99", 2)), "a link-local source needs a link-local address of ours");
        // ULA / global: by prefix, not by scope.
        assert!(ula.accepts(src("fd00:77::12", 0)));
        assert!(!ula.accepts(src("fd00:99::12", 0)));
        assert!(!ll.accepts(src("fd00:77::12", 0)), "fe80::/64 does not contain a ULA");
        let mut no_index = ll.clone();
        no_index.index = 0;
        assert!(!no_index.accepts(src("fe80::99", 0)));
        assert_eq!(
            ll.socket_addr(7),
            src("fe80::1", 2).to_string().replace("5681", "7").parse::<SocketAddr>().unwrap()
        );
        assert_eq!(ula.socket_addr(7), "[fd00:77::11]:7".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn ipv6_beacons_only_on_links_without_ipv4() {
        let src = |ip: &str, scope: u32| SocketAddr::V6(SocketAddrV6::new(ip.parse().unwrap(), 5681, 0, scope));
        let v6_only = vec![v6("eth0", 2, "fe80::1", 64), v6("eth0", 2, "fd00:77::11", 64)];
        assert!(hears(&v6_only, src("fe80::9", 2)));
        assert!(hears(&v6_only, src("fd00:77::12", 0)));
        assert!(!hears(&v6_only, src("fe80::9", 3)), "another interface");
        assert!(!hears(&v6_only, "10.1.2.9:5681".parse().unwrap()));
        let mut dual = v6_only.clone();
        dual.push(Iface::v4("eth0", 2, [10, 1, 2, 3].into(), [255, 255, 255, 0].into(), [10, 1, 2, 255].into(), false));
        dual.push(v6("eth1", 3, "fe80::2", 64));
        assert!(hears(&dual, "10.1.2.9:5681".parse().unwrap()));
        assert!(!hears(&dual, src("fe80::9", 2)), "eth0 has IPv4: its IPv4 beacons are used");
        assert!(!hears(&dual, src("fd00:77::12", 0)));
        assert!(hears(&dual, src("fe80::9", 3)), "eth1 is IPv6 only");
    }

    /// Whatever the system reports for its loopback (Windows: a prefix of 0 and the broadcast
    /// 255.255.255.255), beacons from a loopback address go to a loopback address, and only
    /// loopback sources are heard on it.
    #[test]
    fn loopback_beacons_stay_on_this_computer() {
        let lo = Ipv4Addr::LOCALHOST;
        let subnet = Iface::loopback_v4("lo", 1, lo, 8, LoopbackBeacon::SubnetBroadcast);
        assert_eq!(subnet.beacon_to(), Some(Ipv4Addr::new(127, 255, 255, 255)));
        let unicast = Iface::loopback_v4("Loopback Pseudo-Interface 1", 1, lo, 8, LoopbackBeacon::Unicast);
        assert_eq!(unicast.beacon_to(), Some(lo));
        for how in [LoopbackBeacon::SubnetBroadcast, LoopbackBeacon::Unicast] {
            for prefix in [0, 1, 7, 8, 24, 32] {
                for ip in [lo, Ipv4Addr::new(127, 1, 2, 3)] {
                    let i = Iface::loopback_v4("lo", 1, ip, prefix, how);
                    let to = i.beacon_to().expect("a destination");
                    assert!(to.is_loopback(), "{how:?} /{prefix} {ip}: {to}");
                    assert!(i.prefix >= 8, "{i:?}");
                    assert!(i.accepts(SocketAddr::from((ip, 5681))));
                    assert!(!i.accepts("10.1.2.3:5681".parse().unwrap()), "a LAN source heard on loopback: {i:?}");
                    assert!(!i.accepts("255.255.255.255:5681".parse().unwrap()));
                }
            }
        }
        // An `Iface` built by hand with a LAN destination on loopback sends nothing anywhere.
        let forged = Iface::v4("lo", 1, lo, Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::BROADCAST, true);
        assert_eq!(forged.beacon_to(), None);
        // This system's choice (the tests run on Linux: the subnet broadcast).
        if cfg!(target_os = "linux") {
            assert_eq!(LOOPBACK_BEACON, LoopbackBeacon::SubnetBroadcast);
        } else {
            assert_eq!(LOOPBACK_BEACON, LoopbackBeacon::Unicast);
        }
    }

    #[test]
    fn lo_names_the_loopback_whatever_the_system_calls_it() {
        let win = vec![
            Iface::loopback_v4("Loopback Pseudo-Interface 1", 1, Ipv4Addr::LOCALHOST, 8, LoopbackBeacon::Unicast),
            iface("Ethernet", [10, 1, 2, 3], [255, 255, 255, 0], false),
        ];
        let lo = select(&win, &["lo".to_string()], true).unwrap();
        assert_eq!(lo.len(), 1);
        assert_eq!(lo[0].name, "Loopback Pseudo-Interface 1");
        let by_name = select(&win, &["Loopback Pseudo-Interface 1".to_string()], true).unwrap();
        assert_eq!(by_name, lo);
        assert_eq!(select(&win, &["Ethernet".to_string()], true).unwrap()[0].name, "Ethernet");
        let mac = vec![Iface::loopback_v4("lo0", 1, Ipv4Addr::LOCALHOST, 8, LoopbackBeacon::Unicast)];
        assert_eq!(select(&mac, &["lo".to_string()], true).unwrap()[0].name, "lo0");
        assert_eq!(select(&mac, &["lo0".to_string()], true).unwrap()[0].name, "lo0");
    }

    #[test]
    fn scan_finds_loopback() {
        let all = scan().unwrap();
        let lo = all.iter().find(|i| i.loopback && !i.is_v6()).expect("a loopback interface");
        assert_eq!(lo.broadcast, Some(Ipv4Addr::new(127, 255, 255, 255)));
        assert_eq!(lo.beacon_to(), lo.broadcast);
        assert!(all.iter().filter(|i| i.loopback).all(|i| i.beacon_to().is_none_or(|b| b.is_loopback())));
        for i in &all {
            assert_eq!(i.is_v6(), i.broadcast.is_none(), "{i:?}");
            if i.is_v6() {
                assert_ne!(i.index, 0, "{i:?}");
            }
        }
    }
}
