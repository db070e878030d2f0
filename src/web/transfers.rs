//! Transfers: requests that last as long as the client takes — an upload
//! whose body is still to come, a download streamed from a file — run on
//! threads of their own, at most `limits::UPLOAD_SLOTS` and
//! `limits::DOWNLOAD_SLOTS` at once, so the fixed pool of handler threads
//! stays free for page loads and `/healthz` however slow the clients are.
//! One user (or anonymous address) holds at most `limits::TRANSFER_SHARE`
//! of each kind, so a member trickling uploads or reading downloads slowly
//! leaves the others theirs. When all slots of a kind are taken, or the
//! caller's share, the answer is 503 with `Retry-After` and a sentence.
//!
//! Owns: the slots and the threads of transfers. Must not touch: what a
//! transfer does (the router and handlers decide that).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use super::http::{ApiError, Req};
use crate::app::state::App;
use crate::limits;

/// The running transfers of one kind: capped in total and per owner (a
/// user, or the address of an anonymous client), so one member cannot take
/// every slot.
struct Slots {
    running: Mutex<HashMap<String, usize>>,
    max: usize,
    max_per_owner: usize,
}

/// One running transfer's slot, freed when dropped.
struct Slot(Arc<Slots>, String);

/// Why a transfer was refused.
enum Full {
    All,
    Owner,
}

impl Slots {
    fn new(max: usize, max_per_owner: usize) -> Arc<Slots> {
        Arc::new(Slots {
            running: Mutex::new(HashMap::new()),
            max,
            max_per_owner,
        })
    }

    fn try_take(self: &Arc<Self>, owner: String) -> Result<Slot, Full> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let of_owner = running.get(&owner).copied().unwrap_or(0);
        if of_owner >= self.max_per_owner {
            return Err(Full::Owner);
        }
        if running.values().sum::<usize>() >= self.max {
            return Err(Full::All);
        }
        running.insert(owner.clone(), of_owner + 1);
        Ok(Slot(self.clone(), owner))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.1);
            }
        }
    }
}

/// Whose share a transfer counts against: the signed-in user (session or
/// API token), else the client's address.
fn owner(app: &App, request: &mut tiny_http::Request) -> String {
    let address = request.remote_addr().map(|a| a.ip().to_string());
    let req = Req::new(request);
    match super::auth::caller(app, &req) {
        Ok(Some(caller)) => format!("user:{}", caller.user.id),
        _ => format!("address:{}", address.unwrap_or_default()),
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
            uploads: Slots::new(limits::UPLOAD_SLOTS, limits::TRANSFER_SHARE),
            downloads: Slots::new(limits::DOWNLOAD_SLOTS, limits::TRANSFER_SHARE),
        })
    }

    /// Sends `answer` from a download thread of its own, then runs `after`.
    pub fn send_download(
        &self,
        app: &App,
        mut request: tiny_http::Request,
        answer: Download,
        after: Option<Box<dyn FnOnce() + Send>>,
    ) {
        let slot = match self.downloads.try_take(owner(app, &mut request)) {
            Ok(slot) => slot,
            Err(full) => return busy(request, "downloads", full),
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
    mut request: tiny_http::Request,
    handle: Handle,
) {
    if !request.body_is_streamed() {
        return handle(app, request, Some(transfers));
    }
    let slot = match transfers.uploads.try_take(owner(app, &mut request)) {
        Ok(slot) => slot,
        Err(full) => {
            // Not drained: the body may be coming slowly on purpose.
            request.close_connection();
            return busy(request, "uploads", full);
        }
    };
    let app = app.clone();
    spawn("upload", move || {
        let _slot = slot;
        // Already on a thread of its own: a download answer is sent here.
        handle(&app, request, None);
    });
}

/// 503: all slots of `kind` are taken, or the caller's share of them.
fn busy(request: tiny_http::Request, kind: &str, full: Full) {
    let message = match full {
        Full::All => format!("Too many {kind} are running at once; try again in a few seconds."),
        Full::Owner => format!(
            "You have {} {kind} running already, your share; try again when one has finished.",
            limits::TRANSFER_SHARE
        ),
    };
    let answer = ApiError::new(503, "busy", message)
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
