//! Network interface configuration of init mode, through the classic ioctls.
//!
//! Owns: finding the wired interface, bringing interfaces up, setting an IPv4 address
//! and netmask, the default route, and /etc/resolv.conf.
//! Must not touch: DHCP itself (dhcp.rs decides the addresses; this file applies them).

use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use rustix::ioctl::{Opcode, Updater};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a control socket: {0}")]
    Socket(std::io::Error),
    #[error("the interface name {0:?} is too long (at most 15 bytes)")]
    BadName(String),
    #[error("{what} on {interface} failed: {source}")]
    Ioctl {
        what: &'static str,
        interface: String,
        source: std::io::Error,
    },
    #[error("cannot write /etc/resolv.conf: {0}")]
    ResolvConf(std::io::Error),
}

/// A socket ioctl request and the one argument type the kernel expects with
/// it: the pairing is fixed where each request is defined, so [`ioctl`] can
/// only be called with the struct its number needs.
struct SocketIoctl<const OPCODE: Opcode, T> {
    name: &'static str,
    argument: PhantomData<fn(&mut T)>,
}

const fn request<const OPCODE: Opcode, T>(name: &'static str) -> SocketIoctl<OPCODE, T> {
    SocketIoctl {
        name,
        argument: PhantomData,
    }
}

// The ioctl numbers of <linux/sockios.h>; a stable kernel ABI.
const SIOCADDRT: SocketIoctl<0x890B, RtEntry> = request("SIOCADDRT");
const SIOCDELRT: SocketIoctl<0x890C, RtEntry> = request("SIOCDELRT");
const SIOCGIFFLAGS: SocketIoctl<0x8913, IfreqFlags> = request("SIOCGIFFLAGS");
const SIOCSIFFLAGS: SocketIoctl<0x8914, IfreqFlags> = request("SIOCSIFFLAGS");
const SIOCSIFADDR: SocketIoctl<0x8916, IfreqAddr> = request("SIOCSIFADDR");
const SIOCSIFBRDADDR: SocketIoctl<0x891A, IfreqAddr> = request("SIOCSIFBRDADDR");
const SIOCSIFNETMASK: SocketIoctl<0x891C, IfreqAddr> = request("SIOCSIFNETMASK");

/// `struct ifreq` with the address member of its union.
#[repr(C)]
struct IfreqAddr {
    name: [u8; 16],
    addr: libc::sockaddr_in,
    pad: [u8; 8],
}

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// `struct rtentry` of <linux/route.h>.
#[repr(C)]
struct RtEntry {
    pad1: libc::c_ulong,
    dst: libc::sockaddr_in,
    gateway: libc::sockaddr_in,
    genmask: libc::sockaddr_in,
    flags: libc::c_ushort,
    pad2: libc::c_short,
    pad3: libc::c_ulong,
    pad4: *mut libc::c_void,
    metric: libc::c_short,
    dev: *mut libc::c_char,
    mtu: libc::c_ulong,
    window: libc::c_ulong,
    irtt: libc::c_ushort,
}

const RTF_UP: libc::c_ushort = 0x0001;
const RTF_GATEWAY: libc::c_ushort = 0x0002;

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn interface_name(name: &str) -> Result<[u8; 16], NetError> {
    let bytes = name.as_bytes();
    if bytes.len() > 15 || bytes.contains(&0) {
        return Err(NetError::BadName(name.to_string()));
    }
    let mut out = [0u8; 16];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

fn control_socket() -> Result<OwnedFd, NetError> {
    rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|errno| NetError::Socket(errno.into()))
}

/// Runs one socket ioctl with the argument type its request is defined with.
fn ioctl<const OPCODE: Opcode, T>(
    request: SocketIoctl<OPCODE, T>,
    interface: &str,
    arg: &mut T,
) -> Result<(), NetError> {
    let socket = control_socket()?;
    // SAFETY: `request` fixes `T` to the `#[repr(C)]` struct the kernel reads
    // (and may write) for this number (see the constants above), and `arg` is
    // a live exclusive borrow for the whole call.
    unsafe { rustix::ioctl::ioctl(&socket, Updater::<OPCODE, T>::new(arg)) }.map_err(|errno| {
        NetError::Ioctl {
            what: request.name,
            interface: interface.to_string(),
            source: errno.into(),
        }
    })
}

/// Brings an interface up (IFF_UP).
pub fn set_up(interface: &str) -> Result<(), NetError> {
    let mut req = IfreqFlags {
        name: interface_name(interface)?,
        flags: 0,
        pad: [0; 22],
    };
    ioctl(SIOCGIFFLAGS, interface, &mut req)?;
    req.flags |= libc::IFF_UP as libc::c_short;
    ioctl(SIOCSIFFLAGS, interface, &mut req)
}

