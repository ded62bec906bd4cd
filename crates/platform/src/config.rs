//! Configuration shared by every service: defaults → optional file → `EKB__SECTION__KEY`
//! environment variables, validated once at start so a bad value stops the process with a
//! message that names the key (DESIGN.md §5). Secrets are `SecretString`s and never printed.

use std::{net::SocketAddr, time::Duration};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};

/// Defaults every service starts from; each service may add its own on top.
const PLATFORM_DEFAULTS: &str = r#"
[grpc]
addr = "0.0.0.0:50051"
request_timeout = "30s"

[metrics]
addr = "0.0.0.0:9090"

[database]
url = "postgres://postgres@127.0.0.1:5432/postgres"
max_connections = 10
create_if_missing = false

[kafka]
brokers = "127.0.0.1:9092"
security_protocol = "plaintext"
topic_prefix = "ekspertbistand"
session_timeout = "45s"
auto_create_topics = false

[telemetry]
log_format = "text"
log_filter = "info,sqlx=warn,rdkafka=warn,h2=warn,tower=warn"
otlp_endpoint = ""

[auth]
mode = "jwt"
issuer = ""
audience = ""
jwks_url = ""
roles_claim = "roles"
organisations_claim = "organisations"
clock_skew = "30s"

[shutdown]
drain = "5s"
grace = "20s"

[outbox]
batch_size = 500
poll_interval = "5s"
lease = "60s"
retention = "7days"

[clock]
allow_with_jwt = false

[consumer]
max_attempts = 5
initial_backoff = "100ms"
max_backoff = "5s"
inbox_retention = "60days"
group_suffix = ""
"#;

/// The environment variable that names an optional configuration file (TOML).
pub const CONFIG_FILE_ENV: &str = "EKB_CONFIG_FILE";

/// Configuration sections every service has.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformConfig {
    /// gRPC server.
    pub grpc: GrpcConfig,
    /// Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The service's own database.
    pub database: DatabaseConfig,
    /// Kafka cluster.
    pub kafka: KafkaConfig,
    /// Logging and tracing.
    pub telemetry: TelemetryConfig,
    /// Bearer-token authentication.
    pub auth: AuthConfig,
    /// Graceful shutdown timing.
    pub shutdown: ShutdownConfig,
    /// Transactional outbox relay.
    pub outbox: OutboxConfig,
    /// Event consumer retries.
    pub consumer: ConsumerConfig,
    /// Where the service's "now" comes from.
    pub clock: ClockConfig,
}

/// Where a service's "now" comes from (ADRs 0029 and 0031): the system clock, unless `start` is
/// set, when the service's time starts at that instant and runs on at the system clock's pace —
/// for a development run on a chosen day — or `file` is set, when the service's time is what
/// that file says, moved by the simulator for every service at once. Either is refused with
/// `auth.mode = "jwt"` unless `allow_with_jwt` says so on purpose; the chart's values never set
/// them.
#[derive(Debug, Clone, Deserialize)]
pub struct ClockConfig {
    /// The instant the service's time starts at, RFC 3339 (e.g. `2027-06-01T08:00:00Z`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start: Option<time::OffsetDateTime>,
    /// A shared clock file (one RFC 3339 instant) the service reads its time from, written by
    /// the simulator (`ekb_platform::clock::ClockFile`).
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
    /// Allows `start` with JWT authentication (a simulation against a real identity provider).
    pub allow_with_jwt: bool,
}

/// gRPC server settings.
#[derive(Debug, Clone, Deserialize)]
pub struct GrpcConfig {
    /// Listen address; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// Upper bound for one call.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// Prometheus metrics endpoint settings.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsConfig {
    /// Listen address of `GET /metrics`.
    pub addr: SocketAddr,
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    /// Connection URL, a secret (it may hold a password).
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Create the database at start if it does not exist (local runs and tests only).
    pub create_if_missing: bool,
}

