//! Secrets at rest: Google refresh tokens and PKCE verifiers are sealed with AES-256-GCM
//! (`aes-gcm`, RustCrypto) under `CHATVAULT_BOT_TOKEN_KEY` before they reach the database.
//!
//! Layout of a sealed value: a random 96-bit nonce, then the ciphertext with its 128-bit
//! tag. The account id is the associated data, so a sealed token copied to another
//! account's row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::BotError;

const NONCE_BYTES: usize = 12;

/// Seals and opens secrets with the installation's token key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Returns a sealer with the 32-byte `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: Aes256Gcm::new(key.into()) }
    }

    /// Returns `secret` sealed for `account_id`.
    pub fn seal(&self, account_id: &str, secret: &str) -> Result<Vec<u8>, BotError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: account_id.as_bytes() })
            .map_err(|_| BotError::Internal("sealing a secret failed".to_owned()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Returns the secret sealed for `account_id`.
    ///
    /// Errors with [`BotError::Internal`] when the value was sealed under another key or
    /// account, or altered.
    pub fn open(&self, account_id: &str, sealed: &[u8]) -> Result<String, BotError> {
        if sealed.len() <= NONCE_BYTES {
            return Err(BotError::Internal("a sealed secret is too short".to_owned()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: account_id.as_bytes() }).map_err(|_| {
            BotError::Internal("a sealed secret does not open with CHATVAULT_BOT_TOKEN_KEY (another key, account or altered)".to_owned())
        })?;
        String::from_utf8(plain).map_err(|_| BotError::Internal("a sealed secret is not text".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_account_and_key() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal("account-a", "1//refresh-token").expect("seal");
        assert!(!sealed.windows(7).any(|window| window == b"refresh"), "the token is not stored in clear");
        assert_eq!(sealer.open("account-a", &sealed).expect("opens"), "1//refresh-token");
        assert!(sealer.open("account-b", &sealed).is_err());
        assert!(Sealer::new(&[8; 32]).open("account-a", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().expect("bytes") ^= 1;
        assert!(sealer.open("account-a", &altered).is_err());
        assert_ne!(sealer.seal("account-a", "x").expect("seal"), sealer.seal("account-a", "x").expect("seal"), "fresh nonce");
    }
}
