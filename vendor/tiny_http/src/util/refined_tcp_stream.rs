use std::io::Result as IoResult;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;
use crate::util::pace::Pace;
use crate::util::slots::Slot;

pub(crate) enum Stream {
    // piarchive patch: shared, not `try_clone`d (one descriptor, no clone
    // that can fail and panic after the connection was accepted).
    Http(Arc<Connection>),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Clone for Stream {
    fn clone(&self) -> Self {
        match self {
            Stream::Http(tcp_stream) => Stream::Http(tcp_stream.clone()),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        }
    }
}

impl From<Arc<Connection>> for Stream {
    fn from(connection: Arc<Connection>) -> Self {
        Stream::Http(connection)
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(Arc::new(tcp_stream))
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => match &**tcp_stream {
                Connection::Tcp(s) => s.peer_addr().map(Some),
                #[cfg(unix)]
                Connection::Unix(_) => Ok(None),
            },
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // piarchive patch: the connection's deadlines (read half only), the
    // read timeout last set on the socket, and its place among the open
    // connections (freed when both halves are gone).
    pace: Option<Arc<Pace>>,
    armed: Option<Duration>,
    _slot: Option<Arc<Slot>>,
}

/// How far the socket's read timeout may lag behind the pace before it is
/// set again (a syscall): a read may overrun its deadline by this much.
const REARM_SLACK: Duration = Duration::from_millis(250);
/// The shortest read timeout: a read past the deadline still takes what
/// has already arrived (the server, not the client, may have been slow).
const LAST_LOOK: Duration = Duration::from_millis(1);

impl RefinedTcpStream {
    pub(crate) fn new<S>(stream: S) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.clone(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            pace: None,
            armed: None,
            _slot: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            pace: None,
            armed: None,
            _slot: None,
        };

        (read, write)
    }

    /// piarchive patch: the read half obeys `pace`; both halves hold `slot`.
    pub(crate) fn new_paced<S: Into<Stream>>(
        connection: S,
        pace: Arc<Pace>,
        slot: Slot,
    ) -> (RefinedTcpStream, RefinedTcpStream) {
        let (mut read, mut write) = RefinedTcpStream::new(connection);
        let slot = Arc::new(slot);
        read.pace = Some(pace);
        read._slot = Some(slot.clone());
        write._slot = Some(slot);
        (read, write)
    }

    /// Sets the socket's read timeout to about `wanted`.
    fn arm(&mut self, wanted: Duration) -> IoResult<()> {
        let wanted = wanted.max(LAST_LOOK);
        let fits = self.armed.is_some_and(|armed| {
            armed <= wanted + REARM_SLACK && armed + 4 * REARM_SLACK >= wanted
        });
        if fits && wanted > LAST_LOOK {
            return Ok(());
        }
        match &self.stream {
            Stream::Http(connection) => connection.set_read_timeout(Some(wanted))?,
            // piarchive patch: the TLS handshake and records are read under
            // the same deadlines.
            #[cfg(feature = "ssl-rustls")]
            Stream::Https(tls) => tls.socket().set_read_timeout(Some(wanted))?,
            #[cfg(feature = "ssl-openssl")]
            Stream::Https(_) => {}
        }
        self.armed = Some(wanted);
        Ok(())
    }

    /// One read that ends by the pace's deadline.
    fn paced_read(&mut self, pace: &Pace, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            let left = pace.time_left(Instant::now())?;
            self.arm(left)?;
            match self.stream.read(buf) {
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

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match (&self.stream, self.pace.clone()) {
            // piarchive patch: the TLS layer reads the socket under the pace
            // itself, for every raw read (one read here may take many: a
            // record dribbled a byte at a time).
            #[cfg(feature = "ssl-rustls")]
            (Stream::Https(_), _) => self.stream.read(buf),
            (_, Some(pace)) => self.paced_read(&pace, buf),
            (_, None) => self.stream.read(buf),
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
