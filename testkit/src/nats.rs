//! A nats-server of the test's own.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// A nats-server of the test's own, so it can be killed without disturbing anyone else.
pub struct PrivateNats {
    /// The port it listens on (kept across restarts).
    pub port: u16,
    store_dir: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts a JetStream server on a free port with a fresh store directory.
    pub fn start() -> Self {
        let port = free_port();
        let store_dir = std::env::temp_dir().join(format!("agentry-nats-{}", Uuid::new_v4()));
        let mut nats = Self {
            port,
            store_dir,
            child: None,
        };
        nats.restart();
        nats
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store directory, and waits until it answers.
    pub fn restart(&mut self) {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned());
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (NATS_SERVER_BIN or /usr/sbin/nats-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private nats-server did not start on port {}", self.port);
    }

    /// SIGKILL: the server vanishes mid-stream, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
