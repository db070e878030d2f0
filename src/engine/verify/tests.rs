use super::*;
use rand::SeedableRng;

#[test]
fn sample_sizes_round_up_and_take_at_least_one() {
    for (total, percent, expected) in [
        (0, 50, 0),
        (10, 0, 0),
        (10, 1, 1),
        (10, 5, 1),
        (10, 10, 1),
        (10, 11, 2),
        (10, 100, 10),
        (10, 250, 10),
        (256, 5, 13),
        (1, 1, 1),
    ] {
        assert_eq!(
            sample_size(total, percent),
            expected,
            "{total} parts at {percent} %"
        );
    }
}

#[test]
fn the_sample_is_random_and_of_the_right_size() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let first = choose_sample(100, 10, &mut rng);
    let second = choose_sample(100, 10, &mut rng);
    assert_eq!(first.iter().filter(|chosen| **chosen).count(), 10);
    assert_eq!(second.iter().filter(|chosen| **chosen).count(), 10);
    assert_ne!(first, second, "two draws picked the same parts");
    assert!(choose_sample(5, 100, &mut rng).iter().all(|chosen| *chosen));
    assert!(choose_sample(5, 0, &mut rng).iter().all(|chosen| !*chosen));
}

#[test]
fn the_damage_reason_names_every_part() {
    let parts = [
        DamagedPart {
            index: 3,
            object_id: "a".into(),
            problem: PartProblem::Missing,
            repaired: false,
            remote: MAIN.into(),
            remote_name: "Backblaze".into(),
            repaired_from: None,
        },
        DamagedPart {
            index: 7,
            object_id: "b".into(),
            problem: PartProblem::WrongLength {
                found: 10,
                part_length: 50,
            },
            repaired: false,
            remote: MAIN.into(),
            remote_name: "Backblaze".into(),
            repaired_from: None,
        },
    ];
    let refs: Vec<&DamagedPart> = parts.iter().collect();
    assert_eq!(
        damage_reason(&refs, false, false),
        "Verification found that part 3 is missing from the remote; part 7 is 10 bytes \
         on the remote, which a part of 50 bytes cannot be sealed as; there is no local copy to upload it again from. \
         Nothing was deleted."
    );
    assert!(damage_reason(&refs[..1], true, false).contains("no longer matches its hash"));
}

mod destinations {
    use std::path::{Path, PathBuf};

    use super::super::super::{keys, Inner};
    use super::*;
    use crate::archive::{Archives, NewUpload};
    use crate::engine::tests::noise;
    use crate::store::copies::{copy_key, copy_object_key};
    use crate::store::records::{CopyObjectRecord, CopyPartRecord, CopyRecord, DestinationRecord};
    use crate::store::{indexed_key, Store};

    const OWNER: &str = "owner-1";
    const COPY: &str = "d_nas";
    const COPY_NAME: &str = "grandpa's NAS";

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// An appliance with one archive backed up to the folder remote and,
    /// as a complete copy destination, a second folder holding the same
    /// repository (the copy's books written as its syncer would).
    struct TwoPlaces {
        dir: tempfile::TempDir,
        archives: Archives,
        inner: Inner,
        archive_id: String,
        parts: Vec<PartRecord>,
    }

    impl TwoPlaces {
        fn part_file(&self, place: &str, index: usize) -> PathBuf {
            let object_id =
                ObjectId::parse(self.parts[index].object_id.as_deref().unwrap()).unwrap();
            self.dir.path().join(place).join(repo::part_key(&object_id))
        }

        fn verify(&self) -> Verification {
            let mut rng = rand::rngs::StdRng::seed_from_u64(3);
            self.inner.verify(&self.archive_id, 100, &mut rng).unwrap()
        }

        fn state(&self) -> ArchiveState {
            self.inner
                .archive_and_parts(&self.archive_id)
                .unwrap()
                .unwrap()
                .0
                .state
        }
    }

    fn two_places() -> TwoPlaces {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path();
        let store = Store::open(&data_dir.join("db"), 64 << 20).unwrap();
        let archives = Archives::open(store.clone(), data_dir).unwrap();
        keys::create(&store, "correct horse battery staple").unwrap();
        let inner = Inner::new(store.clone(), data_dir);
        let data = noise(24 * 1024 * 1024 + 3, 9);
        let record = archives
            .ingest_whole(
                NewUpload {
                    owner_id: OWNER.into(),
                    name: "holiday".into(),
                    filename: "holiday.bin".into(),
                    length: data.len() as u64,
                    relative_path: None,
                },
                &mut &data[..],
            )
            .unwrap();
        inner.run_due();
        let (archive, parts) = inner.archive_and_parts(&record.id).unwrap().unwrap();
        assert_eq!(archive.state, ArchiveState::BackedUp);
        assert!(parts.len() >= 4, "{} parts", parts.len());
        copy_tree(&data_dir.join("remote"), &data_dir.join("copy"));
        store
            .write(|txn, tables| -> Result<(), crate::store::StoreError> {
                let settings = crate::remote::RemoteSettings::Dir {
                    path: data_dir.join("copy"),
                };
                let destination = DestinationRecord {
                    id: COPY.into(),
                    name: COPY_NAME.into(),
                    settings,
                    added_at: 1,
                    catalog_version: 0,
                    lock_repo_until: None,
                };
                tables
                    .destinations
                    .put(txn, COPY.as_bytes(), &destination)?;
                let copy = CopyRecord {
                    parts_stored: parts.len() as u32,
                    bytes_stored: archive.size,
                    stored_size: 0,
                    complete: true,
                    last_error: None,
                    protected_until: None,
                };
                tables
                    .copies
                    .put(txn, copy_key(COPY, &archive.id).as_bytes(), &copy)?;
                for (index, part) in parts.iter().enumerate() {
                    let object_id = part.object_id.clone().unwrap();
                    let key = indexed_key(&copy_key(COPY, &archive.id), index as u32);
                    let record = CopyPartRecord {
                        object_id: object_id.clone(),
                    };
                    tables.copy_parts.put(txn, &key, &record)?;
                    let object = CopyObjectRecord {
                        refcount: 1,
                        stored_length: 0,
                        retain_until: None,
                    };
                    tables.copy_objects.put(
                        txn,
                        copy_object_key(COPY, &object_id).as_bytes(),
                        &object,
                    )?;
                }
                Ok(())
            })
            .unwrap();
        TwoPlaces {
            dir,
            archives,
            inner,
            archive_id: record.id,
            parts,
        }
    }

