//! The roles each RPC accepts, read from the contract. Each RPC declares them in the `.proto`
//! file as its `(ekspertbistand.v1.roles)` method option (proto/ekspertbistand/v1/options.proto),
//! so the contract is the one place they are written: the service's gate ([`RpcRoles`]), the
//! test catalog's client roles and the Helm docs' check all read them from here.
//!
//! prost drops the extension fields of `MethodOptions` when it decodes a descriptor, so the set
//! is read with prost-reflect, which keeps them. An RPC without a role stops the service at start
//! instead of failing closed at run time.

use std::{collections::HashMap, sync::Arc};

use anyhow::{Context as _, bail, ensure};
use prost_reflect::{DescriptorPool, ServiceDescriptor, Value};

/// Full name of the method option that lists an RPC's roles.
const ROLES_OPTION: &str = "ekspertbistand.v1.roles";

/// The roles that may call each RPC of one service, in the contract's order. A caller needs any
/// one of an RPC's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTable {
    rpcs: Vec<(String, Vec<String>)>,
}

impl RoleTable {
    /// The role table of `service` (its full gRPC name, e.g.
    /// `ekspertbistand.v1.RoutingService`) in the encoded `file_descriptor_set`. Refused when
    /// the set does not describe the service, or when one of its RPCs names no role.
    pub fn from_contract(service: &str, file_descriptor_set: &[u8]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(file_descriptor_set)
            .context("the contract's file descriptor set does not decode")?;
        let Some(described) = pool.get_service_by_name(service) else {
            bail!("service {service} is not in the contract's file descriptor set")
        };
        Self::of(&pool, &described)
    }

    /// The role table of every service in the encoded `file_descriptor_set`, by full gRPC name.
    pub fn every_service(file_descriptor_set: &[u8]) -> anyhow::Result<Vec<(String, Self)>> {
        let pool = DescriptorPool::decode(file_descriptor_set)
            .context("the contract's file descriptor set does not decode")?;
        pool.services()
            .map(|service| Ok((service.full_name().to_owned(), Self::of(&pool, &service)?)))
            .collect()
    }

    fn of(pool: &DescriptorPool, service: &ServiceDescriptor) -> anyhow::Result<Self> {
        let Some(option) = pool.get_extension_by_name(ROLES_OPTION) else {
            bail!("the contract does not define the method option {ROLES_OPTION} (options.proto)")
        };
        let mut rpcs = Vec::new();
        for method in service.methods() {
            let options = method.options();
            let declared = options.get_extension(&option);
            let roles: Vec<String> = declared
                .as_list()
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            ensure!(
                !roles.is_empty(),
                "RPC {} of {} names no role: give it `option ({ROLES_OPTION}) = \"<role>\";` in \
                 its .proto file",
                method.name(),
                service.full_name()
            );
            rpcs.push((method.name().to_owned(), roles));
        }
        Ok(RoleTable { rpcs })
    }

    /// Each RPC's name with the roles that may call it.
    pub fn rpcs(&self) -> &[(String, Vec<String>)] {
        &self.rpcs
    }

    /// Every role any RPC accepts, each once, in the contract's order: what a client needs to
    /// call every RPC of the service.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = Vec::new();
        for role in self.rpcs.iter().flat_map(|(_, roles)| roles) {
            if !roles.contains(&role.as_str()) {
                roles.push(role);
            }
        }
        roles
    }
}

/// The roles each RPC accepts, keyed by its gRPC path (`/package.Service/Method`): what the
/// gateway checks a caller's roles against.
#[derive(Debug, Clone, Default)]
pub struct RpcRoles {
    accepted: Arc<HashMap<String, Vec<String>>>,
}

impl RpcRoles {
    /// The roles each RPC of `service` (its full gRPC name) accepts, from its contract in the
    /// encoded `file_descriptor_set` ([`RoleTable::from_contract`]).
    pub fn from_contract(service: &str, file_descriptor_set: &[u8]) -> anyhow::Result<Self> {
        let table = RoleTable::from_contract(service, file_descriptor_set)?;
        Ok(Self::new(service, &table))
    }

    /// The gate for `service` (its full gRPC name) from its role table.
    pub fn new(service: &str, table: &RoleTable) -> Self {
        let accepted = table
            .rpcs()
            .iter()
            .map(|(method, roles)| (format!("/{service}/{method}"), roles.clone()))
            .collect();
        RpcRoles {
            accepted: Arc::new(accepted),
        }
    }

    /// The roles a gRPC path accepts; `None` for undeclared paths (which are refused).
    pub fn accepted_roles(&self, path: &str) -> Option<&[String]> {
        self.accepted.get(path).map(Vec::as_slice)
    }

    /// Paths that never need a token: health checks and reflection.
    pub fn is_open(path: &str) -> bool {
        path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    const ROUTING: &str = "ekspertbistand.v1.RoutingService";

    #[test]
    fn the_contract_gives_each_rpc_its_roles_and_the_gate_answers_by_path() {
        let table = RoleTable::from_contract(ROUTING, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect("routing's contract");
        let rpcs: Vec<(&str, Vec<&str>)> = table
            .rpcs()
            .iter()
            .map(|(method, roles)| (method.as_str(), roles.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            rpcs,
            [
                ("OpenCase", vec!["case-writer"]),
                (
                    "GetCase",
                    vec!["case-reader", "case-writer", "pilot-caseworker"]
                ),
                ("EvaluateRoute", vec!["case-reader", "case-writer"]),
                ("SendToRegularFlow", vec!["pilot-caseworker"]),
            ]
        );
        assert_eq!(
            table.roles(),
            ["case-writer", "case-reader", "pilot-caseworker"]
        );

        let gate = RpcRoles::from_contract(ROUTING, ekb_proto::FILE_DESCRIPTOR_SET)
            .expect("routing's contract");
        assert_eq!(
            gate.accepted_roles(&format!("/{ROUTING}/EvaluateRoute")),
            Some(&["case-reader".to_owned(), "case-writer".to_owned()][..])
        );
        assert_eq!(gate.accepted_roles(&format!("/{ROUTING}/Nope")), None);
    }

    #[test]
    fn every_rpc_of_every_service_in_the_contract_names_a_role() {
        let services =
            RoleTable::every_service(ekb_proto::FILE_DESCRIPTOR_SET).expect("every service");
        assert!(services.iter().any(|(service, _)| service == ROUTING));
        for (service, table) in services {
            assert!(!table.rpcs().is_empty(), "{service} has no RPC");
        }
    }

    #[test]
    fn an_rpc_without_roles_is_refused() {
        // prost keeps no extension fields: re-encoded, the contract has no `roles` options.
        let without_options =
            prost_types::FileDescriptorSet::decode(ekb_proto::FILE_DESCRIPTOR_SET)
                .expect("decodes")
                .encode_to_vec();
        let error = RoleTable::from_contract(ROUTING, &without_options)
            .expect_err("OpenCase names no role");
        assert!(
            error
                .to_string()
                .contains("RPC OpenCase of ekspertbistand.v1.RoutingService names no role"),
            "{error}"
        );
        assert!(RpcRoles::from_contract(ROUTING, &without_options).is_err());
    }

    #[test]
    fn an_unknown_service_is_refused() {
        let error = RoleTable::from_contract("x.v1.Nope", ekb_proto::FILE_DESCRIPTOR_SET)
            .expect_err("no such service");
        assert!(error.to_string().contains("x.v1.Nope"), "{error}");
    }
}
