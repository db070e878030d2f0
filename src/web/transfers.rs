//! Transfers: requests that last as long as the client takes — an upload
//! whose body is still to come, a download streamed from a file — run on
//! threads of their own, at most `limits::UPLOAD_SLOTS` and
//! `limits::DOWNLOAD_SLOTS` at once, so the fixed pool of handler threads
//! stays free for page loads and `/healthz` however slow the clients are.
//! When all slots of a kind are taken, the answer is 503 with `Retry-After`.
//!
//! Owns: the slots and the threads of transfers. Must not touch: what a
//! transfer does (the router and handlers decide that).

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::http::ApiError;
use crate::app::state::App;
use crate::limits;

/// A count of running transfers of one kind, capped.
struct Slots {
    running: AtomicUsize,
    max: usize,
}

/// One running transfer's slot, freed when dropped.
struct Slot(Arc<Slots>);

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            running: AtomicUsize::new(0),
            max,
        })
    }

    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        self.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                (running < self.max).then_some(running + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The upload and download slots of one server.
pub struct Transfers {
    uploads: Arc<Slots>,
    downloads: Arc<Slots>,
}

/// A streamed answer waiting for a download thread.
pub type Download = tiny_http::Response<Box<dyn Read + Send>>;

impl Transfers {
    pub fn new() -> Arc<Transfers> {
        Arc::new(Transfers {
            uploads: Slots::new(limits::UPLOAD_SLOTS),
            downloads: Slots::new(limits::DOWNLOAD_SLOTS),
        })
    }

    /// Sends `answer` from a download thread of its own, then runs `after`.
    pub fn send_download(
        &self,
        request: tiny_http::Request,
        answer: Download,
        after: Option<Box<dyn FnOnce() + Send>>,
    ) {
        let Some(slot) = self.downloads.try_take() else {
            return busy(request, "downloads");
        };
        spawn("download", move || {
            let _slot = slot;
            let _ = request.respond(answer);
            if let Some(after) = after {
                after();
            }
        });
    }
}

/// How a request is answered (`router::handle`): with the transfers when
/// a download may go to a thread of its own.
pub type Handle = fn(&App, tiny_http::Request, Option<&Transfers>);

/// Answers `request` with `handle` on this handler thread, or, when its
/// body is read from the socket while it is handled, on an upload thread
/// of its own.
pub fn dispatch(
    app: &Arc<App>,
    transfers: &Arc<Transfers>,
    request: tiny_http::Request,
    handle: Handle,
) {
    if !request.body_is_streamed() {
        return handle(app, request, Some(transfers));
    }
    let Some(slot) = transfers.uploads.try_take() else {
        // Not drained: the body may be coming slowly on purpose.
        request.close_connection();
        return busy(request, "uploads");
    };
    let app = app.clone();
    spawn("upload", move || {
        let _slot = slot;
        // Already on a thread of its own: a download answer is sent here.
        handle(&app, request, None);
    });
}

/// 503: all slots of `kind` are taken.
fn busy(request: tiny_http::Request, kind: &str) {
    let answer = ApiError::new(
        503,
        "busy",
        format!("Too many {kind} are running at once; try again in a few seconds."),
    )
    .with_header("Retry-After", limits::RETRY_AFTER_SECS.to_string())
    .with_header("Connection", "close");
    let _ = request.respond(answer.into_resp().into_tiny());
}

/// Runs `work` on a new thread. If none can be made, `work` is dropped with
/// the request in it, whose client then gets a 500.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(err) = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
    {
        eprintln!("piarchive: cannot start a thread for a transfer: {err}");
    }
}
