//! The `config` object: the one plaintext object of a repository, read first by
//! a new appliance recovering from the bucket.
//!
//! Owns its JSON wire format (`ConfigV1`), the Argon2id key derivation from the
//! recovery passphrase and the wrapping of the master key. Pure: salt, nonce and
//! master key are handed in; no I/O, no clock, no randomness.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use serde::{Deserialize, Serialize};

use super::crypto::{open, seal, NONCE_LEN, SALT_LEN, TAG_LEN};
use super::{RepoError, RepoKeys, MAX_PART_LEN};

/// The remote format version this build writes, and the newest it reads.
/// 2: parts carry a stored/zstd flag inside their ciphertext. 3: parts are
/// sealed in 64 KiB segments, each with its own tag (see `part.rs`), and
/// manifests say 3 (a build that reads only format 2 refuses them with
/// [`RepoError::NewerFormat`] instead of calling the parts damaged). Older
/// buckets are read as they are (parts of formats 1 and 2 by their first
/// bytes and size, see [`super::sealed_len_fits`]), and their config is
/// kept at its version: its key wrap binds the version, and wrapping again
/// needs the passphrase (a passphrase change writes a format-3 config).
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version this build reads.
const OLDEST_FORMAT_VERSION: u32 = 1;

const CHUNKER_ALGORITHM: &str = "fastcdc-2020";
const KDF_ALGORITHM: &str = "argon2id";
const KDF_VERSION: u32 = 0x13;
const WRAP_ALGORITHM: &str = "xchacha20poly1305";
const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;

// Upper bounds on what a config may ask for, so a hostile or damaged bucket
// cannot make a Pi allocate gigabytes or spin for minutes while unlocking
// (a stranger may point the setup page's restore at their own bucket):
// four times what piarchive writes ([`KdfParams::DEFAULT`], 64 MiB and 3
// passes), so 256 MiB and 12 passes at most, a few seconds on a Pi 4.
// `piarchive recover` reads the config through the same check.
pub const MAX_KDF_FACTOR: u32 = 4;
pub const MAX_M_COST_KIB: u32 = MAX_KDF_FACTOR * 64 * 1024;
pub const MAX_T_COST: u32 = MAX_KDF_FACTOR * 3;
pub const MAX_P_COST: u32 = 16;

/// Content-defined chunking parameters (FastCDC, 2020 variant), in bytes.
/// Recorded in the config so every appliance writing to the bucket cuts the
/// same parts, and deduplication keeps working after a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// 1 MiB / 4 MiB / 16 MiB (docs/DESIGN.md "Fixed choices").
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 1024 * 1024,
        avg_size: 4 * 1024 * 1024,
        max_size: 16 * 1024 * 1024,
    };

    /// Within FastCDC's bounds (which it enforces by panicking), ordered, and
    /// no larger than a part may be.
    fn check(&self) -> Result<(), String> {
        use fastcdc::v2020 as cdc;
        let ChunkerParams {
            min_size,
            avg_size,
            max_size,
        } = *self;
        let within = (cdc::MINIMUM_MIN..=cdc::MINIMUM_MAX).contains(&min_size)
            && (cdc::AVERAGE_MIN..=cdc::AVERAGE_MAX).contains(&avg_size)
            && (cdc::MAXIMUM_MIN..=cdc::MAXIMUM_MAX).contains(&max_size)
            && max_size as usize <= MAX_PART_LEN;
        if within && min_size <= avg_size && avg_size <= max_size {
            Ok(())
        } else {
            Err(format!(
                "chunk sizes {min_size}/{avg_size}/{max_size} are not usable"
            ))
        }
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams::DEFAULT
    }
}

