//! WeCom's callback (接收消息), through which the archive's `msgaudit_notify` event says new messages
//! are there. WeCom signs each call: `msg_signature` is the SHA-1 of the token, timestamp, nonce and
//! the encrypted payload, sorted and joined. When the URL is first configured WeCom checks it with a
//! GET whose `echostr` (AES-256-CBC with the EncodingAESKey) must be answered decrypted.

use aes_gcm::aes::Aes256;
use base64::Engine as _;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use sha1::{Digest, Sha1};

/// Whether `signature` is WeCom's signature of the call.
pub fn verify(token: &str, timestamp: &str, nonce: &str, encrypted: &str, signature: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    let digest = hex::encode(Sha1::digest(parts.concat().as_bytes()));
    // Both are public-length hex strings; compare without an early exit anyway.
    digest.len() == signature.len()
        && digest
            .bytes()
            .zip(signature.to_ascii_lowercase().bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The message inside an encrypted payload: AES-256-CBC with the 43-character EncodingAESKey (base64
/// without its `=`), IV its first 16 bytes, PKCS#7 padding to 32 bytes; the plaintext is 16 random
/// bytes, the message length (4 bytes, big-endian), the message, and the receiver id.
pub fn decrypt(aes_key: &str, encrypted: &str) -> Result<String, String> {
    let key = lenient()
        .decode(format!("{}=", aes_key.trim()))
        .map_err(|_| "the EncodingAESKey is not 43 characters of base64".to_string())?;
    if key.len() != 32 {
        return Err("the EncodingAESKey is not 43 characters of base64".into());
    }
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(encrypted.trim())
        .map_err(|e| format!("the payload is not base64: {e}"))?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err("the payload is not whole AES blocks".into());
    }
    let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(&key, &key[..16])
        .map_err(|e| format!("AES: {e}"))?;
    let plain = decryptor
        .decrypt_padded_mut::<cbc::cipher::block_padding::NoPadding>(&mut data)
        .map_err(|e| format!("AES: {e}"))?;
    let pad = *plain.last().unwrap_or(&0) as usize;
    if pad == 0 || pad > 32 || pad > plain.len() {
        return Err("the payload's padding is wrong (another EncodingAESKey?)".into());
    }
    let plain = &plain[..plain.len() - pad];
    if plain.len() < 20 {
        return Err("the payload is too short".into());
    }
    let len = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
    let message = plain
        .get(20..20 + len)
        .ok_or("the payload's length is wrong (another EncodingAESKey?)")?;
    String::from_utf8(message.to_vec()).map_err(|_| "the payload is not UTF-8".into())
}

/// Base64 that accepts a last character with bits to spare: WeCom's 43-character keys are any 43
/// characters of the alphabet, which its own (Java) libraries decode leniently.
fn lenient() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
}

/// The `<Encrypt>` of a callback's XML body.
pub fn encrypted_of(xml: &str) -> Option<&str> {
    let start = xml.find("<Encrypt>")? + "<Encrypt>".len();
    let end = start + xml[start..].find("</Encrypt>")?;
    let inner = xml[start..end].trim();
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockEncryptMut;

    fn encrypt(aes_key: &str, message: &str) -> String {
        let key = lenient().decode(format!("{aes_key}=")).unwrap();
        let mut plain = b"0123456789abcdef".to_vec();
        plain.extend((message.len() as u32).to_be_bytes());
        plain.extend(message.as_bytes());
        plain.extend(b"wwcorp");
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let enc = cbc::Encryptor::<Aes256>::new_from_slices(&key, &key[..16]).unwrap();
        let out = enc
            .encrypt_padded_mut::<cbc::cipher::block_padding::NoPadding>(&mut plain, len)
            .unwrap()
            .to_vec();
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    #[test]
    fn signature_is_sha1_of_the_sorted_parts() {
        // python3 -c "import hashlib; print(hashlib.sha1(''.join(sorted(['tok','1700000000','nonce1','ENC'])).encode()).hexdigest())"
        let signature = "767af4551192b9ecf74b24c751bc0a53fcb8ae01";
        assert!(verify("tok", "1700000000", "nonce1", "ENC", signature));
        assert!(!verify("tok", "1700000001", "nonce1", "ENC", signature));
        assert!(!verify("", "1700000000", "nonce1", "ENC", signature));
    }

    #[test]
    fn echostr_decrypts_with_the_encoding_aes_key_and_a_wrong_key_is_refused() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
        let echostr = encrypt(key, "4870184516224586287");
        assert_eq!(decrypt(key, &echostr).unwrap(), "4870184516224586287");
        let other = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg";
        assert!(decrypt(other, &echostr).is_err());
        let xml = format!("<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[{echostr}]]></Encrypt></xml>");
        assert_eq!(encrypted_of(&xml), Some(echostr.as_str()));
    }
}
