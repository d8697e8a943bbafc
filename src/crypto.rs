//! Secrets at rest: TikTok tokens sealed with AES-256-GCM, and the random
//! values and hashes the OAuth flow needs.
//!
//! A sealed value is `v1.` + base64(nonce ‖ ciphertext ‖ tag). The associated
//! data names what the value is (e.g. `account:<id>:access`), so a token copied
//! into another account's row, or into the other column, does not open.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: &str = "v1.";
const NONCE_LEN: usize = 12;

/// Why a value could not be sealed or opened. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "no token key is set, so TikTok tokens cannot be stored encrypted; set CLIPFORGE__TIKTOK__TOKEN_KEY \
         to 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"
    )]
    NoKey,
    #[error("the token key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored token could not be decrypted: it was sealed with another token key, or altered")]
    Open,
}

/// Seals and opens tokens with the operator's key.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(..)")
    }
}

impl TokenCipher {
    /// `key` is 32 bytes, base64.
    pub fn from_base64(key: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(key.expose_secret().trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(Self { cipher: Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)? })
    }

    /// Encrypts `plain` under a fresh random nonce, bound to `context`.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    /// Decrypts a value sealed by [`TokenCipher::seal`] with the same context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, CryptoError> {
        let raw = sealed.strip_prefix(VERSION).ok_or(CryptoError::Open)?;
        let bytes = STANDARD.decode(raw).map_err(|_| CryptoError::Open)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| CryptoError::Open)
    }
}

/// `n` random bytes from the OS, base64url without padding (URL- and path-safe).
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex SHA-256: how OAuth states are stored (the state itself only
/// travels through the browser) and TikTok's desktop PKCE challenge.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// How a token is shown to people: its kind prefix and length, never its value.
pub fn mask(token: &str) -> String {
    let prefix = token.split_once('.').map(|(p, _)| format!("{p}.")).unwrap_or_default();
    format!("{prefix}…({} chars)", token.chars().count())
}

/// A URL as answers and logs may show it: scheme, host and port only. Webhook
/// URLs often carry their credential in the path or query (Slack's do).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() { "/…" } else { "" };
            format!("{}://{}{port}{rest}", u.scheme(), u.host_str().unwrap_or_default())
        }
        Err(_) => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::from_base64(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_context() {
        let c = cipher();
        let sealed = c.seal("act.secret-value", "account:a:access");
        assert!(!sealed.contains("secret-value"));
        assert_eq!(c.open(&sealed, "account:a:access").unwrap().expose_secret(), "act.secret-value");
        assert_eq!(c.open(&sealed, "account:b:access").unwrap_err(), CryptoError::Open, "moved to another row");
        let other = TokenCipher::from_base64(&SecretString::from(STANDARD.encode([8u8; 32]))).unwrap();
        assert_eq!(other.open(&sealed, "account:a:access").unwrap_err(), CryptoError::Open, "another key");
        assert_ne!(c.seal("x", "c"), c.seal("x", "c"), "a fresh nonce each time");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(TokenCipher::from_base64(&SecretString::from("short")).unwrap_err(), CryptoError::BadKey);
        assert_eq!(
            TokenCipher::from_base64(&SecretString::from(STANDARD.encode([1u8; 16]))).unwrap_err(),
            CryptoError::BadKey
        );
    }

    #[test]
    fn a_redacted_url_keeps_only_where_it_goes() {
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/…");
        assert_eq!(redact_url("http://127.0.0.1:9000/hook?token=abc"), "http://127.0.0.1:9000/…");
        assert_eq!(redact_url("https://example.com"), "https://example.com");
        assert_eq!(redact_url("not a url"), "…");
    }

    #[test]
    fn masks_show_the_kind_and_length_only() {
        assert_eq!(mask("act.abcdef"), "act.…(10 chars)");
        assert_eq!(mask("plain"), "…(5 chars)");
    }

    #[test]
    fn the_pkce_challenge_is_lowercase_hex_sha256() {
        // TikTok desktop: hex(SHA256(verifier)), not RFC 7636 base64url.
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
