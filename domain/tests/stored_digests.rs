//! Digests became their own types; events stored before that must read and write back
//! byte for byte, or the store's history and the bus would change shape under subscribers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::api_key::ApiKeyEvent;
use domain::session::SessionEvent;
use domain::user::UserEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Event JSON as the store holds it (written by the code before the digest types).
const STORED_USER: &[&str] = &[
    r#"{"type":"user.registered","email":"ada@example.com","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$ZGlnZXN0"}"#,
    r#"{"type":"user.password_changed","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3"}"#,
    r#"{"type":"user.password_reset_requested","token_hash":"9f86d081884c7d65","expires_at":"2026-11-25T01:32:33.067592Z"}"#,
    r#"{"type":"user.password_reset_completed","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$cmVzZXQ"}"#,
];
const STORED_SESSION: &[&str] = &[
    r#"{"type":"session.started","user_id":"01a21055-43ab-750b-a05d-47135a33491f","org_id":null,"token_hash":"2c26b46b68ffc68f","expires_at":"2026-11-25T01:32:33Z","credential_version":2}"#,
    r#"{"type":"session.refreshed","token_hash":"fcde2b2edba56bf4","expires_at":"2026-11-26T01:32:33Z"}"#,
];
const STORED_API_KEY: &[&str] = &[
    r#"{"type":"api_key.created","org_id":"01a21055-43ab-750b-a05d-47135a33491f","name":"ci","prefix":"ak_live_1234","key_hash":"d1g35t","created_by":"system"}"#,
];

fn assert_round_trips<E: Serialize + DeserializeOwned>(stored: &[&str]) {
    for json in stored {
        let event: E = serde_json::from_str(json).expect("a stored event still reads");
        assert_eq!(serde_json::to_string(&event).unwrap(), *json);
    }
}

#[test]
fn stored_events_with_digests_read_and_write_back_byte_for_byte() {
    assert_round_trips::<UserEvent>(STORED_USER);
    assert_round_trips::<SessionEvent>(STORED_SESSION);
    assert_round_trips::<ApiKeyEvent>(STORED_API_KEY);
}

#[test]
fn debug_of_an_event_names_the_digest_field_but_never_shows_the_digest() {
    let event: UserEvent = serde_json::from_str(STORED_USER[0]).unwrap();
    let debug = format!("{event:?}");
    assert!(
        debug.contains("password_hash: PasswordDigest(<redacted>)"),
        "{debug}"
    );
    assert!(!debug.contains("argon2id"), "{debug}");
    let event: SessionEvent = serde_json::from_str(STORED_SESSION[0]).unwrap();
    assert!(!format!("{event:#?}").contains("2c26b46b68ffc68f"));
}
