use sqlx::{Connection, PgConnection, PgPool};

/// A session-level advisory lock on a connection of its own (never a pooled one, which would
/// carry the lock to unrelated work): held while the process is the one publisher, released
/// by Postgres the moment the process or its connection dies.
pub(crate) struct Leadership {
    connection: PgConnection,
}

impl Leadership {
    /// Tries once to become the leader for `key`; `None` when another process is.
    pub async fn try_acquire(pool: &PgPool, key: i64) -> Result<Option<Self>, sqlx::Error> {
        let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
        let (acquired,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut connection)
            .await?;
        Ok(acquired.then_some(Self { connection }))
    }

    /// Whether the lock is still ours: its connection still answers.
    pub async fn is_held(&mut self) -> bool {
        self.connection.ping().await.is_ok()
    }
}

/// The advisory-lock key of a named follower: stable across processes and versions.
pub(crate) fn lock_key(name: &str) -> i64 {
    // FNV-1a: tiny, stable, and good enough to keep a handful of names apart.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}
