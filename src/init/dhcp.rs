//! A small DHCPv4 client (RFC 2131/2132) for init mode.
//!
//! Owns: the message codec (pure: fields and options in, bytes out, and back), the
//! lease a server's ACK describes, the retry schedule, and the client loop over one
//! UDP socket bound to port 68 on the wired interface (DISCOVER -> OFFER -> REQUEST ->
//! ACK; at T1 RENEWING: requests unicast to the server that granted the lease; at T2
//! REBINDING: broadcast to any server; rediscovery after expiry, RFC 2131 4.4.5). Until
//! it has an address it asks for broadcast replies, so it receives them anyway.
//! Must not touch: interface configuration (the caller applies a lease with net.rs).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DhcpError {
    #[error("the DHCP message is {0} bytes, shorter than the fixed 240-byte header")]
    TooShort(usize),
    #[error("the DHCP message lacks the magic cookie 99.130.83.99")]
    NoMagicCookie,
    #[error("the DHCP option {0} runs past the end of the message")]
    TruncatedOption(u8),
}

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
}

impl MessageType {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            _ => return None,
        })
    }
}

// Option codes used here (RFC 2132).
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_HOSTNAME: u8 = 12;
pub const OPT_NTP: u8 = 42;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_PARAMETER_LIST: u8 = 55;
pub const OPT_RENEWAL_TIME: u8 = 58;
pub const OPT_REBINDING_TIME: u8 = 59;
pub const OPT_CLIENT_ID: u8 = 61;

const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BROADCAST_FLAG: u16 = 0x8000;

/// One DHCP message; only the fields this client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    /// Options in order, without pad and end.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Message {
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.option(OPT_MESSAGE_TYPE)
            .and_then(|v| v.first().copied())
            .and_then(MessageType::from_byte)
    }

    /// Encodes the message, padded to the 300 bytes BOOTP servers expect at least.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        out.extend_from_slice(&[self.op, 1, 6, 0]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes()); // secs
        out.extend_from_slice(&self.flags.to_be_bytes());
        for addr in [self.ciaddr, self.yiaddr, self.siaddr, Ipv4Addr::UNSPECIFIED] {
            out.extend_from_slice(&addr.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.extend_from_slice(&[0u8; 10 + 64 + 128]); // chaddr padding, sname, file
        out.extend_from_slice(&MAGIC_COOKIE);
        for (code, value) in &self.options {
            for chunk in value.chunks(255) {
                out.push(*code);
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        out.push(255);
        if out.len() < 300 {
            out.resize(300, 0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DhcpError> {
        if bytes.len() < 240 {
            return Err(DhcpError::TooShort(bytes.len()));
        }
        if bytes[236..240] != MAGIC_COOKIE {
            return Err(DhcpError::NoMagicCookie);
        }
        let addr =
            |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&bytes[28..34]);
        let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut at = 240;
        while at < bytes.len() {
            let code = bytes[at];
            match code {
                0 => at += 1,
                255 => break,
                _ => {
                    let len = *bytes.get(at + 1).ok_or(DhcpError::TruncatedOption(code))? as usize;
                    let value = bytes
                        .get(at + 2..at + 2 + len)
                        .ok_or(DhcpError::TruncatedOption(code))?;
                    // RFC 3396: a repeated option continues the previous one.
                    match options.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, existing)) => existing.extend_from_slice(value),
                        None => options.push((code, value.to_vec())),
                    }
                    at += 2 + len;
                }
            }
        }
        Ok(Message {
            op: bytes[0],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            flags: u16::from_be_bytes([bytes[10], bytes[11]]),
            ciaddr: addr(12),
            yiaddr: addr(16),
            siaddr: addr(20),
            chaddr,
            options,
        })
    }
}

fn common_options(kind: MessageType, mac: [u8; 6], hostname: &str) -> Vec<(u8, Vec<u8>)> {
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&mac);
    let mut options = vec![
        (OPT_MESSAGE_TYPE, vec![kind as u8]),
        (OPT_CLIENT_ID, client_id),
    ];
    if !hostname.is_empty() {
        options.push((OPT_HOSTNAME, hostname.as_bytes().to_vec()));
    }
    options.push((
        OPT_PARAMETER_LIST,
        vec![
            OPT_SUBNET_MASK,
            OPT_ROUTER,
            OPT_DNS,
            OPT_NTP,
            OPT_LEASE_TIME,
            OPT_RENEWAL_TIME,
            OPT_REBINDING_TIME,
        ],
    ));
    options
}

