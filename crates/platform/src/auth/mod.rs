//! Who is calling, and may they? Every RPC declares the role it needs ([`RpcRoles`]); a bearer
//! JWT (validated against the issuer's JWKS, issuer, audience and expiry) yields the caller's
//! identity and roles ([`Caller`]), which the gRPC layer checks before the handler runs.
//! Health and reflection stay open. Switched off only by `auth.mode = disabled`.

mod jwt;

pub use jwt::{JwtValidator, TokenError};

use std::{collections::HashMap, sync::Arc};

/// The authenticated caller, placed in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub` claim (or `local` when auth is disabled).
    pub subject: String,
    /// The calling application (`azp` claim) when present.
    pub client_id: Option<String>,
    /// The caller's roles.
    pub roles: Vec<String>,
}

impl Caller {
    /// The caller used when authentication is disabled for a local run.
    pub fn local() -> Self {
        Caller {
            subject: "local".to_owned(),
            client_id: None,
            roles: Vec::new(),
        }
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// The role each RPC requires, keyed by its gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone, Default)]
pub struct RpcRoles {
    required: Arc<HashMap<String, &'static str>>,
}

impl RpcRoles {
    /// Declares the roles of `service`'s methods: `(method name, role)` pairs.
    pub fn new(service: &str, methods: &[(&str, &'static str)]) -> Self {
        let required = methods
            .iter()
            .map(|(method, role)| (format!("/{service}/{method}"), *role))
            .collect();
        RpcRoles {
            required: Arc::new(required),
        }
    }

    /// The role a gRPC path requires; `None` for undeclared paths (which are refused).
    pub fn required_role(&self, path: &str) -> Option<&'static str> {
        self.required.get(path).copied()
    }

    /// Paths that never need a token: health checks and reflection.
    pub fn is_open(path: &str) -> bool {
        path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
    }
}
