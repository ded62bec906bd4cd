//! Tokens already verified, so a caller that sends the same bearer token on every call (as every
//! NAV client does until it expires) costs one signature check, not one per call. Checking an
//! ES256 signature was a quarter of a busy service's CPU in the year simulation.
//!
//! A token is remembered by its SHA-256 digest with the caller it yielded and the window its
//! `nbf` and `exp` allow; a hit outside that window is a miss, so the full validation refuses it
//! with its own reason. An entry lives at most [`REMEMBERED_FOR`], the whole cache is forgotten
//! when the issuer's keys are fetched again (a rotated-out key stops being trusted at once), and
//! it never holds more than [`CAPACITY`] tokens.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::Caller;

/// How long a verified token is trusted without checking its signature again.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(300);
/// The most tokens remembered at once (a pod sees a few hundred callers, not millions).
pub const CAPACITY: usize = 10_000;

/// When a verified token may be used, in seconds since the Unix epoch (leeway included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidWindow {
    /// Not before this second.
    pub from: u64,
    /// Not after this second.
    pub until: u64,
}

#[derive(Debug)]
struct Remembered {
    caller: Caller,
    window: ValidWindow,
    verified_at: Instant,
}

/// The cache of verified tokens; shared by a service's calls.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    tokens: Mutex<HashMap<[u8; 32], Remembered>>,
}

impl VerifiedTokens {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Remembered>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller `token` yielded, if it was verified less than [`REMEMBERED_FOR`] ago and `now`
    /// (seconds since the epoch) lies in its window.
    pub fn get(&self, token: &str, now: u64) -> Option<Caller> {
        let digest = digest(token);
        let mut tokens = self.tokens();
        let found = tokens.get(&digest)?;
        let usable = found.verified_at.elapsed() < REMEMBERED_FOR
            && (found.window.from..=found.window.until).contains(&now);
        if usable {
            Some(found.caller.clone())
        } else {
            tokens.remove(&digest);
            None
        }
    }

    /// Remembers that `token` was verified and yielded `caller`, usable within `window`.
    pub fn remember(&self, token: &str, caller: &Caller, window: ValidWindow) {
        let mut tokens = self.tokens();
        if tokens.len() >= CAPACITY {
            tokens.retain(|_, found| found.verified_at.elapsed() < REMEMBERED_FOR);
            if tokens.len() >= CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(
            digest(token),
            Remembered {
                caller: caller.clone(),
                window,
                verified_at: Instant::now(),
            },
        );
    }

    /// Forgets every token (the issuer's keys changed).
    pub fn forget_all(&self) {
        self.tokens().clear();
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens().len()
    }

    /// Whether no token is remembered.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Organisations;

    fn caller(subject: &str) -> Caller {
        Caller {
            subject: subject.to_owned(),
            client_id: None,
            roles: vec!["caseworker".to_owned()],
            organisations: Organisations::Listed(Vec::new()),
        }
    }

    const WINDOW: ValidWindow = ValidWindow {
        from: 1_000,
        until: 2_000,
    };

    #[test]
    fn a_remembered_token_yields_its_caller_inside_its_window_only() {
        let cache = VerifiedTokens::default();
        cache.remember("token-a", &caller("a"), WINDOW);
        assert_eq!(
            cache.get("token-a", 1_500).map(|c| c.subject),
            Some("a".into())
        );
        assert_eq!(
            cache.get("token-b", 1_500),
            None,
            "another token is not a hit"
        );
        assert_eq!(cache.get("token-a", 2_001), None, "expired: verified again");
        assert!(cache.is_empty(), "an expired token is forgotten");
        cache.remember("token-a", &caller("a"), WINDOW);
        assert_eq!(
            cache.get("token-a", 999),
            None,
            "before nbf: verified again"
        );
    }

    #[test]
    fn forgetting_all_makes_every_token_a_miss() {
        let cache = VerifiedTokens::default();
        cache.remember("token-a", &caller("a"), WINDOW);
        cache.remember("token-b", &caller("b"), WINDOW);
        assert_eq!(cache.len(), 2);
        cache.forget_all();
        assert_eq!(cache.get("token-a", 1_500), None);
        assert_eq!(cache.get("token-b", 1_500), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = VerifiedTokens::default();
        for n in 0..CAPACITY + 5 {
            cache.remember(&format!("token-{n}"), &caller("a"), WINDOW);
        }
        assert!(cache.len() <= CAPACITY, "{} tokens held", cache.len());
        let last = format!("token-{}", CAPACITY + 4);
        assert!(cache.get(&last, 1_500).is_some(), "the newest is kept");
    }
}