/// Kafka client settings, passed to librdkafka.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// librdkafka `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
    pub security_protocol: String,
    /// First part of every topic and consumer-group name (`<prefix>.<service>.v1`); tests use a
    /// unique prefix so runs against a shared cluster do not see each other's events.
    pub topic_prefix: String,
    /// Consumer group session timeout; tests lower it so a new member need not wait long.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Let consumers create missing topics (local runs and the mock broker; in a managed
    /// cluster topics are declared, e.g. as Strimzi `KafkaTopic`s).
    pub auto_create_topics: bool,
    /// CA certificate file for TLS.
    #[serde(default)]
    pub ssl_ca_location: Option<String>,
    /// Client certificate file for mutual TLS.
    #[serde(default)]
    pub ssl_certificate_location: Option<String>,
    /// Client key file for mutual TLS.
    #[serde(default)]
    pub ssl_key_location: Option<String>,
    /// SASL mechanism, e.g. PLAIN or SCRAM-SHA-512.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password, a secret.
    #[serde(default)]
    pub sasl_password: Option<SecretString>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for laptops.
    Text,
    /// One JSON object per line, for deployments.
    Json,
}

/// Logging and tracing settings.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// Text or JSON.
    pub log_format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directive; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces; empty switches export off.
    pub otlp_endpoint: String,
}

/// Whether bearer tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every RPC except health and reflection needs a valid JWT with the RPC's role.
    Jwt,
    /// No checks: only for local runs, set explicitly.
    Disabled,
}

/// Bearer JWT validation settings.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    /// `jwt` or `disabled`.
    pub mode: AuthMode,
    /// Expected `iss` claim.
    pub issuer: String,
    /// Expected `aud` claim.
    pub audience: String,
    /// Where the issuer publishes its signing keys.
    pub jwks_url: String,
    /// The claim that holds the caller's roles (a list of strings).
    pub roles_claim: String,
    /// The claim that lists the organisation numbers the caller represents (a list of
    /// strings): employers' representatives (from Altinn) and suppliers.
    pub organisations_claim: String,
    /// Leeway for `exp` and `nbf` against clock skew between the issuer and this pod.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
}

/// Graceful shutdown timing.
#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownConfig {
    /// After SIGTERM, keep serving while reporting NOT_SERVING this long, so load balancers
    /// stop sending new calls before the server stops accepting them.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// Upper bound for finishing in-flight work and flushing the producer.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

/// Outbox relay settings.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxConfig {
    /// Rows published per round.
    pub batch_size: i64,
    /// How often the relay looks for rows when no commit woke it (the safety net: commits
    /// wake it through LISTEN/NOTIFY).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long the publishing relay's lease lasts without renewal; longer than one round can
    /// take (`message.timeout.ms` is 30 s), so a live relay never loses it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long published rows are kept for audit before cleanup.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

/// Event consumer settings.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerConfig {
    /// Attempts before a failing message goes to the dead-letter topic.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest retry delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long inbox rows (the record of applied event ids) are kept; longer than the topics'
    /// retention, so a redelivered event always finds its row.
    #[serde(with = "humantime_serde")]
    pub inbox_retention: Duration,
    /// Appended to the consumer group's name (`<prefix>.<service>.<suffix>`; empty: the group
    /// is `<prefix>.<service>`). A process with a suffix of its own reads the topics from their
    /// start in a group of its own, without taking partitions or offsets from the service's
    /// running replicas: how a read model is rebuilt beside the one in use (docs/evaluation.md).
    pub group_suffix: String,
}

impl ConsumerConfig {
    /// The consumer group of `service` under topic prefix `prefix`: `<prefix>.<service>`,
    /// followed by `.<group_suffix>` when one is set.
    pub fn group(&self, prefix: &str, service: &str) -> String {
        let suffix = self.group_suffix.trim();
        if suffix.is_empty() {
            format!("{prefix}.{service}")
        } else {
            format!("{prefix}.{service}.{suffix}")
        }
    }
}

/// A configuration value that failed to load or validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not match the expected types.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value has the right type but breaks a rule.
    #[error("invalid configuration: {key} ({env}): {rule}")]
    Invalid {
        /// Dotted key, e.g. `kafka.brokers`.
        key: String,
        /// The environment variable that sets it.
        env: String,
        /// The rule broken.
        rule: String,
    },
}

impl ConfigError {
    /// A rule violation for `key`, naming its environment variable too.
    pub fn invalid(key: &str, rule: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            env: env_var_for(key),
            rule: rule.into(),
        }
    }
}