/// Argon2id cost parameters, checked when built: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommendation (one lane,
    /// as the Pi derives it on one core), about a second on a Pi 4.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<KdfParams, RepoError> {
        let refuse = |reason: String| Err(RepoError::BadKdfParams { reason });
        if m_cost_kib > MAX_M_COST_KIB {
            return refuse(format!(
                "it asks for {} MiB of memory, and piarchive allows at most {} MiB, {MAX_KDF_FACTOR} times what it writes",
                m_cost_kib / 1024,
                MAX_M_COST_KIB / 1024
            ));
        }
        if t_cost > MAX_T_COST {
            return refuse(format!(
                "it asks for {t_cost} passes, and piarchive allows at most {MAX_T_COST}, {MAX_KDF_FACTOR} times what it writes"
            ));
        }
        if p_cost > MAX_P_COST {
            return refuse(format!("{p_cost} lanes is more than {MAX_P_COST}"));
        }
        let params = KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        params.argon2().map_err(|error| RepoError::BadKdfParams {
            reason: format!("{m_cost_kib} KiB, {t_cost} passes, {p_cost} lanes: {error}"),
        })?;
        Ok(params)
    }

    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// The key-encryption key for `passphrase`.
    fn derive(&self, passphrase: &str, salt: &[u8; SALT_LEN]) -> Result<[u8; 32], RepoError> {
        let refuse = |error: argon2::Error| RepoError::BadKdfParams {
            reason: error.to_string(),
        };
        let mut key = [0u8; 32];
        self.argon2()
            .map_err(refuse)?
            .hash_password_into(passphrase.as_bytes(), salt, &mut key)
            .map_err(refuse)?;
        Ok(key)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::DEFAULT
    }
}

/// The repository config: everything needed, with the recovery passphrase, to
/// read the bucket back. Holds the master key only wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    // All bound into the key wrap: read-only once wrapped.
    format_version: u32,
    chunker: ChunkerParams,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    wrap_nonce: [u8; NONCE_LEN],
    // The master key sealed under the passphrase key: 32 bytes + tag.
    wrapped_master_key: [u8; WRAPPED_KEY_LEN],
}

impl RepoConfig {
    /// A new config wrapping `master_key` under `passphrase`, with the default
    /// chunker parameters. All of `master_key`, `salt` and `nonce` must be fresh
    /// random bytes (see [`super::random_bytes`]). Runs Argon2id once.
    pub fn create(
        passphrase: &str,
        master_key: [u8; 32],
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        kdf: KdfParams,
    ) -> Result<RepoConfig, RepoError> {
        RepoConfig::wrap(
            FORMAT_VERSION,
            ChunkerParams::DEFAULT,
            kdf,
            passphrase,
            master_key,
            salt,
            nonce,
        )
    }

    /// The format version the config was written in (parts of both formats
    /// may be in its bucket).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The chunker parameters every appliance writing to this bucket must use.
    pub fn chunker(&self) -> ChunkerParams {
        self.chunker
    }

    /// The Argon2id costs the passphrase key is derived with.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }

    /// Derives the passphrase key (Argon2id, slow by design), unwraps the
    /// master key and derives the repository keys from it.
    pub fn unlock(&self, passphrase: &str) -> Result<RepoKeys, RepoError> {
        Ok(RepoKeys::from_master_key(&self.master_key(passphrase)?))
    }

    /// The same master key wrapped under a new passphrase (fresh salt and nonce,
    /// possibly new costs), keeping the chunker parameters. Parts and manifests
    /// stay as they are. Runs Argon2id twice.
    pub fn change_passphrase(
        &self,
        old_passphrase: &str,
        new_passphrase: &str,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        kdf: KdfParams,
    ) -> Result<RepoConfig, RepoError> {
        let master_key = self.master_key(old_passphrase)?;
        RepoConfig::wrap(
            FORMAT_VERSION,
            self.chunker,
            kdf,
            new_passphrase,
            master_key,
            salt,
            nonce,
        )
    }

    fn wrap(
        format_version: u32,
        chunker: ChunkerParams,
        kdf: KdfParams,
        passphrase: &str,
        master_key: [u8; 32],
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
    ) -> Result<RepoConfig, RepoError> {
        let mut config = RepoConfig {
            format_version,
            chunker,
            kdf,
            salt,
            wrap_nonce: nonce,
            wrapped_master_key: [0; WRAPPED_KEY_LEN],
        };
        let key_encryption_key = kdf.derive(passphrase, &salt)?;
        let sealed = seal(
            &XChaCha20Poly1305::new(&key_encryption_key.into()),
            &config.associated_data(),
            nonce,
            &master_key,
        )?;
        // `seal` writes nonce || wrapped key || tag; the nonce is kept apart.
        config
            .wrapped_master_key
            .copy_from_slice(&sealed[NONCE_LEN..]);
        Ok(config)
    }

