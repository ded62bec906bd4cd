//! A local token issuer for tests: serves a JWKS over HTTP on 127.0.0.1 and signs tokens with
//! a test-only EC P-256 key, so the services' real JWT validation (signature via JWKS, issuer,
//! audience, expiry, roles) is exercised end to end. The key in `test_signing_key.pem` protects
//! nothing; it exists only for these tests.

use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use http_body_util::Full;
use hyper::{Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use tokio::net::TcpListener;

const TEST_KEY_PEM: &[u8] = include_bytes!("test_signing_key.pem");
const KEY_ID: &str = "ekb-test-key-1";

/// Issuer name the services are configured to expect.
pub const TEST_ISSUER: &str = "https://issuer.ekb-test.local";
/// Audience the services are configured to expect.
pub const TEST_AUDIENCE: &str = "ekspertbistand";

/// A running test issuer.
pub struct TestIssuer {
    jwks_url: String,
    key: EncodingKey,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TestIssuer {
    /// Starts serving the JWKS on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let key = EncodingKey::from_ec_pem(TEST_KEY_PEM)?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
        jwk.common.key_id = Some(KEY_ID.to_owned());
        let body = serde_json::to_vec(&JwkSet { keys: vec![jwk] })?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let body = body.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap_or_default(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(TestIssuer {
            jwks_url: format!("http://{addr}/jwks"),
            key,
            server,
        })
    }

    /// Where the JWKS is served.
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// Configuration overrides that make a service trust this issuer.
    pub fn auth_overrides(&self) -> Vec<(String, String)> {
        vec![
            ("auth.mode".to_owned(), "jwt".to_owned()),
            ("auth.issuer".to_owned(), TEST_ISSUER.to_owned()),
            ("auth.audience".to_owned(), TEST_AUDIENCE.to_owned()),
            ("auth.jwks_url".to_owned(), self.jwks_url.clone()),
        ]
    }

    /// A valid token for `subject` holding `roles`, expiring in ten minutes.
    pub fn token(&self, subject: &str, roles: &[&str]) -> String {
        self.sign(&serde_json::json!({
            "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": subject,
            "azp": "ekb-tests", "roles": roles, "iat": now(), "exp": now() + 600,
        }))
    }

    /// A valid token for `subject` holding `roles` and representing `organisations` (the
    /// `organisations` claim, `auth.organisations_claim`'s default): an employer's
    /// representative or a supplier.
    pub fn token_for_organisations(
        &self,
        subject: &str,
        roles: &[&str],
        organisations: &[&str],
    ) -> String {
        self.sign(&serde_json::json!({
            "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": subject, "azp": "ekb-tests",
            "roles": roles, "organisations": organisations, "iat": now(), "exp": now() + 600,
        }))
    }

    /// A token that expired an hour ago.
    pub fn expired_token(&self, roles: &[&str]) -> String {
        self.sign(&serde_json::json!({
            "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "expired",
            "roles": roles, "iat": now() - 7200, "exp": now() - 3600,
        }))
    }

    /// A token that becomes valid (`nbf`) in `seconds`, otherwise valid.
    pub fn not_yet_valid_token(&self, roles: &[&str], seconds: u64) -> String {
        self.sign(&serde_json::json!({
            "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "sub": "early",
            "roles": roles, "iat": now(), "nbf": now() + seconds, "exp": now() + seconds + 600,
        }))
    }

    /// A token for another audience.
    pub fn token_for_audience(&self, audience: &str, roles: &[&str]) -> String {
        self.sign(&serde_json::json!({
            "iss": TEST_ISSUER, "aud": audience, "sub": "other-audience",
            "roles": roles, "iat": now(), "exp": now() + 600,
        }))
    }

    /// Signs arbitrary claims with the issuer's key.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap_or_default()
    }
}
