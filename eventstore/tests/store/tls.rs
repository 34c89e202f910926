//! A server on this machine is reached without TLS, which there protects nothing and costs
//! every statement; a URL that asks for TLS still gets it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::database::{connect, connect_options};
use sqlx::PgPool;
use sqlx::postgres::PgSslMode;

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn encrypted(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_server_on_this_machine_is_reached_without_tls_unless_the_url_asks_for_it() {
    let url = database_url();
    if !matches!(connect_options(&url).unwrap().get_ssl_mode(), PgSslMode::Disable) {
        // A server elsewhere, or a URL (or PGSSLMODE) that names its own mode: not this case.
        eprintln!("skipped: {url} is not a server on this machine without an SSL mode of its own");
        return;
    }
    let pool = connect(&url, 1).await.unwrap();
    let offered: String = sqlx::query_scalar("SHOW ssl").fetch_one(&pool).await.unwrap();
    assert!(!encrypted(&pool).await, "{url} is on this machine: no TLS");
    pool.close().await;

    if offered == "on" {
        let separator = if url.contains('?') { '&' } else { '?' };
        let asking = connect(&format!("{url}{separator}sslmode=require"), 1)
            .await
            .unwrap();
        assert!(encrypted(&asking).await, "sslmode=require is honoured");
        asking.close().await;
    }
}
