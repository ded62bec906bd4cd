//! gRPC serving: the host that runs a service, the layer in front of its handlers, and the
//! adapter that turns plain async handler functions into the generated tonic trait.

pub mod gateway;
pub mod handlers;
pub mod host;

pub use gateway::GatewayLayer;
pub use handlers::Call;
pub use host::{Listeners, ServiceHost, ServiceIdentity};

/// The authenticated caller of a request (set by the gateway layer).
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&crate::auth::Caller> {
    request.extensions().get::<crate::auth::Caller>()
}
