//! piarchive patch: TLS with rustls 0.23 (upstream used rustls 0.20 behind
//! one mutex held during blocking socket reads, so a connection thread
//! waiting for the next request kept the handler from writing the answer).
//!
//! Here the socket is read *without* the lock: the raw bytes are read from
//! the shared socket, then handed to rustls under the lock. Writes encrypt
//! under the lock and write to the socket (under its write timeout).
//!
//! Every raw read asks the connection's pace how long it may block: one
//! plaintext read may take many raw reads (a ClientHello or a record sent a
//! byte at a time), so arming the timeout once per plaintext read would let
//! a dribbling client stay past every deadline. A handshake that never
//! finishes thus runs into the header deadline like any slow client.

use crate::connection::Connection;
use crate::util::refined_tcp_stream::Stream as RefinedStream;
use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use crate::util::pace::Pace;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Raw bytes read from the socket in one go.
const RAW_READ: usize = 32 * 1024;

struct Tls {
    conn: rustls::ServerConnection,
    /// Bytes read from the socket that rustls has not taken yet.
    pending: Vec<u8>,
    /// The peer closed its side (a read returned 0).
    eof: bool,
}

/// One TLS connection, shared by the read and write halves.
pub(crate) struct RustlsStream {
    tls: Arc<Mutex<Tls>>,
    sock: Arc<Connection>,
    /// This half's buffer for raw reads (allocated at the first read).
    raw: Vec<u8>,
    /// The connection's deadlines, asked before every raw read.
    pace: Option<Arc<Pace>>,
}

/// The shortest read timeout: a read past the deadline still takes what has
/// already arrived.
const LAST_LOOK: Duration = Duration::from_millis(1);

impl RustlsStream {
    fn lock(&self) -> MutexGuard<'_, Tls> {
        self.tls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn peer_addr(&mut self) -> std::io::Result<Option<SocketAddr>> {
        match &*self.sock {
            Connection::Tcp(s) => s.peer_addr().map(Some),
            #[cfg(unix)]
            Connection::Unix(_) => Ok(None),
        }
    }

    /// The socket, for its read timeout.
    pub(crate) fn socket(&self) -> &Connection {
        &self.sock
    }

    pub(crate) fn shutdown(&mut self, how: Shutdown) -> std::io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let mut tls = self.lock();
            tls.conn.send_close_notify();
            let _ = write_out(&mut tls.conn, &self.sock);
        }
        self.sock.shutdown(how)
    }

    /// One raw read from the socket, ending by the pace's deadline.
    fn raw_read(&mut self) -> std::io::Result<usize> {
        let Some(pace) = self.pace.clone() else {
            return (&*self.sock).read(&mut self.raw);
        };
        loop {
            let left = pace.time_left(Instant::now())?;
            self.sock.set_read_timeout(Some(left.max(LAST_LOOK)))?;
            match (&*self.sock).read(&mut self.raw) {
                Ok(n) => {
                    pace.received(n, Instant::now());
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if left.is_zero() {
                        return Err(std::io::Error::new(
                            ErrorKind::TimedOut,
                            "the client is too slow",
                        ));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands pending raw bytes to rustls; true when it took some.
    fn feed(tls: &mut Tls, sock: &Connection) -> std::io::Result<bool> {
        if tls.pending.is_empty() && !tls.eof {
            return Ok(false);
        }
        let taken = {
            let mut pending: &[u8] = &tls.pending;
            let before = pending.len();
            tls.conn.read_tls(&mut pending)?;
            before - pending.len()
        };
        tls.pending.drain(..taken);
        let processed = tls.conn.process_new_packets();
        // The handshake's answers and any alert go out at once.
        write_out(&mut tls.conn, sock)?;
        processed.map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
        Ok(taken > 0)
    }
}

/// Writes everything rustls has to send.
fn write_out(conn: &mut rustls::ServerConnection, sock: &Connection) -> std::io::Result<()> {
    let mut sock = sock;
    while conn.wants_write() {
        conn.write_tls(&mut sock)?;
    }
    Ok(())
}

impl Clone for RustlsStream {
    fn clone(&self) -> Self {
        Self {
            tls: self.tls.clone(),
            sock: self.sock.clone(),
            raw: Vec::new(),
            pace: self.pace.clone(),
        }
    }
}

impl Read for RustlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.raw.is_empty() {
            self.raw = vec![0u8; RAW_READ];
        }
        loop {
            {
                let mut tls = self.lock();
                loop {
                    match tls.conn.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if tls.eof && tls.pending.is_empty() {
                        // rustls saw the end without a close_notify.
                        return Ok(0);
                    }
                    if !Self::feed(&mut tls, &self.sock)? {
                        break;
                    }
                }
            }
            // The lock is not held while waiting for the peer.
            let n = self.raw_read()?;
            let mut tls = self.lock();
            if n == 0 {
                tls.eof = true;
            } else {
                tls.pending.extend_from_slice(&self.raw[..n]);
            }
        }
    }
}

impl Write for RustlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut tls = self.lock();
        loop {
            let n = tls.conn.writer().write(buf)?;
            write_out(&mut tls.conn, &self.sock)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut tls = self.lock();
        tls.conn.writer().flush()?;
        write_out(&mut tls.conn, &self.sock)
    }
}

/// piarchive patch: the application hands in its own rustls configuration
/// (certificate resolver, protocol versions, cipher suites).
pub(crate) struct RustlsContext(Arc<rustls::ServerConfig>);

impl RustlsContext {
    pub(crate) fn from_config(config: Arc<rustls::ServerConfig>) -> Self {
        Self(config)
    }

    pub(crate) fn from_pem(
        certificates: Vec<u8>,
        private_key: Zeroizing<Vec<u8>>,
    ) -> Result<Self, Box<dyn Error + Send + Sync>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(&certificates).collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err("Couldn't extract certificate chain from config.".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&private_key)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        Ok(Self(Arc::new(config)))
    }

    pub(crate) fn accept(
        &self,
        stream: Arc<Connection>,
        pace: Arc<Pace>,
    ) -> Result<RustlsStream, Box<dyn Error + Send + Sync + 'static>> {
        let conn = rustls::ServerConnection::new(self.0.clone())?;
        Ok(RustlsStream {
            tls: Arc::new(Mutex::new(Tls {
                conn,
                pending: Vec::new(),
                eof: false,
            })),
            sock: stream,
            raw: Vec::new(),
            pace: Some(pace),
        })
    }
}

impl From<RustlsStream> for RefinedStream {
    fn from(stream: RustlsStream) -> Self {
        Self::Https(stream)
    }
}
