//! The tenant's RSA private keys, by the version WeCom numbers them with (`publickey_ver`). After a
//! key rotation in the WeCom admin, items already archived keep the old version: the ring keeps
//! every version the tenant gives it, so old and new items both decrypt.

use std::collections::BTreeMap;

use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};

pub struct KeyRing {
    keys: BTreeMap<u32, RsaPrivateKey>,
}

impl KeyRing {
    /// Parses PEM keys (PKCS#1 `BEGIN RSA PRIVATE KEY`, as WeCom's guide generates them, or PKCS#8),
    /// naming the version whose key does not parse.
    pub fn parse(pems: &BTreeMap<u32, String>) -> Result<KeyRing, String> {
        let mut keys = BTreeMap::new();
        for (version, pem) in pems {
            let key = RsaPrivateKey::from_pkcs1_pem(pem)
                .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
                .map_err(|e| format!("private key version {version} is not an RSA PEM key: {e}"))?;
            keys.insert(*version, key);
        }
        Ok(KeyRing { keys })
    }

    /// An item's random key: base64, RSA PKCS#1 v1.5 with the key of its version.
    pub fn random_key(&self, version: u32, encrypted: &str) -> Result<String, String> {
        let key = self.keys.get(&version).ok_or_else(|| {
            let have: Vec<String> = self.keys.keys().map(u32::to_string).collect();
            format!(
                "no private key for publickey_ver {version} (the ring holds {}); add it and replay",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encrypted.trim())
            .map_err(|e| format!("encrypt_random_key is not base64: {e}"))?;
        let plain = key.decrypt(Pkcs1v15Encrypt, &bytes).map_err(|e| {
            format!("encrypt_random_key does not decrypt with key version {version}: {e}")
        })?;
        String::from_utf8(plain).map_err(|_| "the random key is not text".to_string())
    }
}

/// What the SDK leaves around the JSON it decrypts: control bytes (NULs, padding) that no JSON
/// text may hold outside a string and none inside one unescaped. Removed before parsing.
pub fn strip_control(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().filter(|b| *b >= 0x20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::RsaPublicKey;

    /// rand's seeded generator, for the rand_core version the rsa crate takes.
    struct Seeded(rand::rngs::StdRng);
    impl rsa::rand_core::RngCore for Seeded {
        fn next_u32(&mut self) -> u32 {
            rand::RngCore::next_u32(&mut self.0)
        }
        fn next_u64(&mut self) -> u64 {
            rand::RngCore::next_u64(&mut self.0)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            rand::RngCore::fill_bytes(&mut self.0, dest)
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            rand::RngCore::fill_bytes(&mut self.0, dest);
            Ok(())
        }
    }
    impl rsa::rand_core::CryptoRng for Seeded {}
    fn seeded(seed: u64) -> Seeded {
        Seeded(rand::SeedableRng::seed_from_u64(seed))
    }

    #[test]
    fn a_key_of_each_version_decrypts_its_items_and_a_missing_version_is_named() {
        let mut rng = seeded(7);
        let old = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let new = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = |k: &RsaPrivateKey| {
            k.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .unwrap()
                .to_string()
        };
        let ring = KeyRing::parse(&BTreeMap::from([(1, pem(&old)), (2, pem(&new))])).unwrap();
        let seal = |k: &RsaPrivateKey, text: &str| {
            let public = RsaPublicKey::from(k);
            let mut rng = seeded(9);
            base64::engine::general_purpose::STANDARD.encode(
                public
                    .encrypt(&mut rng, Pkcs1v15Encrypt, text.as_bytes())
                    .unwrap(),
            )
        };
        assert_eq!(ring.random_key(1, &seal(&old, "k-old")).unwrap(), "k-old");
        assert_eq!(ring.random_key(2, &seal(&new, "k-new")).unwrap(), "k-new");
        let wrong = ring.random_key(2, &seal(&old, "k-old")).unwrap_err();
        assert!(wrong.contains("version 2"), "{wrong}");
        let missing = ring.random_key(3, &seal(&new, "x")).unwrap_err();
        assert!(
            missing.contains("publickey_ver 3") && missing.contains("1, 2"),
            "{missing}"
        );
    }

    #[test]
    fn control_bytes_are_stripped_and_text_kept() {
        assert_eq!(
            strip_control(b"{\"a\":\"\xe4\xbd\xa0\"}\x00\x10\n"),
            b"{\"a\":\"\xe4\xbd\xa0\"}".to_vec()
        );
    }
}
