//! What a bucket may make the appliance hold: a size for every kind of
//! answer read from a remote, a count for listings, a time for every
//! request (issue 26, "a hostile bucket"). A bucket is not trusted to be
//! ours: before setup anyone may point a restore at their own, and a
//! bucket's owner may be someone else than the appliance's. Whatever it
//! answers, the appliance holds at most these amounts, and refuses more
//! with a sentence naming the limit.
//!
//! Owns: the numbers and the sentences of their refusals. Must not touch:
//! how they are enforced (the S3 client, the folder remote, the readers of
//! config, catalog and manifests in `repo`).

use std::time::Duration;

use super::RemoteError;

/// The most any one object read whole may hold. Nothing piarchive writes
/// comes near it: a part is at most 16 MiB and a few bytes, a manifest at
/// most [`crate::repo::MAX_MANIFEST_BYTES`] (48 MiB).
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;

/// One page of a bucket listing (ListObjectsV2, ListObjectVersions) or
/// another XML answer about the bucket. AWS sends at most 1,000 keys a page,
/// about 300 KB.
pub const MAX_LIST_PAGE_BYTES: u64 = 16 << 20;

/// Pages followed in one listing. At AWS's 1,000 keys a page that is more
/// than [`MAX_LISTED_KEYS`]; a server answering empty pages with a new
/// continuation token for ever is stopped here.
pub const MAX_LIST_PAGES: usize = 5_000;

/// Keys taken from one listing: a million parts are about 4 TiB of backups
/// at the average part size (4 MiB), and hold about 100 MB here.
pub const MAX_LISTED_KEYS: usize = 1_000_000;

/// An error answer's body is a short XML document; more is not read.
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// The longest one request's answer body may take to read, however steadily
/// its bytes trickle in: a whole part (16 MiB) at 9.3 KB/s. Each read still
/// ends after the progress wait (`TransferOptions::timeout`).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// One request's deadline for a client whose longest wait for progress
/// (`TransferOptions::timeout`, 60 s by default) is `progress`: thirty of
/// those waits, at most [`REQUEST_DEADLINE`].
pub fn request_deadline(progress: Duration) -> Duration {
    progress.saturating_mul(30).min(REQUEST_DEADLINE)
}

/// `key` announced or sent more than `max` bytes (`announced` when its
/// length was given up front): refused, not read further.
pub fn too_large(where_: &str, key: &str, announced: Option<u64>, max: u64) -> RemoteError {
    let size = match announced {
        Some(length) => format!("is {length} bytes"),
        None => "sent more".to_owned(),
    };
    RemoteError::permanent(format!(
        "The object {key:?} at {where_} {size}, more than the {max} bytes piarchive reads of \
         it: the bucket holds something piarchive did not write, so it was not read."
    ))
}

/// A listing page larger than [`MAX_LIST_PAGE_BYTES`].
pub fn page_too_large(where_: &str, prefix: &str) -> RemoteError {
    RemoteError::permanent(format!(
        "The storage server at {where_} sent a listing page of {prefix:?} larger than \
         {} MiB: it does not behave like S3, so piarchive stopped reading it.",
        MAX_LIST_PAGE_BYTES >> 20
    ))
}

/// A listing that went on past [`MAX_LIST_PAGES`] or [`MAX_LISTED_KEYS`].
pub fn listing_too_long(where_: &str, prefix: &str, pages: usize, keys: usize) -> RemoteError {
    RemoteError::permanent(format!(
        "The listing of {prefix:?} at {where_} went on past {pages} pages and {keys} keys, \
         more than piarchive follows (at most {MAX_LIST_PAGES} pages and {MAX_LISTED_KEYS} \
         keys): the bucket holds more than one appliance wrote, or the server does not behave \
         like S3. Nothing was written."
    ))
}

/// Whether a listing that has followed `pages` pages and taken `keys` keys
/// must stop.
pub fn listing_over(pages: usize, keys: usize) -> bool {
    pages >= MAX_LIST_PAGES || keys > MAX_LISTED_KEYS
}
