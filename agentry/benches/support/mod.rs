//! What the benches share: the real application on port 0, an owner to act as, the raw limit
//! (a bare INSERT + COMMIT), the measuring window, and OpenAI's streaming protocol.
#![allow(dead_code)]

pub mod openai;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentry::settings::Settings;
use agentry::startup::Application;
use serde_json::{Value, json};
use sqlx::PgPool;

/// `name` parsed from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The bench database's URL: `BENCH_DATABASE_URL`, or `default_name` on the local server.
pub fn database_url(default_name: &str) -> String {
    std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("postgres://postgres@127.0.0.1:5432/{default_name}"))
}

/// The settings `agentry serve` would use against `url`, with the limits that would measure
/// the limiter instead of the application lifted (one owner makes every request).
pub fn serve_settings(url: &str) -> Settings {
    let mut settings = Settings::for_tests(url.to_owned());
    // What `agentry serve` uses by default, not the tests' small pool.
    settings.database.db_max_connections = 32;
    settings.http.rate_limit_per_minute = 100_000_000;
    settings.http.rate_limit_burst = 1_000_000;
    settings
}

/// Builds and serves the real application; returns its base URL and the sender that stops it.
pub async fn serve(settings: Settings) -> (String, tokio::sync::oneshot::Sender<()>) {
    let served = Served::start(settings).await;
    (served.address, served.stop)
}

/// The real application serving, stopped with [`Served::stop`], which waits until it has
/// drained and its background loops have ended (so the next application on the same database
/// starts alone).
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Builds and serves the real application.
    pub async fn start(settings: Settings) -> Self {
        let application = Application::build(settings)
            .await
            .expect("the application starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            stop,
            running,
        }
    }

    /// Stops the application and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.running.await;
    }
}

/// Registers an owner and answers their access token.
pub async fn register_owner(http: &reqwest::Client, address: &str) -> String {
    register(http, address, "bench@example.com", "Bench").await.0
}

/// Registers `email` as the owner of a new organization `org_name`; answers their access
/// token and the organization's id.
pub async fn register(
    http: &reqwest::Client,
    address: &str,
    email: &str,
    org_name: &str,
) -> (String, uuid::Uuid) {
    let response = http
        .post(format!("{address}/v1/auth/register"))
        .json(&json!({ "email": email, "password": "correct horse battery staple", "org_name": org_name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registration");
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    (token, body["org_id"].as_str().unwrap().parse().unwrap())
}

/// POSTs `body` to `path` as the owner; asserts `expected` and answers the JSON body.
pub async fn post(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    path: &str,
    body: &Value,
    expected: u16,
) -> Value {
    let response = http
        .post(format!("{address}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        status.as_u16(),
        expected,
        "POST {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Creates the plain table the raw limit is measured on.
pub async fn create_bare_table(pool: &PgPool) {
    sqlx::query("CREATE TABLE bare (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, aggregate_id text, payload json, metadata json)")
        .execute(pool)
        .await
        .unwrap();
}

/// `clients` connections each inserting one row (`payload`, `metadata`) per autocommit
/// transaction for `phase`: the raw limit of one durable row per transaction, in rows/s.
pub async fn run_bare(
    pool: &PgPool,
    clients: usize,
    phase: Duration,
    payload: &Value,
    metadata: &Value,
) -> f64 {
    let (payload, metadata) = (payload.to_string(), metadata.to_string());
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (pool, count, stop) = (pool.clone(), count.clone(), stop.clone());
        let (payload, metadata) = (payload.clone(), metadata.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("bare-{client}");
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO bare (aggregate_id, payload, metadata) VALUES ($1, $2::text::json, $3::text::json)")
                    .bind(&id)
                    .bind(&payload)
                    .bind(&metadata)
                    .execute(&pool)
                    .await
                    .unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    measure(phase, &count, &stop, tasks, &AtomicBool::new(false)).await
}

/// Lets the clients warm up for 500 ms, counts for `phase` (raising `measuring` meanwhile),
/// then stops them and waits for them to finish what they were doing; answers the count per
/// second over `phase`.
pub async fn measure(
    phase: Duration,
    count: &AtomicU64,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    measuring: &AtomicBool,
) -> f64 {
    measure_each(phase, &[count], stop, tasks, measuring).await[0]
}

/// [`measure`] for several groups of clients, each counting its own: answers each count per
/// second over the same `phase`.
pub async fn measure_each(
    phase: Duration,
    counts: &[&AtomicU64],
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    measuring: &AtomicBool,
) -> Vec<f64> {
    let read = || {
        counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(true, Ordering::Relaxed);
    let start_counts = read();
    let started = Instant::now();
    tokio::time::sleep(phase).await;
    let end_counts = read();
    let elapsed = started.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    end_counts
        .iter()
        .zip(start_counts)
        .map(|(end, start)| (end - start) as f64 / elapsed)
        .collect()
}
