//! [`StripeServer`]: Stripe's REST API as far as Agentry uses it, a real server on 127.0.0.1
//! started by the test, speaking Stripe's wire protocol: form-encoded requests with a bearer
//! secret key, JSON answers, `{"error": {...}}` on failure. It records every request.
//!
//! - `POST /v1/checkout/sessions` answers a session `{id: "cs_test_<n>", url, ...}`;
//! - `POST /v1/refunds` answers a refund `{id: "re_test_<n>", amount, payment_intent, ...}`;
//! - a wrong key is answered 401 as Stripe does.
//!
//! It also makes the events Stripe would send about those objects, and signs deliveries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form};
use poem::{EndpointExt, Request, Response, Route, Server, handler, post};
use serde_json::{Value, json};

/// The secret key the tests configure.
pub const SECRET_KEY: &str = "sk_test_agentry";
/// The webhook secret the tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_agentry_test";

/// One request as Stripe received it.
#[derive(Clone, Debug)]
pub struct StripeRequest {
    pub path: String,
    pub form: HashMap<String, String>,
    pub idempotency_key: Option<String>,
}

/// A request's form parameters and Stripe's answer to it.
type Reply = (HashMap<String, String>, Value);

#[derive(Default)]
struct State {
    requests: Mutex<Vec<StripeRequest>>,
    /// What each idempotency key was first sent with, and the answer then: Stripe answers a
    /// repeat with the same parameters as it did the first time, and refuses other parameters.
    replies: Mutex<HashMap<String, Reply>>,
}

/// A local Stripe; stops serving when dropped.
pub struct StripeServer {
    pub base: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl StripeServer {
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let state = Arc::new(State::default());
        let app = Route::new()
            .at("/v1/checkout/sessions", post(create_session))
            .at("/v1/refunds", post(create_refund))
            .data(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            base: format!("http://{address}"),
            state,
            server,
        }
    }

    pub fn requests(&self, path: &str) -> Vec<StripeRequest> {
        let requests = self.state.requests.lock().unwrap();
        requests
            .iter()
            .filter(|request| request.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for StripeServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Stripe's answer to a request without the right secret key.
fn unauthorized() -> Response {
    let body = json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } });
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .content_type("application/json")
        .body(body.to_string())
}

fn record(state: &State, request: &Request, form: HashMap<String, String>) -> Option<usize> {
    let authorized = request
        .header("authorization")
        .is_some_and(|value| value == format!("Bearer {SECRET_KEY}"));
    let form_encoded = request
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !authorized || !form_encoded {
        return None;
    }
    let mut requests = state.requests.lock().unwrap();
    requests.push(StripeRequest {
        path: request.uri().path().to_owned(),
        form,
        idempotency_key: request.header("idempotency-key").map(str::to_owned),
    });
    Some(requests.len())
}

fn json_response(body: Value) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
fn create_session(
    request: &Request,
    Form(form): Form<HashMap<String, String>>,
    state: Data<&Arc<State>>,
) -> Response {
    let Some(n) = record(&state, request, form.clone()) else {
        return unauthorized();
    };
    let key = request.header("idempotency-key").map(str::to_owned);
    let mut replies = state.replies.lock().unwrap();
    if let Some((first_form, first_answer)) = key.as_ref().and_then(|key| replies.get(key)) {
        if *first_form != form {
            let body = json!({ "error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            }});
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .content_type("application/json")
                .body(body.to_string());
        }
        let mut replayed = json_response(first_answer.clone());
        replayed.headers_mut().insert(
            "idempotent-replayed",
            poem::http::HeaderValue::from_static("true"),
        );
        return replayed;
    }
    let id = format!("cs_test_{n}");
    let answer = json!({
        "id": id,
        "object": "checkout.session",
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
        "mode": form.get("mode"),
        "client_reference_id": form.get("client_reference_id"),
        "payment_status": "unpaid",
        "status": "open",
    });
    if let Some(key) = key {
        replies.insert(key, (form, answer.clone()));
    }
    json_response(answer)
}

#[handler]
fn create_refund(
    request: &Request,
    Form(form): Form<HashMap<String, String>>,
    state: Data<&Arc<State>>,
) -> Response {
    let Some(n) = record(&state, request, form.clone()) else {
        return unauthorized();
    };
    json_response(json!({
        "id": format!("re_test_{n}"),
        "object": "refund",
        "amount": form.get("amount").and_then(|amount| amount.parse::<u64>().ok()),
        "payment_intent": form.get("payment_intent"),
        "status": "succeeded",
    }))
}

/// A `checkout.session.completed` (or other `kind`) event about a paid session of `org_id`,
/// shaped as Stripe sends it (nulls included).
pub fn session_event(
    event_id: &str,
    kind: &str,
    session_id: &str,
    org_id: uuid::Uuid,
    credits: u64,
    amount: u64,
) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": amount,
            "currency": "usd",
            "client_reference_id": org_id.to_string(),
            "customer": null,
            "metadata": { "org_id": org_id.to_string(), "credits": credits.to_string() },
            "mode": "payment",
            "payment_intent": format!("pi_{session_id}"),
            "payment_status": "paid",
            "status": "complete",
        }}
    })
}

/// A `charge.refunded` event: `amount_refunded` cents refunded in all on the charge of the
/// session's PaymentIntent (no metadata: Agentry finds the purchase by its PaymentIntent).
pub fn refund_event(event_id: &str, session_id: &str, amount: u64, amount_refunded: u64) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "type": "charge.refunded",
        "data": { "object": {
            "id": format!("ch_{session_id}"),
            "object": "charge",
            "amount": amount,
            "amount_refunded": amount_refunded,
            "currency": "usd",
            "metadata": {},
            "payment_intent": format!("pi_{session_id}"),
            "refunded": amount_refunded == amount,
        }}
    })
}
