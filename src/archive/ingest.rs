//! Streaming ingest: bytes from a request body go to the archive file on
//! disk, the whole-file SHA-256 and the chunker (cut points + part hashes),
//! in one pass and never held in memory beyond a few buffers.
//!
//! The request's thread only reads the body into recycled buffers; a writer
//! thread writes them to the file and hands them on. Finding where parts
//! end runs on a thread of its own, and so do the two hashes (a Pi 4 has no
//! SHA instructions, so hashing is the limit there), except on x86 with the
//! SHA extensions, where both hashes share one thread and one pass
//! ([`super::sha256_pair`]). Owns no database state: callers record what
//! [`IngestState`] reports.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use super::chunker::{Cutter, PartHasher, PartSummary};
use crate::sha256_pair::{self, Sha256Stream};

/// Size of one read/write/hash buffer.
const BUFFER_SIZE: usize = 1 << 20;
/// Buffers in flight at most (read, being written or waiting for a hash).
const POOL_SIZE: usize = 8;

/// Everything known about the bytes received so far.
pub struct IngestState {
    /// The whole file's hash when it is taken on a thread of its own; when
    /// `None`, the part hasher takes it in the same pass as the parts'.
    whole: Option<Sha256Stream>,
    cutter: Cutter,
    part_hasher: PartHasher,
    parts: Vec<PartSummary>,
    received: u64,
}

/// The result of a completed ingest.
pub struct Ingested {
    pub size: u64,
    pub sha256: [u8; 32],
    pub parts: Vec<PartSummary>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("The disk is full: the upload was stopped after {kept} bytes, which are kept.")]
    DiskFull { kept: u64 },
    #[error("The upload could not be written to disk: {0}")]
    Write(io::Error),
}

/// How a [`pump`] ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The body ended.
    Eof,
    /// `limit` bytes were taken and the body has more.
    TooLong,
    /// Reading the body failed (a cut connection); what arrived before is kept.
    ReadFailed(io::Error),
}

impl Default for IngestState {
    fn default() -> Self {
        IngestState::new()
    }
}

impl IngestState {
    /// Takes both hashes in one pass where the CPU can (x86 with the SHA
    /// extensions), else on threads of their own (a Pi 4 hashes at about
    /// 150 MiB/s, so each hash wants a core).
    pub fn new() -> IngestState {
        IngestState::with_paired_hashes(sha256_pair::is_fast())
    }

    fn with_paired_hashes(paired: bool) -> IngestState {
        IngestState {
            whole: (!paired).then(Sha256Stream::new),
            cutter: Cutter::standard(),
            part_hasher: if paired {
                PartHasher::with_whole()
            } else {
                PartHasher::new()
            },
            parts: Vec::new(),
            received: 0,
        }
    }

    /// Bytes taken so far (the tus offset).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Rebuilds the state of a file already on disk (after a restart),
    /// reading it once.
    pub fn from_file(file: &mut File) -> io::Result<IngestState> {
        let mut state = IngestState::new();
        file.seek(SeekFrom::Start(0))?;
        let mut sink = io::sink();
        match pump(file, &mut sink, &mut state, u64::MAX) {
            Ok((_, PumpEnd::Eof)) => Ok(state),
            Ok((_, PumpEnd::ReadFailed(err))) => Err(err),
            Ok((_, PumpEnd::TooLong)) => unreachable!("no limit"),
            Err(IngestError::DiskFull { .. }) => unreachable!("the sink never fills"),
            Err(IngestError::Write(err)) => Err(err),
        }
    }

    pub fn finish(mut self) -> Ingested {
        let end = self.cutter.finish();
        let (last_parts, paired_whole) = self.part_hasher.finish(end);
        self.parts.extend(last_parts);
        let whole = match (self.whole, paired_whole) {
            (Some(whole), _) => whole.finalize(),
            (None, Some(whole)) => whole,
            (None, None) => unreachable!("one of the two takes the whole file's hash"),
        };
        Ingested {
            size: self.received,
            sha256: whole,
            parts: self.parts,
        }
    }
}

/// Where [`pump`] writes.
pub trait Destination: Write + Send {
    /// A second handle on the file written to, for a thread that sends each
    /// [`WRITE_BACK_WINDOW`] to disk while the pump goes on; `None` where
    /// there is no disk.
    fn write_back_handle(&self) -> Option<File> {
        None
    }
}

