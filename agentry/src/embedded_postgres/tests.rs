//! Unit tests of the parsing and quoting helpers, and tests that start, reuse and stop a
//! real cluster (skipped when PostgreSQL's server programs are not installed).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::binaries::{SERVER_PROGRAMS, find_binaries_in, parse_version, server_major};
use super::cluster::{PidFile, parse_pid_file, read_pid_file};
use super::error::not_installed;
use super::quoting::{percent_encode, quote_ident, shell_quote};
use super::runner::tail_lines;
use super::service_user::{ServiceUser, current_euid, parse_euid, parse_passwd, service_user_from_passwd};
use super::{EmbeddedPostgres, EmbeddedPostgresError};

#[test]
fn parses_passwd_entries() {
    let text = "root:x:0:0:root:/root:/bin/bash\n\
                postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
    assert_eq!(
        parse_passwd(text, "postgres"),
        Some(ServiceUser {
            name: "postgres".into(),
            uid: 101,
            gid: 104,
            home: "/var/lib/postgresql".into(),
        })
    );
    assert_eq!(parse_passwd(text, "nobody"), None);
    assert_eq!(parse_passwd("postgres:x:abc:1:::", "postgres"), None);
}

#[test]
fn parses_euid_and_pid_file_and_versions() {
    assert_eq!(parse_euid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\n"), Some(0));
    assert_eq!(
        parse_pid_file("4242\n/data\n1700000000\n54321\n/data/socket\n127.0.0.1\n  1 2\nready   \n"),
        Some(PidFile {
            pid: 4242,
            port: Some(54321)
        })
    );
    assert_eq!(
        server_major("postgres (PostgreSQL) 15.14 (Debian 15.14-1)\n").as_deref(),
        Some("15")
    );
    assert_eq!(
        server_major("postgres (PostgreSQL) 9.6.24\n").as_deref(),
        Some("9.6")
    );
    assert_eq!(parse_version("15"), Some(vec![15]));
    assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
    assert_eq!(parse_version("common"), None);
}

#[test]
fn quoting_and_tails() {
    assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
    assert_eq!(percent_encode("agentry_1"), "agentry_1");
    assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    assert_eq!(tail_lines("a\n\nb\nc\n d \n", 2), "c | d");
    let err = not_installed().to_string();
    assert!(
        !err.contains('\n') && err.contains("apt-get install postgresql"),
        "{err}"
    );
}

#[test]
fn finds_binaries_in_highest_major_then_path() {
    let root = TempDir::new("find");
    let make = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        for p in SERVER_PROGRAMS {
            let f = dir.join(p);
            std::fs::write(&f, "").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    };
    let debian = root.path.join("lib/postgresql");
    make(&debian.join("9.6/bin"));
    make(&debian.join("13/bin"));
    std::fs::create_dir_all(debian.join("16/bin")).unwrap(); // incomplete: skipped
    let on_path = root.path.join("bin");
    make(&on_path);
    let path_var = std::env::join_paths([root.path.join("nothing"), on_path.clone()]).unwrap();
    assert_eq!(
        find_binaries_in(&debian, Some(&path_var)),
        Some(debian.join("13/bin"))
    );
    assert_eq!(
        find_binaries_in(&root.path.join("missing"), Some(&path_var)),
        Some(on_path)
    );
    assert_eq!(find_binaries_in(&root.path.join("missing"), None), None);
}

/// A temp dir under /tmp that is removed (with anything a cluster left in it) on drop,
/// after making sure no server is still running from it.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = PathBuf::from(format!(
            "/tmp/agentry-embedded-pg-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // If a test failed half-way, don't leave a postmaster behind.
        let data = self.path.join("data");
        if let (Some(pid), Some(bin)) = (
            read_pid_file(&data).map(|p| p.pid),
            EmbeddedPostgres::find_binaries(),
        ) {
            let mut cmd = std::process::Command::new(bin.join("pg_ctl"));
            cmd.arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]);
            if current_euid() == Some(0)
                && let Ok(user) = service_user_from_passwd()
            {
                use std::os::unix::process::CommandExt as _;
                cmd.uid(user.uid).gid(user.gid).current_dir("/");
            }
            let _ = cmd.output();
            eprintln!("cleanup: stopped leftover postmaster {pid}");
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_persists_reuses_and_stops_a_real_cluster() {
    if EmbeddedPostgres::find_binaries().is_none() {
        eprintln!("skipping: PostgreSQL server programs are not installed");
        return;
    }
    let tmp = TempDir::new("cluster");
    let data = tmp.path.join("data");
    let port = free_port();

    let pg = EmbeddedPostgres::start(&data, port).await.unwrap();
    assert_eq!(pg.port(), port);
    assert!(!pg.was_already_running());
    assert!(data.join("PG_VERSION").is_file());
    assert!(pg.log_file().is_file());
    assert!(pg.socket_dir().unwrap().join(format!(".s.PGSQL.{port}")).exists());
    assert_eq!(
        pg.url("agentry"),
        format!("postgres://postgres@127.0.0.1:{port}/agentry")
    );
    {
        let pool = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
        assert_eq!(one, 1);
        sqlx::query("CREATE TABLE survives_restart (id int primary key)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO survives_restart VALUES (7)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    pg.ensure_database("agentry").await.unwrap();
    pg.ensure_database("agentry").await.unwrap(); // idempotent
    let pool = sqlx::PgPool::connect(&pg.url("agentry")).await.unwrap();
    pool.close().await;

    // Starting again while it runs adopts the running server.
    let again = EmbeddedPostgres::start(&data, port).await.unwrap();
    assert!(again.was_already_running());
    assert_eq!(again.port(), port);
    assert_eq!(again.pid(), pg.pid());
    drop(again);

    pg.stop().await.unwrap();
    assert!(!data.join("postmaster.pid").exists());

    // A fresh start on the same directory sees the data.
    let pg = EmbeddedPostgres::start(&data, port).await.unwrap();
    assert!(!pg.was_already_running());
    let pool = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    let id: i32 = sqlx::query_scalar("SELECT id FROM survives_restart")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(id, 7);
    pool.close().await;
    pg.stop().await.unwrap();
}

#[tokio::test]
async fn reports_port_in_use_and_foreign_data_dir_in_one_line() {
    if EmbeddedPostgres::find_binaries().is_none() {
        eprintln!("skipping: PostgreSQL server programs are not installed");
        return;
    }
    let tmp = TempDir::new("errors");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = EmbeddedPostgres::start(&tmp.path.join("data"), port)
        .await
        .unwrap_err();
    assert!(matches!(err, EmbeddedPostgresError::PortInUse { .. }), "{err}");
    drop(listener);

    let junk = tmp.path.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("file"), "x").unwrap();
    let err = EmbeddedPostgres::start(&junk, free_port()).await.unwrap_err();
    let line = err.to_string();
    assert!(matches!(err, EmbeddedPostgresError::DataDir { .. }), "{line}");
    assert!(!line.contains('\n'), "{line}");
}
