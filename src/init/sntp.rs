//! A small SNTPv4 client (RFC 4330) for init mode: one query, best-effort.
//!
//! Owns: the 48-byte request and the reply check and offset arithmetic (pure: the four
//! timestamps in, the clock offset out), and one UDP exchange with a server.
//! Must not touch: the clock itself (clock.rs sets it); a failed query only logs.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum SntpError {
    #[error("cannot reach the time server {server}: {source}")]
    Io {
        server: String,
        source: std::io::Error,
    },
    #[error("the time server {0} did not answer in time")]
    Timeout(String),
    #[error("the time server's reply is not a valid SNTP answer to our request: {0}")]
    BadReply(&'static str),
}

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// Nanoseconds since the Unix epoch as an NTP 64-bit timestamp.
pub fn to_ntp(unix_nanos: i128) -> u64 {
    let secs = (unix_nanos.div_euclid(1_000_000_000)) as u64 + NTP_TO_UNIX;
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u64;
    (secs << 32) | ((nanos << 32) / 1_000_000_000)
}

/// An NTP 64-bit timestamp as nanoseconds since the Unix epoch (era 0 only, until 2036).
pub fn from_ntp(ntp: u64) -> i128 {
    let secs = (ntp >> 32) as i128 - NTP_TO_UNIX as i128;
    let frac = ((ntp & 0xffff_ffff) as i128 * 1_000_000_000) >> 32;
    secs * 1_000_000_000 + frac
}

/// The client request: version 4, mode 3 (client), our transmit time.
pub fn request(transmit_unix_nanos: i128) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = (4 << 3) | 3;
    packet[40..48].copy_from_slice(&to_ntp(transmit_unix_nanos).to_be_bytes());
    packet
}

/// Checks a reply to `sent` and returns the clock offset in nanoseconds (what to add to
/// the local clock), given the local receive time.
pub fn offset_from_reply(
    sent: &[u8; 48],
    reply: &[u8],
    received_unix_nanos: i128,
) -> Result<i128, SntpError> {
    if reply.len() < 48 {
        return Err(SntpError::BadReply("shorter than 48 bytes"));
    }
    let mode = reply[0] & 0x7;
    if mode != 4 {
        return Err(SntpError::BadReply("not a server reply (mode 4)"));
    }
    if reply[1] == 0 {
        return Err(SntpError::BadReply("kiss-o'-death (stratum 0)"));
    }
    if reply[0] >> 6 == 3 {
        return Err(SntpError::BadReply("server clock not synchronized"));
    }
    let field = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&reply[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    if reply[24..32] != sent[40..48] {
        return Err(SntpError::BadReply(
            "originate timestamp does not match our request",
        ));
    }
    let t1 = from_ntp(field(24));
    let t2 = from_ntp(field(32));
    let t3 = from_ntp(field(40));
    if field(40) == 0 {
        return Err(SntpError::BadReply("zero transmit timestamp"));
    }
    let t4 = received_unix_nanos;
    Ok(((t2 - t1) + (t3 - t4)) / 2)
}

fn now_unix_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// Asks `server` (host:port) for the time; returns the offset to apply, in nanoseconds.
pub fn query(server: &str, timeout: Duration) -> Result<i128, SntpError> {
    let io = |source| SntpError::Io {
        server: server.to_string(),
        source,
    };
    let address: SocketAddr = server
        .to_socket_addrs()
        .map_err(io)?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| io(std::io::Error::other("no IPv4 address")))?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    let sent = request(now_unix_nanos());
    socket.send_to(&sent, address).map_err(io)?;
    let mut buf = [0u8; 128];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if from == address => {
                return offset_from_reply(&sent, &buf[..len], now_unix_nanos())
            }
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(SntpError::Timeout(server.to_string()))
            }
            Err(err) => return Err(io(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    #[test]
    fn ntp_timestamps_round_trip_to_the_nanosecond_scale() {
        for unix in [0, 1_700_000_000 * SECOND + 123_456_789, 5 * SECOND / 2] {
            let back = from_ntp(to_ntp(unix));
            assert!((back - unix).abs() <= 1, "{unix} -> {back}");
        }
        assert_eq!(to_ntp(0) >> 32, NTP_TO_UNIX);
    }

    fn reply_to(sent: &[u8; 48], t2: i128, t3: i128) -> [u8; 48] {
        let mut reply = [0u8; 48];
        reply[0] = (4 << 3) | 4;
        reply[1] = 2;
        reply[24..32].copy_from_slice(&sent[40..48]);
        reply[32..40].copy_from_slice(&to_ntp(t2).to_be_bytes());
        reply[40..48].copy_from_slice(&to_ntp(t3).to_be_bytes());
        reply
    }

    #[test]
    fn offset_of_a_clock_stuck_in_1970() {
        // Local clock at 100 s after the epoch; the real time is 1.7e9 s; 20 ms round trip.
        let t1 = 100 * SECOND;
        let real = 1_700_000_000 * SECOND;
        let sent = request(t1);
        let reply = reply_to(&sent, real + 10_000_000, real + 10_000_000);
        let offset = offset_from_reply(&sent, &reply, t1 + 20_000_000).expect("valid");
        assert!((t1 + offset - real).abs() < 1000, "offset {offset}");
    }

    #[test]
    fn bad_replies_are_refused() {
        let sent = request(SECOND);
        let good = reply_to(&sent, 2 * SECOND, 2 * SECOND);
        let mut wrong_mode = good;
        wrong_mode[0] = (4 << 3) | 3;
        let mut kiss = good;
        kiss[1] = 0;
        let mut other_request = good;
        other_request[24] ^= 1;
        let mut unsynced = good;
        unsynced[0] |= 3 << 6;
        for bad in [
            &wrong_mode[..],
            &kiss[..],
            &other_request[..],
            &unsynced[..],
            &good[..40],
        ] {
            assert!(offset_from_reply(&sent, bad, SECOND).is_err());
        }
        assert!(offset_from_reply(&sent, &good, SECOND).is_ok());
    }
}