/// Bytes handed to the write-back thread at a time. Without it Linux starts
/// writing a large upload only once 10 % of the memory is dirty, so the
/// closing fsync waited for the whole file after the hashing was done; with
/// it the disk works while the bytes arrive.
pub const WRITE_BACK_WINDOW: u64 = 8 << 20;

/// Windows the write-back thread may lag behind before the pump waits for
/// it: bounds the dirty memory of one upload to about 40 MiB.
const WRITE_BACK_QUEUE: usize = 4;

/// Windows between two fdatasyncs of the write-back thread. Written pages
/// can still sit in the disk's (or the VM host's) write cache, which only a
/// flush empties; flushing every 64 MiB while the upload runs leaves the
/// closing fsync little to wait for (1 GiB here: 1.4 s of it before).
const SYNC_EVERY_WINDOWS: usize = 8;

impl Destination for File {
    fn write_back_handle(&self) -> Option<File> {
        self.try_clone().ok()
    }
}

impl Destination for io::Sink {}

impl Destination for Vec<u8> {}

/// The write-back thread: sends each window to disk and flushes every
/// [`SYNC_EVERY_WINDOWS`]. Its handle shares the upload's open file, so a
/// failed write it sees is reported to it, not to the caller's fsync: it
/// returns the first one (and keeps taking windows, so the pump never
/// waits for it).
fn write_back_windows(file: File, windows: Receiver<(u64, u64)>) -> io::Result<()> {
    let mut first_error = None;
    for (index, (offset, len)) in windows.into_iter().enumerate() {
        if first_error.is_some() {
            continue;
        }
        let written = crate::disk::write_back(&file, offset, len, true).and_then(|()| {
            if (index + 1) % SYNC_EVERY_WINDOWS == 0 {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        first_error = written.err();
    }
    first_error.map_or(Ok(()), Err)
}

/// Buffers handed out by [`pump`]'s reader, passed through the writer and
/// given back by each hashing thread (one or two) once it is done with
/// them: at most [`POOL_SIZE`] exist, so
/// memory stays the same whatever the upload's size, and no buffer is
/// allocated (and zeroed) per read.
struct BufferPool {
    spare: Vec<Vec<u8>>,
    allocated: usize,
    returned: Receiver<Arc<Vec<u8>>>,
}

impl BufferPool {
    fn take(&mut self) -> Vec<u8> {
        let mut buffer = loop {
            if let Some(buffer) = self.spare.pop() {
                break buffer;
            }
            if self.allocated < POOL_SIZE {
                self.allocated += 1;
                break Vec::with_capacity(BUFFER_SIZE);
            }
            match self.returned.recv() {
                // Each buffer comes back once per hashing thread; the last
                // return holds the last reference.
                Ok(shared) => {
                    if let Ok(buffer) = Arc::try_unwrap(shared) {
                        break buffer;
                    }
                }
                // The hashing threads are gone: the writer stopped (a write
                // failed; the reader stops before it reads into this
                // buffer) or one panicked (the scope reports it).
                Err(_) => break Vec::with_capacity(BUFFER_SIZE),
            }
        };
        buffer.resize(BUFFER_SIZE, 0);
        buffer
    }
}

/// Copies at most `limit` bytes from `body` to `out`. The calling thread
/// (the request's: it reads the body, and decrypts it over HTTPS) only
/// reads, into recycled buffers; a writer thread writes each buffer to
/// `out`, in order, and then hands it on to the threads that take it: one
/// finds the cut points, the next hashes the parts and one more the whole
/// file, or, where the CPU takes two SHA-256 at once (`sha256_pair`), the
/// part hasher hashes the whole file too. So neither a SHA-256 pass nor
/// the copy into the page cache runs on the request's thread, and the
/// hashers only see written bytes. Returns the bytes written. On a write
/// error nothing of the failed buffer is counted (the reader stops at its
/// next buffer); the caller truncates `out` back to `state.received()`. A
/// write the disk failed later (reported by the write-back thread) is
/// [`IngestError::Write`] too: the caller then cannot trust the state.
/// `out` must be positioned at `state.received()`.
pub fn pump(
    body: &mut dyn Read,
    out: &mut dyn Destination,
    state: &mut IngestState,
    limit: u64,
) -> Result<(u64, PumpEnd), IngestError> {
    let IngestState {
        whole,
        cutter,
        part_hasher,
        parts,
        received,
    } = state;
    let stopped = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The senders live inside the scope so they close (and the threads
        // end) whenever this closure returns.
        let (returned_tx, returned) = channel::<Arc<Vec<u8>>>();
        let (window_tx, window_rx) = sync_channel::<(u64, u64)>(WRITE_BACK_QUEUE);
        // Without a disk handle the receiver is dropped with the closure.
        let write_back_thread = out.write_back_handle().map(|file| {
            spawn_named(scope, "ingest-flush", move || {
                write_back_windows(file, window_rx)
            })
        });
        let hashers = Hashers::spawn(
            scope,
            whole.as_mut(),
            cutter,
            part_hasher,
            parts,
            returned_tx,
        );
        let (filled_tx, filled_rx) = channel::<Vec<u8>>();
        let writer = Writer {
            out,
            hashers,
            windows: window_tx,
            received,
            stopped: &stopped,
        };
        let writer_thread = spawn_named(scope, "ingest-write", move || writer.run(filled_rx));
        let mut pool = BufferPool {
            spare: Vec::new(),
            allocated: 0,
            returned,
        };
        let read = read_body(body, &mut pool, &filled_tx, &stopped, limit);
        drop(filled_tx);
        let written = writer_thread.join().unwrap_or_else(|_| {
            Err(IngestError::Write(io::Error::other(
                "the writer thread stopped unexpectedly",
            )))
        });
        let written_back = match write_back_thread.map(|thread| thread.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(err))) => Err(err),
            Some(Err(_)) => Err(io::Error::other(
                "the write-back thread stopped unexpectedly",
            )),
        };
        match (written, read, written_back) {
            (Err(err), _, _) => Err(err),
            (Ok(_), _, Err(err)) => Err(IngestError::Write(err)),
            (Ok(written), Some(end), Ok(())) => Ok((written, end)),
            (Ok(_), None, Ok(())) => Err(IngestError::Write(io::Error::other(
                "the writer thread stopped taking the upload's bytes",
            ))),
        }
    })
}

