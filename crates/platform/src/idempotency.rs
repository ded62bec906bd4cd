//! Idempotent creates, the same way in every service.
//!
//! A portal that times out sends its request again, sometimes while the first is still running.
//! The contract: the same request (same request id, same content) gets the first answer
//! (`created = false`), however many copies arrive at once; a different request reusing the id is
//! refused; and different requests racing for one thing (two applications for one case) get the
//! contract's refusal, never a raw unique violation. Two pieces give that:
//!
//! - [`fingerprint`]: the SHA-256 of the request as it travelled, hex. The caller replaces
//!   personal data first (a fødselsnummer by its pseudonym), and what is stored is a hash, so no
//!   personal data is kept in clear with it.
//! - [`serialise`]: transaction-scoped advisory locks on the keys the create depends on (its
//!   request id, the thing it creates for), taken as the unit of work's first statements. A copy
//!   waits until the first commits or rolls back, then finds what it created; a racing request
//!   for the same thing then sees it and is refused by the service's own check. The locks end
//!   with the transaction; keys are locked in sorted order, so two creates never deadlock.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::messaging::UnitOfWork;

/// The fingerprint of `request`: SHA-256 of its encoding, hex. Replace personal data in the
/// request before (e.g. a fødselsnummer by its pseudonym).
pub fn fingerprint<M: Message>(request: &M) -> String {
    Sha256::digest(request.encode_to_vec())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Serialises this unit of work with every other one that locks any of `keys` (e.g.
/// `"SubmitApplication:<request id>"`, `"case:<case id>"`), until it commits or rolls back.
pub async fn serialise(work: &mut UnitOfWork, keys: &[String]) -> Result<(), sqlx::Error> {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(work.db())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_a_hash_of_the_content() {
        let one = ekb_proto::v1::GetAgreementRequest {
            agreement_id: "a".to_owned(),
        };
        let other = ekb_proto::v1::GetAgreementRequest {
            agreement_id: "b".to_owned(),
        };
        assert_eq!(fingerprint(&one), fingerprint(&one.clone()));
        assert_ne!(fingerprint(&one), fingerprint(&other));
        assert_eq!(fingerprint(&one).len(), 64);
    }
}
