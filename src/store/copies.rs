//! The copy destinations' records, as the store keeps them: key layout, the
//! copy records every new archive gets, what a deleted archive or a removed
//! destination leaves behind, and the completion rule (when an archive is
//! `backed_up`). The engine (`engine::destinations`) moves the bytes; this
//! module only changes records, always in the caller's transaction.
//!
//! Keys: `copies` `"{dest}/{archive}"`; `copy_parts`
//! `indexed_key("{dest}/{archive}", index)`; `copy_objects`
//! `"{dest}/{object}"`; `copy_deletes` `"{dest}/o/{object}"` and
//! `"{dest}/m/{archive}"`. Destination, archive and object ids never hold
//! a `/`, so a destination's prefix `"{dest}/"` takes exactly its records.

use heed::{RoTxn, RwTxn};

use super::records::{ArchiveRecord, ArchiveState, CopyDeleteRecord, CopyRecord};
use super::{indexed_prefix, Result, Tables};

/// The `meta` key of the catalog version: bumped with every catalog upload
/// asked for, compared with each destination's `catalog_version`.
const CATALOG_VERSION_KEY: &[u8] = b"catalog_version";

/// `"{dest}/{archive}"`: the key of a copy record (and the id its parts
/// are indexed under).
pub fn copy_key(dest_id: &str, archive_id: &str) -> String {
    format!("{dest_id}/{archive_id}")
}

/// `"{dest}/{object}"`: the key of a copy object record.
pub fn copy_object_key(dest_id: &str, object_id: &str) -> String {
    format!("{dest_id}/{object_id}")
}

/// The key of the deletion of a part object on a copy destination.
pub fn object_delete_key(dest_id: &str, object_id: &str) -> String {
    format!("{dest_id}/o/{object_id}")
}

/// The key of the deletion of an archive's manifest on a copy destination.
pub fn manifest_delete_key(dest_id: &str, archive_id: &str) -> String {
    format!("{dest_id}/m/{archive_id}")
}

/// The prefix of every record of one destination in any copy table.
pub fn destination_prefix(dest_id: &str) -> Vec<u8> {
    format!("{dest_id}/").into_bytes()
}

/// The ids of every copy destination, in key order.
pub fn destination_ids(txn: &RoTxn, tables: &Tables) -> Result<Vec<String>> {
    Ok(tables
        .destinations
        .all(txn)?
        .into_iter()
        .map(|(_, record)| record.id)
        .collect())
}

/// Gives a new archive a (not yet complete) copy record on every copy
/// destination. Called where its backup is queued (`jobs::enqueue_backup`).
pub fn add_copies_for(txn: &mut RwTxn, tables: &Tables, archive_id: &str) -> Result<()> {
    for dest_id in destination_ids(txn, tables)? {
        let key = copy_key(&dest_id, archive_id);
        if tables.copies.get(txn, key.as_bytes())?.is_none() {
            tables
                .copies
                .put(txn, key.as_bytes(), &CopyRecord::default())?;
        }
    }
    Ok(())
}

/// Whether every copy of the archive is complete (true with no copy
/// destination).
pub fn copies_complete(txn: &RoTxn, tables: &Tables, archive_id: &str) -> Result<bool> {
    Ok(incomplete_copies(txn, tables, archive_id)?.is_empty())
}

/// The copy destinations (ids) where the archive is not complete yet.
pub fn incomplete_copies(txn: &RoTxn, tables: &Tables, archive_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dest_id in destination_ids(txn, tables)? {
        let key = copy_key(&dest_id, archive_id);
        if let Some(copy) = tables.copies.get(txn, key.as_bytes())? {
            if !copy.complete {
                out.push(dest_id);
            }
        }
    }
    Ok(out)
}

/// The completion rule, the one place it is decided. `main_complete`: the
/// main destination holds every part and the manifest. An archive in a
/// local state (`local`, `uploading`, `backed_up`) becomes `backed_up` when
/// the main destination and every copy are complete; with main complete and
/// a copy behind it is `uploading` with `awaiting_copies`; with main behind
/// it is left as main's upload has it (`awaiting_copies` cleared). Other
/// states are left alone. Returns whether the record changed.
pub fn settle(
    txn: &RoTxn,
    tables: &Tables,
    archive: &mut ArchiveRecord,
    main_complete: bool,
) -> Result<bool> {
    if !archive.state.is_local() {
        return Ok(false);
    }
    let before = (archive.state, archive.awaiting_copies);
    if !main_complete {
        archive.awaiting_copies = false;
        if archive.state == ArchiveState::BackedUp {
            archive.state = ArchiveState::Uploading;
        }
    } else if copies_complete(txn, tables, &archive.id)? {
        archive.state = ArchiveState::BackedUp;
        archive.awaiting_copies = false;
    } else {
        archive.state = ArchiveState::Uploading;
        archive.awaiting_copies = true;
    }
    Ok(before != (archive.state, archive.awaiting_copies))
}

