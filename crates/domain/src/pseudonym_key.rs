//! The secret key under which fødselsnummer pseudonyms are computed.
//!
//! Events must never carry a national id in clear, yet the evaluation needs to correlate one
//! person across cases. A keyed HMAC gives a stable pseudonym that cannot be reversed or
//! recomputed without the key. The key comes from configuration and must never be printed.

use std::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

use crate::DomainError;

/// Shortest key accepted: the output size of SHA-256, as RFC 2104 recommends.
pub const MIN_PSEUDONYM_KEY_BYTES: usize = 32;

/// An HMAC-SHA256 key for pseudonyms. `Debug` prints `PseudonymKey(<redacted>)`.
#[derive(Clone)]
pub struct PseudonymKey {
    mac: Hmac<Sha256>,
}

impl PseudonymKey {
    /// Builds a key from a secret of at least [`MIN_PSEUDONYM_KEY_BYTES`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, DomainError> {
        let too_short = DomainError::KeyTooShort {
            min: MIN_PSEUDONYM_KEY_BYTES,
        };
        if secret.len() < MIN_PSEUDONYM_KEY_BYTES {
            return Err(too_short);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| too_short)?;
        Ok(Self { mac })
    }

    /// A fresh keyed MAC, ready for input.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_32_bytes() {
        assert!(PseudonymKey::new(&[7u8; 32]).is_ok());
        assert!(PseudonymKey::new(&[7u8; 64]).is_ok());
    }

    #[test]
    fn rejects_shorter_keys_with_a_clear_message() {
        let err = PseudonymKey::new(&[7u8; 31]).expect_err("too short");
        assert_eq!(err, DomainError::KeyTooShort { min: 32 });
        assert_eq!(err.to_string(), "pseudonym key must be at least 32 bytes");
        assert!(PseudonymKey::new(b"").is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let key = PseudonymKey::new(b"a secret that is long enough for hmac!").expect("valid");
        assert_eq!(format!("{key:?}"), "PseudonymKey(<redacted>)");
    }
}
