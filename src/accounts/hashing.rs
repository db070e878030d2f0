//! Argon2id password hashing and checking, at most [`MAX_HASHES_AT_ONCE`]
//! at a time.
//!
//! A permit carries a buffer of Argon2 memory blocks sized for the
//! parameters new hashes use (the `argon2` crate's defaults: 19 MiB, 2
//! passes, 1 lane), filled by `Argon2::hash_password_into_with_memory`. The
//! buffers stay with the permits while hashes keep coming (a flood of
//! logins or registrations allocates none per hash) and are freed when the
//! last permit comes back with nobody waiting, so an idle appliance holds no
//! Argon2 memory. So Argon2 adds at most `MAX_HASHES_AT_ONCE` × 19 MiB.
//! Before a permit allocates its buffer, the allocator's free pages go back
//! to the system (glibc `malloc_trim`): what a burst of connections freed
//! in per-thread arenas (~12 MiB measured after the hostile bench's TLS and
//! connection phases) is not still resident under the new 19 MiB.
//!
//! A stored PHC string is checked with the parameters it carries (an older
//! build's or the crate's former defaults): a smaller one in the front of
//! the permit's buffer, a larger one in a buffer of its own for that check,
//! within the caps a repository config may ask for ([`crate::repo::MAX_M_COST_KIB`],
//! [`crate::repo::MAX_T_COST`], [`crate::repo::MAX_P_COST`]), so a damaged or
//! hostile catalog cannot make a Pi allocate gigabytes; beyond them the
//! password is refused. Outputs are compared in constant time
//! (`password_hash::Output`'s equality).

use std::sync::{Condvar, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::repo::{MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST};

/// Argon2 hashes or verifications running at once, at most.
pub const MAX_HASHES_AT_ONCE: usize = 2;

/// The resident memory the server aims to stay under while attacked
/// (`bench/hostile`'s goal): a hash that needs a new buffer while another
/// runs waits for that one's buffer instead when the new one would not fit
/// below it. The first hash always runs.
pub const MEMORY_GOAL_BYTES: u64 = 64 << 20;

/// The permits: how many are taken, and the buffers of those that are not.
struct Permits {
    state: Mutex<PermitState>,
    freed: Condvar,
}

struct PermitState {
    taken: usize,
    /// Callers waiting for a permit.
    waiting: usize,
    /// Buffers of returned permits, each [`buffer_blocks`] long, kept while
    /// a permit is taken or awaited.
    idle: Vec<Vec<Block>>,
    /// Permits taken whose buffer is being allocated (not yet resident).
    allocating: usize,
}

impl PermitState {
    /// Whether a caller may take a permit now: one is free, and the caller
    /// finds a buffer, or is the only hash, or a new buffer fits below
    /// [`MEMORY_GOAL_BYTES`] given the process's `resident` bytes (unknown:
    /// it fits).
    fn may_take(&self, resident: impl FnOnce() -> Option<u64>) -> bool {
        if self.taken >= MAX_HASHES_AT_ONCE {
            return false;
        }
        if !self.idle.is_empty() || self.taken == 0 {
            return true;
        }
        let buffer = (buffer_blocks() * Block::SIZE) as u64;
        let new_buffers = self.allocating as u64 + 1;
        resident().is_none_or(|bytes| bytes + new_buffers * buffer <= MEMORY_GOAL_BYTES)
    }
}

/// The process's resident memory (VmRSS), where Linux tells it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

static PERMITS: Permits = Permits {
    state: Mutex::new(PermitState {
        taken: 0,
        waiting: 0,
        idle: Vec::new(),
        allocating: 0,
    }),
    freed: Condvar::new(),
};

/// The blocks of a permit's buffer: what new hashes need.
fn buffer_blocks() -> usize {
    Params::default().block_count()
}

/// A permit to run Argon2 and its memory; gives both back when dropped,
/// also when hashing panicked.
pub(super) struct HashPermit {
    blocks: Vec<Block>,
}

impl HashPermit {
    /// Waits until fewer than [`MAX_HASHES_AT_ONCE`] permits are taken and
    /// the permit's buffer fits (see [`PermitState::may_take`]).
    pub(super) fn take() -> HashPermit {
        let lock = || PERMITS.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = lock();
        state.waiting += 1;
        while !state.may_take(resident_bytes) {
            state = PERMITS.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting -= 1;
        state.taken += 1;
        if let Some(blocks) = state.idle.pop() {
            return HashPermit { blocks };
        }
        state.allocating += 1;
        drop(state);
        // Outside the lock, once per permit and burst of hashes; resident
        // at once (every block is written).
        release_free_memory();
        let blocks = vec![Block::default(); buffer_blocks()];
        lock().allocating -= 1;
        HashPermit { blocks }
    }

    /// Argon2 `algorithm`/`version`/`params` of `password` and `salt` into
    /// `out`, in this permit's buffer when the parameters fit it, else in a
    /// buffer of their own (the caller checked them against the caps).
    fn hash_into(
        &mut self,
        argon2: &Argon2,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        let needed = argon2.params().block_count();
        if needed <= self.blocks.len() {
            argon2.hash_password_into_with_memory(password, salt, out, &mut self.blocks[..needed])
        } else {
            argon2.hash_password_into_with_memory(
                password,
                salt,
                out,
                vec![Block::default(); needed],
            )
        }
    }
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        let mut state = PERMITS.state.lock().unwrap_or_else(|e| e.into_inner());
        state.idle.push(blocks);
        state.taken -= 1;
        // The last permit back with nobody waiting: the burst is over.
        let unused = if state.taken == 0 && state.waiting == 0 {
            std::mem::take(&mut state.idle)
        } else {
            Vec::new()
        };
        PERMITS.freed.notify_one();
        drop(state);
        // Freed outside the lock.
        drop(unused);
    }
}

/// Hands the allocator's free pages back to the system (glibc keeps what
/// other threads freed in their arenas; musl's allocator returns it
/// itself).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free memory back; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A new Argon2id PHC string of `password` with the crate's default
/// parameters and a random salt.
pub fn hash_password(password: &str) -> String {
    hash_with_salt(password, &SaltString::generate(&mut rand::rngs::OsRng))
}

fn hash_with_salt(password: &str, salt: &SaltString) -> String {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default());
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .expect("a generated salt decodes");
    let mut permit = HashPermit::take();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        permit
            .hash_into(&argon2, password.as_bytes(), salt_bytes, out)
            .map_err(Into::into)
    })
    .expect("Argon2id with default parameters accepts any password up to 4 GiB");
    drop(permit);
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).expect("default parameters print"),
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
}

