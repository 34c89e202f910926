//! Membership is an invitation (issue 11, finding 5): nobody joins an organization without
//! accepting a single-use, expiring link mailed to their address, logged in as that address.
//! Everything here goes over HTTP, with the mail read from the test's SMTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::accounts::{
    INVITATION_SUBJECT, PASSWORD, accept_invitation, add_member, assert_code, ensure_verified, expect_json,
    invitation_token, invite, join_org, login_request, me, platform_admin, register, register_email,
};
use crate::helpers::TestApp;

/// The members' emails of `token`'s organization.
async fn member_emails(app: &TestApp, token: &str) -> Vec<String> {
    let list = expect_json(
        app.with_bearer(token).get("/v1/members").await,
        StatusCode::OK,
        "members",
    )
    .await;
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["email"].as_str().unwrap().to_owned())
        .collect()
}

/// A 202 invitation answer: exactly `invitation_id` and `expires_at`, nothing about the invitee.
async fn expect_invited(response: reqwest::Response) -> Value {
    let body = expect_json(response, StatusCode::ACCEPTED, "an invitation").await;
    let mut fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["expires_at", "invitation_id"], "{body}");
    Uuid::parse_str(body["invitation_id"].as_str().unwrap()).unwrap();
    body
}

#[tokio::test]
async fn an_invitee_joins_with_the_invited_role_only_by_accepting_the_mailed_link() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let bob = register(&app, "bob").await;

    expect_invited(invite(&app, &owner.access_token, "Bob@Example.com", "admin").await).await;

    // Invited is not joined: bob cannot log in to the organization yet.
    let early = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({ "email": bob.email, "password": PASSWORD, "org_id": owner.org_id }),
        )
        .await;
    assert_code(early, StatusCode::FORBIDDEN, "not_a_member_of_organization").await;
    assert_eq!(
        member_emails(&app, &owner.access_token).await,
        [owner.email.as_str()]
    );

    let mail = app.mail_to(&bob.email, INVITATION_SUBJECT).await;
    assert!(
        mail.body_text().contains(&format!("Org of {}", owner.email)),
        "{}",
        mail.body_text()
    );
    let token = crate::smtp_server::link_token(&mail, "/accept-invitation");
    let joined = expect_json(
        accept_invitation(&app, &bob.access_token, &token).await,
        StatusCode::OK,
        "accepting",
    )
    .await;
    assert_eq!(joined["org_id"], owner.org_id.to_string(), "{joined}");
    assert_eq!(joined["role"], "admin", "{joined}");

    let bob_there = crate::accounts::login(&app, &bob.email, Some(owner.org_id)).await;
    let bob_me = me(&app, &bob_there).await;
    assert_eq!(bob_me["role"], "admin", "{bob_me}");
    assert_eq!(bob_me["org_id"], owner.org_id.to_string(), "{bob_me}");
    assert_eq!(
        bob_me["email_verified"], true,
        "accepting proved the mailbox: {bob_me}"
    );
    assert!(
        member_emails(&app, &owner.access_token)
            .await
            .contains(&bob.email)
    );
    app.cleanup().await;
}

/// The pre-hijack of the issue: an attacker registers the victim's address first. The victim's
/// owner invites that address; the attacker, who cannot read the mailbox, cannot join, neither
/// with a made-up token nor with a real one mailed to another address. The real owner of the
/// mailbox takes the account back by password reset and joins.
#[tokio::test]
async fn an_attacker_who_registered_the_address_first_cannot_join_without_the_mailbox() {
    let app = TestApp::spawn().await;
    let attacker = register_email(&app, "cfo@target.example").await;
    let target = register_email(&app, "owner@target.example").await;
    ensure_verified(&app, &target).await;

    expect_invited(invite(&app, &target.access_token, "cfo@target.example", "admin").await).await;
    // The attacker also controls a mailbox the target owner invites.
    expect_invited(invite(&app, &target.access_token, "intern@evil.example", "member").await).await;
    let intern_token = invitation_token(&app, "intern@evil.example").await;

    let invitation_id = intern_token.split_once('.').unwrap().0;
    let made_up = [
        "garbage".to_owned(),
        format!("{invitation_id}.{}", "A".repeat(43)),
        format!("{}.{}", Uuid::now_v7().simple(), "A".repeat(43)),
    ];
    for token in &made_up {
        assert_code(
            accept_invitation(&app, &attacker.access_token, token).await,
            StatusCode::NOT_FOUND,
            "invitation_invalid",
        )
        .await;
    }
    assert_code(
        accept_invitation(&app, &attacker.access_token, &intern_token).await,
        StatusCode::FORBIDDEN,
        "invitation_for_another_address",
    )
    .await;
    let login = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({ "email": attacker.email, "password": PASSWORD, "org_id": target.org_id }),
        )
        .await;
    assert_code(login, StatusCode::FORBIDDEN, "not_a_member_of_organization").await;
    assert_eq!(
        member_emails(&app, &target.access_token).await,
        [target.email.as_str()]
    );

    // Whoever reads the mailbox resets the password (ending the attacker's sessions) and joins.
    let reset = app
        .post_json(
            "/v1/auth/password-reset",
            &serde_json::json!({ "email": "cfo@target.example" }),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::ACCEPTED);
    let reset_mail = app.mail_to("cfo@target.example", "password").await;
    let reset_token = crate::smtp_server::link_token(&reset_mail, "/reset-password");
    let new_password = "a fresh and private passphrase";
    let confirmed = app
        .post_json(
            "/v1/auth/password-reset/confirm",
            &serde_json::json!({ "token": reset_token, "new_password": new_password }),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    let cfo = expect_json(
        login_request(&app, "cfo@target.example", new_password).await,
        StatusCode::OK,
        "the real cfo's login",
    )
    .await;
    let cfo_token = cfo["access_token"].as_str().unwrap();
    assert_eq!(
        me(&app, cfo_token).await["email_verified"],
        true,
        "a reset proves the mailbox"
    );
    let real_token = invitation_token(&app, "cfo@target.example").await;
    let joined = expect_json(
        accept_invitation(&app, cfo_token, &real_token).await,
        StatusCode::OK,
        "joining",
    )
    .await;
    assert_eq!(joined["org_id"], target.org_id.to_string());
    app.cleanup().await;
}