/// A duration that counts calendar days (a grace period, an answer deadline), as whole days:
/// `"90 days"` is 90; `"36h"` is refused, naming `key`.
pub fn whole_days(key: &str, duration: Duration) -> Result<i64, ConfigError> {
    const DAY: u64 = 86_400;
    if duration.subsec_nanos() != 0 || !duration.as_secs().is_multiple_of(DAY) {
        return Err(ConfigError::invalid(
            key,
            "must be whole days, e.g. \"90 days\"",
        ));
    }
    i64::try_from(duration.as_secs() / DAY).map_err(|_| ConfigError::invalid(key, "is too long"))
}

/// The environment variable that sets a dotted key: `kafka.brokers` → `EKB__KAFKA__BROKERS`.
pub fn env_var_for(key: &str) -> String {
    format!("EKB__{}", key.replace('.', "__").to_uppercase())
}

/// A key that was renamed or reshaped, and what replaced it: `(old key, what to write instead)`.
pub type ReplacedKey = (&'static str, &'static str);

/// The platform's keys that one configuration vocabulary replaced (ADR 0030): durations are
/// written once, human-readable (`"30s"`, `"5m"`, `"7days"`), under a name without a unit.
pub const PLATFORM_REPLACED_KEYS: &[ReplacedKey] = &[
    (
        "grpc.request_timeout_seconds",
        "grpc.request_timeout (a duration, e.g. \"30s\")",
    ),
    (
        "kafka.session_timeout_ms",
        "kafka.session_timeout (a duration, e.g. \"45s\")",
    ),
    (
        "auth.clock_skew_seconds",
        "auth.clock_skew (a duration, e.g. \"30s\")",
    ),
    (
        "shutdown.drain_seconds",
        "shutdown.drain (a duration, e.g. \"5s\")",
    ),
    (
        "shutdown.grace_seconds",
        "shutdown.grace (a duration, e.g. \"20s\")",
    ),
    (
        "outbox.poll_interval_ms",
        "outbox.poll_interval (a duration, e.g. \"5s\")",
    ),
    (
        "outbox.lease_seconds",
        "outbox.lease (a duration, e.g. \"60s\")",
    ),
    (
        "outbox.retention_hours",
        "outbox.retention (a duration, e.g. \"7days\")",
    ),
    (
        "consumer.initial_backoff_ms",
        "consumer.initial_backoff (a duration, e.g. \"100ms\")",
    ),
    (
        "consumer.max_backoff_ms",
        "consumer.max_backoff (a duration, e.g. \"5s\")",
    ),
    (
        "consumer.inbox_retention_hours",
        "consumer.inbox_retention (a duration, e.g. \"60days\")",
    ),
];

/// Builds a service's configuration from the layered sources.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    service_defaults: Option<&'static str>,
    overrides: Vec<(String, String)>,
    list_keys: Vec<&'static str>,
    replaced_keys: Vec<ReplacedKey>,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        ConfigLoader {
            service_defaults: None,
            overrides: Vec::new(),
            list_keys: Vec::new(),
            replaced_keys: PLATFORM_REPLACED_KEYS.to_vec(),
        }
    }
}

impl ConfigLoader {
    /// A loader with the platform defaults only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the service's own TOML defaults on top of the platform defaults.
    pub fn with_defaults(mut self, toml: &'static str) -> Self {
        self.service_defaults = Some(toml);
        self
    }

    /// Declares a key whose environment value is a comma-separated list.
    pub fn with_list_key(mut self, key: &'static str) -> Self {
        self.list_keys.push(key);
        self
    }

    /// Refuses `replaced` keys at start with a message naming what replaced each.
    pub fn with_replaced_keys(mut self, replaced: &[ReplacedKey]) -> Self {
        self.replaced_keys.extend_from_slice(replaced);
        self
    }

