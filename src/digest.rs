//! How huixi names what something was made from: session ids, analyser fingerprints, answer-cache keys,
//! input hashes. One spelling, so the same parts always give the same name.

use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the parts, each ended by a NUL so that ("ab", "c") and ("a", "bc") differ, in hex.
pub fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}
