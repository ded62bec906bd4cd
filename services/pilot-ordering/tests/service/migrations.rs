//! Migrations 102 and 103 move every stored enum from the contract's number to its code: rows
//! stored before them read the same after them, a number the contract does not know stops them,
//! and the CHECK constraints they add accept exactly the codes the service writes
//! (`ekb_pilot_ordering::codes`, and `ekb_domain::CompetenceArea` for competence areas).

use ekb_domain::CompetenceArea;
use ekb_pilot_ordering::codes::{
    FundsDeniedReason, InvoicePaymentStatus, InvoiceRejectionReason, InvoiceStatus,
    OrderAbortReason, OrderCancellationReason, OrderExpiryReason, OrderStatus,
    SupplierDeclineReason,
};
use ekb_testkit::postgres::{database_at, drop_database};
use sqlx::{AssertSqlSafe, Connection, PgConnection, types::Text};
use uuid::Uuid;

/// The migrations before the codes.
const BEFORE: [&str; 2] = [
    include_str!("../../migrations/100_cases_agreements_orders_invoices.sql"),
    include_str!("../../migrations/101_order_fingerprint_is_a_hash.sql"),
];

/// The migration under test.
const CODES: &str = include_str!("../../migrations/102_enums_are_stored_as_codes.sql");

/// A database at the schema before migration 102, with one case; returns its name and a
/// connection.
async fn before_codes(purpose: &str) -> anyhow::Result<(String, PgConnection, Uuid)> {
    let (name, mut db) = database_at(purpose, &BEFORE).await?;
    let case_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at) VALUES ($1, '34', '974760673', 3, 'PILOT', now())",
    )
    .bind(case_id)
    .execute(&mut db)
    .await?;
    Ok((name, db, case_id))
}