    fn flip_a_byte(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
    }

    /// (destination, part, repaired, repaired from) of each damaged part.
    fn damage(verification: &Verification) -> Vec<(String, u32, bool, Option<String>)> {
        verification
            .damaged
            .iter()
            .map(|part| {
                (
                    part.remote.clone(),
                    part.index,
                    part.repaired,
                    part.repaired_from.clone(),
                )
            })
            .collect()
    }

    /// Both destinations are checked, each named in the result; damage on
    /// either is repaired from the local file while there is one, else
    /// from the other destination; a part bad on both leaves the archive
    /// damaged with a sentence naming both places.
    #[test]
    fn verification_checks_every_destination_and_repairs_each_from_the_other() {
        let places = two_places();
        let parts = places.parts.len() as u64;
        let clean = places.verify();
        assert_eq!(clean.parts_checked, 2 * parts);
        assert_eq!(clean.parts_downloaded, 2 * parts);
        let names: Vec<(&str, &str, u64)> = clean
            .destinations
            .iter()
            .map(|check| {
                (
                    check.remote.as_str(),
                    check.name.as_str(),
                    check.parts_checked,
                )
            })
            .collect();
        assert_eq!(names[1], (COPY, COPY_NAME, parts));
        assert_eq!(names[0].0, MAIN);
        assert!(clean.damaged.is_empty());

        // With the local file: part 0 corrupt on the copy, part 1 missing
        // on the main destination; both uploaded again from it.
        flip_a_byte(&places.part_file("copy", 0));
        std::fs::remove_file(places.part_file("remote", 1)).unwrap();
        let found = places.verify();
        assert_eq!(
            damage(&found),
            [
                (MAIN.to_string(), 1, true, None),
                (COPY.to_string(), 0, true, None)
            ]
        );
        assert_eq!(found.destinations[1].parts_damaged, 1);
        assert!(found.damaged[1]
            .describe()
            .starts_with("part 0 is corrupt on grandpa's NAS"));
        assert_eq!(found.state_after, ArchiveState::BackedUp);
        assert!(places.verify().damaged.is_empty(), "repaired on both");

        // Without it: each stored again from the other destination.
        places
            .archives
            .request_uncache(OWNER, &places.archive_id)
            .unwrap();
        places.inner.run_due();
        assert_eq!(places.state(), ArchiveState::Uncached);
        std::fs::remove_file(places.part_file("remote", 2)).unwrap();
        flip_a_byte(&places.part_file("copy", 3));
        std::fs::remove_file(
            places
                .dir
                .path()
                .join("copy")
                .join(repo::manifest_key(&places.archive_id)),
        )
        .unwrap();
        let found = places.verify();
        assert_eq!(
            damage(&found),
            [
                (MAIN.to_string(), 2, true, Some(COPY_NAME.to_string())),
                (
                    COPY.to_string(),
                    3,
                    true,
                    Some(found.destinations[0].name.clone())
                ),
            ]
        );
        assert!(found.destinations[1].manifest_problem.is_some());
        assert!(found.destinations[1].manifest_repaired);
        assert_eq!(found.state_after, ArchiveState::Uncached);
        let again = places.verify();
        assert!(again.damaged.is_empty(), "{again:?}");
        assert!(again
            .destinations
            .iter()
            .all(|check| check.manifest_problem.is_none()));

        // Bad on both: damaged, both places named, nothing deleted.
        std::fs::remove_file(places.part_file("remote", 0)).unwrap();
        flip_a_byte(&places.part_file("copy", 0));
        let found = places.verify();
        assert_eq!(found.state_after, ArchiveState::Damaged);
        let reason = found.damage_reason.expect("a reason");
        assert!(
            reason.starts_with(
                "Verification found that part 0 is missing from the remote; part 0 is corrupt on grandpa's NAS"
            ) && reason.contains("no intact copy on another destination"),
            "{reason}"
        );
        assert!(places.part_file("copy", 0).is_file(), "nothing was deleted");

        // A copy destination whose folder is gone (an unplugged disk) is
        // said to be unreachable, never damaged, and nothing is written
        // there.
        std::fs::remove_dir_all(places.dir.path().join("copy")).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let found = places
            .inner
            .verify(&places.archive_id, 0, &mut rng)
            .unwrap();
        let unreachable = found.destinations[1]
            .unavailable
            .as_deref()
            .unwrap_or_default();
        assert!(
            unreachable.contains("holds no backups of this appliance"),
            "{found:?}"
        );
        assert!(
            found.damaged.iter().all(|part| part.remote != COPY),
            "{found:?}"
        );
        assert!(!places.dir.path().join("copy").join("parts").exists());
    }
}
