//! Migration 101 moves `applications.status` from the contract's full name
//! (`APPLICATION_STATUS_GRANTED`) to its short code: rows stored before it are found by the
//! work list's status filter after it, and the CHECK constraint it adds refuses a contract name.

use ekb_applications::{codes::ApplicationStatus, store};
use ekb_proto::v1;
use ekb_testkit::postgres::{database_at, drop_database};
use prost::Message as _;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The migration before the codes.
const BEFORE: &str = include_str!("../../migrations/100_cases_and_applications.sql");

/// The migration under test.
const CODES: &str = include_str!("../../migrations/101_application_status_is_a_code.sql");

/// Inserts an application of a new case whose stored status is `status`, as written.
async fn insert(db: &mut PgConnection, status: &str) -> anyhow::Result<Uuid> {
    let (case_id, application_id) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO cases (case_id, flow, county_code, employer_organisation_number, opened_at) \
         VALUES ($1, 'REGULAR', '34', '974760673', now())",
    )
    .bind(case_id)
    .execute(&mut *db)
    .await?;
    let document = v1::Application {
        application_id: application_id.to_string(),
        case_id: case_id.to_string(),
        ..Default::default()
    };
    sqlx::query(
        "INSERT INTO applications (application_id, request_id, request_digest, case_id, \
         employer_organisation_number, county_code, status, live, submitted_at, \
         status_changed_at, document) \
         VALUES ($1, $2, 'd', $3, '974760673', '34', $4, false, now(), now(), $5)",
    )
    .bind(application_id)
    .bind(Uuid::now_v7())
    .bind(case_id)
    .bind(status)
    .bind(document.encode_to_vec())
    .execute(db)
    .await?;
    Ok(application_id)
}

#[tokio::test]
async fn stored_status_names_become_codes_the_work_list_finds_and_the_check_keeps()
-> anyhow::Result<()> {
    let (name, mut db) = database_at("applications_codes", &[BEFORE]).await?;
    let mut stored = Vec::new();
    for status in ApplicationStatus::ALL {
        let name = status.to_wire().as_str_name();
        stored.push((*status, insert(&mut db, name).await?));
    }

    sqlx::raw_sql(CODES).execute(&mut db).await?;

    for (status, id) in &stored {
        let code: String =
            sqlx::query_scalar("SELECT status FROM applications WHERE application_id = $1")
                .bind(id)
                .fetch_one(&mut db)
                .await?;
        assert_eq!(code, status.code());
        let listed = store::list_work(&mut db, &[status.code()], &[], None, 10).await?;
        let listed: Vec<String> = listed
            .into_iter()
            .map(|row| row.application.application_id)
            .collect();
        assert_eq!(listed, [id.to_string()], "{status:?}");
    }
    let refused = insert(&mut db, "APPLICATION_STATUS_GRANTED")
        .await
        .expect_err("a contract name is not a code");
    assert!(
        refused.to_string().contains("applications_status_code"),
        "{refused}"
    );

    db.close().await?;
    drop_database(&name).await
}