/// Inserts an order of `case_id` with the enum columns set to `numbers` (status,
/// decline_reason_code, cancellation_reason, funds_denied_reason, abort_reason,
/// abort_previous_status, expiry_reason), as the schema before 102 stored them.
async fn insert_order(
    db: &mut PgConnection,
    case_id: Uuid,
    numbers: [i32; 7],
) -> anyhow::Result<Uuid> {
    let order_id = Uuid::now_v7();
    let mut insert = sqlx::query(
        "INSERT INTO orders (order_id, case_id, county_code, competence_area, agreement_id, \
         agreement_reference, supplier_organisation_number, supplier_name, price_ore, budget_year, \
         account_chapter, account_post, usage_month, contact_name, contact_phone, contact_email, \
         assignment_description, employee_fodselsnummer_sealed, employee_pseudonym, \
         case_opened_at, requested_at, status, decline_reason_code, cancellation_reason, \
         funds_denied_reason, abort_reason, abort_previous_status, expiry_reason) \
         VALUES ($1, $2, '34', 3, $3, 'RA-1', '923609016', 'Supplier', 2400000, 2027, 2650, 76, \
         '2027-03-01', 'Kari', '12345678', 'kari@example.no', 'x', 'sealed', 'p', now(), now(), \
         $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(order_id)
    .bind(case_id)
    .bind(Uuid::now_v7());
    for number in numbers {
        insert = insert.bind(number);
    }
    insert.execute(db).await?;
    Ok(order_id)
}

#[tokio::test]
async fn stored_numbers_become_codes_and_unset_reasons_become_null() -> anyhow::Result<()> {
    let (name, mut db, case_id) = before_codes("po_codes").await?;
    // Aborted (8) for SUPPLIER_BREACH (4) once ACCEPTED (3); cancelled (7) for FUNDS_DENIED (3)
    // with INVALID_REQUEST (3); declined (4) for CONFLICT_OF_INTEREST (3); expired (9) as
    // NOT_STARTED_IN_TIME (2).
    let aborted = insert_order(&mut db, case_id, [8, 0, 0, 0, 4, 3, 0]).await?;
    let cancelled = insert_order(&mut db, case_id, [7, 0, 3, 3, 0, 0, 0]).await?;
    let declined = insert_order(&mut db, case_id, [4, 3, 0, 0, 0, 0, 0]).await?;
    let expired = insert_order(&mut db, case_id, [9, 0, 0, 0, 0, 0, 2]).await?;
    let invoice_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO invoices (invoice_id, request_id, request_fingerprint, order_id, \
         invoice_number, invoice_date, amount_ore, invoice_document_id, status, rejection_reason, \
         submitted_at, payment_status) \
         VALUES ($1, $2, 'f', $3, 'F-1', '2027-03-10', 100, $4, 2, 0, now(), 1)",
    )
    .bind(invoice_id)
    .bind(Uuid::now_v7())
    .bind(aborted)
    .bind(Uuid::now_v7())
    .execute(&mut db)
    .await?;

    sqlx::raw_sql(CODES).execute(&mut db).await?;

    type Row = (
        OrderStatus,
        Option<SupplierDeclineReason>,
        Option<OrderCancellationReason>,
        Option<FundsDeniedReason>,
        Option<OrderAbortReason>,
        Option<OrderStatus>,
        Option<OrderExpiryReason>,
    );
    let order = |order_id: Uuid| {
        sqlx::query_as::<_, Row>(
            "SELECT status, decline_reason_code, cancellation_reason, funds_denied_reason, \
             abort_reason, abort_previous_status, expiry_reason FROM orders WHERE order_id = $1",
        )
        .bind(order_id)
    };
    assert_eq!(
        order(aborted).fetch_one(&mut db).await?,
        (
            OrderStatus::Aborted,
            None,
            None,
            None,
            Some(OrderAbortReason::SupplierBreach),
            Some(OrderStatus::Accepted),
            None
        )
    );
    assert_eq!(
        order(cancelled).fetch_one(&mut db).await?,
        (
            OrderStatus::Cancelled,
            None,
            Some(OrderCancellationReason::FundsDenied),
            Some(FundsDeniedReason::InvalidRequest),
            None,
            None,
            None
        )
    );
    assert_eq!(
        order(declined).fetch_one(&mut db).await?,
        (
            OrderStatus::Declined,
            Some(SupplierDeclineReason::ConflictOfInterest),
            None,
            None,
            None,
            None,
            None
        )
    );
    assert_eq!(
        order(expired).fetch_one(&mut db).await?.6,
        Some(OrderExpiryReason::NotStartedInTime)
    );
    let invoice: (
        InvoiceStatus,
        Option<InvoiceRejectionReason>,
        Option<InvoicePaymentStatus>,
    ) = sqlx::query_as(
        "SELECT status, rejection_reason, payment_status FROM invoices WHERE invoice_id = $1",
    )
    .bind(invoice_id)
    .fetch_one(&mut db)
    .await?;
    assert_eq!(
        invoice,
        (
            InvoiceStatus::Approved,
            None,
            Some(InvoicePaymentStatus::Pending)
        )
    );
    // The pending-payment index compares with the code now.
    let pending: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'invoices_payment_pending'",
    )
    .fetch_optional(&mut db)
    .await?;
    assert!(
        pending.is_some_and(|definition| definition.contains("'PENDING'::text")),
        "the partial index is recreated with the code"
    );

    db.close().await?;
    drop_database(&name).await
}

