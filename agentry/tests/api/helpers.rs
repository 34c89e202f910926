//! Spawning the real application per test, and the requests and assertions tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agentry::settings::Settings;
use agentry::startup::Application;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::smtp_server::{ReceivedMail, SmtpServer};

/// The machine's Postgres; each test gets its own database on it.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The running application and what a test needs to talk to it and look behind it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub address: String,
    /// Where `/metrics` is served when the test set `AGENTRY_METRICS_LISTEN`, likewise.
    pub metrics_address: Option<String>,
    /// Follows no redirects, so every assertion is about the answer itself.
    pub client: reqwest::Client,
    /// A pool of the test's own on the application's database.
    pub pool: PgPool,
    /// The application's database (created and migrated by the application itself).
    pub database_name: String,
    pub database_url: String,
    /// The mail server the application sends to, unless the test configured its own.
    pub mailbox: tokio::sync::Mutex<SmtpServer>,
    maintenance_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    cleaned_up: bool,
    owns_database: bool,
}

impl TestApp {
    /// Builds the application with `Settings::for_tests` against a fresh, uniquely named
    /// database (the application creates and migrates it) and serves it in the background.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`spawn`](Self::spawn), with settings adjusted by `configure` (rate limits, SMTP…).
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let database_name = format!("agentry_test_{}", Uuid::new_v4().simple());
        Self::spawn_on(database_name, true, configure).await
    }

    /// A second node on this app's database (same event store, own process state: caches,
    /// rate limits, background loops). Its `cleanup` stops it without dropping the database.
    pub async fn spawn_node(&self) -> Self {
        Self::spawn_on(self.database_name.clone(), false, |_| {}).await
    }

    /// [`spawn_node`](Self::spawn_node) with the settings adjusted by `configure`.
    pub async fn spawn_node_with(&self, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(self.database_name.clone(), false, configure).await
    }

    async fn spawn_on(
        database_name: String,
        owns_database: bool,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        install_crypto_provider();
        let base = base_database_url();
        let database_url = with_database(&base, &database_name);
        let maintenance_url = with_database(&base, "postgres");

        let mailbox = SmtpServer::start().await;
        let mut settings = Settings::for_tests(database_url.clone());
        settings.identity.smtp_url = Some(mailbox.url().into());
        configure(&mut settings);
        let app = Application::build(settings)
            .await
            .unwrap_or_else(|error| panic!("the application did not start: {error}"));
        let port = app.port();
        let metrics_port = app.metrics_port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));

        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&database_url)
            .await
            .expect("the test's pool on the application's database");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");

        Self {
            address: format!("http://127.0.0.1:{port}"),
            metrics_address: metrics_port.map(|port| format!("http://127.0.0.1:{port}")),
            client,
            pool,
            database_name,
            database_url,
            mailbox: tokio::sync::Mutex::new(mailbox),
            maintenance_url,
            stop: Some(stop),
            server: Some(server),
            cleaned_up: !owns_database,
            owns_database,
        }
    }

    /// Stops the server (letting it finish gracefully) and drops the test's database. Tests
    /// call it at the end; if a test panics first, `Drop` still drops the database.
    pub async fn cleanup(mut self) {
        // Idle keep-alive connections would hold graceful shutdown open: close them first.
        self.client = reqwest::Client::builder().build().expect("HTTP client");
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(Duration::from_secs(20), server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => panic!("the server ended with an error: {error}"),
                Ok(Err(join_error)) => panic!("the server task failed: {join_error}"),
                Err(_) => panic!("the server did not stop within 20 s"),
            }
        }
        self.pool.close().await;
        if self.owns_database {
            drop_database(&self.maintenance_url, &self.database_name).await;
        }
        self.cleaned_up = true;
    }

    /// Drops the application's database from under it (`WITH (FORCE)` ends its connections).
    pub async fn drop_database_now(&self) {
        drop_database(&self.maintenance_url, &self.database_name).await;
    }

    /// The first mail to `to` about `subject` in [`mailbox`](Self::mailbox), waiting up to 10 s.
    pub async fn mail_to(&self, to: &str, subject: &str) -> ReceivedMail {
        self.mailbox.lock().await.expect_mail_to(to, subject).await
    }

    /// Like [`mail_to`](Self::mail_to), `None` when nothing came within `within`.
    pub async fn maybe_mail_to(&self, to: &str, subject: &str, within: Duration) -> Option<ReceivedMail> {
        self.mailbox.lock().await.next_mail_to(to, subject, within).await
    }

    /// A client whose connections leave from `ip`, for limits keyed by client address: the
    /// application listens on 127.0.0.1, and Linux routes all of 127.0.0.0/8 to the loopback
    /// interface, so 127.0.0.2 is another client on the same machine.
    pub fn client_from(&self, ip: [u8; 4]) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .expect("HTTP client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request to `path` (which starts with `/`), to finish and send.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST request")
    }

    /// `body` exactly as given, under any content type (`None`: no `Content-Type` header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.request(Method::POST, path).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request.send().await.expect("POST request")
    }

    /// The same helpers, each request carrying `Authorization: Bearer <token>`.
    pub fn with_bearer(&self, token: impl Into<String>) -> Authorized<'_> {
        Authorized {
            app: self,
            token: token.into(),
        }
    }

    /// Every event in the store: what a request that "changes nothing" leaves as it found.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("counting events")
    }

    /// [`event_count`](Self::event_count) once nothing has been recorded for a while: a run's
    /// last appends (freeing its conversation, say) follow the status a test waited for.
    pub async fn settled_event_count(&self) -> i64 {
        let mut count = self.event_count().await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let now = self.event_count().await;
            if now == count {
                return count;
            }
            count = now;
        }
    }

    /// The events of type `event_type` in the store.
    pub async fn events_of_type(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .expect("counting events")
    }
}

