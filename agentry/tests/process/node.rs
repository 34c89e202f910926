//! Running `agentry` as a child process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BINARY: &str = env!("CARGO_BIN_EXE_agentry");

pub fn base_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The server URL with another database name.
pub fn database_url(name: &str) -> String {
    let base = base_database_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

pub use testkit::free_port;

/// A running `agentry serve` (or worker) with its log lines collected.
pub struct Node {
    child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts `agentry serve` with `env` and waits until `/readyz` answers 200.
    pub fn serve(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("AGENTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            // Every test client is 127.0.0.1: one address for the per-address sign-in limit,
            // which these tests are not about (the api tests are).
            .env("AGENTRY_AUTH_RATE_LIMIT_PER_MINUTE", "100000")
            .env("AGENTRY_AUTH_RATE_LIMIT_BURST", "100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("agentry starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let node = Self { child, port, log };
        node.wait_ready(Duration::from_secs(60));
        node
    }

    /// [`Self::serve`] on a blocking thread, so the test's own servers (a fake provider, a tool
    /// server) keep answering on the runtime while the node starts.
    pub async fn serve_off_runtime(env: &[(&str, String)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, String)> = env
                .iter()
                .map(|(key, value)| (key.as_str(), value.clone()))
                .collect();
            Self::serve(&env)
        })
        .await
        .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(response) = blocking_get(&self.url("/readyz"))
                && response == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "agentry did not become ready; log:\n{}",
            self.log.lock().unwrap().join("\n")
        );
    }

    /// The process id, for signals other than the ones below (SIGSTOP, SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `kill -<name>` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|line| line.contains(needle))
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a graceful exit (status 0).
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "agentry exited with {status}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "agentry did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP/1.0 GET (the callers may run inside a Tokio runtime, where a
/// blocking client cannot start its own).
fn blocking_get(url: &str) -> Result<u16, ()> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or(())?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).map_err(|_| ())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|_| ())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").map_err(|_| ())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|_| ())?;
    std::str::from_utf8(&head[9..12])
        .map_err(|_| ())?
        .parse()
        .map_err(|_| ())
}

pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Registers an account through the API; `None` if the node is gone or refuses.
///
/// As a well-behaved client does: a busy answer (429, or 503 `auth_busy` while passwords are
/// being hashed) is retried after its `Retry-After`, a few times. A 503 `not_yet_effective`
/// means the account *was* created and must not be registered again: the client logs in once
/// the service has caught up (the answer then has the login's tokens and no `user_id`).
pub async fn register(client: &reqwest::Client, node_url: &str, n: usize) -> Option<Value> {
    let body = json!({
        "email": format!("user{n}-{}@example.com", uuid::Uuid::new_v4().simple()),
        "password": "correct horse battery staple",
        "org_name": format!("Org {n}"),
    });
    let (mut status, mut account) =
        post_retrying_busy(client, &format!("{node_url}/v1/auth/register"), &body).await?;
    if status == 503 && account["code"] == "not_yet_effective" {
        let login = json!({ "email": body["email"], "password": body["password"] });
        (status, account) = post_retrying_busy(client, &format!("{node_url}/v1/auth/login"), &login).await?;
        if status != 200 {
            eprintln!("login {n} after a registration not yet in effect on {node_url}: {status} {account}");
            return None;
        }
    } else if status != 201 {
        eprintln!("registration {n} on {node_url}: {status} {account}");
        return None;
    }
    account["email"] = body["email"].clone();
    Some(account)
}

/// POSTs `body`, retrying answers that ask for it (429, 503 other than `not_yet_effective`)
/// after their `Retry-After`, up to ten times; the last status and JSON body.
async fn post_retrying_busy(client: &reqwest::Client, url: &str, body: &Value) -> Option<(u16, Value)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = client.post(url).json(body).send().await.ok()?;
        let status = response.status().as_u16();
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let retry = status == 429 || (status == 503 && answer["code"] != "not_yet_effective");
        if !retry || attempts == 10 {
            return Some((status, answer));
        }
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

pub async fn drop_database(name: &str) {
    let mut connection: sqlx::PgConnection = sqlx::Connection::connect(&database_url("postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .unwrap();
}
