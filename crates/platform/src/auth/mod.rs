//! Who is calling, and may they? Every RPC declares the set of roles that may call it
//! ([`RpcRoles`], from the service description's [`RoleTable`]); a bearer JWT (validated against
//! the issuer's JWKS, issuer, audience, expiry and not-before) yields the caller's identity and
//! roles ([`Caller`]), which the gRPC layer checks before the handler runs. Health and
//! reflection stay open. Switched off only by `auth.mode = disabled`.
//!
//! The role table is data, and data can be wrong: [`RpcRoles::checked`] compares it with the
//! service's contract (the file descriptor set) at start, so an RPC without roles, or an entry
//! naming an RPC that does not exist, stops the service instead of failing closed at run time.

mod jwt;

pub use jwt::{JwtValidator, TokenError};

use std::{collections::HashMap, sync::Arc};

use anyhow::{bail, ensure};
use prost::Message as _;

/// The roles that may call each RPC of a service: `(method name, roles)` pairs. A caller needs
/// any one of the roles.
pub type RoleTable = &'static [(&'static str, &'static [&'static str])];

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
    pub fn has_any_role(&self, roles: &[&str]) -> bool {
        roles.iter().any(|role| self.has_role(role))
    }
}

/// The roles each RPC accepts, keyed by its gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone, Default)]
pub struct RpcRoles {
    accepted: Arc<HashMap<String, &'static [&'static str]>>,
}

impl RpcRoles {
    /// The role table of `service` (its full gRPC name), unchecked. Prefer [`Self::checked`].
    pub fn new(service: &str, table: RoleTable) -> Self {
        let accepted = table
            .iter()
            .map(|(method, roles)| (format!("/{service}/{method}"), *roles))
            .collect();
        RpcRoles {
            accepted: Arc::new(accepted),
        }
    }

    /// The role table of `service`, checked against the service's contract in
    /// `file_descriptor_set` (encoded): every RPC has at least one role, every entry names an
    /// RPC of the service, and no RPC is listed twice.
    pub fn checked(
        service: &str,
        table: RoleTable,
        file_descriptor_set: &[u8],
    ) -> anyhow::Result<Self> {
        let methods = rpc_names(service, file_descriptor_set)?;
        for (index, (method, roles)) in table.iter().enumerate() {
            ensure!(
                methods.iter().any(|known| known == method),
                "the role table of {service} names RPC {method}, which the service does not have \
                 (its RPCs: {})",
                methods.join(", ")
            );
            ensure!(
                !roles.is_empty(),
                "the role table of {service} gives RPC {method} no role"
            );
            ensure!(
                !table[..index].iter().any(|(earlier, _)| earlier == method),
                "the role table of {service} lists RPC {method} twice"
            );
        }
        for method in &methods {
            ensure!(
                table.iter().any(|(listed, _)| listed == method),
                "RPC {method} of {service} has no entry in the role table: say which roles may call it"
            );
        }
        Ok(Self::new(service, table))
    }

    /// The roles a gRPC path accepts; `None` for undeclared paths (which are refused).
    pub fn accepted_roles(&self, path: &str) -> Option<&'static [&'static str]> {
        self.accepted.get(path).copied()
    }

    /// Paths that never need a token: health checks and reflection.
    pub fn is_open(path: &str) -> bool {
        path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
    }
}

/// The RPC names of `service` (full name, e.g. `ekspertbistand.v1.RoutingService`) in the
/// encoded file descriptor set.
fn rpc_names(service: &str, file_descriptor_set: &[u8]) -> anyhow::Result<Vec<String>> {
    let set = prost_types::FileDescriptorSet::decode(file_descriptor_set)?;
    for file in &set.file {
        for described in &file.service {
            let full_name = match file.package() {
                "" => described.name().to_owned(),
                package => format!("{package}.{}", described.name()),
            };
            if full_name == service {
                return Ok(described
                    .method
                    .iter()
                    .map(|method| method.name().to_owned())
                    .collect());
            }
        }
    }
    bail!("service {service} is not in the contract's file descriptor set")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTING: &str = "ekspertbistand.v1.RoutingService";

    #[test]
    fn a_complete_table_is_accepted_and_answers_by_path() {
        let table: RoleTable = &[
            ("OpenCase", &["case-writer"]),
            ("GetCase", &["case-reader", "case-writer"]),
            ("EvaluateRoute", &["case-reader"]),
            ("SendToRegularFlow", &["pilot-caseworker"]),
        ];
        let roles = RpcRoles::checked(ROUTING, table, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect("complete table");
        assert_eq!(
            roles.accepted_roles(&format!("/{ROUTING}/GetCase")),
            Some(&["case-reader", "case-writer"][..])
        );
        assert_eq!(roles.accepted_roles(&format!("/{ROUTING}/Nope")), None);
    }

    #[test]
    fn an_entry_naming_a_missing_rpc_is_refused() {
        let table: RoleTable = &[
            ("OpenCase", &["case-writer"]),
            ("GetCase", &["case-reader"]),
            ("EvaluateRoute", &["case-reader"]),
            ("DeleteCase", &["case-writer"]),
        ];
        let error = RpcRoles::checked(ROUTING, table, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect_err("DeleteCase does not exist");
        assert!(
            error.to_string().contains("names RPC DeleteCase"),
            "{error}"
        );
    }

    #[test]
    fn an_rpc_without_roles_is_refused() {
        let missing: RoleTable = &[("OpenCase", &["case-writer"]), ("GetCase", &["r"])];
        let error = RpcRoles::checked(ROUTING, missing, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect_err("EvaluateRoute is not listed");
        assert!(error.to_string().contains("RPC EvaluateRoute"), "{error}");
        let empty: RoleTable = &[
            ("OpenCase", &["case-writer"]),
            ("GetCase", &[]),
            ("EvaluateRoute", &["r"]),
        ];
        let error = RpcRoles::checked(ROUTING, empty, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect_err("GetCase has no role");
        assert!(error.to_string().contains("no role"), "{error}");
    }

    #[test]
    fn an_unknown_service_is_refused() {
        let error = RpcRoles::checked("x.v1.Nope", &[], ekb_proto::FILE_DESCRIPTOR_SET)
            .expect_err("no such service");
        assert!(error.to_string().contains("x.v1.Nope"), "{error}");
    }
}