#[tokio::test]
async fn the_checks_accept_exactly_the_codes_the_service_writes() -> anyhow::Result<()> {
    let (name, mut db, case_id) = before_codes("po_checks").await?;
    sqlx::raw_sql(CODES).execute(&mut db).await?;
    let order_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO orders (order_id, case_id, county_code, competence_area, agreement_id, \
         agreement_reference, supplier_organisation_number, supplier_name, price_ore, budget_year, \
         account_chapter, account_post, usage_month, contact_name, contact_phone, contact_email, \
         assignment_description, employee_fodselsnummer_sealed, employee_pseudonym, \
         case_opened_at, requested_at, status) \
         VALUES ($1, $2, '34', 3, $3, 'RA-1', '923609016', 'Supplier', 2400000, 2027, 2650, 76, \
         '2027-03-01', 'Kari', '12345678', 'kari@example.no', 'x', 'sealed', 'p', now(), now(), \
         'FUNDS_PENDING')",
    )
    .bind(order_id)
    .bind(case_id)
    .bind(Uuid::now_v7())
    .execute(&mut db)
    .await?;
    let invoice_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO invoices (invoice_id, request_id, request_fingerprint, order_id, \
         invoice_number, invoice_date, amount_ore, invoice_document_id, status, submitted_at) \
         VALUES ($1, $2, 'f', $3, 'F-1', '2027-03-10', 100, $4, 'SUBMITTED', now())",
    )
    .bind(invoice_id)
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(Uuid::now_v7())
    .execute(&mut db)
    .await?;
    let columns: [(&str, &str, Uuid, Vec<&str>); 10] = [
        (
            "invoices",
            "status",
            invoice_id,
            InvoiceStatus::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "invoices",
            "rejection_reason",
            invoice_id,
            InvoiceRejectionReason::ALL
                .iter()
                .map(|v| v.code())
                .collect(),
        ),
        (
            "invoices",
            "payment_status",
            invoice_id,
            InvoicePaymentStatus::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "orders",
            "status",
            order_id,
            OrderStatus::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "orders",
            "decline_reason_code",
            order_id,
            SupplierDeclineReason::ALL
                .iter()
                .map(|v| v.code())
                .collect(),
        ),
        (
            "orders",
            "cancellation_reason",
            order_id,
            OrderCancellationReason::ALL
                .iter()
                .map(|v| v.code())
                .collect(),
        ),
        (
            "orders",
            "funds_denied_reason",
            order_id,
            FundsDeniedReason::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "orders",
            "abort_reason",
            order_id,
            OrderAbortReason::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "orders",
            "abort_previous_status",
            order_id,
            OrderStatus::ALL.iter().map(|v| v.code()).collect(),
        ),
        (
            "orders",
            "expiry_reason",
            order_id,
            OrderExpiryReason::ALL.iter().map(|v| v.code()).collect(),
        ),
    ];
    for (table, column, id, codes) in columns {
        let key = if table == "orders" {
            "order_id"
        } else {
            "invoice_id"
        };
        let update = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2");
        for code in codes {
            sqlx::query(AssertSqlSafe(update.clone()))
                .bind(code)
                .bind(id)
                .execute(&mut db)
                .await
                .map_err(|error| anyhow::anyhow!("{column} = {code}: {error}"))?;
        }
        let unknown = sqlx::query(AssertSqlSafe(update))
            .bind("2")
            .bind(id)
            .execute(&mut db)
            .await;
        assert!(unknown.is_err(), "{column} refuses a number");
    }

    db.close().await?;
    drop_database(&name).await
}

#[tokio::test]
async fn a_number_the_contract_does_not_know_stops_the_migration() -> anyhow::Result<()> {
    let (name, mut db, case_id) = before_codes("po_unknown").await?;
    insert_order(&mut db, case_id, [5, 0, 0, 0, 0, 0, 0]).await?;
    insert_order(&mut db, case_id, [7, 0, 42, 0, 0, 0, 0]).await?;
    let refused = sqlx::raw_sql(CODES).execute(&mut db).await;
    assert!(
        refused.is_err(),
        "cancellation_reason 42 must not become NULL"
    );
    db.close().await?;
    drop_database(&name).await
}

/// The migration that stores competence areas as codes.
const AREAS: &str = include_str!("../../migrations/103_competence_areas_are_codes.sql");

/// A database at the schema before migration 103; returns its name and a connection.
async fn before_areas(purpose: &str) -> anyhow::Result<(String, PgConnection)> {
    let [initial, fingerprint] = BEFORE;
    database_at(purpose, &[initial, fingerprint, CODES]).await
}

