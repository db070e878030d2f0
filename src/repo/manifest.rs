//! The archive manifest stored at `manifests/<archive id>`: the record from
//! which a new appliance rebuilds an archive's entry and reassembles its file.
//!
//! Owns the manifest's JSON wire format (`ManifestV1`) and its consistency
//! rules. Pure: sealed with a nonce handed in; no I/O, no clock.

use serde::{Deserialize, Serialize};

use super::crypto::{corrupt, NONCE_LEN};
use super::{manifest_key, ObjectId, RepoError, RepoKeys, FORMAT_VERSION, MAX_PART_LEN};

/// The most parts one manifest may list: 1 TiB at the average part size
/// (4 MiB), 256 GiB at the smallest (1 MiB). A larger archive is refused when
/// its manifest is written (the local copy stays, with the sentence), and a
/// manifest from a bucket listing more is refused before its parts are read.
pub const MAX_MANIFEST_PARTS: usize = 1 << 18;

/// The longest a part's entry is in a manifest's JSON:
/// `{"object_id":"<64 hex>","length":16777216,"sha256":"<64 hex>"},` is 178
/// bytes.
const MAX_PART_ENTRY_BYTES: u64 = 192;

/// The most a manifest object may hold: [`MAX_MANIFEST_PARTS`] entries and
/// a mebibyte for the names and the sealing. A larger object is refused
/// before it is read whole (`Remote::get_at_most`).
pub const MAX_MANIFEST_BYTES: u64 = MAX_MANIFEST_PARTS as u64 * MAX_PART_ENTRY_BYTES + (1 << 20);

/// An archive as recorded in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub archive_id: String,
    /// The owner's username (not the local user id, which a new appliance
    /// would not share).
    pub owner: String,
    pub name: String,
    pub original_filename: String,
    /// Bytes of the whole file: the sum of the parts' lengths.
    pub size: u64,
    /// SHA-256 of the whole file, 64 lowercase hex digits.
    pub sha256: String,
    /// Unix seconds.
    pub created: u64,
    /// The folder a folder upload gave the file (`Photos/2024`), or `None`.
    /// As the bucket says it: a reader cleans it before use
    /// (`archive::clean_folder`), since the bucket is not trusted.
    pub path: Option<String>,
    /// In file order.
    pub parts: Vec<ManifestPart>,
}

/// One part of an archive, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPart {
    pub object_id: ObjectId,
    /// Plaintext bytes, 1 to [`MAX_PART_LEN`].
    pub length: u64,
    /// SHA-256 of the plaintext, 64 lowercase hex digits.
    pub sha256: String,
}

impl Manifest {
    /// JSON, encrypted with the manifest key, the archive id as associated
    /// data. An inconsistent manifest (see [`Manifest::check`]) is refused, so
    /// one is never written that [`Manifest::open`] would reject.
    pub fn seal(&self, keys: &RepoKeys, nonce: [u8; NONCE_LEN]) -> Result<Vec<u8>, RepoError> {
        self.check().map_err(|reason| RepoError::InvalidManifest {
            archive_id: self.archive_id.clone(),
            reason,
        })?;
        let wire = ManifestV1Out {
            format_version: FORMAT_VERSION,
            archive_id: &self.archive_id,
            owner: &self.owner,
            name: &self.name,
            original_filename: &self.original_filename,
            size: self.size,
            sha256: &self.sha256,
            created: self.created,
            path: self.path.as_deref(),
            parts: self
                .parts
                .iter()
                .map(|part| PartV1Out {
                    object_id: part.object_id.as_str(),
                    length: part.length,
                    sha256: &part.sha256,
                })
                .collect(),
        };
        // Strings and integers only: serializing to a Vec cannot fail.
        let json = serde_json::to_vec(&wire).expect("manifest serializes");
        keys.seal_manifest(&self.archive_id, nonce, &json)
    }