    /// Sets a value above every other source (tests and the dev launcher use this).
    pub fn with_override(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    /// Builds the layered sources once: platform defaults, the service's defaults, the optional
    /// file, `EKB__…` variables, then overrides.
    fn sources(&self) -> Result<Config, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(PLATFORM_DEFAULTS, FileFormat::Toml));
        if let Some(defaults) = self.service_defaults {
            builder = builder.add_source(File::from_str(defaults, FileFormat::Toml));
        }
        if let Ok(path) = std::env::var(CONFIG_FILE_ENV) {
            builder = builder.add_source(File::with_name(&path).format(FileFormat::Toml));
        }
        let mut environment = Environment::with_prefix("EKB")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        if !self.list_keys.is_empty() {
            environment = environment.list_separator(",");
            for key in &self.list_keys {
                environment = environment.with_list_parse_key(key);
            }
        }
        builder = builder.add_source(environment);
        for (key, value) in &self.overrides {
            let is_list = self.list_keys.contains(&key.as_str());
            builder = if is_list {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder.set_override(key.as_str(), items)?
            } else {
                builder.set_override(key.as_str(), value.as_str())?
            };
        }
        Ok(builder.build()?)
    }

    /// Loads the platform sections and the service's own `settings` sections from one read of
    /// the sources, and validates the platform sections. A key that neither part knows (a typo
    /// such as `EKB__PILOT__COUNTYS`) stops the load with a message naming it: a misspelt rule
    /// must not silently fall back to its default.
    pub fn load<S: DeserializeOwned>(&self) -> Result<ServiceConfig<S>, ConfigError> {
        let sources = self.sources()?;
        let (platform, platform_ignored) = deserialize_noting_ignored::<PlatformConfig>(&sources)?;
        let (settings, service_ignored) = deserialize_noting_ignored::<S>(&sources)?;
        let mut unknown: Vec<String> = leaf_keys(&sources)?
            .into_iter()
            .filter(|key| {
                is_under_any(key, &platform_ignored) && is_under_any(key, &service_ignored)
            })
            .collect();
        unknown.sort();
        if let Some((old, new)) = unknown.iter().find_map(|key| {
            self.replaced_keys
                .iter()
                .find(|(old, _)| old == key)
                .map(|(old, new)| (*old, *new))
        }) {
            return Err(ConfigError::invalid(
                old,
                format!("was replaced: write {new} instead"),
            ));
        }
        if let Some(first) = unknown.first() {
            let others = if unknown.len() > 1 {
                format!(" (and {})", unknown[1..].join(", "))
            } else {
                String::new()
            };
            return Err(ConfigError::invalid(
                first,
                format!("is not a configuration key of this service{others}; check its spelling"),
            ));
        }
        platform.validate()?;
        Ok(ServiceConfig { platform, settings })
    }
}

/// A service's whole configuration: the platform sections and its own typed settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig<S> {
    /// The sections every service has.
    pub platform: PlatformConfig,
    /// The service's own sections.
    pub settings: S,
}

/// No sections of its own (a service with only platform configuration).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NoSettings {}

/// Deserializes `T` from the sources and returns the dotted paths serde did not use.
fn deserialize_noting_ignored<T: DeserializeOwned>(
    sources: &Config,
) -> Result<(T, Vec<String>), ConfigError> {
    let mut ignored = Vec::new();
    let value = serde_ignored::deserialize(sources.clone(), |path| {
        ignored.push(path.to_string());
    })?;
    Ok((value, ignored))
}

