//! The notice page init serves while the box cannot run `piarchive serve`, e.g. when
//! no data disk is plugged in: every request gets 503 and a page saying what to do,
//! reloading itself so the real web UI appears once the problem is fixed.
//!
//! Owns: a tiny HTTP/1.0 responder on the web UI's port and the page text (pure).
//! Must not touch: any data; it reads the request line only and writes nothing to disk.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The full HTTP response for a request line such as `GET /healthz HTTP/1.1`.
pub fn response(request_line: &str, message: &str) -> Vec<u8> {
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (content_type, body) = if path == "/healthz" {
        (
            "text/plain; charset=utf-8",
            format!("unavailable: {message}\n"),
        )
    } else {
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><html><head><meta charset=\"utf-8\">\
                 <meta http-equiv=\"refresh\" content=\"5\"><title>piarchive: attention needed</title></head>\
                 <body><h1>piarchive needs attention</h1><p>{}</p>\
                 <p>This page reloads by itself.</p></body></html>\n",
                escape_html(message)
            ),
        )
    };
    let mut out = format!(
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nRetry-After: 5\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// A running notice server.
pub struct NoticeServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NoticeServer {
    /// Starts serving `message` on `listen`.
    pub fn start(listen: SocketAddr, message: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("notice".into())
            .spawn(move || serve(listener, &message, &stop_flag))?;
        Ok(NoticeServer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops serving and frees the port.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, message: &str, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let len = stream.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..len]);
                let request_line = text.lines().next().unwrap_or("");
                let _ = stream.write_all(&response(request_line, message));
            }
            // Nonblocking accept: nothing pending; look again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_is_503_plain_text() {
        let text =
            String::from_utf8(response("GET /healthz HTTP/1.1", "no data disk")).expect("utf8");
        assert!(text.starts_with("HTTP/1.0 503 "));
        assert!(text.ends_with("unavailable: no data disk\n"));
    }

    #[test]
    fn page_escapes_the_message() {
        let text =
            String::from_utf8(response("GET / HTTP/1.1", "disk <sda> & \"more\"")).expect("utf8");
        assert!(text.contains("disk &lt;sda&gt; &amp; &quot;more&quot;"));
        assert!(text.contains("Content-Type: text/html"));
        let body_len = text.split("\r\n\r\n").nth(1).map(str::len);
        let declared = text
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse::<usize>().ok());
        assert_eq!(body_len, declared);
    }

    #[test]
    fn serves_over_tcp_until_stopped() {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = probe.local_addr().expect("addr");
        drop(probe);
        let server = NoticeServer::start(address, "plug in a disk".into()).expect("start");
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.contains("503"), "{answer}");
        assert!(answer.contains("plug in a disk"));
        server.stop();
        assert!(TcpListener::bind(address).is_ok(), "port freed after stop");
    }
}
