//! Bearer JWT validation against the issuer's published keys (JWKS). Keys are fetched on
//! first use and again when a token names an unknown key id (the issuer rotated), at most once
//! per refresh interval so a flood of bad tokens cannot hammer the issuer. A token verified once
//! is remembered for a few minutes ([`super::verified_tokens`]), so a client that reuses its
//! token costs one signature check.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use tokio::sync::RwLock;

use super::{
    Caller, Organisations,
    verified_tokens::{ValidWindow, VerifiedTokens},
};
use crate::config::AuthConfig;

const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Why a token was refused. The text is safe to return to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No `authorization: Bearer …` metadata.
    #[error("missing bearer token")]
    Missing,
    /// The token is malformed, expired, for another audience or issuer, or badly signed.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched.
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

struct KeyCache {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
}

/// Validates bearer tokens; cheap to clone.
#[derive(Clone)]
pub struct JwtValidator {
    config: Arc<AuthConfig>,
    http: reqwest::Client,
    cache: Arc<RwLock<KeyCache>>,
    verified: Arc<VerifiedTokens>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator for the configured issuer and audience.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(JwtValidator {
            config: Arc::new(config.clone()),
            http,
            cache: Arc::new(RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
            })),
            verified: Arc::new(VerifiedTokens::default()),
        })
    }

    /// Validates an `authorization` header value and returns the caller.
    pub async fn validate_header(&self, header: Option<&str>) -> Result<Caller, TokenError> {
        let token = header
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(TokenError::Missing)?;
        self.validate(token).await
    }

    /// Validates a compact JWT and returns the caller.
    pub async fn validate(&self, token: &str) -> Result<Caller, TokenError> {
        if let Some(caller) = self
            .verified
            .get(token, jsonwebtoken::get_current_timestamp())
        {
            return Ok(caller);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| TokenError::Invalid(error.to_string()))?;
        let key_id = header
            .kid
            .ok_or_else(|| TokenError::Invalid("token header has no kid".to_owned()))?;
        let (key, algorithm) = self.key(&key_id).await?;
        if header.alg != algorithm {
            return Err(TokenError::Invalid(
                "token algorithm does not match its key".to_owned(),
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // A token is refused before its `nbf` as after its `exp`, both with the configured
        // leeway for clock skew between the issuer and this pod.
        validation.validate_nbf = true;
        validation.leeway = self.config.clock_skew.as_secs();
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|error| TokenError::Invalid(error.to_string()))?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let strings = |name: &str| -> Vec<String> {
            claims
                .get(name)
                .and_then(|value| value.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let seconds = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        let caller = Caller {
            subject: text("sub").unwrap_or_default(),
            client_id: text("azp"),
            roles: strings(&self.config.roles_claim),
            organisations: Organisations::Listed(strings(&self.config.organisations_claim)),
        };
        // The same window `decode` just checked, so a remembered token is refused when a fresh
        // check would refuse it (an `exp` that is not a whole number is not remembered).
        if let Some(expires) = seconds("exp") {
            let leeway = validation.leeway;
            let window = ValidWindow {
                from: seconds("nbf").unwrap_or(0).saturating_sub(leeway),
                until: expires.saturating_add(leeway),
            };
            self.verified.remember(token, &caller, window);
        }
        Ok(caller)
    }

    async fn key(&self, key_id: &str) -> Result<(DecodingKey, Algorithm), TokenError> {
        if let Some(found) = self.cache.read().await.keys.get(key_id) {
            return Ok(found.clone());
        }
        let mut cache = self.cache.write().await;
        if let Some(found) = cache.keys.get(key_id) {
            return Ok(found.clone());
        }
        let may_refresh = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= MIN_REFRESH_INTERVAL);
        if may_refresh {
            cache.keys = self.fetch_keys().await?;
            cache.fetched_at = Some(Instant::now());
            // A key the issuer no longer publishes must not keep its tokens trusted.
            self.verified.forget_all();
        }
        cache
            .keys
            .get(key_id)
            .cloned()
            .ok_or_else(|| TokenError::Invalid("token signed with an unknown key".to_owned()))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, TokenError> {
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| {
                tracing::warn!(%error, "could not fetch the issuer's JWKS");
                TokenError::KeysUnavailable
            })?;
        let set: JwkSet = response.json().await.map_err(|error| {
            tracing::warn!(%error, "the issuer's JWKS is not valid JSON");
            TokenError::KeysUnavailable
        })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(key_id), Some(algorithm)) =
                (jwk.common.key_id.clone(), jwk.common.key_algorithm)
            else {
                continue;
            };
            let Ok(algorithm) = algorithm.to_string().parse::<Algorithm>() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(key_id, (key, algorithm));
                }
                Err(error) => tracing::warn!(%error, key_id, "skipping unusable JWKS key"),
            }
        }
        Ok(keys)
    }
}