impl Drop for TestApp {
    /// The database is dropped even when a test panicked before `cleanup`: from a thread with
    /// its own runtime, since `Drop` cannot await.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if self.cleaned_up {
            return;
        }
        let maintenance_url = self.maintenance_url.clone();
        let database_name = self.database_name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(drop_database(&maintenance_url, &database_name));
        });
        let _ = dropper.join();
    }
}

/// Requests carrying a bearer token; see [`TestApp::with_bearer`].
pub struct Authorized<'a> {
    app: &'a TestApp,
    token: String,
}

impl Authorized<'_> {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.app.request(method, path).bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE request")
    }
}

/// Asserts an RFC 9457 answer: `status`, `application/problem+json`, and a body with string
/// `type`, `title`, `detail`, `code` and a numeric `status` equal to the HTTP status. Returns
/// the body for further checks.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    check_problem(response, status)
        .await
        .unwrap_or_else(|mismatch| panic!("{mismatch}"))
}

/// [`assert_problem`] as a result, for table-driven tests that report every mismatch at once.
pub async fn check_problem(response: Response, status: StatusCode) -> Result<Value, String> {
    let actual = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|error| format!("the body could not be read: {error}"))?;
    if actual != status {
        return Err(format!("status {actual}, expected {status}; body: {text}"));
    }
    if content_type.as_deref() != Some("application/problem+json") {
        return Err(format!(
            "content type {content_type:?}, expected application/problem+json; body: {text}"
        ));
    }
    let body: Value = serde_json::from_str(&text)
        .map_err(|error| format!("the problem body is not JSON ({error}): {text}"))?;
    for field in ["type", "title", "detail", "code"] {
        if !body.get(field).is_some_and(Value::is_string) {
            return Err(format!("problem field `{field}` is not a string: {body}"));
        }
    }
    if body.get("status").and_then(Value::as_u64) != Some(u64::from(status.as_u16())) {
        return Err(format!(
            "problem field `status` is not {}: {body}",
            status.as_u16()
        ));
    }
    Ok(body)
}

/// The content type's media type, without parameters (`text/html; charset=utf-8` → `text/html`).
pub fn media_type(response: &Response) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
}

/// reqwest is built without a default crypto provider; rustls needs one per process.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `DATABASE_URL` when set (only its server and credentials are used), else the local default.
fn base_database_url() -> Url {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    Url::parse(&url).unwrap_or_else(|error| panic!("DATABASE_URL is not a URL ({error}): {url}"))
}

fn with_database(base: &Url, database: &str) -> String {
    let mut url = base.clone();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// `DROP DATABASE IF EXISTS … WITH (FORCE)`: best effort, a failure only warns.
async fn drop_database(maintenance_url: &str, database_name: &str) {
    let dropped = async {
        let mut connection = PgConnection::connect(maintenance_url).await?;
        sqlx::query(&format!(
            r#"DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)"#
        ))
        .execute(&mut connection)
        .await?;
        connection.close().await
    };
    if let Err(error) = dropped.await {
        eprintln!("warning: test database {database_name} was not dropped: {error}");
    }
}
