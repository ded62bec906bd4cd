//! The four-eyes rule (DESIGN §1.1): a decision about public money is prepared by one person and
//! made by another. A caseworker recommends and a decider decides (applications, refunds); one
//! caseworker attests an invoice and another approves it (pilot-ordering). One type serves all
//! three, so the rule reads and is tested the same everywhere; each service maps the refusal to
//! its own contract reason.

use thiserror::Error;

/// Who prepared a decision (recommended, attested), and so may not make it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FourEyes {
    prepared_by: Vec<String>,
}

/// The person about to make a decision also prepared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the person who prepared a decision may not also make it (four eyes)")]
pub struct SamePerson;

impl FourEyes {
    /// A decision prepared by `people` (every recommender of every round, or the attestant).
    pub fn prepared_by<I, S>(people: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        FourEyes {
            prepared_by: people
                .into_iter()
                .map(|person| person.as_ref().to_owned())
                .filter(|person| !person.is_empty())
                .collect(),
        }
    }

    /// Whether `decider` may make the decision: a second pair of eyes, and a known person.
    pub fn allows(&self, decider: &str) -> bool {
        !decider.is_empty() && !self.prepared_by.iter().any(|person| person == decider)
    }

    /// `Ok` if `decider` may make the decision, [`SamePerson`] if not.
    pub fn require_second_person(&self, decider: &str) -> Result<(), SamePerson> {
        if self.allows(decider) {
            Ok(())
        } else {
            Err(SamePerson)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preparer_may_not_decide_and_anyone_else_may() {
        let rule = FourEyes::prepared_by(["Z111111", "Z222222"]);
        assert_eq!(rule.require_second_person("Z111111"), Err(SamePerson));
        assert_eq!(rule.require_second_person("Z222222"), Err(SamePerson));
        assert_eq!(rule.require_second_person("Z333333"), Ok(()));
    }

    #[test]
    fn an_unknown_decider_is_never_a_second_pair_of_eyes() {
        let rule = FourEyes::prepared_by([""]);
        assert!(!rule.allows(""));
        assert!(rule.allows("Z333333"));
    }
}
