//! The trash: delete (to the trash for `trash_days`, or for good when the
//! trash is off), restore, delete for good now, and the purge of what is
//! due (the chore). Each does the domain call in `archive::trash`, the log
//! line, the announcement and the engine wake.

use crate::admin::log::Subject;
use crate::app::state::App;
use crate::archive::Deleted;
use crate::settings::Settings;
use crate::store::records::ArchiveRecord;

use super::archives::announce;

/// Deleting an archive: to the trash for `trash_days`, or for good at once
/// when the trash is off.
pub fn trash(app: &App, owner_id: &str, archive_id: &str) -> super::Result<Deleted> {
    let days = Settings::load(&app.store)?.trash_days;
    let deleted = app.archives.trash(owner_id, archive_id, days)?;
    match &deleted {
        Deleted::Trashed(archive, trash) => {
            app.engine.events().trashed(archive);
            let zone = &app.config.zone;
            app.admin.log.info(
                "trash",
                &format!(
                    "{:?} went to the trash; it is deleted for good at {} ({}) unless restored.",
                    archive.name,
                    zone.local_text(trash.purge_at),
                    zone.name()
                ),
                Subject::archive(&archive.owner_id, &archive.id),
            );
        }
        Deleted::Deleting => purged(app, owner_id, archive_id),
    }
    Ok(deleted)
}

/// Takes an archive out of the trash, back as it is.
pub fn restore(app: &App, owner_id: &str, archive_id: &str) -> super::Result<ArchiveRecord> {
    let archive = app.archives.restore(owner_id, archive_id)?;
    announce(app, &archive);
    app.admin.log.info(
        "trash",
        &format!("{:?} was restored from the trash.", archive.name),
        Subject::archive(&archive.owner_id, &archive.id),
    );
    app.engine.wake();
    Ok(archive)
}

/// Deletes an archive for good now, from the trash or not.
pub fn purge(app: &App, owner_id: &str, archive_id: &str) -> super::Result<()> {
    app.archives.delete(owner_id, archive_id)?;
    purged(app, owner_id, archive_id);
    Ok(())
}

fn purged(app: &App, owner_id: &str, archive_id: &str) {
    if let Ok(archive) = app.archives.owned(owner_id, archive_id) {
        announce(app, &archive);
        app.admin.log.info(
            "trash",
            &format!("{:?} is being deleted for good.", archive.name),
            Subject::archive(&archive.owner_id, &archive.id),
        );
    }
    app.engine.wake();
}

/// Deletes for good what stayed in the trash until its purge time (the
/// trash chore); says so in the system log.
pub fn purge_due(app: &App) {
    match app.archives.purge_due(crate::ids::now_secs()) {
        Ok(0) => {}
        Ok(count) => {
            app.admin.log.info(
                "trash",
                &format!("{count} archives stayed in the trash for their time and are being deleted for good."),
                Subject::default(),
            );
            app.engine.wake();
        }
        Err(err) => app.admin.log.warn(
            "trash",
            &format!("The trash could not be emptied: {err}"),
            Subject::default(),
        ),
    }
}