/// `scope.spawn` with a thread name (what `top -H` and `bench/pi-model`
/// show; without one every ingest thread shows the request's name).
fn spawn_named<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, f)
        .expect("failed to spawn thread")
}

/// The channels to [`pump`]'s hashing threads: the cutter (which hands
/// each buffer on to the part hasher) and, unless the part hasher takes
/// it, the whole file's hash.
struct Hashers {
    cut: Sender<Arc<Vec<u8>>>,
    whole: Option<Sender<Arc<Vec<u8>>>>,
}

impl Hashers {
    /// Starts the threads in `scope`; each gives every buffer back through
    /// `returned` once done with it.
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        whole: Option<&'scope mut Sha256Stream>,
        cutter: &'scope mut Cutter,
        part_hasher: &'scope mut PartHasher,
        parts: &'scope mut Vec<PartSummary>,
        returned: Sender<Arc<Vec<u8>>>,
    ) -> Hashers {
        let (cut_tx, cut_rx) = channel::<Arc<Vec<u8>>>();
        let (hash_tx, hash_rx) = channel::<(Arc<Vec<u8>>, Vec<u64>, u64)>();
        let whole_tx = whole.map(|whole| {
            let (whole_tx, whole_rx) = channel::<Arc<Vec<u8>>>();
            let whole_returned = returned.clone();
            spawn_named(scope, "ingest-whole", move || {
                for buffer in whole_rx {
                    whole.update(&buffer[..]);
                    let _ = whole_returned.send(buffer);
                }
            });
            whole_tx
        });
        spawn_named(scope, "ingest-cut", move || {
            for buffer in cut_rx {
                let mut cuts = Vec::new();
                let settled = cutter.feed(&buffer[..], &mut cuts);
                let _ = hash_tx.send((buffer, cuts, settled));
            }
        });
        spawn_named(scope, "ingest-parts", move || {
            for (buffer, cuts, settled) in hash_rx {
                part_hasher.feed(&buffer[..], &cuts, settled);
                parts.extend(part_hasher.take_parts());
                let _ = returned.send(buffer);
            }
        });
        Hashers {
            cut: cut_tx,
            whole: whole_tx,
        }
    }

    fn send(&self, buffer: Vec<u8>) {
        let buffer = Arc::new(buffer);
        // The threads only stop when the channels close, so sends cannot fail.
        if let Some(whole) = &self.whole {
            let _ = whole.send(buffer.clone());
        }
        let _ = self.cut.send(buffer);
    }
}