/// Whether the main destination holds the whole archive, judged from its
/// record: `backed_up`, or waiting only for copies.
pub fn main_complete(archive: &ArchiveRecord) -> bool {
    archive.state == ArchiveState::BackedUp || archive.awaiting_copies
}

/// Puts (or keeps) a deletion to do on a copy destination, due now.
fn put_delete(txn: &mut RwTxn, tables: &Tables, key: &str) -> Result<()> {
    if tables.copy_deletes.get(txn, key.as_bytes())?.is_none() {
        let record = CopyDeleteRecord {
            not_before: crate::ids::now_secs(),
            attempts: 0,
            last_error: None,
        };
        tables.copy_deletes.put(txn, key.as_bytes(), &record)?;
    }
    Ok(())
}

/// Takes part of one copy out of its object's refcount on the destination;
/// an object nobody uses any more is forgotten and its deletion queued.
pub fn release_object(
    txn: &mut RwTxn,
    tables: &Tables,
    dest_id: &str,
    object_id: &str,
) -> Result<()> {
    let key = copy_object_key(dest_id, object_id);
    let Some(mut object) = tables.copy_objects.get(txn, key.as_bytes())? else {
        return Ok(());
    };
    object.refcount = object.refcount.saturating_sub(1);
    if object.refcount == 0 {
        tables.copy_objects.delete(txn, key.as_bytes())?;
        put_delete(txn, tables, &object_delete_key(dest_id, object_id))
    } else {
        tables.copy_objects.put(txn, key.as_bytes(), &object)
    }
}

/// An archive deleted for good, on every copy destination: its parts leave
/// their objects' refcounts (objects at 0 are queued for deletion there),
/// its manifest is queued for deletion, its copy and part records go.
/// Called in the transaction that releases the archive on main.
pub fn forget_archive(txn: &mut RwTxn, tables: &Tables, archive_id: &str) -> Result<()> {
    for dest_id in destination_ids(txn, tables)? {
        let key = copy_key(&dest_id, archive_id);
        let had_copy = tables.copies.delete(txn, key.as_bytes())?;
        let prefix = indexed_prefix(&key);
        let parts = tables.copy_parts.prefix(txn, &prefix)?;
        for (part_key, part) in &parts {
            tables.copy_parts.delete(txn, part_key)?;
            release_object(txn, tables, &dest_id, &part.object_id)?;
        }
        if had_copy || !parts.is_empty() {
            put_delete(txn, tables, &manifest_delete_key(&dest_id, archive_id))?;
        }
    }
    Ok(())
}

/// Every record of a removed destination, in every copy table.
pub fn forget_destination(txn: &mut RwTxn, tables: &Tables, dest_id: &str) -> Result<()> {
    let prefix = destination_prefix(dest_id);
    tables.destinations.delete(txn, dest_id.as_bytes())?;
    tables.copies.delete_prefix(txn, &prefix)?;
    tables.copy_parts.delete_prefix(txn, &prefix)?;
    tables.copy_objects.delete_prefix(txn, &prefix)?;
    tables.copy_deletes.delete_prefix(txn, &prefix)?;
    Ok(())
}

/// The catalog version now (0: never asked for).
pub fn catalog_version(txn: &RoTxn, tables: &Tables) -> Result<u64> {
    Ok(tables
        .meta
        .get(txn, CATALOG_VERSION_KEY)?
        .and_then(|value| value.as_u64())
        .unwrap_or(0))
}

/// Moves the catalog version on (with every catalog upload asked for).
pub fn bump_catalog_version(txn: &mut RwTxn, tables: &Tables) -> Result<u64> {
    let next = catalog_version(txn, tables)? + 1;
    tables
        .meta
        .put(txn, CATALOG_VERSION_KEY, &serde_json::json!(next))?;
    Ok(next)
}
