//! librdkafka client configuration from [`KafkaConfig`], the same for every producer and
//! consumer, so TLS/SASL settings are written once.

use std::time::Duration;

use rdkafka::ClientConfig;
use secrecy::ExposeSecret;

use super::producer::EventProducer;
use crate::config::KafkaConfig;

/// Base client settings: brokers and security.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("security.protocol", &config.security_protocol);
    let optional = [
        ("ssl.ca.location", &config.ssl_ca_location),
        ("ssl.certificate.location", &config.ssl_certificate_location),
        ("ssl.key.location", &config.ssl_key_location),
        ("sasl.mechanism", &config.sasl_mechanism),
        ("sasl.username", &config.sasl_username),
    ];
    for (key, value) in optional {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            client.set(key, value);
        }
    }
    if let Some(password) = &config.sasl_password {
        client.set("sasl.password", password.expose_secret());
    }
    client
}

/// How long the producer tries to deliver a record before it reports a failure
/// (`message.timeout.ms`).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// An idempotent producer (`enable.idempotence`, `acks=all`): retries never duplicate or
/// reorder messages within a partition.
pub fn idempotent_producer(config: &KafkaConfig) -> anyhow::Result<EventProducer> {
    Ok(EventProducer::new(
        client_config(config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                MESSAGE_TIMEOUT.as_millis().to_string(),
            ),
    )?)
}

/// Whether the cluster answers a metadata request within `timeout`.
pub async fn is_reachable(producer: &EventProducer, timeout: Duration) -> bool {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || producer.cluster_answers(timeout))
        .await
        .unwrap_or(false)
}