    /// Derives the passphrase key (Argon2id) and unwraps the master key, for
    /// an appliance rebuilding itself from the bucket, which must store the
    /// master key as setup would. A wrong passphrase is
    /// [`RepoError::WrongPassphrase`].
    pub fn master_key(&self, passphrase: &str) -> Result<[u8; 32], RepoError> {
        let key_encryption_key = self.kdf.derive(passphrase, &self.salt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + WRAPPED_KEY_LEN);
        sealed.extend_from_slice(&self.wrap_nonce);
        sealed.extend_from_slice(&self.wrapped_master_key);
        let master_key = open(
            &XChaCha20Poly1305::new(&key_encryption_key.into()),
            &self.associated_data(),
            &sealed,
        )
        .map_err(|_| RepoError::WrongPassphrase)?;
        master_key
            .try_into()
            .map_err(|_| RepoError::WrongPassphrase)
    }

    /// Binds every parameter of the config into the key wrap, so a config with
    /// altered parameters does not unlock. Fixed layout; part of the format.
    fn associated_data(&self) -> Vec<u8> {
        format!(
            "piarchive config\0{}\0{CHUNKER_ALGORITHM}\0{}\0{}\0{}\0{KDF_ALGORITHM}\0{KDF_VERSION}\0{}\0{}\0{}\0{}",
            self.format_version,
            self.chunker.min_size,
            self.chunker.avg_size,
            self.chunker.max_size,
            self.kdf.m_cost_kib,
            self.kdf.t_cost,
            self.kdf.p_cost,
            hex::encode(self.salt),
        )
        .into_bytes()
    }

    /// The JSON stored at `<prefix>/config`.
    pub fn encode(&self) -> Vec<u8> {
        let wire = ConfigV1 {
            format_version: self.format_version,
            chunker: ChunkerV1 {
                algorithm: CHUNKER_ALGORITHM.to_owned(),
                min_size: self.chunker.min_size,
                avg_size: self.chunker.avg_size,
                max_size: self.chunker.max_size,
            },
            kdf: KdfV1 {
                algorithm: KDF_ALGORITHM.to_owned(),
                version: KDF_VERSION,
                m_cost_kib: self.kdf.m_cost_kib,
                t_cost: self.kdf.t_cost,
                p_cost: self.kdf.p_cost,
                salt: hex::encode(self.salt),
            },
            master_key: WrappedKeyV1 {
                algorithm: WRAP_ALGORITHM.to_owned(),
                nonce: hex::encode(self.wrap_nonce),
                ciphertext: hex::encode(self.wrapped_master_key),
            },
        };
        // Serializing a struct of strings and integers to a Vec cannot fail.
        serde_json::to_vec_pretty(&wire).expect("config serializes")
    }

    /// Reads a config written by this or an older format version. A newer one
    /// is refused with [`RepoError::NewerFormat`] before anything else is read.
    pub fn decode(bytes: &[u8]) -> Result<RepoConfig, RepoError> {
        let bad = |reason: String| RepoError::BadConfig { reason };
        let probe: VersionProbe = serde_json::from_slice(bytes)
            .map_err(|error| bad(format!("it is not a piarchive config: {error}")))?;
        match probe.format_version {
            OLDEST_FORMAT_VERSION..=FORMAT_VERSION => {}
            newer if newer > FORMAT_VERSION => {
                return Err(RepoError::NewerFormat { found: newer });
            }
            other => return Err(bad(format!("format version {other} does not exist"))),
        }
        let wire: ConfigV1 =
            serde_json::from_slice(bytes).map_err(|error| bad(error.to_string()))?;

        if wire.chunker.algorithm != CHUNKER_ALGORITHM {
            return Err(bad(format!("unknown chunker {:?}", wire.chunker.algorithm)));
        }
        let chunker = ChunkerParams {
            min_size: wire.chunker.min_size,
            avg_size: wire.chunker.avg_size,
            max_size: wire.chunker.max_size,
        };
        chunker.check().map_err(bad)?;

        if wire.kdf.algorithm != KDF_ALGORITHM || wire.kdf.version != KDF_VERSION {
            return Err(bad(format!(
                "unknown key derivation {:?} version {}",
                wire.kdf.algorithm, wire.kdf.version
            )));
        }
        let kdf = KdfParams::new(wire.kdf.m_cost_kib, wire.kdf.t_cost, wire.kdf.p_cost)
            .map_err(|error| bad(error.to_string()))?;

        if wire.master_key.algorithm != WRAP_ALGORITHM {
            return Err(bad(format!(
                "unknown key wrap {:?}",
                wire.master_key.algorithm
            )));
        }
        Ok(RepoConfig {
            format_version: probe.format_version,
            chunker,
            kdf,
            salt: decode_hex("kdf.salt", &wire.kdf.salt)?,
            wrap_nonce: decode_hex("master_key.nonce", &wire.master_key.nonce)?,
            wrapped_master_key: decode_hex("master_key.ciphertext", &wire.master_key.ciphertext)?,
        })
    }
}

