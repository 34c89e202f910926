//! The rebuild's tables: copies of the live tables' shape in a schema of their own, filled on a
//! connection that writes there, then swapped with the live ones.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection, PgPool};

/// The schemas one rebuild uses.
pub(super) struct Schema {
    /// Where the new tables are built.
    pub building: String,
    /// Where the live tables go at the switch, to be dropped.
    pub retired: String,
}

impl Schema {
    /// The schemas of the rebuild of `name` (a projector name: lower-case letters and `_`).
    pub fn for_rebuild(name: &str) -> Self {
        Self {
            building: format!("rebuild_{name}"),
            retired: format!("retired_{name}"),
        }
    }
}

/// Makes `schema.building` afresh (a failed rebuild may have left one) with an empty copy of
/// each live table: columns, defaults, checks, and its primary and unique keys (the projector's
/// upserts need them), under the same names. Secondary indexes come later (faster to build once).
pub(super) async fn create_copies(pool: &PgPool, schema: &Schema, live: &[&str]) -> Result<(), sqlx::Error> {
    let mut transaction = pool.begin().await?;
    for name in [&schema.building, &schema.retired] {
        transaction
            .execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
            .await?;
    }
    transaction
        .execute(format!("CREATE SCHEMA {}", schema.building).as_str())
        .await?;
    for table in live {
        transaction
            .execute(
                format!(
                    "CREATE TABLE {}.{table} (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
                     INCLUDING GENERATED INCLUDING IDENTITY)",
                    schema.building
                )
                .as_str(),
            )
            .await?;
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = ('public.' || $1)::regclass AND contype IN ('p', 'u')",
        )
        .bind(table)
        .fetch_all(&mut *transaction)
        .await?;
        for (key, definition) in keys {
            transaction
                .execute(
                    format!(
                        "ALTER TABLE {}.{table} ADD CONSTRAINT {key} {definition}",
                        schema.building
                    )
                    .as_str(),
                )
                .await?;
        }
    }
    transaction.commit().await
}

/// The live tables' other indexes, under the same names, on the copies.
pub(super) async fn create_secondary_indexes(
    pool: &PgPool,
    schema: &Schema,
    live: &[&str],
) -> Result<(), sqlx::Error> {
    for table in live {
        let definitions: Vec<(String,)> = sqlx::query_as(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
              WHERE i.indrelid = ('public.' || $1)::regclass
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        for (definition,) in definitions {
            let on_copy = definition.replacen(
                &format!(" ON public.{table} "),
                &format!(" ON {}.{table} ", schema.building),
                1,
            );
            pool.execute(on_copy.as_str()).await?;
        }
    }
    Ok(())
}

/// A connection outside the pool (its settings never reach a pooled connection) whose
/// unqualified table names resolve to the copies first.
pub(super) async fn connect_into(pool: &PgPool, schema: &Schema) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = (*pool.connect_options()).clone();
    let mut connection = options.connect().await?;
    connection
        .execute(format!("SET search_path = {}, public", schema.building).as_str())
        .await?;
    Ok(connection)
}

/// Locks the live tables against every other access until the caller's transaction ends.
pub(super) async fn lock_live(connection: &mut PgConnection, live: &[&str]) -> Result<(), sqlx::Error> {
    let list = live
        .iter()
        .map(|table| format!("public.{table}"))
        .collect::<Vec<_>>()
        .join(", ");
    connection
        .execute(format!("LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE").as_str())
        .await?;
    Ok(())
}

/// Moves the live tables out to `schema.retired` and the copies into `public`.
pub(super) async fn swap(
    connection: &mut PgConnection,
    schema: &Schema,
    live: &[&str],
) -> Result<(), sqlx::Error> {
    connection
        .execute(format!("CREATE SCHEMA {}", schema.retired).as_str())
        .await?;
    for table in live {
        connection
            .execute(format!("ALTER TABLE public.{table} SET SCHEMA {}", schema.retired).as_str())
            .await?;
        connection
            .execute(format!("ALTER TABLE {}.{table} SET SCHEMA public", schema.building).as_str())
            .await?;
    }
    Ok(())
}

/// Drops the retired tables and the emptied building schema.
pub(super) async fn drop_retired(pool: &PgPool, schema: &Schema) -> Result<(), sqlx::Error> {
    pool.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.retired).as_str())
        .await?;
    pool.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.building).as_str())
        .await?;
    Ok(())
}