/// The second case: a platform administrator "added" to an attacker's organization
/// landed there at their next login. An invitation changes nothing until it is accepted.
#[tokio::test]
async fn a_platform_admin_is_not_pulled_into_an_attackers_organization() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let attacker = register(&app, "mallory").await;
    ensure_verified(&app, &attacker).await;

    expect_invited(invite(&app, &attacker.access_token, &admin.email, "owner").await).await;

    let login = expect_json(
        login_request(&app, &admin.email, PASSWORD).await,
        StatusCode::OK,
        "the administrator's login",
    )
    .await;
    let admin_me = me(&app, login["access_token"].as_str().unwrap()).await;
    assert!(
        admin_me.get("org_id").is_none(),
        "the login landed in an organization: {admin_me}"
    );
    assert_eq!(
        member_emails(&app, &attacker.access_token).await,
        [attacker.email.as_str()]
    );
    app.cleanup().await;
}

/// The inviter learns nothing about whether the address has an account: the same status, the
/// same fields, a mail either way, and answers of the same order of time.
#[tokio::test]
async fn inviting_an_address_with_or_without_an_account_answers_alike() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let known = register(&app, "known").await;

    let mut timings = Vec::new();
    for round in 0..3 {
        for (label, email) in [
            ("known", known.email.clone()),
            ("unknown", format!("nobody{round}@example.com")),
        ] {
            let role = if round == 0 { "member" } else { "auditor" };
            let started = Instant::now();
            let response = invite(&app, &owner.access_token, &email, role).await;
            timings.push((label, started.elapsed()));
            expect_invited(response).await;
            app.mail_to(&email, INVITATION_SUBJECT).await;
        }
    }
    let slowest = |which: &str| {
        timings
            .iter()
            .filter(|(l, _)| *l == which)
            .map(|(_, t)| *t)
            .max()
            .unwrap()
    };
    let fastest = |which: &str| {
        timings
            .iter()
            .filter(|(l, _)| *l == which)
            .map(|(_, t)| *t)
            .min()
            .unwrap()
    };
    for (a, b) in [("known", "unknown"), ("unknown", "known")] {
        assert!(
            fastest(a) < slowest(b) * 10 + Duration::from_millis(50),
            "{a} answers an order of magnitude slower than {b}: {timings:?}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_invitation_works_once_even_after_its_member_was_removed() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let bob = register(&app, "bob").await;
    expect_invited(invite(&app, &owner.access_token, &bob.email, "member").await).await;
    let token = invitation_token(&app, &bob.email).await;
    assert_eq!(
        accept_invitation(&app, &bob.access_token, &token).await.status(),
        StatusCode::OK
    );

    assert_code(
        accept_invitation(&app, &bob.access_token, &token).await,
        StatusCode::CONFLICT,
        "invitation_already_accepted",
    )
    .await;
    let removed = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/members/{}", bob.user_id))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let before = app.event_count().await;
    assert_code(
        accept_invitation(&app, &bob.access_token, &token).await,
        StatusCode::CONFLICT,
        "invitation_already_accepted",
    )
    .await;
    assert_eq!(app.event_count().await, before, "a spent token changes nothing");
    assert!(
        !member_emails(&app, &owner.access_token)
            .await
            .contains(&bob.email)
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_already_member_address_answers_409() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let bob = add_member(&app, &owner, "bob", "member").await;
    assert_code(
        invite(&app, &owner.access_token, &bob.email, "admin").await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_expired_invitation_is_refused() {
    let app = TestApp::spawn_with(|settings| settings.identity.invitation_ttl_seconds = 1).await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let bob = register(&app, "bob").await;
    expect_invited(invite(&app, &owner.access_token, &bob.email, "member").await).await;
    let token = invitation_token(&app, &bob.email).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    assert_code(
        accept_invitation(&app, &bob.access_token, &token).await,
        StatusCode::CONFLICT,
        "invitation_expired",
    )
    .await;
    assert_eq!(
        member_emails(&app, &owner.access_token).await,
        [owner.email.as_str()]
    );
    app.cleanup().await;
}

/// The organization decides the inviter's authority again at acceptance.
#[tokio::test]
async fn the_invitations_of_a_removed_or_demoted_inviter_stop_working() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let adam = add_member(&app, &owner, "adam", "admin").await;
    let dora = add_member(&app, &owner, "dora", "admin").await;
    let carol = register(&app, "carol").await;
    let dave = register(&app, "dave").await;
    expect_invited(invite(&app, &adam.access_token, &carol.email, "member").await).await;
    expect_invited(invite(&app, &dora.access_token, &dave.email, "member").await).await;
    let carol_token = invitation_token(&app, &carol.email).await;
    let dave_token = invitation_token(&app, &dave.email).await;

    let owner_client = app.with_bearer(&owner.access_token);
    let removed = owner_client
        .delete(&format!("/v1/members/{}", adam.user_id))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let demoted = owner_client
        .request(reqwest::Method::PATCH, &format!("/v1/members/{}", dora.user_id))
        .json(&serde_json::json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demoted.status(), StatusCode::NO_CONTENT);

    for (who, token) in [(&carol, &carol_token), (&dave, &dave_token)] {
        assert_code(
            accept_invitation(&app, &who.access_token, token).await,
            StatusCode::FORBIDDEN,
            "inviter_no_longer_authorized",
        )
        .await;
    }
    let members = member_emails(&app, &owner.access_token).await;
    assert!(
        !members.contains(&carol.email) && !members.contains(&dave.email),
        "{members:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn nobody_joins_a_suspended_organization() {
    let app = TestApp::spawn().await;
    let root = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let bob = register(&app, "bob").await;
    expect_invited(invite(&app, &owner.access_token, &bob.email, "member").await).await;
    let token = invitation_token(&app, &bob.email).await;
    let suspended = app
        .with_bearer(&root.access_token)
        .post_json(
            &format!("/v1/admin/orgs/{}/suspend", owner.org_id),
            &serde_json::json!({ "reason": "unpaid" }),
        )
        .await;
    assert!(suspended.status().is_success(), "{}", suspended.status());

    assert_code(
        accept_invitation(&app, &bob.access_token, &token).await,
        StatusCode::FORBIDDEN,
        "organization_suspended",
    )
    .await;
    app.cleanup().await;
}

/// The policy for unverified accounts: they use their own organization, but cannot invite.
#[tokio::test]
async fn an_unverified_owner_cannot_invite_until_they_verify() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    assert_eq!(me(&app, &owner.access_token).await["email_verified"], false);
    let before = app.event_count().await;

    assert_code(
        invite(&app, &owner.access_token, "bob@example.com", "member").await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing is recorded");
    let mail = app
        .maybe_mail_to("bob@example.com", INVITATION_SUBJECT, Duration::from_millis(300))
        .await;
    assert!(mail.is_none(), "no invitation is mailed: {mail:?}");

    ensure_verified(&app, &owner).await;
    assert_eq!(me(&app, &owner.access_token).await["email_verified"], true);
    expect_invited(invite(&app, &owner.access_token, "bob@example.com", "member").await).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_admin_may_not_invite_an_owner_and_a_member_may_not_invite() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let adam = add_member(&app, &owner, "adam", "admin").await;
    let mia = add_member(&app, &owner, "mia", "member").await;
    assert_code(
        invite(&app, &adam.access_token, "x@example.com", "owner").await,
        StatusCode::FORBIDDEN,
        "owner_role_required",
    )
    .await;
    assert_code(
        invite(&app, &mia.access_token, "x@example.com", "member").await,
        StatusCode::FORBIDDEN,
        "role_not_allowed",
    )
    .await;
    let joined = join_org(&app, &adam, &register(&app, "nia").await, "admin").await;
    assert_eq!(me(&app, &joined.access_token).await["role"], "admin");
    app.cleanup().await;
}
