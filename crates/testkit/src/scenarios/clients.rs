//! The clients of a running system, one per service the walks call, found by name among the
//! service processes that run it (the launcher's or a test's).

use anyhow::Context;
use ekb_proto::v1::{
    applications_service_client::ApplicationsServiceClient,
    budget_service_client::BudgetServiceClient,
    expert_registry_service_client::ExpertRegistryServiceClient,
    pilot_ordering_service_client::PilotOrderingServiceClient,
    refunds_service_client::RefundsServiceClient, routing_service_client::RoutingServiceClient,
};
use tonic::transport::Channel;

use crate::services::ServiceProcess;

/// One client per service of the walks, over plain channels (cheap to clone: a call clones the
/// one it uses).
#[derive(Clone)]
pub struct Clients {
    /// Routing.
    pub routing: RoutingServiceClient<Channel>,
    /// The expert registry.
    pub registry: ExpertRegistryServiceClient<Channel>,
    /// Applications.
    pub applications: ApplicationsServiceClient<Channel>,
    /// Refunds.
    pub refunds: RefundsServiceClient<Channel>,
    /// Pilot-ordering.
    pub ordering: PilotOrderingServiceClient<Channel>,
    /// Budget.
    pub budget: BudgetServiceClient<Channel>,
}

impl Clients {
    /// Connects to the services of the walks among `services`.
    pub async fn connect(services: &[ServiceProcess]) -> anyhow::Result<Self> {
        Ok(Clients {
            routing: RoutingServiceClient::new(channel(services, "routing").await?),
            registry: ExpertRegistryServiceClient::new(channel(services, "expert-registry").await?),
            applications: ApplicationsServiceClient::new(channel(services, "applications").await?),
            refunds: RefundsServiceClient::new(channel(services, "refunds").await?),
            ordering: PilotOrderingServiceClient::new(channel(services, "pilot-ordering").await?),
            budget: BudgetServiceClient::new(channel(services, "budget").await?),
        })
    }
}

/// The running service `name` among `services`.
pub fn service<'a>(
    services: &'a [ServiceProcess],
    name: &str,
) -> anyhow::Result<&'a ServiceProcess> {
    services
        .iter()
        .find(|service| service.name == name)
        .with_context(|| format!("{name} is not running"))
}

/// A channel to the running service `name` among `services`, for any of its clients.
pub async fn channel(services: &[ServiceProcess], name: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(service(services, name)?.url())?
        .connect()
        .await
        .with_context(|| format!("connecting to {name}"))
}