/// [`pump`]'s own loop, on the request's thread: reads buffers from
/// `body` and sends them to the writer thread. Returns how the body ended,
/// or `None` when the writer stopped (a write failed).
fn read_body(
    body: &mut dyn Read,
    pool: &mut BufferPool,
    filled: &Sender<Vec<u8>>,
    writer_stopped: &AtomicBool,
    limit: u64,
) -> Option<PumpEnd> {
    let mut taken = 0u64;
    loop {
        let want = (limit - taken).min(BUFFER_SIZE as u64) as usize;
        if want == 0 {
            let mut probe = [0u8; 1];
            return Some(match read_full(body, &mut probe) {
                Ok(0) => PumpEnd::Eof,
                Ok(_) => PumpEnd::TooLong,
                Err(partial) => PumpEnd::ReadFailed(partial.error),
            });
        }
        let mut buffer = pool.take();
        if writer_stopped.load(Ordering::Acquire) {
            return None;
        }
        let (got, read_error) = match read_full(body, &mut buffer[..want]) {
            Ok(n) => (n, None),
            Err(PartialRead { filled, error }) => (filled, Some(error)),
        };
        buffer.truncate(got);
        if buffer.is_empty() {
            pool.spare.push(buffer);
        } else {
            taken += got as u64;
            if filled.send(buffer).is_err() {
                return None;
            }
        }
        if let Some(err) = read_error {
            return Some(PumpEnd::ReadFailed(err));
        }
        if got < want {
            return Some(PumpEnd::Eof);
        }
    }
}

/// [`pump`]'s writer thread: writes each buffer the reader filled to the
/// file, in the order read, counts it as received, hands each written
/// window to the write-back thread and the buffer to the hashers.
struct Writer<'a> {
    out: &'a mut dyn Destination,
    hashers: Hashers,
    windows: SyncSender<(u64, u64)>,
    received: &'a mut u64,
    /// Set when a write failed, so the reader stops before its next read.
    stopped: &'a AtomicBool,
}

impl Writer<'_> {
    /// Returns the bytes written, or the first write error (then stops,
    /// and the buffers still queued are dropped).
    fn run(self, filled: Receiver<Vec<u8>>) -> Result<u64, IngestError> {
        let Writer {
            out,
            hashers,
            windows,
            received,
            stopped,
        } = self;
        let mut written = 0u64;
        let mut window_start = *received;
        for buffer in filled {
            if let Err(err) = out.write_all(&buffer) {
                stopped.store(true, Ordering::Release);
                return Err(if crate::disk::is_disk_full(&err) {
                    IngestError::DiskFull { kept: *received }
                } else {
                    IngestError::Write(err)
                });
            }
            written += buffer.len() as u64;
            *received += buffer.len() as u64;
            crate::metrics::global().add_ingested(buffer.len() as u64);
            if *received - window_start >= WRITE_BACK_WINDOW {
                // Without a write-back thread the send fails; nothing to do.
                let _ = windows.send((window_start, *received - window_start));
                window_start = *received;
            }
            hashers.send(buffer);
        }
        Ok(written)
    }
}

struct PartialRead {
    filled: usize,
    error: io::Error,
}

impl From<PartialRead> for io::Error {
    fn from(partial: PartialRead) -> io::Error {
        partial.error
    }
}

