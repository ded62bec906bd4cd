//! Who is calling, and may they? Every RPC declares the set of roles that may call it, as its
//! `roles` option in the contract ([`RoleTable`], read into the gateway's [`RpcRoles`] at
//! start); a bearer JWT (validated against the issuer's JWKS, issuer, audience, expiry and
//! not-before) yields the caller's identity and roles ([`Caller`]), which the gRPC layer checks
//! before the handler runs. Health and reflection stay open. Switched off only by
//! `auth.mode = disabled`.

mod jwt;
mod role_table;
mod verified_tokens;

pub use jwt::{JwtValidator, TokenError};
pub use role_table::{RoleTable, RpcRoles};

/// PERMISSION_DENIED reason: the caller acts for an organisation its token does not list.
pub const ORGANISATION_NOT_REPRESENTED: &str = "ORGANISATION_NOT_REPRESENTED";

/// The authenticated caller, placed in the request's extensions for handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub` claim (or `local` when auth is disabled).
    pub subject: String,
    /// The calling application (`azp` claim) when present.
    pub client_id: Option<String>,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// The organisations the caller may act for (employer and supplier RPCs).
    pub organisations: Organisations,
}

/// The organisations a caller represents: the organisation numbers of the token's claim named
/// by `auth.organisations_claim` (as NAV's employer front ends get them from Altinn, and a
/// supplier's token carries its own), or every organisation when authentication is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Organisations {
    /// Any organisation: only for local runs with `auth.mode = disabled`.
    Unrestricted,
    /// Exactly these organisation numbers (empty when the token has no such claim).
    Listed(Vec<String>),
}

impl Caller {
    /// The caller used when authentication is disabled for a local run.
    pub fn local() -> Self {
        Caller {
            subject: "local".to_owned(),
            client_id: None,
            roles: Vec::new(),
            organisations: Organisations::Unrestricted,
        }
    }

    /// Whether the caller may act for organisation `organisation_number`.
    pub fn represents(&self, organisation_number: &str) -> bool {
        match &self.organisations {
            Organisations::Unrestricted => true,
            Organisations::Listed(listed) => listed.iter().any(|held| held == organisation_number),
        }
    }

    /// Refuses, with PERMISSION_DENIED `ORGANISATION_NOT_REPRESENTED`, a caller that may not act
    /// for `organisation_number`. The message names no organisation the caller does represent.
    pub fn require_represents(&self, organisation_number: &str) -> Result<(), crate::ApiError> {
        if self.represents(organisation_number) {
            return Ok(());
        }
        Err(crate::ApiError::PermissionDenied {
            reason: ORGANISATION_NOT_REPRESENTED,
            message: format!(
                "the caller's token does not list organisation {organisation_number} among those it represents"
            ),
        })
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Whether the caller holds any of `roles`.
    pub fn has_any_role(&self, roles: &[impl AsRef<str>]) -> bool {
        roles.iter().any(|role| self.has_role(role.as_ref()))
    }
}
