//! Operator commands every service binary carries, run with the service's own configuration
//! (so in a pod: `kubectl exec deploy/<release>-budget -- budget dead-letters list`):
//!
//! - `dead-letters list [--since T]` — the service's dead letters, oldest first, with their
//!   reason and whether the event has been applied since (the service's inbox);
//! - `dead-letters replay --event-id ID [--event-id ID …]` or `dead-letters replay --since T` —
//!   sends the chosen dead letters back through the service's normal consumer path
//!   ([`crate::messaging::dead_letters`]); idempotent, so a replay may be repeated.
//!
//! The runbook is docs/operations/dead-letters.md.

use std::collections::HashMap;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use sqlx::Connection;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    config::PlatformConfig,
    messaging::dead_letters::{self, DeadLetter, Selection},
};

/// The first argument that selects an operator command instead of serving.
pub const DEAD_LETTERS_COMMAND: &str = "dead-letters";

#[derive(Debug, Parser)]
#[command(about = "Operator commands of an ekspertbistand service")]
struct OperatorCli {
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// The service's dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Lists the dead letters with their reasons and current state.
    List {
        /// Only those dead-lettered at or after this instant (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        since: Option<OffsetDateTime>,
    },
    /// Replays chosen dead letters through the service's consumer.
    Replay {
        /// The event id of a dead letter to replay (repeatable).
        #[arg(
            long = "event-id",
            required_unless_present = "since",
            conflicts_with = "since"
        )]
        event_ids: Vec<uuid::Uuid>,
        /// Replays every dead letter recorded at or after this instant (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        since: Option<OffsetDateTime>,
    },
}

fn parse_instant(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|error| format!("not an RFC 3339 instant like 2026-12-01T00:00:00Z: {error}"))
}

/// Whether the process was started to run an operator command rather than to serve.
pub fn is_operator_command() -> bool {
    std::env::args().nth(1).as_deref() == Some(DEAD_LETTERS_COMMAND)
}

/// Runs the operator command in the process's arguments for service `service`.
pub async fn run(service: &'static str, config: &PlatformConfig) -> anyhow::Result<()> {
    let cli = OperatorCli::parse();
    match cli.command {
        OperatorCommand::DeadLetters(DeadLetterCommand::List { since }) => {
            let letters = read(service, config).await?;
            let letters: Vec<DeadLetter> = match since {
                Some(since) => letters
                    .into_iter()
                    .filter(|letter| Selection::Since(since).selects(letter))
                    .collect(),
                None => letters,
            };
            let states = inbox_states(config, &letters).await;
            print_list(service, &letters, &states);
            Ok(())
        }
        OperatorCommand::DeadLetters(DeadLetterCommand::Replay { event_ids, since }) => {
            let selection = match since {
                Some(since) => Selection::Since(since),
                None => Selection::EventIds(event_ids.clone()),
            };
            let letters = read(service, config).await?;
            let chosen: Vec<DeadLetter> = letters
                .into_iter()
                .filter(|letter| selection.selects(letter))
                .collect();
            let missing: Vec<String> = event_ids
                .iter()
                .filter(|id| !chosen.iter().any(|letter| letter.event_id == Some(**id)))
                .map(ToString::to_string)
                .collect();
            anyhow::ensure!(
                missing.is_empty(),
                "no dead letter of {service} has event id {}; nothing replayed",
                missing.join(", ")
            );
            let sent = dead_letters::replay(&config.kafka, service, &chosen).await?;
            println!(
                "replayed {sent} dead letter(s) of {service} to {}; the consumer applies each once",
                dead_letters::replay_topic_for(&config.kafka.topic_prefix, service)
            );
            Ok(())
        }
    }
}

async fn read(service: &'static str, config: &PlatformConfig) -> anyhow::Result<Vec<DeadLetter>> {
    let kafka = config.kafka.clone();
    tokio::task::spawn_blocking(move || dead_letters::read_all(&kafka, service)).await?
}

/// The inbox outcome of each listed event (`applied` once a replay succeeded); empty if the
/// database cannot be reached (the list is still printed).
async fn inbox_states(
    config: &PlatformConfig,
    letters: &[DeadLetter],
) -> HashMap<uuid::Uuid, String> {
    let ids: Vec<uuid::Uuid> = letters.iter().filter_map(|l| l.event_id).collect();
    let lookup = async {
        let mut connection =
            sqlx::PgConnection::connect(config.database.url.expose_secret()).await?;
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT event_id, outcome FROM inbox WHERE event_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut connection)
                .await?;
        connection.close().await?;
        Ok::<_, sqlx::Error>(rows)
    };
    match lookup.await {
        Ok(rows) => rows.into_iter().collect(),
        Err(error) => {
            eprintln!("(state unknown: the database did not answer: {error})");
            HashMap::new()
        }
    }
}

fn print_list(service: &str, letters: &[DeadLetter], states: &HashMap<uuid::Uuid, String>) {
    println!("{} dead letter(s) of {service}", letters.len());
    for letter in letters {
        let at = letter
            .dead_lettered_at
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| "?".to_owned());
        let id = letter
            .event_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string());
        let state = letter
            .event_id
            .and_then(|id| states.get(&id).cloned())
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{}:{}\t{at}\t{}\t{id}\tstate={state}\tfrom={}\tattempts={}\treason={}",
            letter.partition,
            letter.offset,
            letter.event_type.as_deref().unwrap_or("-"),
            letter.source_topic,
            letter.attempts,
            letter.reason,
        );
    }
}
