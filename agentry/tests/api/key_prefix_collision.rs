//! Two API keys drawing the same prefix: the second is created with another prefix, and the
//! identity read model (whose unique index on the prefix a duplicate would break) keeps going.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use commands::identity::KeyPrefixSource;
use reqwest::StatusCode;

use crate::accounts::{create_api_key, me, register};
use crate::helpers::TestApp;

/// Draws `prefixes` in order, then `fallback` forever.
fn scripted(prefixes: &'static [&'static str], fallback: &'static str) -> KeyPrefixSource {
    let drawn = Arc::new(AtomicUsize::new(0));
    KeyPrefixSource::new(move || {
        let index = drawn.fetch_add(1, Ordering::SeqCst);
        prefixes.get(index).copied().unwrap_or(fallback).to_owned()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_drawing_a_taken_prefix_gets_another_and_the_read_model_keeps_going() {
    let source = scripted(&["aaaaaaaaaaaa", "aaaaaaaaaaaa"], "bbbbbbbbbbbb");
    let app = TestApp::spawn_with(|settings| settings.identity.key_prefixes = source).await;
    let owner = register(&app, "owner").await;

    let first = create_api_key(&app, &owner.access_token, "first").await;
    let second = create_api_key(&app, &owner.access_token, "second").await;

    assert_eq!(first.prefix, "aaaaaaaaaaaa");
    assert_eq!(second.prefix, "bbbbbbbbbbbb", "the colliding draw was replaced");
    // Both keys authenticate: the read model folded both (a stalled projector would leave the
    // second unknown, a 401 after the view wait).
    for key in [&first, &second] {
        let response = app.with_bearer(&key.key).get("/v1/me").await;
        assert_eq!(response.status(), StatusCode::OK, "key {}", key.prefix);
    }
    // And later writes still reach it: a new account can use its tokens at once.
    let later = register(&app, "later").await;
    assert_eq!(
        me(&app, &later.access_token).await["user_id"],
        later.user_id.to_string()
    );
    app.cleanup().await;
}
