//! Secrets at rest: a tenant's webhook secret (and, with the archive puller, its WeCom credentials)
//! is stored sealed with the deployment's key (`HUIXI_MASTER_KEY`: 32 bytes, as 64 hex characters),
//! AES-256-GCM with a random nonce per value, so the CRM's database — and every backup of it — holds
//! no usable secret. Without a key, values are stored as they are.
//!
//! A sealed value reads `enc:v1:<hex nonce><hex ciphertext and tag>`; a value without the prefix is
//! taken as plain (written before a key was set), so setting a key needs no migration.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};

const PREFIX: &str = "enc:v1:";
/// The compact form, for message text (a third larger than the text, where hex would double it):
/// `enc:v2:<base64 of nonce, ciphertext and tag>`.
const COMPACT: &str = "enc:v2:";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "HUIXI_MASTER_KEY must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`"
    )]
    Malformed,
    #[error("a stored secret is sealed but no HUIXI_MASTER_KEY is set")]
    Missing,
    #[error("a stored secret does not open with this HUIXI_MASTER_KEY (another key, or damaged)")]
    DoesNotOpen,
}

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<MasterKey, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::Malformed)?;
        if bytes.len() != 32 {
            return Err(SecretError::Malformed);
        }
        Ok(MasterKey(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(
            &bytes,
        ))))
    }

    pub fn seal(&self, plain: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, plain.as_bytes())
            .expect("AES-GCM encrypts any input that fits in memory");
        format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(sealed))
    }

    /// [`MasterKey::seal`] in the compact form, for bulk text.
    pub fn seal_compact(&self, plain: &str) -> String {
        use base64::Engine as _;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut bytes = nonce.to_vec();
        bytes.extend(
            self.0
                .encrypt(&nonce, plain.as_bytes())
                .expect("AES-GCM encrypts any input that fits in memory"),
        );
        format!(
            "{COMPACT}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        )
    }
}

/// Seals with the key when there is one.
pub fn seal(key: Option<&MasterKey>, plain: &str) -> String {
    match key {
        Some(k) => k.seal(plain),
        None => plain.to_string(),
    }
}

/// Opens a stored value: sealed ones with the key, plain ones as they are.
pub fn open(key: Option<&MasterKey>, stored: &str) -> Result<String, SecretError> {
    use base64::Engine as _;
    let bytes = if let Some(rest) = stored.strip_prefix(PREFIX) {
        hex::decode(rest).map_err(|_| SecretError::DoesNotOpen)?
    } else if let Some(rest) = stored.strip_prefix(COMPACT) {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(rest)
            .map_err(|_| SecretError::DoesNotOpen)?
    } else {
        return Ok(stored.to_string());
    };
    let key = key.ok_or(SecretError::Missing)?;
    if bytes.len() < NONCE_BYTES {
        return Err(SecretError::DoesNotOpen);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    let plain = key
        .0
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| SecretError::DoesNotOpen)?;
    String::from_utf8(plain).map_err(|_| SecretError::DoesNotOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows() {
        let key = MasterKey::from_hex(KEY).unwrap();
        let sealed = seal(Some(&key), "whsec-correct-horse");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("horse"));
        assert_ne!(
            sealed,
            seal(Some(&key), "whsec-correct-horse"),
            "a nonce per value"
        );
        assert_eq!(open(Some(&key), &sealed).unwrap(), "whsec-correct-horse");
        let other = MasterKey::from_hex(&KEY.replace("00", "ff")).unwrap();
        assert!(matches!(
            open(Some(&other), &sealed),
            Err(SecretError::DoesNotOpen)
        ));
        assert!(matches!(open(None, &sealed), Err(SecretError::Missing)));
        assert_eq!(
            open(Some(&key), "plain-from-before").unwrap(),
            "plain-from-before"
        );
        assert!(MasterKey::from_hex("abcd").is_err());
    }
}
