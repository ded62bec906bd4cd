//! Encryption of personal data at rest (the employee's fødselsnummer).
//!
//! Applications and pilot-ordering must keep the fødselsnummer (NAV's payment and case systems
//! need it), but a database dump, a backup or a support query must not reveal it. Each value is
//! sealed with AES-256-GCM under a key from configuration and a fresh random nonce; the stored
//! text is `v1:` followed by base64 of nonce and ciphertext, so a later key version can be told
//! apart. Decryption also authenticates: a changed or foreign value is refused, never misread.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};

use crate::{DomainError, Fodselsnummer, SyntheticPolicy};

/// The length of an AES-256 key, in bytes.
pub const PERSONAL_DATA_KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const VERSION_PREFIX: &str = "v1:";

/// Seals and opens personal data under one AES-256-GCM key. `Debug` never prints the key.
#[derive(Clone)]
pub struct PersonalDataCipher {
    cipher: Aes256Gcm,
}

impl PersonalDataCipher {
    /// A cipher from exactly [`PERSONAL_DATA_KEY_BYTES`] bytes of key.
    pub fn new(key: &[u8]) -> Result<Self, DomainError> {
        let wrong_length = DomainError::KeyLength {
            expected: PERSONAL_DATA_KEY_BYTES,
        };
        if key.len() != PERSONAL_DATA_KEY_BYTES {
            return Err(wrong_length);
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| wrong_length)?;
        Ok(Self { cipher })
    }

    /// A cipher from the base64 text of a 32-byte key, as configuration holds it.
    pub fn from_base64(text: &str) -> Result<Self, DomainError> {
        let key = STANDARD
            .decode(text.trim())
            .map_err(|_| DomainError::KeyLength {
                expected: PERSONAL_DATA_KEY_BYTES,
            })?;
        Self::new(&key)
    }

    /// Seals `plain` under a fresh random nonce: `v1:<base64(nonce ‖ ciphertext ‖ tag)>`.
    pub fn seal(&self, plain: &str) -> String {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut nonce_bytes = [0u8; NONCE_BYTES];
        nonce_bytes.copy_from_slice(&random[..NONCE_BYTES]);
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .unwrap_or_default();
        let mut stored = Vec::with_capacity(NONCE_BYTES + sealed.len());
        stored.extend_from_slice(&nonce_bytes);
        stored.extend_from_slice(&sealed);
        format!("{VERSION_PREFIX}{}", STANDARD.encode(stored))
    }

    /// Opens a value sealed by [`Self::seal`] under the same key.
    pub fn open(&self, stored: &str) -> Result<String, DomainError> {
        let encoded = stored
            .strip_prefix(VERSION_PREFIX)
            .ok_or(DomainError::SealedValue)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| DomainError::SealedValue)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(DomainError::SealedValue);
        }
        let (nonce_bytes, sealed) = bytes.split_at(NONCE_BYTES);
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(nonce_bytes);
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), sealed)
            .map_err(|_| DomainError::SealedValue)?;
        String::from_utf8(plain).map_err(|_| DomainError::SealedValue)
    }

    /// Seals a fødselsnummer.
    pub fn seal_fodselsnummer(&self, fodselsnummer: &Fodselsnummer) -> String {
        self.seal(fodselsnummer.expose_digits())
    }

    /// Opens a sealed fødselsnummer (synthetic numbers accepted: they were checked on entry).
    pub fn open_fodselsnummer(&self, stored: &str) -> Result<Fodselsnummer, DomainError> {
        Fodselsnummer::parse(&self.open(stored)?, SyntheticPolicy::Accept)
    }
}

impl fmt::Debug for PersonalDataCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalDataCipher(<redacted>)")
    }
}

/// Whether `text` holds an 11-digit run that passes the fødselsnummer checksums (synthetic
/// numbers included): free text must not carry a national id, and people paste them.
pub fn contains_fodselsnummer(text: &str) -> bool {
    let mut run = String::new();
    let mut found = false;
    let mut check = |run: &str| {
        if run.len() == 11 && Fodselsnummer::parse(run, SyntheticPolicy::Accept).is_ok() {
            found = true;
        }
    };
    for character in text.chars() {
        if character.is_ascii_digit() {
            run.push(character);
        } else if character == ' ' && run.len() == 6 {
            // "DDMMYY NNNNN" is how people write it; the space is not a separator there.
        } else {
            check(&run);
            run.clear();
        }
    }
    check(&run);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [42; 32];
    // A synthetic number (month + 80) that passes the checksums.
    fn synthetic() -> Fodselsnummer {
        let mut found = None;
        for serial in 0..1000u32 {
            let first9 = format!("0181{:02}{serial:03}", 90);
            for k in 0..100u32 {
                let candidate = format!("{first9}{k:02}");
                if let Ok(number) = Fodselsnummer::parse(&candidate, SyntheticPolicy::Accept) {
                    found = Some(number);
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        found.expect("a synthetic number with valid check digits exists")
    }

    #[test]
    fn a_sealed_value_opens_to_itself_and_differs_each_time() {
        let cipher = PersonalDataCipher::new(&KEY).expect("key");
        let number = synthetic();
        let first = cipher.seal_fodselsnummer(&number);
        let second = cipher.seal_fodselsnummer(&number);
        assert_ne!(first, second, "a fresh nonce per seal");
        assert!(!first.contains(number.expose_digits()));
        assert_eq!(cipher.open_fodselsnummer(&first).expect("opens"), number);
    }

    #[test]
    fn another_key_or_a_changed_value_is_refused() {
        let cipher = PersonalDataCipher::new(&KEY).expect("key");
        let other = PersonalDataCipher::new(&[7; 32]).expect("key");
        let sealed = cipher.seal("secret");
        assert_eq!(other.open(&sealed), Err(DomainError::SealedValue));
        let mut changed = sealed.clone();
        changed.pop();
        changed.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(cipher.open(&changed), Err(DomainError::SealedValue));
        assert_eq!(cipher.open("secret"), Err(DomainError::SealedValue));
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused_and_never_printed() {
        assert!(PersonalDataCipher::new(&[1; 16]).is_err());
        assert!(PersonalDataCipher::from_base64("not base64!").is_err());
        let encoded = STANDARD.encode(KEY);
        let cipher = PersonalDataCipher::from_base64(&encoded).expect("key");
        assert_eq!(format!("{cipher:?}"), "PersonalDataCipher(<redacted>)");
    }

    #[test]
    fn free_text_with_a_pasted_number_is_caught() {
        let number = synthetic();
        let digits = number.expose_digits();
        assert!(contains_fodselsnummer(&format!(
            "ansatt {digits}, sykmeldt"
        )));
        let spaced = format!("{} {}", &digits[..6], &digits[6..]);
        assert!(contains_fodselsnummer(&format!("fnr: {spaced}")));
        assert!(!contains_fodselsnummer("org 974760673, tlf 22334455"));
        assert!(
            !contains_fodselsnummer(&format!("{digits}0")),
            "12 digits are not one"
        );
    }
}
