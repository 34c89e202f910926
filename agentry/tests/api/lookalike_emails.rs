//! Lookalike and alias spellings of an address cannot make a second account: display-name,
//! quoted and angle-bracket forms and invisible characters are refused, full-width forms fold
//! to ASCII, and an address confusable with a registered one (a Cyrillic `а` for a Latin `a`)
//! is taken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;

use crate::accounts::{PASSWORD, assert_code, login_request, register_email, register_request};
use crate::helpers::TestApp;

#[tokio::test]
async fn alias_forms_and_invisible_characters_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    register_email(&app, "v@x.com").await;
    let before = app.event_count().await;

    for (email, code) in [
        ("<v@x.com>", "email_disallowed_character"),
        ("\"v\"@x.com", "email_disallowed_character"),
        ("v\u{200B}@x.com", "email_invisible_character"),
        ("v\u{202E}@x.com", "email_invisible_character"),
        ("v.@x.com", "email_misplaced_dot"),
    ] {
        let response = register_request(&app, email, PASSWORD, "Acme").await;
        assert_code(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn a_full_width_or_confusable_spelling_of_a_registered_address_is_taken() {
    let app = TestApp::spawn().await;
    register_email(&app, "valid@x.com").await;
    let before = app.event_count().await;

    for email in [
        "ｖａｌｉｄ@x.com",   // full-width: folds to valid@x.com itself
        "v\u{0430}lid@x.com", // Cyrillic а
        "vаlіd@х.com",        // Cyrillic а, і and х
        "VALID@X.COM",
    ] {
        let response = register_request(&app, email, PASSWORD, "Acme").await;
        assert_code(response, StatusCode::CONFLICT, "email_taken").await;
    }
    assert_eq!(
        app.event_count().await,
        before,
        "no claim, user or organization written"
    );
    // The full-width spelling is the same address, so it logs in; a lookalike is no account.
    let same = login_request(&app, "ｖａｌｉｄ@x.com", PASSWORD).await;
    assert_eq!(same.status(), StatusCode::OK);
    let lookalike = login_request(&app, "v\u{0430}lid@x.com", PASSWORD).await;
    assert_code(lookalike, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_lookalike_registered_first_keeps_the_genuine_spelling_out() {
    let app = TestApp::spawn().await;
    register_email(&app, "v\u{0430}lid@x.com").await;

    let response = register_request(&app, "valid@x.com", PASSWORD, "Acme").await;

    assert_code(response, StatusCode::CONFLICT, "email_taken").await;
    // A different address that merely shares letters is not a lookalike.
    register_email(&app, "valid2@x.com").await;
    app.cleanup().await;
}