/// Inserts a case with competence area `number`, as the schema before 103 stored it.
async fn insert_case(db: &mut PgConnection, number: i32) -> anyhow::Result<Uuid> {
    let case_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, competence_area, \
         flow, opened_at) VALUES ($1, '34', '974760673', $2, 'PILOT', now())",
    )
    .bind(case_id)
    .bind(number)
    .execute(db)
    .await?;
    Ok(case_id)
}

/// Inserts an agreement covering the areas `numbers`, as the schema before 103 stored them.
async fn insert_agreement(db: &mut PgConnection, numbers: &[i32]) -> anyhow::Result<Uuid> {
    let agreement_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, \
         supplier_name, county_code, competence_areas, price_ore, ranking, monthly_capacity, \
         valid_from, valid_to, version) \
         VALUES ($1, 'RA-1', '923609016', 'Supplier', '34', $2, 2400000, 1, 5, '2027-01-01', \
         '2028-12-31', 1)",
    )
    .bind(agreement_id)
    .bind(numbers)
    .execute(db)
    .await?;
    Ok(agreement_id)
}

/// Inserts an order of `case_id` in competence area `area` (a number before 103, a code after).
async fn insert_order_in_area<A>(
    db: &mut PgConnection,
    case_id: Uuid,
    area: A,
) -> anyhow::Result<Uuid>
where
    A: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let order_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO orders (order_id, case_id, county_code, competence_area, agreement_id, \
         agreement_reference, supplier_organisation_number, supplier_name, price_ore, budget_year, \
         account_chapter, account_post, usage_month, contact_name, contact_phone, contact_email, \
         assignment_description, employee_fodselsnummer_sealed, employee_pseudonym, \
         case_opened_at, requested_at, status) \
         VALUES ($1, $2, '34', $3, $4, 'RA-1', '923609016', 'Supplier', 2400000, 2027, 2650, 76, \
         '2027-03-01', 'Kari', '12345678', 'kari@example.no', 'x', 'sealed', 'p', now(), now(), \
         'FUNDS_PENDING')",
    )
    .bind(order_id)
    .bind(case_id)
    .bind(area)
    .bind(Uuid::now_v7())
    .execute(db)
    .await?;
    Ok(order_id)
}

#[tokio::test]
async fn stored_area_numbers_become_codes_and_own_expert_becomes_null() -> anyhow::Result<()> {
    let (name, mut db) = before_areas("po_areas").await?;
    // CONFLICT_HANDLING is 3, CAREER_GUIDANCE 6, WORKPLACE_RELATIONS 1; a case's 0 is the
    // employer's own expert.
    let framework = insert_case(&mut db, 3).await?;
    let own_expert = insert_case(&mut db, 0).await?;
    let order_id = insert_order_in_area(&mut db, framework, 3).await?;
    let agreement_id = insert_agreement(&mut db, &[6, 3, 1]).await?;

    sqlx::raw_sql(AREAS).execute(&mut db).await?;

    let case = |case_id: Uuid| {
        sqlx::query_scalar::<_, Option<Text<CompetenceArea>>>(
            "SELECT competence_area FROM cases WHERE case_id = $1",
        )
        .bind(case_id)
    };
    assert_eq!(
        case(framework).fetch_one(&mut db).await?,
        Some(Text(CompetenceArea::ConflictHandling))
    );
    assert_eq!(case(own_expert).fetch_one(&mut db).await?, None);
    let order: Text<CompetenceArea> =
        sqlx::query_scalar("SELECT competence_area FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&mut db)
            .await?;
    assert_eq!(order, Text(CompetenceArea::ConflictHandling));
    let areas: Vec<String> =
        sqlx::query_scalar("SELECT competence_areas FROM agreements WHERE agreement_id = $1")
            .bind(agreement_id)
            .fetch_one(&mut db)
            .await?;
    let areas: Vec<CompetenceArea> = areas
        .iter()
        .map(|code| CompetenceArea::parse_code(code))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        areas,
        [
            CompetenceArea::CareerGuidance,
            CompetenceArea::ConflictHandling,
            CompetenceArea::WorkplaceRelations
        ]
    );
    // Matching a case's area against an agreement's areas works on the codes.
    let covered: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM cases c JOIN agreements a \
         ON c.competence_area = ANY(a.competence_areas) WHERE c.case_id = $1)",
    )
    .bind(framework)
    .fetch_one(&mut db)
    .await?;
    assert!(covered);

    db.close().await?;
    drop_database(&name).await
}