/// Whether `password` is the one `hash` (a PHC string) was made of. False
/// for an unreadable hash, and for one asking more than the caps allow.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Some((argon2, salt, expected)) = parse_within_caps(hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut permit = HashPermit::take();
    let computed = Output::init_with(expected.len(), |out| {
        permit
            .hash_into(&argon2, password.as_bytes(), salt_bytes, out)
            .map_err(Into::into)
    });
    drop(permit);
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|computed| computed == expected)
}

/// The Argon2 context, salt and output of a PHC string, if it is one whose
/// memory, passes and lanes are within the caps.
fn parse_within_caps(hash: &str) -> Option<(Argon2<'static>, Salt<'_>, Output)> {
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > MAX_T_COST {
        return None;
    }
    if params.p_cost() > MAX_P_COST {
        return None;
    }
    // Associated data are copied into the params; nothing borrows `parsed`.
    Some((
        Argon2::new(algorithm, version, params),
        parsed.salt?,
        parsed.hash?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    /// A PHC string made by the crate's own path, with `params`.
    fn crate_hash(algorithm: Algorithm, params: Params, password: &str) -> String {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn reused_buffers_give_the_crate_s_hashes() {
        for password in ["correct horse", "another pass", ""] {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let expected = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .unwrap()
                .to_string();
            // Twice in a row: the second fills a buffer the first used.
            assert_eq!(hash_with_salt(password, &salt), expected);
            assert_eq!(hash_with_salt(password, &salt), expected);
            assert!(expected.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        }
        let ours = hash_password("correct horse");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(verify_password(&ours, "correct horse"));
        assert!(!verify_password(&ours, "correct horsf"));
    }

    #[test]
    fn hashes_with_other_parameters_still_verify() {
        let smaller = Params::new(8 * 1024, 3, 1, None).unwrap();
        let larger = Params::new(24 * 1024, 1, 2, None).unwrap();
        let longer_output = Params::new(4 * 1024, 2, 1, Some(64)).unwrap();
        for (algorithm, params) in [
            (Algorithm::Argon2id, smaller),
            (Algorithm::Argon2id, larger),
            (Algorithm::Argon2id, longer_output),
            (Algorithm::Argon2i, Params::default()),
        ] {
            let hash = crate_hash(algorithm, params, "member password");
            assert!(verify_password(&hash, "member password"), "{hash}");
            assert!(!verify_password(&hash, "member passwore"), "{hash}");
        }
    }

    #[test]
    fn a_second_hash_takes_a_new_buffer_only_below_the_memory_goal() {
        let buffer = (buffer_blocks() * Block::SIZE) as u64;
        let state = |taken, idle: usize, allocating| PermitState {
            taken,
            waiting: 0,
            idle: (0..idle).map(|_| Vec::new()).collect(),
            allocating,
        };
        let unknown = || None;
        let low = || Some(8 << 20);
        let high = || Some(MEMORY_GOAL_BYTES - buffer + 1);
        // The first hash always runs, whatever the process holds.
        assert!(state(0, 0, 0).may_take(high));
        // A second with a buffer at hand needs no room.
        assert!(state(1, 1, 0).may_take(high));
        // A second needing a new buffer: only where it fits.
        assert!(state(1, 0, 0).may_take(low));
        assert!(!state(1, 0, 0).may_take(high));
        assert!(state(1, 0, 0).may_take(|| Some(MEMORY_GOAL_BYTES - buffer)));
        // The first one's buffer, not yet resident, counts too.
        assert!(!state(1, 0, 1).may_take(|| Some(MEMORY_GOAL_BYTES - buffer)));
        assert!(state(1, 0, 0).may_take(unknown));
        // Never more than the permits.
        assert!(!state(MAX_HASHES_AT_ONCE, 1, 0).may_take(low));
    }

    #[test]
    fn hashes_beyond_the_caps_are_refused_without_hashing() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let output = Output::new(&[7u8; 32]).unwrap();
        let phc = |params: String| format!("$argon2id$v=19${params}${}${output}", salt.as_str());
        let at_the_caps = phc(format!("m={MAX_M_COST_KIB},t={MAX_T_COST},p={MAX_P_COST}"));
        assert!(parse_within_caps(&at_the_caps).is_some(), "{at_the_caps}");
        for params in [
            format!("m={},t=2,p=1", MAX_M_COST_KIB + 1),
            format!("m=19456,t={},p=1", MAX_T_COST + 1),
            format!("m=19456,t=2,p={}", MAX_P_COST + 1),
        ] {
            let hash = phc(params);
            assert!(PasswordHash::new(&hash).is_ok(), "{hash}");
            assert!(parse_within_caps(&hash).is_none(), "{hash}");
            assert!(!verify_password(&hash, "member password"));
        }
        assert!(!verify_password("not a PHC string", "member password"));
        assert!(!verify_password(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "member password"
        ));
    }
}