fn request_message(
    xid: u32,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    options: Vec<(u8, Vec<u8>)>,
) -> Message {
    Message {
        op: BOOTREQUEST,
        xid,
        flags: BROADCAST_FLAG,
        ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: mac,
        options,
    }
}

/// DHCPDISCOVER.
pub fn discover(xid: u32, mac: [u8; 6], hostname: &str) -> Message {
    request_message(
        xid,
        mac,
        Ipv4Addr::UNSPECIFIED,
        common_options(MessageType::Discover, mac, hostname),
    )
}

/// DHCPREQUEST in SELECTING state, for the address a server offered.
pub fn select(xid: u32, mac: [u8; 6], hostname: &str, offer: &Message) -> Message {
    let mut options = common_options(MessageType::Request, mac, hostname);
    options.push((OPT_REQUESTED_IP, offer.yiaddr.octets().to_vec()));
    if let Some(server) = offer.option(OPT_SERVER_ID) {
        options.push((OPT_SERVER_ID, server.to_vec()));
    }
    request_message(xid, mac, Ipv4Addr::UNSPECIFIED, options)
}

/// DHCPREQUEST in RENEWING or REBINDING state: ciaddr set, no requested address or
/// server id, and no broadcast flag (the client has its address; the answer comes to it).
pub fn renew(xid: u32, mac: [u8; 6], hostname: &str, address: Ipv4Addr) -> Message {
    Message {
        flags: 0,
        ..request_message(
            xid,
            mac,
            address,
            common_options(MessageType::Request, mac, hostname),
        )
    }
}

/// Where a renewal request goes, `since_granted` after the lease was granted: in
/// RENEWING (before T2) to the server that granted it, in REBINDING (from T2 on, or
/// when the ACK named no server) broadcast to any server.
pub fn renewal_destination(lease: &Lease, since_granted: Duration) -> SocketAddrV4 {
    match lease.server {
        Some(server) if since_granted < lease.rebind_after && !server.is_unspecified() => {
            SocketAddrV4::new(server, SERVER_PORT)
        }
        _ => SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
    }
}

/// The DHCP server port.
const SERVER_PORT: u16 = 67;

/// What a DHCPACK grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub server: Option<Ipv4Addr>,
    pub lease_time: Duration,
    /// When to renew (T1): option 58, else half the lease.
    pub renew_after: Duration,
    /// When to rebind (T2): option 59, else seven eighths of the lease; never before T1.
    pub rebind_after: Duration,
}

fn addresses(value: Option<&[u8]>) -> Vec<Ipv4Addr> {
    value
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

fn seconds(value: Option<&[u8]>) -> Option<Duration> {
    let v = value?;
    let bytes: [u8; 4] = v.get(..4)?.try_into().ok()?;
    Some(Duration::from_secs(u64::from(u32::from_be_bytes(bytes))))
}

/// The lease granted by an ACK. Without a netmask the classful /24 is assumed; without
/// a lease time, one hour.
pub fn lease_from_ack(ack: &Message) -> Lease {
    let netmask = addresses(ack.option(OPT_SUBNET_MASK))
        .first()
        .copied()
        .unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    let lease_time = seconds(ack.option(OPT_LEASE_TIME)).unwrap_or(Duration::from_secs(3600));
    let renew_after = seconds(ack.option(OPT_RENEWAL_TIME))
        .filter(|t1| *t1 < lease_time)
        .unwrap_or(lease_time / 2);
    let rebind_after = seconds(ack.option(OPT_REBINDING_TIME))
        .filter(|t2| *t2 < lease_time)
        .unwrap_or(lease_time * 7 / 8)
        .max(renew_after);
    Lease {
        address: ack.yiaddr,
        netmask,
        router: addresses(ack.option(OPT_ROUTER)).first().copied(),
        dns: addresses(ack.option(OPT_DNS)),
        ntp: addresses(ack.option(OPT_NTP)),
        server: addresses(ack.option(OPT_SERVER_ID)).first().copied(),
        lease_time,
        renew_after,
        rebind_after,
    }
}

/// Netmask as a prefix length, for the log.
pub fn prefix_len(netmask: Ipv4Addr) -> u32 {
    u32::from(netmask).count_ones()
}

/// How long to wait for an answer on the given attempt (0-based): 2, 4, 8, 16, then 30 s.
pub fn retry_timeout(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.saturating_add(1)).min(30))
}

