//! Streaming ingest: bytes from a request body go to the archive file on
//! disk, the whole-file SHA-256 and the chunker (cut points + part hashes),
//! in one pass and never held in memory beyond a few buffers.
//!
//! The two hashes run on their own threads, because on a Pi 4 (no SHA
//! instructions) hashing is the limit. Owns no database state: callers
//! record what [`IngestState`] reports.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::chunker::{Chunker, PartSummary};

/// Size of one read/write/hash buffer.
const BUFFER_SIZE: usize = 1 << 20;
/// Buffers queued for each hashing thread; bounds memory to a few MiB.
const QUEUE_DEPTH: usize = 4;

/// Everything known about the bytes received so far.
pub struct IngestState {
    whole: Sha256,
    chunker: Chunker,
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
    pub fn new() -> IngestState {
        IngestState {
            whole: Sha256::new(),
            chunker: Chunker::standard(),
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
        self.parts.extend(self.chunker.finish());
        Ingested {
            size: self.received,
            sha256: self.whole.finalize().into(),
            parts: self.parts,
        }
    }
}

/// Copies at most `limit` bytes from `body` to `out`, feeding the hashes on
/// two threads. Returns the bytes written. On a write error nothing of the
/// failed buffer is counted; the caller truncates `out` back to
/// `state.received()`.
pub fn pump(
    body: &mut dyn Read,
    out: &mut dyn Write,
    state: &mut IngestState,
    limit: u64,
) -> Result<(u64, PumpEnd), IngestError> {
    let IngestState {
        whole,
        chunker,
        parts,
        received,
    } = state;
    std::thread::scope(|scope| {
        // The senders live inside the scope so they close (and the hashing
        // threads end) whenever this closure returns.
        let (whole_tx, whole_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE_DEPTH);
        let (parts_tx, parts_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE_DEPTH);
        scope.spawn(move || {
            for buffer in whole_rx {
                whole.update(&buffer[..]);
            }
        });
        scope.spawn(move || {
            for buffer in parts_rx {
                chunker.feed(&buffer[..]);
                parts.extend(chunker.take_parts());
            }
        });
        let mut written = 0u64;
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
            let mut buffer = vec![0u8; want];
            let (filled, read_error) = match read_full(body, &mut buffer) {
                Ok(n) => (n, None),
                Err(PartialRead { filled, error }) => (filled, Some(error)),
            };
            buffer.truncate(filled);
            if !buffer.is_empty() {
                if let Err(err) = out.write_all(&buffer) {
                    return Err(
                        if err.raw_os_error() == Some(28)
                            || err.kind() == io::ErrorKind::StorageFull
                        {
                            IngestError::DiskFull { kept: *received }
                        } else {
                            IngestError::Write(err)
                        },
                    );
                }
                written += filled as u64;
                *received += filled as u64;
                crate::engine::metrics::global().add_ingested(filled as u64);
                let buffer = Arc::new(buffer);
                // The threads only stop when the channels close, so sends
                // cannot fail.
                let _ = whole_tx.send(buffer.clone());
                let _ = parts_tx.send(buffer);
            }
            if let Some(err) = read_error {
                return Ok((written, PumpEnd::ReadFailed(err)));
            }
            if filled < want {
                return Ok((written, PumpEnd::Eof));
            }
        }
    })
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
        let data = random(9 * 1024 * 1024 + 17);
        let mut out = Vec::new();
        let mut state = IngestState::new();
        let (written, end) = pump(&mut &data[..], &mut out, &mut state, u64::MAX).unwrap();
        assert!(matches!(end, PumpEnd::Eof));
        assert_eq!(written, data.len() as u64);
        assert_eq!(out, data);
        let done = state.finish();
        assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(
            done.parts.iter().map(|p| p.length).sum::<u64>(),
            data.len() as u64
        );
        let expected: Vec<u64> = fastcdc::v2020::FastCDC::new(
            &data,
            super::super::chunker::MIN_SIZE,
            super::super::chunker::AVG_SIZE,
            super::super::chunker::MAX_SIZE,
        )
        .map(|c| c.length as u64)
        .collect();
        assert_eq!(
            done.parts.iter().map(|p| p.length).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn resumes_across_cut_requests() {
        let data = random(5 * 1024 * 1024 + 3);
        let mut out = Vec::new();
        let mut state = IngestState::new();
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