    /// Decrypts and checks the manifest fetched from `manifests/<archive_id>`.
    /// Anything altered, truncated, stored under another archive's name or
    /// inconsistent is [`RepoError::Corrupt`]; a newer format is
    /// [`RepoError::NewerFormat`].
    pub fn open(keys: &RepoKeys, archive_id: &str, bytes: &[u8]) -> Result<Manifest, RepoError> {
        let damaged = |reason: String| corrupt(manifest_key(archive_id), reason);
        let json = keys.open_manifest(archive_id, bytes)?;

        let probe: VersionProbe = serde_json::from_slice(&json)
            .map_err(|error| damaged(format!("its content is not a manifest: {error}")))?;
        if probe.format_version > FORMAT_VERSION {
            return Err(RepoError::NewerFormat {
                found: probe.format_version,
            });
        }
        // Formats 2 and 3 changed parts, not manifests: a format-1 or -2
        // manifest reads the same.
        if probe.format_version == 0 {
            return Err(damaged(format!(
                "format version {} does not exist",
                probe.format_version
            )));
        }
        let wire: ManifestV1In = serde_json::from_slice(&json)
            .map_err(|error| damaged(format!("its content is not a manifest: {error}")))?;

        let parts = wire
            .parts
            .0
            .into_iter()
            .map(|part| {
                Ok(ManifestPart {
                    object_id: ObjectId::parse(&part.object_id)?,
                    length: part.length,
                    sha256: part.sha256,
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()
            .map_err(|error| damaged(error.to_string()))?;
        let manifest = Manifest {
            archive_id: wire.archive_id,
            owner: wire.owner,
            name: wire.name,
            original_filename: wire.original_filename,
            size: wire.size,
            sha256: wire.sha256,
            created: wire.created,
            path: wire.path,
            parts,
        };
        if manifest.archive_id != archive_id {
            return Err(damaged(format!(
                "it records archive {:?}",
                manifest.archive_id
            )));
        }
        manifest.check().map_err(damaged)?;
        Ok(manifest)
    }

    /// The rules every stored manifest keeps: hashes are 64 lowercase hex
    /// digits, every part holds 1 to [`MAX_PART_LEN`] bytes, and the parts add
    /// up to the size.
    pub fn check(&self) -> Result<(), String> {
        if self.parts.len() > MAX_MANIFEST_PARTS {
            return Err(too_many_parts(self.parts.len()));
        }
        if !is_sha256_hex(&self.sha256) {
            return Err("the file's sha256 is not 64 lowercase hex digits".to_owned());
        }
        let mut total: u64 = 0;
        for (index, part) in self.parts.iter().enumerate() {
            if !is_sha256_hex(&part.sha256) {
                return Err(format!(
                    "part {index}'s sha256 is not 64 lowercase hex digits"
                ));
            }
            if part.length == 0 || part.length > MAX_PART_LEN as u64 {
                return Err(format!(
                    "part {index} holds {} bytes, outside 1 to {MAX_PART_LEN}",
                    part.length
                ));
            }
            total = total.saturating_add(part.length);
        }
        if total != self.size {
            return Err(format!(
                "its parts hold {total} bytes but the file has {}",
                self.size
            ));
        }
        Ok(())
    }
}

fn too_many_parts(parts: usize) -> String {
    format!(
        "it lists {parts} parts, more than the {MAX_MANIFEST_PARTS} one archive may have (1 TiB \
         at the average part size)"
    )
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

/// Format version 1 of a manifest, as written. Any change a reader must
/// understand needs a new version; a field a reader may ignore (`path`)
/// does not, since readers skip fields they do not know.
#[derive(Serialize)]
struct ManifestV1Out<'a> {
    format_version: u32,
    archive_id: &'a str,
    owner: &'a str,
    name: &'a str,
    original_filename: &'a str,
    size: u64,
    sha256: &'a str,
    created: u64,
    /// Left out when `None`, so a manifest without a folder is byte for
    /// byte what earlier versions wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    parts: Vec<PartV1Out<'a>>,
}

#[derive(Serialize)]
struct PartV1Out<'a> {
    object_id: &'a str,
    length: u64,
    sha256: &'a str,
}

/// Format version 1 of a manifest, as read: the same fields as
/// [`ManifestV1Out`]. Unknown fields are skipped (no
/// `deny_unknown_fields`): that is what lets a field be added without a
/// new version, as `path` was.
#[derive(Deserialize)]
struct ManifestV1In {
    archive_id: String,
    owner: String,
    name: String,
    original_filename: String,
    size: u64,
    sha256: String,
    created: u64,
    /// Absent in manifests written before folder paths were kept.
    #[serde(default)]
    path: Option<String>,
    parts: BoundedParts,
}

/// A manifest's parts, read one by one and refused past
/// [`MAX_MANIFEST_PARTS`], so a manifest cannot make the reader hold more.
struct BoundedParts(Vec<PartV1In>);

impl<'de> Deserialize<'de> for BoundedParts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BoundedParts;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(formatter, "at most {MAX_MANIFEST_PARTS} parts")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(part) = seq.next_element()? {
                    if parts.len() == MAX_MANIFEST_PARTS {
                        return Err(serde::de::Error::custom(too_many_parts(parts.len() + 1)));
                    }
                    parts.push(part);
                }
                Ok(BoundedParts(parts))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

#[derive(Deserialize)]
struct PartV1In {
    object_id: String,
    length: u64,
    sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCHIVE_ID: &str = "5f2b0c9a41d7e8836b1c2d3e4f506172";

    fn keys() -> RepoKeys {
        RepoKeys::from_master_key(&[0x11; 32])
    }

    fn hex_of(byte: u8) -> String {
        hex::encode([byte; 32])
    }

    fn manifest(name: &str) -> Manifest {
        let keys = keys();
        Manifest {
            archive_id: ARCHIVE_ID.to_owned(),
            owner: "anna".to_owned(),
            name: name.to_owned(),
            original_filename: format!("{name}.tar"),
            size: 5 * 1024 * 1024 + 17,
            sha256: hex_of(0xaa),
            created: 1_700_000_000,
            path: Some("Photos <2024>/Été".to_owned()),
            parts: vec![
                ManifestPart {
                    object_id: keys.object_id(&[1; 32]),
                    length: 4 * 1024 * 1024,
                    sha256: hex_of(1),
                },
                ManifestPart {
                    object_id: keys.object_id(&[2; 32]),
                    length: 1024 * 1024 + 17,
                    sha256: hex_of(2),
                },
            ],
        }
    }

    #[test]
    fn manifests_with_hostile_names_round_trip() {
        let keys = keys();
        let long = "a\"<>&\n".repeat(2048);
        assert!(long.len() > 10 * 1024);
        for name in [
            "holiday 2024",
            "",
            "quote \" and 'single'",
            "<script>alert(1)</script> & </html>",
            "line one\nline two\r\n\ttab",
            "emoji 📸👨‍👩‍👧 and ünïcödé",
            "nul \0 and backslash \\ and \u{202e}rtl",
            "{\"format_version\": 2}",
            long.as_str(),
        ] {
            let original = manifest(name);
            let sealed = original.seal(&keys, [6; NONCE_LEN]).expect("seal");
            assert_eq!(&sealed[..NONCE_LEN], &[6; NONCE_LEN]);
            let opened = Manifest::open(&keys, ARCHIVE_ID, &sealed).expect("open");
            assert_eq!(
                opened,
                original,
                "{:?}",
                name.chars().take(40).collect::<String>()
            );
        }
    }

    #[test]
    fn an_empty_file_has_no_parts() {
        let keys = keys();
        let empty = Manifest {
            size: 0,
            parts: Vec::new(),
            ..manifest("empty")
        };
        let sealed = empty.seal(&keys, [0; NONCE_LEN]).expect("seal");
        assert_eq!(Manifest::open(&keys, ARCHIVE_ID, &sealed), Ok(empty));
    }

    #[test]
    fn a_manifest_is_bound_to_its_archive_and_its_repository() {
        let sealed = manifest("x").seal(&keys(), [6; NONCE_LEN]).expect("seal");
        let other_archive = "00000000000000000000000000000000";
        assert_eq!(
            Manifest::open(&keys(), other_archive, &sealed),
            Err(RepoError::Corrupt {
                name: format!("manifests/{other_archive}"),
                reason: "its authentication tag does not match".into()
            })
        );
        let other_repository = RepoKeys::from_master_key(&[0x12; 32]);
        assert!(matches!(
            Manifest::open(&other_repository, ARCHIVE_ID, &sealed),
            Err(RepoError::Corrupt { .. })
        ));
        // Not a part either: the manifest key is not the part key.
        let id = keys().object_id(&[3; 32]);
        assert!(keys().decrypt_part(&id, &sealed).is_err());
    }

    #[test]
    fn tampered_or_truncated_manifests_are_corrupt() {
        let sealed = manifest("x").seal(&keys(), [6; NONCE_LEN]).expect("seal");
        for position in [0, NONCE_LEN, sealed.len() / 2, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[position] ^= 0x80;
            assert!(
                matches!(
                    Manifest::open(&keys(), ARCHIVE_ID, &tampered),
                    Err(RepoError::Corrupt { .. })
                ),
                "position {position}"
            );
        }
        for len in [0, 39, sealed.len() - 1] {
            assert!(
                matches!(
                    Manifest::open(&keys(), ARCHIVE_ID, &sealed[..len]),
                    Err(RepoError::Corrupt { .. })
                ),
                "len {len}"
            );
        }
    }

    /// Seals arbitrary JSON as if a writer had produced it.
    fn seal_json(json: &serde_json::Value) -> Vec<u8> {
        keys()
            .seal_manifest(
                ARCHIVE_ID,
                [1; NONCE_LEN],
                &serde_json::to_vec(json).expect("json"),
            )
            .expect("seal")
    }

    fn written_json() -> serde_json::Value {
        let sealed = manifest("x").seal(&keys(), [6; NONCE_LEN]).expect("seal");
        let json = keys().open_manifest(ARCHIVE_ID, &sealed).expect("open");
        serde_json::from_slice(&json).expect("json")
    }

    #[test]
    fn the_wire_format_is_versioned_and_named() {
        let json = written_json();
        assert_eq!(json["format_version"], 3);
        assert_eq!(json["archive_id"], ARCHIVE_ID);
        assert_eq!(json["owner"], "anna");
        assert_eq!(json["original_filename"], "x.tar");
        assert_eq!(json["created"], 1_700_000_000u64);
        assert_eq!(json["parts"][1]["length"], 1024 * 1024 + 17);
        assert_eq!(json["parts"][1]["sha256"], hex_of(2));
    }

    #[test]
    fn a_format_1_manifest_is_read() {
        let mut json = written_json();
        json["format_version"] = 1.into();
        let opened = Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)).expect("open");
        assert_eq!(opened, manifest("x"));
    }

    #[test]
    fn a_format_2_manifest_is_read() {
        let mut json = written_json();
        json["format_version"] = 2.into();
        let opened = Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)).expect("open");
        assert_eq!(opened, manifest("x"));
    }

    /// A manifest from before folder paths were kept has no `path`; one
    /// without a folder is written without the field, as before.
    #[test]
    fn a_manifest_without_a_path_is_read_and_written_as_before() {
        let mut json = written_json();
        assert_eq!(json["path"], "Photos <2024>/Été");
        json.as_object_mut().expect("object").remove("path");
        let opened = Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)).expect("open");
        assert_eq!(
            opened,
            Manifest {
                path: None,
                ..manifest("x")
            }
        );
        let sealed = opened.seal(&keys(), [6; NONCE_LEN]).expect("seal");
        let json = keys().open_manifest(ARCHIVE_ID, &sealed).expect("open");
        let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert!(json.get("path").is_none(), "{json}");
    }

    /// Readers skip fields they do not know, which is how `path` was
    /// added without a new format version: an older build reads a newer
    /// manifest the way this one reads a field added after it.
    #[test]
    fn unknown_manifest_fields_are_skipped() {
        let mut json = written_json();
        json["a_field_from_a_later_version"] = serde_json::json!({"any": ["shape", 1]});
        let opened = Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)).expect("open");
        assert_eq!(opened, manifest("x"));
    }

    #[test]
    fn a_newer_manifest_format_is_refused() {
        let mut json = written_json();
        json["format_version"] = 4.into();
        json["parts"] = "a new shape".into();
        assert_eq!(
            Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)),
            Err(RepoError::NewerFormat { found: 4 })
        );
    }

    /// An edit that breaks a manifest's consistency, for table-driven cases.
    type ManifestEdit = fn(&mut Manifest);

    #[test]
    fn inconsistent_manifests_are_neither_written_nor_read() {
        let cases: &[(&str, ManifestEdit)] = &[
            ("size off by one", |m| m.size += 1),
            ("empty part", |m| {
                m.parts[1].length = 0;
                m.size = 4 * 1024 * 1024;
            }),
            ("oversized part", |m| {
                m.parts[0].length = MAX_PART_LEN as u64 + 1;
                m.size = m.parts[0].length + m.parts[1].length;
            }),
            ("upper-case file hash", |m| {
                m.sha256 = m.sha256.to_uppercase()
            }),
            ("short part hash", |m| m.parts[0].sha256.truncate(63)),
        ];
        for &(what, edit) in cases {
            let mut bad = manifest("x");
            edit(&mut bad);
            assert!(
                matches!(
                    bad.seal(&keys(), [0; NONCE_LEN]),
                    Err(RepoError::InvalidManifest { .. })
                ),
                "seal: {what}"
            );

            // Written anyway (by a buggy or older writer): refused on reading.
            let mut json = written_json();
            json["size"] = bad.size.into();
            json["sha256"] = bad.sha256.clone().into();
            for (index, part) in bad.parts.iter().enumerate() {
                json["parts"][index]["length"] = part.length.into();
                json["parts"][index]["sha256"] = part.sha256.clone().into();
            }
            assert!(
                matches!(
                    Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)),
                    Err(RepoError::Corrupt { .. })
                ),
                "open: {what}"
            );
        }
    }

    /// A manifest listing one part more than any archive may have: refused
    /// while its parts are read (before they are all held), and never
    /// written. Absurd sizes (2^62 bytes in one part, or parts adding up to
    /// more than the file) are refused by the same rules.
    #[test]
    fn absurd_part_counts_and_sizes_are_refused_with_a_sentence() {
        let entry = format!(
            "{{\"object_id\":\"{}\",\"length\":1,\"sha256\":\"{}\"}}",
            hex_of(1),
            hex_of(2)
        );
        let mut json = format!(
            "{{\"format_version\":3,\"archive_id\":\"{ARCHIVE_ID}\",\"owner\":\"a\",\"name\":\"n\",\
             \"original_filename\":\"f\",\"size\":{},\"sha256\":\"{}\",\"created\":1,\"parts\":[",
            MAX_MANIFEST_PARTS + 1,
            hex_of(3)
        );
        for index in 0..=MAX_MANIFEST_PARTS {
            if index > 0 {
                json.push(',');
            }
            json.push_str(&entry);
        }
        json.push_str("]}");
        let sealed = keys()
            .seal_manifest(ARCHIVE_ID, [1; NONCE_LEN], json.as_bytes())
            .expect("seal");
        assert!((sealed.len() as u64) < MAX_MANIFEST_BYTES);
        let error = Manifest::open(&keys(), ARCHIVE_ID, &sealed).expect_err("too many parts");
        assert!(
            error.to_string().contains(&format!(
                "it lists {} parts, more than the {MAX_MANIFEST_PARTS} one archive may have",
                MAX_MANIFEST_PARTS + 1
            )),
            "{error}"
        );
        let mut many = manifest("x");
        many.parts = vec![many.parts[1].clone(); MAX_MANIFEST_PARTS + 1];
        many.size = many.parts[0].length * many.parts.len() as u64;
        let error = many.seal(&keys(), [0; NONCE_LEN]).expect_err("not written");
        assert!(
            error.to_string().contains("one archive may have"),
            "{error}"
        );

        for (size, length) in [(1u64 << 62, 1u64 << 62), (1 << 62, 5), (u64::MAX, u64::MAX)] {
            let mut json = written_json();
            json["size"] = size.into();
            json["parts"] = serde_json::json!([{"object_id": hex_of(1), "length": length, "sha256": hex_of(2)}]);
            let error =
                Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)).expect_err("absurd size");
            assert!(
                matches!(error, RepoError::Corrupt { .. }) && error.to_string().contains("bytes"),
                "{size} / {length}: {error}"
            );
        }
    }

    #[test]
    fn object_ids_outside_parts_are_refused_on_reading() {
        for hostile in ["../config", "", "AB", "manifests/x"] {
            let mut json = written_json();
            json["parts"][0]["object_id"] = hostile.into();
            let error = Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json))
                .expect_err("hostile object id");
            assert!(
                matches!(error, RepoError::Corrupt { .. }),
                "{hostile:?}: {error:?}"
            );
        }
    }

    #[test]
    fn a_manifest_recording_another_archive_is_refused() {
        let mut json = written_json();
        json["archive_id"] = "ffffffffffffffffffffffffffffffff".into();
        assert!(matches!(
            Manifest::open(&keys(), ARCHIVE_ID, &seal_json(&json)),
            Err(RepoError::Corrupt { .. })
        ));
    }
}
