//! gRPC serving: the host that runs a service and the layer in front of its handlers.

pub mod gateway;
pub mod host;

pub use gateway::GatewayLayer;
pub use host::{Listeners, ServiceHost, ServiceIdentity};

/// The authenticated caller of a request (set by the gateway layer).
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&crate::auth::Caller> {
    request.extensions().get::<crate::auth::Caller>()
}
