//! `GET /api/v1/events`: Server-Sent Events of the caller's archives.
//!
//! tiny_http buffers response bodies, so an event stream takes the
//! connection over (`Request::upgrade`, which writes the headers and hands
//! back the raw stream) on a thread of its own; handler threads are never
//! held. At most `engine::events::MAX_SUBSCRIBERS` streams run at once.

use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use tiny_http::{Header, Response};

use super::auth::api_caller;
use super::http::{ApiError, Req};
use super::App;

/// A comment line sent when nothing happened for this long, so proxies and
/// browsers keep the connection and a closed one is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn serve(app: &App, mut request: tiny_http::Request) {
    let caller = {
        let req = Req::new(&mut request);
        api_caller(app, &req)
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(err) => {
            let _ = request.respond(err.into_resp().into_tiny());
            return;
        }
    };
    let Some(events) = app.engine.events().subscribe() else {
        let err = ApiError::new(
            503,
            "too_many_streams",
            "Too many live event streams are open; close a browser tab and try again.",
        )
        .with_header("Retry-After", "10");
        let _ = request.respond(err.into_resp().into_tiny());
        return;
    };
    let owner_id = caller.user.id.clone();
    std::thread::spawn(move || {
        let headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ];
        let mut response = Response::empty(200);
        for (name, value) in headers {
            if let Ok(header) = Header::from_bytes(name, value) {
                response.add_header(header);
            }
        }
        let mut stream = request.upgrade("event-stream", response);
        if stream
            .write_all(b"retry: 3000\n: connected\n\n")
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
        loop {
            let chunk = match events.recv_timeout(KEEPALIVE) {
                Ok(event) if event.owner_id == owner_id => event.to_sse(),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => ": keepalive\n\n".to_string(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if stream
                .write_all(chunk.as_bytes())
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
        }
    });
}
