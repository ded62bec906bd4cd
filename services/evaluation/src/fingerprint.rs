//! Keyed fingerprints of the ids the read model keeps (docs/adr/0033). A case id, grant id or
//! order id leads, in the service that owns it, to a person; the evaluation needs only to tell
//! one case from another, so it keeps HMAC-SHA256 of each id under a secret key instead. Without
//! the key nobody can recompute a fingerprint from an id, so the evaluation's database cannot be
//! joined back to a case; with the same key a rebuild from the topics yields the same rows.
//!
//! The key is the deployment's pseudonym key (`privacy.pseudonym_key`), with a label of its own
//! in the input so a case fingerprint never equals a pseudonym computed under the same key.

use std::fmt;

use ekb_domain::MIN_PSEUDONYM_KEY_BYTES;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What every fingerprint's input starts with, separating it from the employee pseudonyms
/// computed under the same key.
const LABEL: &[u8] = b"ekspertbistand.evaluation.v1:";

/// The HMAC-SHA256 key of the fingerprints. `Debug` prints no key.
#[derive(Clone)]
pub struct CaseKey {
    mac: Hmac<Sha256>,
}

impl CaseKey {
    /// A key from its secret bytes; `None` when shorter than [`MIN_PSEUDONYM_KEY_BYTES`] (the
    /// output size of SHA-256, as RFC 2104 recommends).
    pub fn new(secret: &[u8]) -> Option<Self> {
        if secret.len() < MIN_PSEUDONYM_KEY_BYTES {
            return None;
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
        Some(CaseKey { mac })
    }

    /// The fingerprint of `id` (a case, grant, order, claim or application id): lowercase hex of
    /// HMAC-SHA256 over the label, `kind` and the id. `kind` keeps ids of different things apart.
    pub fn of(&self, kind: &str, id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(id.trim().to_ascii_lowercase().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The fingerprint of a case id.
    pub fn case(&self, case_id: &str) -> String {
        self.of("case", case_id)
    }
}

impl fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaseKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_keyed_and_hide_the_id() {
        assert!(CaseKey::new(&[7u8; 31]).is_none(), "too short");
        let key = CaseKey::new(&[7u8; 32]).expect("long enough");
        let id = "0190b1a2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
        let print = key.case(id);
        assert_eq!(print, key.case(id), "the same id, the same fingerprint");
        assert_eq!(
            print,
            key.case(&id.to_ascii_uppercase()),
            "case-insensitive UUID"
        );
        assert_eq!(print.len(), 64);
        assert!(!print.contains("0190b1a2"), "{print}");
        assert_ne!(
            print,
            CaseKey::new(&[8u8; 32]).expect("long enough").case(id),
            "another key, another print"
        );
        assert_ne!(print, key.of("grant", id), "another kind, another print");
        assert_eq!(format!("{key:?}"), "CaseKey(<redacted>)");
    }
}