/// What the client tells its caller.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new lease (first one, or after the old one expired).
    Bound(&'a Lease),
    /// The lease was extended.
    Renewed(&'a Lease),
    /// An attempt got no usable answer; `attempt` counts from 1.
    NoAnswer { attempt: u32, carrier: bool },
    /// The lease ran out without renewal; the address should be dropped.
    Expired,
    /// The socket could not be opened or used; the client retries later.
    SocketError(&'a std::io::Error),
}

fn open_socket(interface: &str) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))?;
    socket.set_broadcast(true)?;
    socket2::SockRef::from(&socket).bind_device(Some(interface.as_bytes()))?;
    Ok(socket)
}

/// Sends `message` to `to` and waits until `deadline` for a reply with its xid and one
/// of the `wanted` types.
fn exchange(
    socket: &UdpSocket,
    message: &Message,
    to: SocketAddrV4,
    wanted: &[MessageType],
    deadline: Instant,
) -> std::io::Result<Option<Message>> {
    socket.send_to(&message.encode(), to)?;
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        socket.set_read_timeout(Some(deadline - now))?;
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => {
                if let Ok(reply) = Message::decode(&buf[..len]) {
                    let matches = reply.op == BOOTREPLY
                        && reply.xid == message.xid
                        && reply.chaddr == message.chaddr
                        && reply.message_type().is_some_and(|t| wanted.contains(&t));
                    if matches {
                        return Ok(Some(reply));
                    }
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Where a client without an address sends: every server on the link.
const BROADCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);

/// One DISCOVER/OFFER/REQUEST/ACK round with the given answer timeout.
fn acquire(
    socket: &UdpSocket,
    mac: [u8; 6],
    hostname: &str,
    timeout: Duration,
) -> std::io::Result<Option<Lease>> {
    let xid: u32 = rand::random();
    let deadline = Instant::now() + timeout;
    let Some(offer) = exchange(
        socket,
        &discover(xid, mac, hostname),
        BROADCAST,
        &[MessageType::Offer],
        deadline,
    )?
    else {
        return Ok(None);
    };
    let request = select(xid, mac, hostname, &offer);
    let deadline = Instant::now() + timeout;
    match exchange(
        socket,
        &request,
        BROADCAST,
        &[MessageType::Ack, MessageType::Nak],
        deadline,
    )? {
        Some(ack) if ack.message_type() == Some(MessageType::Ack) => Ok(Some(lease_from_ack(&ack))),
        _ => Ok(None),
    }
}

/// Runs the client forever on `interface`, reporting to `on_event`. Never returns.
pub fn run_client(
    interface: &str,
    mac: [u8; 6],
    hostname: &str,
    mut on_event: impl FnMut(Event<'_>),
) -> ! {
    let mut attempt: u32 = 0;
    loop {
        let socket = match open_socket(interface) {
            Ok(socket) => socket,
            Err(err) => {
                on_event(Event::SocketError(&err));
                std::thread::sleep(retry_timeout(attempt));
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        // SELECTING: until a lease is granted.
        let mut lease = loop {
            if !super::net::has_carrier(interface) {
                // No cable: report, then wait for the link (checked twice a second) or
                // the next retry, whichever comes first; a plugged cable retries at once.
                attempt = attempt.saturating_add(1);
                on_event(Event::NoAnswer {
                    attempt,
                    carrier: false,
                });
                let until = Instant::now() + retry_timeout(attempt);
                while Instant::now() < until && !super::net::has_carrier(interface) {
                    std::thread::sleep(Duration::from_millis(500));
                }
                if super::net::has_carrier(interface) {
                    attempt = 0;
                }
                continue;
            }
            match acquire(&socket, mac, hostname, retry_timeout(attempt)) {
                Ok(Some(lease)) => break lease,
                Ok(None) => {
                    attempt = attempt.saturating_add(1);
                    on_event(Event::NoAnswer {
                        attempt,
                        carrier: super::net::has_carrier(interface),
                    });
                }
                Err(err) => {
                    on_event(Event::SocketError(&err));
                    attempt = attempt.saturating_add(1);
                    std::thread::sleep(retry_timeout(attempt));
                }
            }
        };
        attempt = 0;
        on_event(Event::Bound(&lease));
        // BOUND / RENEWING: until the lease expires.
        let mut granted_at = Instant::now();
        loop {
            let renew_at = granted_at + lease.renew_after;
            let expires_at = granted_at + lease.lease_time;
            let now = Instant::now();
            if renew_at > now {
                std::thread::sleep(renew_at - now);
            }
            let mut renewed = None;
            while renewed.is_none() && Instant::now() < expires_at {
                let xid: u32 = rand::random();
                let deadline = (Instant::now() + Duration::from_secs(10)).min(expires_at);
                let request = renew(xid, mac, hostname, lease.address);
                let to = renewal_destination(&lease, granted_at.elapsed());
                match exchange(
                    &socket,
                    &request,
                    to,
                    &[MessageType::Ack, MessageType::Nak],
                    deadline,
                ) {
                    Ok(Some(reply)) if reply.message_type() == Some(MessageType::Ack) => {
                        renewed = Some(lease_from_ack(&reply));
                    }
                    Ok(Some(_nak)) => break,
                    Ok(None) | Err(_) => {
                        let left = expires_at.saturating_duration_since(Instant::now());
                        std::thread::sleep(Duration::from_secs(30).min(left));
                    }
                }
            }
            match renewed {
                Some(new_lease) => {
                    lease = new_lease;
                    granted_at = Instant::now();
                    on_event(Event::Renewed(&lease));
                }
                None => {
                    on_event(Event::Expired);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn discover_round_trips_and_is_padded() {
        let message = discover(0xdead_beef, MAC, "piarchive");
        let bytes = message.encode();
        assert!(bytes.len() >= 300);
        assert_eq!(&bytes[236..240], &MAGIC_COOKIE);
        let decoded = Message::decode(&bytes).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.message_type(), Some(MessageType::Discover));
        assert_eq!(decoded.flags, BROADCAST_FLAG);
        assert_eq!(decoded.option(OPT_HOSTNAME), Some(&b"piarchive"[..]));
        assert_eq!(
            decoded.option(OPT_CLIENT_ID),
            Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
        );
    }

    /// An ACK like QEMU's user-mode network sends.
    fn qemu_ack() -> Message {
        Message {
            op: BOOTREPLY,
            xid: 7,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::new(10, 0, 2, 15),
            siaddr: Ipv4Addr::new(10, 0, 2, 2),
            chaddr: MAC,
            options: vec![
                (OPT_MESSAGE_TYPE, vec![5]),
                (OPT_SERVER_ID, vec![10, 0, 2, 2]),
                (OPT_LEASE_TIME, 86_400u32.to_be_bytes().to_vec()),
                (OPT_SUBNET_MASK, vec![255, 255, 255, 0]),
                (OPT_ROUTER, vec![10, 0, 2, 2]),
                (OPT_DNS, vec![10, 0, 2, 3]),
            ],
        }
    }

    #[test]
    fn lease_from_ack_reads_every_field() {
        let ack = Message::decode(&qemu_ack().encode()).expect("decodes");
        let lease = lease_from_ack(&ack);
        assert_eq!(
            lease,
            Lease {
                address: Ipv4Addr::new(10, 0, 2, 15),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                router: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
                ntp: vec![],
                server: Some(Ipv4Addr::new(10, 0, 2, 2)),
                lease_time: Duration::from_secs(86_400),
                renew_after: Duration::from_secs(43_200),
                rebind_after: Duration::from_secs(75_600),
            }
        );
        assert_eq!(prefix_len(lease.netmask), 24);
    }

    #[test]
    fn select_carries_offered_address_and_server() {
        let offer = qemu_ack();
        let request = select(7, MAC, "box", &offer);
        assert_eq!(request.message_type(), Some(MessageType::Request));
        assert_eq!(request.option(OPT_REQUESTED_IP), Some(&[10, 0, 2, 15][..]));
        assert_eq!(request.option(OPT_SERVER_ID), Some(&[10, 0, 2, 2][..]));
        let renewal = renew(8, MAC, "box", Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(renewal.ciaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(renewal.option(OPT_REQUESTED_IP), None);
        assert_eq!(renewal.option(OPT_SERVER_ID), None);
        assert_eq!(renewal.flags, 0, "a renewing client takes unicast answers");
    }

    #[test]
    fn renewals_go_to_the_server_and_rebinding_broadcasts() {
        let lease = lease_from_ack(&qemu_ack());
        let server = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 67);
        let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        for (since_granted, expected) in [
            (lease.renew_after, server),
            (lease.rebind_after - Duration::from_secs(1), server),
            (lease.rebind_after, broadcast),
            (lease.lease_time, broadcast),
        ] {
            assert_eq!(
                renewal_destination(&lease, since_granted),
                expected,
                "{since_granted:?}"
            );
        }
        let anonymous = Lease {
            server: None,
            ..lease.clone()
        };
        assert_eq!(
            renewal_destination(&anonymous, lease.renew_after),
            broadcast
        );
    }

    #[test]
    fn a_renewal_is_answered_by_the_server_it_was_sent_to() {
        let loopback = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let client = UdpSocket::bind(loopback).unwrap();
        let server = UdpSocket::bind(loopback).unwrap();
        let std::net::SocketAddr::V4(server_address) = server.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let answering = std::thread::spawn(move || {
            server
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 1500];
            let (len, from) = server.recv_from(&mut buf).unwrap();
            let request = Message::decode(&buf[..len]).unwrap();
            let mut ack = qemu_ack();
            ack.xid = request.xid;
            ack.chaddr = request.chaddr;
            server.send_to(&ack.encode(), from).unwrap();
            request
        });
        let request = renew(42, MAC, "box", Ipv4Addr::new(10, 0, 2, 15));
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = [MessageType::Ack, MessageType::Nak];
        let reply = exchange(&client, &request, server_address, &wanted, deadline).unwrap();
        assert_eq!(reply.map(|r| r.xid), Some(42));
        let received = answering.join().unwrap();
        assert_eq!(received.ciaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(received.message_type(), Some(MessageType::Request));
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(Message::decode(&[0u8; 100]), Err(DhcpError::TooShort(100)));
        assert_eq!(Message::decode(&[0u8; 300]), Err(DhcpError::NoMagicCookie));
        let mut bytes = qemu_ack().encode();
        let end = bytes.iter().rposition(|&b| b == 255).expect("has end");
        bytes.truncate(end);
        bytes.extend_from_slice(&[OPT_DNS, 8, 1, 2]);
        assert_eq!(
            Message::decode(&bytes),
            Err(DhcpError::TruncatedOption(OPT_DNS))
        );
    }

    #[test]
    fn split_options_are_concatenated_and_pads_skipped() {
        let mut bytes = qemu_ack().encode()[..240].to_vec();
        bytes.extend_from_slice(&[0, 0, OPT_DNS, 4, 1, 1, 1, 1, OPT_DNS, 4, 8, 8, 8, 8, 255]);
        let message = Message::decode(&bytes).expect("decodes");
        assert_eq!(
            addresses(message.option(OPT_DNS)),
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)]
        );
    }

    #[test]
    fn renewal_time_option_and_defaults() {
        let mut ack = qemu_ack();
        ack.options
            .push((OPT_RENEWAL_TIME, 600u32.to_be_bytes().to_vec()));
        assert_eq!(lease_from_ack(&ack).renew_after, Duration::from_secs(600));
        ack.options
            .push((OPT_REBINDING_TIME, 900u32.to_be_bytes().to_vec()));
        assert_eq!(lease_from_ack(&ack).rebind_after, Duration::from_secs(900));
        // A T2 before T1 is not believed: rebinding never starts before renewing.
        ack.options.retain(|(c, _)| *c != OPT_REBINDING_TIME);
        ack.options
            .push((OPT_REBINDING_TIME, 300u32.to_be_bytes().to_vec()));
        assert_eq!(lease_from_ack(&ack).rebind_after, Duration::from_secs(600));
        ack.options
            .retain(|(c, _)| *c != OPT_LEASE_TIME && *c != OPT_SUBNET_MASK);
        let lease = lease_from_ack(&ack);
        assert_eq!(lease.lease_time, Duration::from_secs(3600));
        assert_eq!(lease.netmask, Ipv4Addr::new(255, 255, 255, 0));
    }

    #[test]
    fn retry_schedule_grows_and_caps() {
        let schedule: Vec<u64> = (0..7).map(|a| retry_timeout(a).as_secs()).collect();
        assert_eq!(schedule, vec![2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry_timeout(u32::MAX).as_secs(), 30);
    }
}