/// Reads until `buffer` is full or the reader ends; keeps count of what
/// arrived before an error.
fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> Result<usize, PartialRead> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(PartialRead { filled, error }),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};

    struct FailAfter<'a> {
        data: &'a [u8],
        position: usize,
        fail_at: usize,
    }

    impl Read for FailAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.position >= self.fail_at {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"));
            }
            let n = buf.len().min(self.fail_at - self.position).min(1000);
            buf[..n].copy_from_slice(&self.data[self.position..self.position + n]);
            self.position += n;
            Ok(n)
        }
    }

    fn random(len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(len as u64).fill_bytes(&mut data);
        data
    }

    #[test]
    fn one_pass_equals_hashing_after_the_fact() {
        for paired in [false, true] {
            one_pass_equals_hashing_after_the_fact_with(paired);
        }
    }

    fn one_pass_equals_hashing_after_the_fact_with(paired: bool) {
        let data = random(9 * 1024 * 1024 + 17);
        let mut out = Vec::new();
        let mut state = IngestState::with_paired_hashes(paired);
        let (written, end) = pump(&mut &data[..], &mut out, &mut state, u64::MAX).unwrap();
        assert!(matches!(end, PumpEnd::Eof));
        assert_eq!(written, data.len() as u64);
        assert_eq!(out, data);
        let done = state.finish();
        assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        // The crate's parts, each with the SHA-256 of its bytes.
        let expected: Vec<PartSummary> = fastcdc::v2020::FastCDC::new(
            &data,
            super::super::chunker::MIN_SIZE,
            super::super::chunker::AVG_SIZE,
            super::super::chunker::MAX_SIZE,
        )
        .map(|chunk| PartSummary {
            offset: chunk.offset as u64,
            length: chunk.length as u64,
            sha256: Sha256::digest(&data[chunk.offset..][..chunk.length]).into(),
        })
        .collect();
        assert!(expected.len() >= 2, "several parts");
        assert_eq!(done.parts, expected);
    }

    #[test]
    fn resumes_across_cut_requests() {
        for paired in [false, true] {
            resumes_across_cut_requests_with(paired);
        }
    }

    fn resumes_across_cut_requests_with(paired: bool) {
        let data = random(5 * 1024 * 1024 + 3);
        let mut out = Vec::new();
        let mut state = IngestState::with_paired_hashes(paired);
        let mut first = FailAfter {
            data: &data,
            position: 0,
            fail_at: 2_500_001,
        };
        let (written, end) = pump(&mut first, &mut out, &mut state, u64::MAX).unwrap();
        assert!(matches!(end, PumpEnd::ReadFailed(_)));
        assert_eq!(written, 2_500_001);
        assert_eq!(state.received(), 2_500_001);
        let mut rest = &data[2_500_001..];
        pump(&mut rest, &mut out, &mut state, u64::MAX).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            state.finish().sha256,
            <[u8; 32]>::from(Sha256::digest(&data))
        );
    }

    #[test]
    fn stops_at_the_limit_and_says_the_body_is_too_long() {
        let data = random(3000);
        let mut out = Vec::new();
        let mut state = IngestState::new();
        let (written, end) = pump(&mut &data[..], &mut out, &mut state, 2000).unwrap();
        assert_eq!(written, 2000);
        assert!(matches!(end, PumpEnd::TooLong));
        let (_, end) = pump(
            &mut &data[..100],
            &mut Vec::new(),
            &mut IngestState::new(),
            100,
        )
        .unwrap();
        assert!(matches!(end, PumpEnd::Eof), "exactly the limit is fine");
    }

    #[test]
    fn the_pool_hands_out_a_buffer_again_once_both_threads_gave_it_back() {
        let (returned_tx, returned) = channel();
        let mut pool = BufferPool {
            spare: Vec::new(),
            allocated: 0,
            returned,
        };
        let mut taken: Vec<_> = (0..POOL_SIZE).map(|_| pool.take()).collect();
        assert_eq!(pool.allocated, POOL_SIZE);
        assert!(taken.iter().all(|buffer| buffer.len() == BUFFER_SIZE));
        let mut last = taken.pop().unwrap();
        last.truncate(10); // a short last read
        let address = last.as_ptr();
        let shared = Arc::new(last);
        returned_tx.send(shared.clone()).unwrap();
        returned_tx.send(shared).unwrap();
        let again = pool.take();
        assert_eq!(again.as_ptr(), address, "the same buffer, not a new one");
        assert_eq!(again.len(), BUFFER_SIZE);
        assert_eq!(pool.allocated, POOL_SIZE);
    }

    #[test]
    fn a_file_destination_keeps_every_byte_across_write_back_windows() {
        let data = random(3 * WRITE_BACK_WINDOW as usize + 12_345);
        let mut file = tempfile::tempfile().unwrap();
        let mut state = IngestState::new();
        let (written, _) = pump(&mut &data[..], &mut file, &mut state, u64::MAX).unwrap();
        assert_eq!(written, data.len() as u64);
        let mut back = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut back).unwrap();
        assert!(back == data);
        assert_eq!(
            state.finish().sha256,
            <[u8; 32]>::from(Sha256::digest(&data))
        );
    }

    /// Writes to memory, but its write-back handle is a pipe, on which the
    /// disk calls fail (ESPIPE) as a failing disk's would.
    struct FailingWriteBack {
        written: Vec<u8>,
        handle: File,
    }

    impl Write for FailingWriteBack {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.written.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Destination for FailingWriteBack {
        fn write_back_handle(&self) -> Option<File> {
            self.handle.try_clone().ok()
        }
    }

    #[test]
    fn a_write_the_disk_failed_fails_the_pump_instead_of_vanishing() {
        let (_reader, writer) = io::pipe().unwrap();
        let mut out = FailingWriteBack {
            written: Vec::new(),
            handle: File::from(std::os::fd::OwnedFd::from(writer)),
        };
        let data = random(2 * WRITE_BACK_WINDOW as usize + 5);
        let mut state = IngestState::new();
        let result = pump(&mut &data[..], &mut out, &mut state, u64::MAX);
        assert!(matches!(result, Err(IngestError::Write(_))), "{result:?}");
        // Every byte still went through (the thread kept taking windows).
        assert_eq!(out.written.len(), data.len());
    }

    /// Takes `room` bytes, then fails every write with `errno`.
    struct FailingDisk {
        written: Vec<u8>,
        room: usize,
        errno: i32,
    }

    impl Write for FailingDisk {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let n = bytes.len().min(self.room - self.written.len());
            if n == 0 {
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            self.written.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Destination for FailingDisk {}

    #[test]
    fn a_failed_write_on_the_writer_thread_fails_the_pump_and_stops_the_reader() {
        let data = random(40 * BUFFER_SIZE);
        for (errno, disk_full) in [(libc::ENOSPC, true), (libc::EIO, false)] {
            let mut out = FailingDisk {
                written: Vec::new(),
                room: 5 * BUFFER_SIZE + 300_000,
                errno,
            };
            let mut state = IngestState::new();
            let mut body = &data[..];
            let result = pump(&mut body, &mut out, &mut state, u64::MAX);
            let kept = 5 * BUFFER_SIZE as u64;
            match result {
                Err(IngestError::DiskFull { kept: reported }) if disk_full => {
                    assert_eq!(reported, kept)
                }
                Err(IngestError::Write(err)) if !disk_full => {
                    assert_eq!(err.raw_os_error(), Some(libc::EIO))
                }
                other => panic!("errno {errno}: {other:?}"),
            }
            // Only whole written buffers count, and the hashers saw exactly
            // those bytes, in order.
            assert_eq!(state.received(), kept);
            assert!(out.written[..kept as usize] == data[..kept as usize]);
            assert_eq!(
                state.finish().sha256,
                <[u8; 32]>::from(Sha256::digest(&data[..kept as usize]))
            );
            // The reader stopped: at most the pool's buffers past the failed one.
            let read = data.len() - body.len();
            assert!(
                read <= (6 + POOL_SIZE + 1) * BUFFER_SIZE,
                "read {read} bytes"
            );
        }
    }

    /// Reads in uneven pieces, as a socket does.
    struct Uneven<'a> {
        data: &'a [u8],
        turn: usize,
    }

    impl Read for Uneven<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.turn += 1;
            let piece = [1, 4097, 65_536, 300_001, 17][self.turn % 5];
            let n = buf.len().min(piece).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Writes to memory, slowly, so the reader runs ahead of the writer.
    struct SlowDisk(Vec<u8>);

    impl Write for SlowDisk {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(3));
            self.0.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Destination for SlowDisk {}

    #[test]
    fn bytes_keep_their_order_when_the_writer_lags_behind_the_reader() {
        let data = random(12 * BUFFER_SIZE + 5);
        let mut out = SlowDisk(Vec::new());
        let mut state = IngestState::new();
        let mut body = Uneven {
            data: &data,
            turn: 0,
        };
        let (written, end) = pump(&mut body, &mut out, &mut state, u64::MAX).unwrap();
        assert!(matches!(end, PumpEnd::Eof));
        assert_eq!(written, data.len() as u64);
        assert!(out.0 == data);
        assert_eq!(
            state.finish().sha256,
            <[u8; 32]>::from(Sha256::digest(&data))
        );
    }

    #[test]
    fn state_rebuilt_from_a_file_matches() {
        let data = random(3 * 1024 * 1024);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let state = IngestState::from_file(&mut file).unwrap();
        assert_eq!(state.received(), data.len() as u64);
        assert_eq!(
            state.finish().sha256,
            <[u8; 32]>::from(Sha256::digest(&data))
        );
    }
}