/// Every leaf key of the sources, dotted (`pilot.counties`).
fn leaf_keys(sources: &Config) -> Result<Vec<String>, ConfigError> {
    fn walk(prefix: &str, value: &config::Value, keys: &mut Vec<String>) {
        match &value.kind {
            config::ValueKind::Table(table) => {
                for (key, value) in table {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, keys);
                }
            }
            _ => keys.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    let root: config::Map<String, config::Value> = sources.clone().try_deserialize()?;
    for (key, value) in &root {
        walk(key, value, &mut keys);
    }
    Ok(keys)
}

/// Whether `key` is one of `paths` or lies below one of them.
fn is_under_any(key: &str, paths: &[String]) -> bool {
    paths.iter().any(|path| {
        key == path
            || key
                .strip_prefix(path.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

impl PlatformConfig {
    /// Checks the rules the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.database.url.expose_secret().trim().is_empty() {
            return Err(ConfigError::invalid("database.url", "must not be empty"));
        }
        if !self.database.url.expose_secret().starts_with("postgres") {
            return Err(ConfigError::invalid(
                "database.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must not be empty"));
        }
        const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
        if !PROTOCOLS.contains(&self.kafka.security_protocol.as_str()) {
            return Err(ConfigError::invalid(
                "kafka.security_protocol",
                format!("must be one of {}", PROTOCOLS.join(", ")),
            ));
        }
        if self.auth.mode == AuthMode::Jwt {
            for (key, value) in [
                ("auth.issuer", &self.auth.issuer),
                ("auth.audience", &self.auth.audience),
                ("auth.jwks_url", &self.auth.jwks_url),
            ] {
                if value.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        key,
                        "must be set when auth.mode is jwt (set EKB__AUTH__MODE=disabled only for local runs)",
                    ));
                }
            }
        }
        if self.clock.start.is_some() && self.clock.file.is_some() {
            return Err(ConfigError::invalid(
                "clock.file",
                "cannot be set together with clock.start (one source of simulated time)",
            ));
        }
        let simulated = [
            ("clock.start", self.clock.start.is_some()),
            ("clock.file", self.clock.file.is_some()),
        ];
        if let Some((key, _)) = simulated.into_iter().find(|(_, set)| *set)
            && self.auth.mode == AuthMode::Jwt
            && !self.clock.allow_with_jwt
        {
            return Err(ConfigError::invalid(
                key,
                "is refused with auth.mode jwt (a service on simulated time must not serve real \
                 callers); set clock.allow_with_jwt = true only for a simulation on purpose",
            ));
        }
        if self.outbox.batch_size < 1 {
            return Err(ConfigError::invalid(
                "outbox.batch_size",
                "must be at least 1",
            ));
        }
        if self.outbox.lease < Duration::from_secs(35) {
            return Err(ConfigError::invalid(
                "outbox.lease",
                "must be at least 35 (longer than a delivery may take, 30 s)",
            ));
        }
        if self.consumer.max_attempts < 1 {
            return Err(ConfigError::invalid(
                "consumer.max_attempts",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(overrides: &[(&str, &str)]) -> Result<PlatformConfig, ConfigError> {
        let mut loader = ConfigLoader::new();
        for (key, value) in overrides {
            loader = loader.with_override(key, *value);
        }
        Ok(loader.load::<NoSettings>()?.platform)
    }

    #[test]
    fn simulated_time_is_read_and_refused_with_jwt_unless_allowed() {
        let start = "2027-06-01T08:00:00Z";
        let config = load(&[("auth.mode", "disabled"), ("clock.start", start)]).expect("loads");
        assert_eq!(
            config.clock.start,
            Some(time::macros::datetime!(2027-06-01 08:00 UTC))
        );
        let jwt = [
            ("auth.issuer", "https://issuer"),
            ("auth.audience", "ekb"),
            ("auth.jwks_url", "https://issuer/jwks"),
            ("clock.start", start),
        ];
        let refused = load(&jwt).expect_err("simulated time with jwt");
        assert!(refused.to_string().contains("clock.start"), "{refused}");
        let allowed = [jwt.as_slice(), &[("clock.allow_with_jwt", "true")]].concat();
        assert!(load(&allowed).is_ok());
        let shared = [&jwt[..3], &[("clock.file", "/tmp/ekb-sim/clock")]].concat();
        let refused = load(&shared).expect_err("a shared clock file with jwt");
        assert!(refused.to_string().contains("clock.file"), "{refused}");
        let both = load(&[
            ("auth.mode", "disabled"),
            ("clock.start", start),
            ("clock.file", "/tmp/ekb-sim/clock"),
        ])
        .expect_err("two sources of simulated time");
        assert!(both.to_string().contains("clock.start"), "{both}");
        assert_eq!(
            load(&[("auth.mode", "disabled")])
                .expect("loads")
                .clock
                .start,
            None
        );
    }

    #[test]
    fn a_replaced_key_is_refused_naming_its_replacement_and_durations_read_as_people_write_them() {
        let refused = load(&[
            ("auth.mode", "disabled"),
            ("outbox.poll_interval_ms", "500"),
        ])
        .expect_err("a replaced key");
        let message = refused.to_string();
        assert!(message.contains("outbox.poll_interval_ms"), "{message}");
        assert!(
            message.contains("outbox.poll_interval (a duration"),
            "{message}"
        );
        let config = load(&[
            ("auth.mode", "disabled"),
            ("outbox.poll_interval", "250ms"),
            ("consumer.inbox_retention", "90days"),
            ("shutdown.grace", "1m 30s"),
        ])
        .expect("loads");
        assert_eq!(config.outbox.poll_interval, Duration::from_millis(250));
        assert_eq!(
            config.consumer.inbox_retention,
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(config.shutdown.grace, Duration::from_secs(90));
        let bad = load(&[("auth.mode", "disabled"), ("outbox.lease", "sixty")])
            .expect_err("not a duration");
        assert!(
            bad.to_string().contains("outbox.lease") || bad.to_string().contains("lease"),
            "{bad}"
        );
    }

    #[test]
    fn a_count_of_days_must_be_whole_days() {
        assert_eq!(
            whole_days("k", Duration::from_secs(90 * 86_400)).ok(),
            Some(90)
        );
        assert!(whole_days("k", Duration::from_secs(36 * 3_600)).is_err());
    }

    #[test]
    fn the_consumer_group_is_prefix_and_service_and_a_suffix_makes_a_group_of_its_own() {
        let config = load(&[("auth.mode", "disabled")]).expect("loads");
        assert_eq!(
            config.consumer.group("ekspertbistand", "evaluation"),
            "ekspertbistand.evaluation"
        );
        let rebuild = load(&[
            ("auth.mode", "disabled"),
            ("consumer.group_suffix", "rebuild-1"),
        ])
        .expect("loads");
        assert_eq!(
            rebuild.consumer.group("ekspertbistand", "evaluation"),
            "ekspertbistand.evaluation.rebuild-1"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let err = load(&[("auth.mode", "disabled"), ("kafka.brokerz", "x:9092")])
            .expect_err("a misspelt key must fail");
        assert!(err.to_string().contains("kafka.brokerz"), "{err}");
        assert!(err.to_string().contains("EKB__KAFKA__BROKERZ"), "{err}");
        let err = load(&[("auth.mode", "disabled"), ("pilot.countys", "34")])
            .expect_err("a section the service does not have must fail");
        assert!(err.to_string().contains("pilot.countys"), "{err}");
    }

    #[test]
    fn a_service_section_is_known_to_its_service_only() {
        #[derive(Debug, Deserialize)]
        struct Pilot {
            #[allow(dead_code)]
            pilot: PilotSection,
        }
        #[derive(Debug, Deserialize)]
        struct PilotSection {
            #[allow(dead_code)]
            counties: Vec<String>,
        }
        let loader = ConfigLoader::new()
            .with_defaults("[pilot]\ncounties = [\"34\"]\n")
            .with_list_key("pilot.counties")
            .with_override("auth.mode", "disabled");
        loader
            .load::<Pilot>()
            .expect("pilot.counties is routing's own key");
        let err = loader
            .clone()
            .with_override("pilot.countys", "34")
            .load::<Pilot>()
            .expect_err("misspelt");
        assert!(err.to_string().contains("pilot.countys"), "{err}");
    }

    #[test]
    fn defaults_need_auth_settings_unless_disabled() {
        let err = load(&[]).expect_err("jwt mode without issuer must fail");
        assert!(err.to_string().contains("auth.issuer"), "{err}");
        assert!(err.to_string().contains("EKB__AUTH__ISSUER"), "{err}");
        let ok = load(&[("auth.mode", "disabled")]).expect("disabled auth loads");
        assert_eq!(ok.grpc.addr.port(), 50051);
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = load(&[("auth.mode", "disabled"), ("grpc.addr", "not-an-address")])
            .expect_err("bad address must fail");
        assert!(err.to_string().contains("grpc.addr"), "{err}");
    }

    #[test]
    fn a_bad_security_protocol_is_rejected() {
        let err = load(&[
            ("auth.mode", "disabled"),
            ("kafka.security_protocol", "tls"),
        ])
        .expect_err("unknown protocol must fail");
        assert!(err.to_string().contains("kafka.security_protocol"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_database_url() {
        let config = load(&[
            ("auth.mode", "disabled"),
            ("database.url", "postgres://app:hunter2@db/routing"),
        ])
        .expect("loads");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn env_var_names_follow_the_convention() {
        assert_eq!(env_var_for("kafka.brokers"), "EKB__KAFKA__BROKERS");
        assert_eq!(env_var_for("pilot.periods"), "EKB__PILOT__PERIODS");
    }
}
