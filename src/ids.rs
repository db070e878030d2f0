//! Identifiers, secrets and the wall clock: the only places the appliance
//! draws randomness or reads the time outside the edges that hand them to
//! pure code.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Whether `c` changes the direction text is shown in (the embeddings,
/// overrides and isolates of Unicode's bidirectional algorithm, and the
/// marks): `invoice\u{202E}fdp.exe` would show as `invoiceexe.pdf`.
/// Refused in usernames, stripped from archive names and filenames.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A random 128-bit id as 32 lowercase hex digits (archives, users, uploads).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A random 256-bit secret, URL-safe base64 (session and API tokens).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `id` looks like one of ours; anything else is refused before it
/// reaches a table or a file path.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_millis() / 1000
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_distinct() {
        let a = random_id();
        let b = random_id();
        assert!(is_valid_id(&a) && is_valid_id(&b));
        assert_ne!(a, b);
        assert_eq!(random_token().len(), 43);
    }

    #[test]
    fn rejects_foreign_ids() {
        for id in [
            "",
            "../etc/passwd",
            "ABCDEF0123456789abcdef0123456789",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert!(!is_valid_id(id), "{id}");
        }
    }
}