/// Sets the interface's IPv4 address, netmask and broadcast address.
pub fn set_address(interface: &str, address: Ipv4Addr, netmask: Ipv4Addr) -> Result<(), NetError> {
    let name = interface_name(interface)?;
    let mut req = IfreqAddr {
        name,
        addr: sockaddr(address),
        pad: [0; 8],
    };
    ioctl(SIOCSIFADDR, interface, &mut req)?;
    if address.is_unspecified() {
        return Ok(());
    }
    req.addr = sockaddr(netmask);
    ioctl(SIOCSIFNETMASK, interface, &mut req)?;
    let broadcast = Ipv4Addr::from(u32::from(address) | !u32::from(netmask));
    req.addr = sockaddr(broadcast);
    ioctl(SIOCSIFBRDADDR, interface, &mut req)
}

fn default_route(gateway: Ipv4Addr) -> RtEntry {
    RtEntry {
        pad1: 0,
        dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        gateway: sockaddr(gateway),
        genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        flags: RTF_UP | RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: std::ptr::null_mut(),
        mtu: 0,
        window: 0,
        irtt: 0,
    }
}

/// Replaces the default route with one through `gateway`.
pub fn set_default_route(gateway: Ipv4Addr) -> Result<(), NetError> {
    // Deleting an absent route fails with ESRCH; that is the normal first time.
    let _ = ioctl(
        SIOCDELRT,
        "default",
        &mut default_route(Ipv4Addr::UNSPECIFIED),
    );
    ioctl(SIOCADDRT, "default", &mut default_route(gateway))
}

/// The first wired (Ethernet, not wireless) interface, by name.
pub fn find_ethernet_interface() -> Option<String> {
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let dir = std::path::Path::new("/sys/class/net").join(name);
            let is_ether = std::fs::read_to_string(dir.join("type")).is_ok_and(|t| t.trim() == "1");
            is_ether && !dir.join("wireless").exists() && name != "lo"
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The MAC address of an interface, from sysfs.
pub fn hardware_address(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    parse_mac(text.trim())
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// True when the interface reports a link (a cable plugged into a live port).
pub fn has_carrier(interface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/carrier"))
        .is_ok_and(|t| t.trim() == "1")
}

/// The resolv.conf text for the given name servers.
pub fn resolv_conf(servers: &[Ipv4Addr]) -> String {
    let mut text = String::from("# written by piarchive init from the DHCP lease\n");
    for server in servers.iter().take(3) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

/// Writes /etc/resolv.conf for the given name servers.
pub fn write_resolv_conf(servers: &[Ipv4Addr]) -> Result<(), NetError> {
    std::fs::create_dir_all("/etc").map_err(NetError::ResolvConf)?;
    std::fs::write("/etc/resolv.conf", resolv_conf(servers)).map_err(NetError::ResolvConf)
}

/// A link-local address (169.254.1.0 – 169.254.254.255, RFC 3927) derived from the MAC,
/// so the same box gets the same fallback address each time.
pub fn link_local_address(mac: [u8; 6]) -> Ipv4Addr {
    let seed = mac.iter().fold(0u32, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    let third = 1 + (seed % 254) as u8;
    let fourth = ((seed / 254) % 256) as u8;
    Ipv4Addr::new(169, 254, third, fourth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("zz:54:00:12:34:56"), None);
    }

    #[test]
    fn link_local_is_in_range_and_stable() {
        for mac in [[0u8; 6], [0xff; 6], [0x52, 0x54, 0, 0x12, 0x34, 0x56]] {
            let addr = link_local_address(mac);
            let octets = addr.octets();
            assert_eq!(&octets[..2], &[169, 254]);
            assert!((1..=254).contains(&octets[2]), "{addr}");
            assert_eq!(addr, link_local_address(mac));
        }
        assert_ne!(
            link_local_address([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            link_local_address([0x52, 0x54, 0, 0x12, 0x34, 0x57])
        );
    }

    #[test]
    fn resolv_conf_lists_at_most_three_servers() {
        let servers = [
            Ipv4Addr::new(10, 0, 2, 3),
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(8, 8, 8, 8),
            Ipv4Addr::new(9, 9, 9, 9),
        ];
        let text = resolv_conf(&servers);
        assert_eq!(text.matches("nameserver").count(), 3);
        assert!(text.contains("nameserver 10.0.2.3\n"));
    }

    #[test]
    fn long_interface_names_are_refused() {
        assert!(interface_name("eth0").is_ok());
        assert!(matches!(
            interface_name("a-very-long-ifname"),
            Err(NetError::BadName(_))
        ));
    }
}
