//! What a fetch-back does about several destinations: the sources of
//! one archive's parts (the main storage, the one a move is leaving, each
//! copy destination with the parts stored there), and after a fetch-back
//! that had to read parts elsewhere, the sentence that says so and storing
//! those parts again where they were bad.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::super::destinations::{self, MAIN};
use super::super::work::object_id_of;
use super::super::{Failure, Inner};
use super::sources::{Fallback, Source, Sources};
use crate::remote::Remote;
use crate::store::records::{ArchiveRecord, PartRecord};

/// The sentence a fetch-back leaves on the archive and in the system log
/// when parts came from another destination than the first one tried.
pub(super) fn fallback_note(archive: &ArchiveRecord, fallbacks: &[Fallback]) -> Option<String> {
    /// Parts named one by one; more are counted.
    const NAMED: usize = 5;
    if fallbacks.is_empty() {
        return None;
    }
    let mut sentences: Vec<String> = fallbacks
        .iter()
        .take(NAMED)
        .map(Fallback::sentence)
        .collect();
    if fallbacks.len() > NAMED {
        sentences.push(format!(
            "{} more parts were read from another copy too.",
            fallbacks.len() - NAMED
        ));
    }
    Some(format!(
        "Fetched back “{}” whole: {}",
        archive.name,
        sentences.join(" ")
    ))
}

/// A failure's sentence, for a report.
fn failure_sentence(failure: &Failure) -> String {
    match failure {
        Failure::Transient(message) | Failure::Permanent(message) | Failure::Damaged(message) => {
            message.clone()
        }
        Failure::Busy => "another transfer of it was running".to_string(),
    }
}

impl Inner {
    /// Every destination holding parts of the archive, main first: the
    /// current main storage (and while a move runs, the one it leaves, for
    /// the parts not moved yet), then each copy destination with the parts
    /// stored there.
    pub(super) fn sources(
        &self,
        archive: &ArchiveRecord,
        parts: &[PartRecord],
        main: Result<Arc<dyn Remote>, Failure>,
    ) -> Result<Sources<'_>, Failure> {
        let (destinations, holds) = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            let destinations = destinations::list(&txn, tables, &self.data_dir)?;
            let mut holds = Vec::with_capacity(destinations.len());
            for destination in destinations.iter().skip(1) {
                let on = (0..parts.len() as u32)
                    .map(|index| {
                        destinations::part_on(&txn, tables, &destination.id, &archive.id, index)
                    })
                    .collect::<Result<Vec<bool>, _>>()?;
                holds.push(on);
            }
            (destinations, holds)
        };
        let main_name = destinations
            .first()
            .map_or_else(|| MAIN.to_string(), |main| main.name.clone());
        let reachable = main.is_ok() && self.health.error(MAIN).is_none();
        let on_main = parts.iter().map(|part| !part.to_move).collect();
        let mut sources = vec![match main {
            Ok(remote) => Source::opened(MAIN, &main_name, reachable, on_main, remote),
            Err(failure) => Source::new(
                MAIN,
                &main_name,
                false,
                on_main,
                Box::new(move || Err(failure.clone())),
            ),
        }];
        // Parts not yet moved to the current remote come from the old one.
        if let Some(settings) = self.previous_settings()? {
            if parts.iter().any(|part| part.to_move) {
                sources.push(Source::opened(
                    MAIN,
                    &main_name,
                    reachable,
                    parts.iter().map(|part| part.to_move).collect(),
                    self.previous_remote(&settings)?,
                ));
            }
        }
        for (destination, holds) in destinations.into_iter().skip(1).zip(holds) {
            if !holds.contains(&true) {
                continue;
            }
            let reachable = self.health.error(&destination.id).is_none();
            let id = destination.id.clone();
            let open = Box::new(move || self.destination_remote(&id));
            sources.push(Source::new(
                &destination.id,
                &destination.name,
                reachable,
                holds,
                open,
            ));
        }
        Ok(Sources { sources })
    }

    /// Stores each part that was missing or damaged on a destination there
    /// again, sealed afresh from `fetched`, the file just fetched back
    /// (which checked out whole), and says so in the system log. A failure
    /// is only reported: the next verification finds the part again.
    pub(super) fn store_again(
        &self,
        archive: &ArchiveRecord,
        parts: &[PartRecord],
        sources: &Sources<'_>,
        fallbacks: &[Fallback],
        fetched: &Path,
    ) {
        if fallbacks.is_empty() {
            return;
        }
        let Ok((keys, _)) = self.keys() else { return };
        let Ok(file) = File::open(fetched) else {
            return;
        };
        for fallback in fallbacks {
            let Some(source) = sources
                .sources
                .iter()
                .find(|source| source.id == fallback.failed_id && source.holds[fallback.index])
            else {
                continue;
            };
            let part = &parts[fallback.index];
            let stored = object_id_of(part, fallback.index).and_then(|object_id| {
                let remote = source.remote()?;
                if !self.holds_repository(remote.as_ref())? {
                    return Err(Failure::Permanent(format!(
                        "{} holds no backups of this appliance now",
                        remote.describe()
                    )));
                }
                let again = super::super::verify::PartAgain {
                    destination: &source.id,
                    object_id: &object_id,
                    part,
                };
                self.store_part_again(remote.as_ref(), keys, &file, &again)
            });
            let (level, message) = match stored {
                Ok(()) => (
                    super::super::ReportLevel::Info,
                    format!(
                        "Part {} of “{}” was stored on {} again from the copy fetched back.",
                        fallback.index, archive.name, source.name
                    ),
                ),
                Err(failure) => (
                    super::super::ReportLevel::Warn,
                    format!(
                        "Part {} of “{}” could not be stored on {} again ({}); the next verification tries again.",
                        fallback.index,
                        archive.name,
                        source.name,
                        failure_sentence(&failure)
                    ),
                ),
            };
            self.report(level, &message);
        }
    }
}
