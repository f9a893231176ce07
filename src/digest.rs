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

/// How many times something stored under `stored` failed on exactly the inputs `hash` names: a
/// failed reading is stored as `retry<N>:<hash>` (`retry:<hash>` from before counts were kept), so
/// the next run knows both that it must try again and how often it already did.
pub fn failed_tries(stored: &str, hash: &str) -> Option<u32> {
    let (head, rest) = stored.split_once(':')?;
    if rest != hash {
        return None;
    }
    match head.strip_prefix("retry")? {
        "" => Some(1),
        n => n.parse().ok(),
    }
}