#[tokio::test]
async fn the_area_checks_accept_exactly_the_codes_of_competence_area() -> anyhow::Result<()> {
    let (name, mut db) = before_areas("po_area_checks").await?;
    sqlx::raw_sql(AREAS).execute(&mut db).await?;
    let case_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO cases (case_id, county_code, employer_organisation_number, flow, opened_at) \
         VALUES ($1, '34', '974760673', 'PILOT', now())",
    )
    .bind(case_id)
    .execute(&mut db)
    .await?;
    let order_id = insert_order_in_area(&mut db, case_id, "RESTRUCTURING").await?;
    let agreement_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO agreements (agreement_id, agreement_reference, supplier_organisation_number, \
         supplier_name, county_code, competence_areas, price_ore, ranking, monthly_capacity, \
         valid_from, valid_to, version) \
         VALUES ($1, 'RA-1', '923609016', 'Supplier', '34', $2, 2400000, 1, 5, '2027-01-01', \
         '2028-12-31', 1)",
    )
    .bind(agreement_id)
    .bind(
        CompetenceArea::ALL
            .iter()
            .map(CompetenceArea::code)
            .collect::<Vec<_>>(),
    )
    .execute(&mut db)
    .await?;

    let columns = [
        (
            "UPDATE cases SET competence_area = $1 WHERE case_id = $2",
            case_id,
        ),
        (
            "UPDATE orders SET competence_area = $1 WHERE order_id = $2",
            order_id,
        ),
        (
            "UPDATE agreements SET competence_areas = ARRAY[$1] WHERE agreement_id = $2",
            agreement_id,
        ),
    ];
    for (update, id) in columns {
        for area in CompetenceArea::ALL {
            sqlx::query(update)
                .bind(area.code())
                .bind(id)
                .execute(&mut db)
                .await
                .map_err(|error| anyhow::anyhow!("{update} ({area}): {error}"))?;
        }
        for unknown in ["YOGA", "3", "conflict_handling"] {
            let refused = sqlx::query(update)
                .bind(unknown)
                .bind(id)
                .execute(&mut db)
                .await;
            assert!(refused.is_err(), "{update} refuses {unknown}");
        }
    }
    let empty = sqlx::query(
        "UPDATE agreements SET competence_areas = '{}'::text[] WHERE agreement_id = $1",
    )
    .bind(agreement_id)
    .execute(&mut db)
    .await;
    assert!(empty.is_err(), "an agreement covers at least one area");
    let order_without_area =
        sqlx::query("UPDATE orders SET competence_area = NULL WHERE order_id = $1")
            .bind(order_id)
            .execute(&mut db)
            .await;
    assert!(order_without_area.is_err(), "an order always has its area");

    db.close().await?;
    drop_database(&name).await
}

#[tokio::test]
async fn an_area_number_the_contract_does_not_know_stops_the_migration() -> anyhow::Result<()> {
    for (purpose, unknown) in [("po_area_case", "case"), ("po_area_agreement", "agreement")] {
        let (name, mut db) = before_areas(purpose).await?;
        if unknown == "case" {
            insert_case(&mut db, 7).await?;
        } else {
            insert_agreement(&mut db, &[3, 7]).await?;
        }
        let refused = sqlx::raw_sql(AREAS).execute(&mut db).await;
        assert!(refused.is_err(), "area 7 of an {unknown} must not be kept");
        db.close().await?;
        drop_database(&name).await?;
    }
    Ok(())
}
