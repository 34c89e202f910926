//! A registration interrupted between its steps (claim, user, organization) is completed by
//! the next attempt instead of locking the address forever. The fault is real: a trigger
//! makes the database refuse the step's append, exactly as a crash there would leave things.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::json;

use crate::accounts::{PASSWORD, email_of, login};
use crate::helpers::TestApp;

/// Makes every append to `aggregate_type` fail until [`heal`] (SQLSTATE P0001, a 500 to the client).
pub(crate) async fn inject_fault(app: &TestApp, aggregate_type: &str) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
         CREATE TRIGGER injected_fault BEFORE INSERT ON events FOR EACH ROW
           WHEN (NEW.aggregate_type = '{aggregate_type}') EXECUTE FUNCTION injected_fault();"
    ))
    .execute(&app.pool)
    .await
    .unwrap();
}

pub(crate) async fn heal(app: &TestApp) {
    sqlx::raw_sql("DROP TRIGGER injected_fault ON events; DROP FUNCTION injected_fault();")
        .execute(&app.pool)
        .await
        .unwrap();
}

async fn register(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/register",
        &json!({ "email": email_of(name), "password": password, "org_name": "Acme" }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_interrupted_after_the_email_claim_is_completed_by_a_retry() {
    let app = TestApp::spawn().await;
    inject_fault(&app, "user").await;
    let interrupted = register(&app, "ann", PASSWORD).await;
    assert_eq!(interrupted.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        app.events_of_type("email_claim.claimed").await,
        1,
        "the claim was recorded"
    );
    assert_eq!(app.events_of_type("user.registered").await, 0, "the user was not");
    heal(&app).await;

    let retried = register(&app, "ann", PASSWORD).await;

    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "{}",
        retried.text().await.unwrap()
    );
    assert_eq!(
        app.events_of_type("email_claim.claimed").await,
        1,
        "the claim was reused"
    );
    login(&app, &email_of("ann"), None).await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_interrupted_before_the_organization_is_completed_only_with_its_password() {
    let app = TestApp::spawn().await;
    inject_fault(&app, "organization").await;
    let interrupted = register(&app, "ann", PASSWORD).await;
    assert_eq!(interrupted.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.events_of_type("user.registered").await, 1);
    assert_eq!(app.events_of_type("organization.created").await, 0);
    heal(&app).await;

    let other_password = register(&app, "ann", "another long passphrase").await;
    assert_eq!(
        other_password.status(),
        StatusCode::CONFLICT,
        "a stranger cannot complete it"
    );
    let retried = register(&app, "ann", PASSWORD).await;

    assert_eq!(
        retried.status(),
        StatusCode::CREATED,
        "{}",
        retried.text().await.unwrap()
    );
    assert_eq!(
        app.events_of_type("user.registered").await,
        1,
        "the same user, once"
    );
    assert_eq!(app.events_of_type("organization.created").await, 1);
    let again = register(&app, "ann", PASSWORD).await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a completed registration is not repeated"
    );
    login(&app, &email_of("ann"), None).await;
    app.cleanup().await;
}
