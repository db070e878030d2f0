//! Streaming ingest: bytes from a request body go to the archive file on
//! disk, the whole-file SHA-256 and the chunker (cut points + part hashes),
//! in one pass and never held in memory beyond a few buffers.
//!
//! Finding where parts end runs on a thread of its own, and so do the two
//! hashes (a Pi 4 has no SHA instructions, so hashing is the limit there),
//! except on x86 with the SHA extensions, where both hashes share one thread
//! and one pass ([`super::sha256_pair`]). Owns no database state: callers record what
//! [`IngestState`] reports.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
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
pub trait Destination: Write {
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

/// Buffers handed out by [`pump`]'s reader and given back by each hashing
/// thread (one or two) once it is done with them: at most [`POOL_SIZE`] exist, so
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
                // A hashing thread is gone (it panicked); the scope reports it.
                Err(_) => break Vec::with_capacity(BUFFER_SIZE),
            }
        };
        buffer.resize(BUFFER_SIZE, 0);
        buffer
    }
}

/// Copies at most `limit` bytes from `body` to `out`. Three threads take
/// each buffer: one finds the cut points, the next hashes the parts and
/// one more the whole file, or, where the CPU takes two SHA-256 at once
/// (`sha256_pair`), the part hasher hashes the whole file too. The calling
/// thread (the request's: it reads the body, and decrypts it over HTTPS)
/// only reads and writes, so no SHA-256 pass runs on it. Returns the
/// bytes written. On a write error nothing of the failed buffer is counted;
/// the caller truncates `out` back to `state.received()`. A write the disk
/// failed later (reported by the write-back thread) is
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
    std::thread::scope(|scope| {
        // The senders live inside the scope so they close (and the threads
        // end) whenever this closure returns.
        let (returned_tx, returned) = channel::<Arc<Vec<u8>>>();
        let (window_tx, window_rx) = sync_channel::<(u64, u64)>(WRITE_BACK_QUEUE);
        // Without a disk handle the receiver is dropped with the closure.
        let write_back_thread = out
            .write_back_handle()
            .map(|file| scope.spawn(move || write_back_windows(file, window_rx)));
        let hashers = Hashers::spawn(
            scope,
            whole.as_mut(),
            cutter,
            part_hasher,
            parts,
            returned_tx,
        );
        let mut pool = BufferPool {
            spare: Vec::new(),
            allocated: 0,
            returned,
        };
        let copied = copy_body(body, out, &mut pool, &hashers, &window_tx, received, limit);
        drop(window_tx);
        let written_back = match write_back_thread.map(|thread| thread.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(err))) => Err(err),
            Some(Err(_)) => Err(io::Error::other(
                "the write-back thread stopped unexpectedly",
            )),
        };
        match (copied, written_back) {
            (Ok(_), Err(err)) => Err(IngestError::Write(err)),
            (copied, _) => copied,
        }
    })
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
            scope.spawn(move || {
                for buffer in whole_rx {
                    whole.update(&buffer[..]);
                    let _ = whole_returned.send(buffer);
                }
            });
            whole_tx
        });
        scope.spawn(move || {
            for buffer in cut_rx {
                let mut cuts = Vec::new();
                let settled = cutter.feed(&buffer[..], &mut cuts);
                let _ = hash_tx.send((buffer, cuts, settled));
            }
        });
        scope.spawn(move || {
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

/// [`pump`]'s own loop: reads buffers from `body`, writes them to `out`,
/// hands each written window to the write-back thread and each buffer to
/// the hashers.
fn copy_body(
    body: &mut dyn Read,
    out: &mut dyn Destination,
    pool: &mut BufferPool,
    hashers: &Hashers,
    windows: &SyncSender<(u64, u64)>,
    received: &mut u64,
    limit: u64,
) -> Result<(u64, PumpEnd), IngestError> {
    let mut written = 0u64;
    let mut window_start = *received;
    loop {
        let want = (limit - written).min(BUFFER_SIZE as u64) as usize;
        if want == 0 {
            let mut probe = [0u8; 1];
            let end = match read_full(body, &mut probe) {
                Ok(0) => PumpEnd::Eof,
                Ok(_) => PumpEnd::TooLong,
                Err(partial) => PumpEnd::ReadFailed(partial.error),
            };
            return Ok((written, end));
        }
        let mut buffer = pool.take();
        let (filled, read_error) = match read_full(body, &mut buffer[..want]) {
            Ok(n) => (n, None),
            Err(PartialRead { filled, error }) => (filled, Some(error)),
        };
        buffer.truncate(filled);
        if buffer.is_empty() {
            pool.spare.push(buffer);
        } else {
            if let Err(err) = out.write_all(&buffer) {
                return Err(if crate::disk::is_disk_full(&err) {
                    IngestError::DiskFull { kept: *received }
                } else {
                    IngestError::Write(err)
                });
            }
            written += filled as u64;
            *received += filled as u64;
            crate::metrics::global().add_ingested(filled as u64);
            if *received - window_start >= WRITE_BACK_WINDOW {
                // Without a write-back thread the send fails; nothing to do.
                let _ = windows.send((window_start, *received - window_start));
                window_start = *received;
            }
            hashers.send(buffer);
        }
        if let Some(err) = read_error {
            return Ok((written, PumpEnd::ReadFailed(err)));
        }
        if filled < want {
            return Ok((written, PumpEnd::Eof));
        }
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