fn decode_hex<const N: usize>(field: &str, value: &str) -> Result<[u8; N], RepoError> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(value, &mut bytes).map_err(|_| RepoError::BadConfig {
        reason: format!("{field} is not {N} bytes of hex"),
    })?;
    Ok(bytes)
}

/// Read first: only the version, whatever else a newer format holds.
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

/// Format version 1 of `<prefix>/config`. Any change a reader must understand
/// needs a new version.
#[derive(Serialize, Deserialize)]
struct ConfigV1 {
    format_version: u32,
    chunker: ChunkerV1,
    kdf: KdfV1,
    master_key: WrappedKeyV1,
}

#[derive(Serialize, Deserialize)]
struct ChunkerV1 {
    algorithm: String,
    min_size: u32,
    avg_size: u32,
    max_size: u32,
}

#[derive(Serialize, Deserialize)]
struct KdfV1 {
    algorithm: String,
    version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct WrappedKeyV1 {
    algorithm: String,
    nonce: String,
    ciphertext: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{part_key, ObjectId};

    const PASSPHRASE: &str = "correct horse battery staple";
    const MASTER_KEY: [u8; 32] = [0x42; 32];

    /// Cheap costs so the tests stay fast; the default is checked separately.
    fn cheap_kdf() -> KdfParams {
        KdfParams::new(64, 1, 1).expect("valid test costs")
    }

    fn config() -> RepoConfig {
        RepoConfig::create(
            PASSPHRASE,
            MASTER_KEY,
            [7; SALT_LEN],
            [9; NONCE_LEN],
            cheap_kdf(),
        )
        .expect("create")
    }

    /// An edit of the config's JSON, for table-driven cases.
    type JsonEdit = fn(&mut serde_json::Value);

    /// The encoded config as JSON, edited by `edit`, decoded again.
    fn decode_edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<RepoConfig, RepoError> {
        let mut json: serde_json::Value =
            serde_json::from_slice(&config().encode()).expect("config is JSON");
        edit(&mut json);
        RepoConfig::decode(&serde_json::to_vec(&json).expect("json"))
    }

    #[test]
    fn create_encode_decode_unlock_round_trip() {
        let config = config();
        let decoded = RepoConfig::decode(&config.encode()).expect("decode");
        assert_eq!(decoded, config);
        assert_eq!(decoded.chunker(), ChunkerParams::DEFAULT);
        assert_eq!(decoded.kdf(), cheap_kdf());

        // The unlocked keys are the master key's keys: they open what setup sealed.
        let keys = decoded.unlock(PASSPHRASE).expect("unlock");
        let setup_keys = RepoKeys::from_master_key(&MASTER_KEY);
        let id = setup_keys.object_id(&[1; 32]);
        assert_eq!(keys.object_id(&[1; 32]), id);
        let sealed = setup_keys
            .encrypt_part(&id, [5; NONCE_LEN], b"part")
            .expect("seal");
        assert_eq!(keys.decrypt_part(&id, &sealed).expect("open"), b"part");
    }

    #[test]
    fn a_format_1_config_still_unlocks_and_a_passphrase_change_writes_format_2() {
        let old = RepoConfig::wrap(
            1,
            ChunkerParams::DEFAULT,
            cheap_kdf(),
            PASSPHRASE,
            MASTER_KEY,
            [7; SALT_LEN],
            [9; NONCE_LEN],
        )
        .expect("wrap");
        let encoded = old.encode();
        let json: serde_json::Value = serde_json::from_slice(&encoded).expect("JSON");
        assert_eq!(json["format_version"], 1);
        let decoded = RepoConfig::decode(&encoded).expect("a format-1 config is read");
        assert_eq!(decoded.format_version(), 1);
        assert_eq!(decoded.master_key(PASSPHRASE).expect("unlock"), MASTER_KEY);
        // Claiming another version breaks the wrap, which binds it.
        let claimed = String::from_utf8(encoded)
            .expect("utf-8")
            .replace("\"format_version\": 1", "\"format_version\": 2");
        let claimed = RepoConfig::decode(claimed.as_bytes()).expect("decode");
        assert_eq!(
            claimed.master_key(PASSPHRASE),
            Err(RepoError::WrongPassphrase)
        );
        let changed = decoded
            .change_passphrase(
                PASSPHRASE,
                "new",
                [1; SALT_LEN],
                [2; NONCE_LEN],
                cheap_kdf(),
            )
            .expect("change");
        assert_eq!(changed.format_version(), FORMAT_VERSION);
        assert_eq!(changed.master_key("new").expect("unlock"), MASTER_KEY);
    }

    #[test]
    fn the_encoding_is_self_describing_and_holds_no_plain_key() {
        let encoded = config().encode();
        let json: serde_json::Value = serde_json::from_slice(&encoded).expect("JSON");
        assert_eq!(json["format_version"], 3);
        assert_eq!(json["chunker"]["algorithm"], "fastcdc-2020");
        assert_eq!(json["chunker"]["min_size"], 1_048_576);
        assert_eq!(json["chunker"]["avg_size"], 4_194_304);
        assert_eq!(json["chunker"]["max_size"], 16_777_216);
        assert_eq!(json["kdf"]["algorithm"], "argon2id");
        assert_eq!(json["kdf"]["m_cost_kib"], 64);
        assert_eq!(json["kdf"]["salt"], hex::encode([7u8; SALT_LEN]));
        assert_eq!(json["master_key"]["algorithm"], "xchacha20poly1305");
        assert_eq!(json["master_key"]["nonce"], hex::encode([9u8; NONCE_LEN]));
        let text = String::from_utf8(encoded).expect("utf-8");
        assert!(!text.contains(&hex::encode(MASTER_KEY)));
    }

    #[test]
    fn a_wrong_passphrase_is_refused_with_a_sentence() {
        let config = config();
        for wrong in [
            "",
            "Correct horse battery staple",
            "correct horse battery staple ",
            "correct horse battery staple\n",
            "correct horse battery stapl",
        ] {
            assert_eq!(
                config.unlock(wrong).expect_err("wrong passphrase"),
                RepoError::WrongPassphrase,
                "{wrong:?}"
            );
        }
        assert!(RepoError::WrongPassphrase
            .to_string()
            .starts_with("The recovery passphrase does not unlock this backup"));
    }

    #[test]
    fn altered_parameters_do_not_unlock() {
        let cases: [(&str, JsonEdit); 5] = [
            ("t_cost", |json| json["kdf"]["t_cost"] = 2.into()),
            ("m_cost", |json| json["kdf"]["m_cost_kib"] = 128.into()),
            ("salt", |json| {
                json["kdf"]["salt"] = hex::encode([8u8; SALT_LEN]).into()
            }),
            ("chunker", |json| {
                json["chunker"]["min_size"] = 65_536.into()
            }),
            ("wrapped key", |json| {
                let mut wrapped =
                    hex::decode(json["master_key"]["ciphertext"].as_str().expect("hex"))
                        .expect("hex");
                wrapped[0] ^= 1;
                json["master_key"]["ciphertext"] = hex::encode(wrapped).into();
            }),
        ];
        for (what, edit) in cases {
            let altered = decode_edited(edit).expect("still a well-formed config");
            assert_eq!(
                altered.unlock(PASSPHRASE).expect_err(what),
                RepoError::WrongPassphrase,
                "{what}"
            );
        }
    }

    #[test]
    fn a_newer_format_is_refused_whatever_it_holds() {
        let newer_shapes = [
            r#"{"format_version": 4}"#.to_owned(),
            r#"{"format_version": 7, "chunker": "something new", "keys": [1, 2]}"#.to_owned(),
            String::from_utf8(config().encode())
                .expect("utf-8")
                .replace("\"format_version\": 3", "\"format_version\": 4"),
        ];
        for (index, text) in newer_shapes.iter().enumerate() {
            let error = RepoConfig::decode(text.as_bytes()).expect_err("newer");
            assert!(
                matches!(error, RepoError::NewerFormat { found } if found >= 4),
                "case {index}: {error:?}"
            );
        }
        assert_eq!(
            RepoConfig::decode(newer_shapes[0].as_bytes())
                .expect_err("newer")
                .to_string(),
            "This backup was written by a newer piarchive (format 4); update this appliance to read it."
        );
    }

    #[test]
    fn malformed_configs_are_refused() {
        let cases: &[(&str, JsonEdit)] = &[
            ("version 0", |json| json["format_version"] = 0.into()),
            ("no chunker", |json| {
                json["chunker"] = serde_json::Value::Null
            }),
            ("other chunker", |json| {
                json["chunker"]["algorithm"] = "rabin".into()
            }),
            ("min below fastcdc's bound", |json| {
                json["chunker"]["min_size"] = 1.into()
            }),
            ("max beyond a part", |json| {
                json["chunker"]["max_size"] = (32 * 1024 * 1024).into()
            }),
            ("min above avg", |json| {
                json["chunker"]["min_size"] = 1_048_576.into();
                json["chunker"]["avg_size"] = 262_144.into();
            }),
            ("argon2i", |json| {
                json["kdf"]["algorithm"] = "argon2i".into()
            }),
            ("argon2 v1.0", |json| json["kdf"]["version"] = 16.into()),
            ("hostile memory cost", |json| {
                json["kdf"]["m_cost_kib"] = 4_000_000_000u32.into()
            }),
            ("zero passes", |json| json["kdf"]["t_cost"] = 0.into()),
            ("short salt", |json| json["kdf"]["salt"] = "0011".into()),
            ("nonce not hex", |json| {
                json["master_key"]["nonce"] = "zz".repeat(24).into()
            }),
            ("short wrapped key", |json| {
                json["master_key"]["ciphertext"] = "00".repeat(32).into()
            }),
            ("other wrap", |json| {
                json["master_key"]["algorithm"] = "aes-256-gcm".into()
            }),
        ];
        for &(what, edit) in cases {
            let error = decode_edited(edit).expect_err(what);
            assert!(
                matches!(error, RepoError::BadConfig { .. }),
                "{what}: {error:?}"
            );
        }
        for garbage in [
            &b""[..],
            b"not json",
            b"[1,2]",
            b"{\"format_version\":\"1\"}",
            &[0xff; 10],
        ] {
            let error = RepoConfig::decode(garbage).expect_err("garbage");
            assert!(
                matches!(error, RepoError::BadConfig { .. }),
                "{garbage:?}: {error:?}"
            );
        }
    }

    #[test]
    fn changing_the_passphrase_keeps_the_master_key() {
        let old = config();
        let new = old
            .change_passphrase(
                PASSPHRASE,
                "new words",
                [1; SALT_LEN],
                [2; NONCE_LEN],
                cheap_kdf(),
            )
            .expect("change");
        assert_eq!(
            new.unlock(PASSPHRASE).expect_err("old"),
            RepoError::WrongPassphrase
        );
        let keys = new.unlock("new words").expect("unlock");
        let id = ObjectId::parse(&"0a".repeat(32)).expect("id");
        let sealed = RepoKeys::from_master_key(&MASTER_KEY)
            .encrypt_part(&id, [3; NONCE_LEN], b"kept")
            .expect("seal");
        assert_eq!(keys.decrypt_part(&id, &sealed).expect("open"), b"kept");
        assert_eq!(part_key(&id), format!("parts/0a/{id}"));
        assert_eq!(
            old.change_passphrase("guess", "x", [1; SALT_LEN], [2; NONCE_LEN], cheap_kdf()),
            Err(RepoError::WrongPassphrase)
        );
    }

    #[test]
    fn kdf_costs_are_bounded() {
        assert_eq!(KdfParams::new(64 * 1024, 3, 1), Ok(KdfParams::DEFAULT));
        assert!(KdfParams::new(256 * 1024, 12, 16).is_ok());
        for (m_cost_kib, t_cost, p_cost) in [
            (7, 1, 1),
            (256 * 1024 + 1, 1, 1),
            (1024 * 1024, 3, 1),
            (64, 0, 1),
            (64, 13, 1),
            (64, 65, 1),
            (64, 1, 0),
            (1024, 1, 17),
            (8, 1, 2),
        ] {
            assert!(
                matches!(
                    KdfParams::new(m_cost_kib, t_cost, p_cost),
                    Err(RepoError::BadKdfParams { .. })
                ),
                "{m_cost_kib}/{t_cost}/{p_cost}"
            );
        }
        // A hostile bucket's 1 GiB and 64 passes: refused before any
        // hashing, with a sentence naming the limit.
        let refused = KdfParams::new(1024 * 1024, 64, 1).unwrap_err().to_string();
        assert!(refused.contains("1024 MiB"), "{refused}");
        assert!(refused.contains("at most 256 MiB"), "{refused}");
        let refused = KdfParams::new(64 * 1024, 64, 1).unwrap_err().to_string();
        assert!(refused.contains("at most 12"), "{refused}");
    }
}
