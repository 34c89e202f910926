//! Reads of the identity read model (tables kept by the `identity` projector). Every query
//! that concerns an organization's data takes the organization.

use chrono::{DateTime, Utc};
use domain::Role;
use domain::organization::Quotas;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A user as login needs them.
#[derive(Clone, Debug)]
pub struct UserRow {
    /// The user's id.
    pub user_id: Uuid,
    /// Their normalized email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether they are a platform administrator.
    pub is_platform_admin: bool,
}

/// An API key as authentication needs it.
#[derive(Clone, Debug)]
pub struct KeyRow {
    /// The key's id.
    pub key_id: Uuid,
    /// Its organization.
    pub org_id: Uuid,
    /// SHA-256 of its secret part.
    pub key_hash: String,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Whether its organization is suspended (`None`: the organization does not exist).
    pub org_suspended: Option<bool>,
    /// Whether its use was recorded within the last minute: [`touch_api_key`] would change
    /// nothing, so authentication skips that statement.
    pub used_recently: bool,
}

/// What authentication needs to know about a token's user in its organization, in one query.
#[derive(Clone, Debug)]
pub struct Standing {
    /// Whether the user is a platform administrator.
    pub is_platform_admin: bool,
    /// Whether the organization is suspended (`None`: no organization asked, or it does not exist).
    pub org_suspended: Option<bool>,
    /// The user's role there, if they are a member.
    pub role: Option<Role>,
    /// Whether the token's session has ended (false when the token names no session, or the
    /// session is not projected yet).
    pub session_revoked: bool,
    /// Whether the token's impersonation has been ended (false when the token names none, or
    /// it is not projected yet).
    pub impersonation_ended: bool,
    /// All of the above as one text: what an append guarded by this standing compares
    /// (`eventstore::CallerStanding`).
    pub text: String,
}

/// An API key as its organization lists it (never the hash).
#[derive(Clone, Debug)]
pub struct KeySummary {
    /// The key's id.
    pub key_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its visible prefix.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used, at minute precision.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A member as their organization lists them.
#[derive(Clone, Debug)]
pub struct MemberRow {
    /// The user's id.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their role.
    pub role: Role,
}

/// The user with this (normalized) email.
pub async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let row: Option<(Uuid, String, String, bool)> =
        sqlx::query_as("SELECT user_id, email, password_hash, is_platform_admin FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(into_user))
}

/// The user with this id.
pub async fn user_by_id(pool: &PgPool, user_id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    let row: Option<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT user_id, email, password_hash, is_platform_admin FROM users WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(into_user))
}

fn into_user((user_id, email, password_hash, is_platform_admin): (Uuid, String, String, bool)) -> UserRow {
    UserRow {
        user_id,
        email,
        password_hash,
        is_platform_admin,
    }
}

/// The user's role in the organization, if they are a member.
pub async fn role_in(pool: &PgPool, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(role,)| role.parse().ok()))
}

/// The organization the user joined first: where a login without `org_id` goes.
pub async fn first_organization(pool: &PgPool, user_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY added_at, org_id LIMIT 1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(org,)| org))
}

/// `Some(suspended)` for an existing organization.
pub async fn organization_suspended(pool: &PgPool, org_id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as("SELECT suspended FROM organizations WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(suspended,)| suspended))
}

/// The organization's plan limits (`None`: the organization does not exist; a limit `None`:
/// unlimited).
pub async fn organization_quotas(pool: &PgPool, org_id: Uuid) -> Result<Option<Quotas>, sqlx::Error> {
    let row: Option<(Option<i64>, Option<i32>, Option<i32>)> = sqlx::query_as(
        "SELECT tokens_per_month, concurrent_runs, requests_per_minute FROM organizations WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(tokens, runs, requests)| Quotas {
        tokens_per_month: tokens.and_then(|value| u64::try_from(value).ok()),
        concurrent_runs: runs.and_then(|value| u32::try_from(value).ok()),
        requests_per_minute: requests.and_then(|value| u32::try_from(value).ok()),
    }))
}

/// The key with this prefix, in any organization (the prefix is how a presented key is
/// found), with its organization's standing.
pub async fn api_key_by_prefix(pool: &PgPool, prefix: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    let row: Option<KeyColumns> = sqlx::query_as(
        "SELECT k.key_id, k.org_id, k.key_hash, k.revoked_at IS NOT NULL, o.suspended,
                COALESCE(k.last_used_at >= now() - interval '1 minute', false)
           FROM api_keys k LEFT JOIN organizations o USING (org_id)
          WHERE k.prefix = $1",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(key_row))
}

/// The key with this id, with its organization's standing: how a connection opened with the
/// key checks, while it lasts, that the key still stands.
pub async fn api_key_by_id(pool: &PgPool, key_id: Uuid) -> Result<Option<KeyRow>, sqlx::Error> {
    let row: Option<KeyColumns> = sqlx::query_as(
        "SELECT k.key_id, k.org_id, k.key_hash, k.revoked_at IS NOT NULL, o.suspended,
                COALESCE(k.last_used_at >= now() - interval '1 minute', false)
           FROM api_keys k LEFT JOIN organizations o USING (org_id)
          WHERE k.key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(key_row))
}

/// The columns both key lookups select, in [`KeyRow`]'s order.
type KeyColumns = (Uuid, Uuid, String, bool, Option<bool>, bool);

fn key_row((key_id, org_id, key_hash, revoked, org_suspended, used_recently): KeyColumns) -> KeyRow {
    KeyRow {
        key_id,
        org_id,
        key_hash,
        revoked,
        org_suspended,
        used_recently,
    }
}

/// Whose standing is asked: a user, in an organization (or only as a user, without one), with
/// the session and impersonation their token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StandingQuery {
    /// The user.
    pub user_id: Uuid,
    /// The organization the token acts in, if any.
    pub org_id: Option<Uuid>,
    /// The token's session, if any.
    pub session_id: Option<Uuid>,
    /// The token's impersonation, if any.
    pub impersonation_id: Option<Uuid>,
}

/// The standing query of [`standings`] ($1 the callers' numbers, $2 users, $3 organizations, $4
/// sessions, $5 impersonations, one element per caller). Its columns and their text are the
/// event store's (`eventstore::standing_columns!`), which an append guarded by the standing
/// reads again. `OFFSET 0` keeps the inner query whole: merged into the outer one, each
/// column's subquery would run twice, once for the column and once for the text.
pub const STANDINGS: &str = concat!(
    "SELECT c.*, ",
    eventstore::standing_text!("c."),
    " AS standing_text
       FROM (SELECT q.n, ",
    eventstore::standing_columns!("q."),
    "
               FROM UNNEST($1::int4[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[])
                    AS q(n, user_id, org_id, session_id, impersonation_id)
             OFFSET 0) c"
);

/// Each query's standing, and whether its session and impersonation have ended: `None` where
/// the user does not exist. One query for all, because it runs on nearly every authenticated
/// request and concurrent requests share it (`commands`' standing batcher).
///
/// Every table is read by its key in a scalar subquery, never joined. The standing batcher runs
/// this statement under one generic plan (see `commands`' `standings.rs`), made once per
/// connection, possibly while the tables are still empty; a join would then be planned as a
/// hash join over a sequential scan (right for empty tables, ruinous once they grow), while a
/// key subquery is an index probe at any size. As a six-way join it also cost 1.02 ms to plan
/// and 0.16 ms to run, as subqueries 0.13 and 0.06 ms (EXPLAIN ANALYZE, two callers).
pub async fn standings(
    connection: &mut PgConnection,
    queries: &[StandingQuery],
) -> Result<Vec<Option<Standing>>, sqlx::Error> {
    let column = |field: fn(&StandingQuery) -> Option<Uuid>| queries.iter().map(field).collect::<Vec<_>>();
    let rows: Vec<StandingRow> = sqlx::query_as(STANDINGS)
        .bind((0..).take(queries.len()).collect::<Vec<i32>>())
        .bind(queries.iter().map(|query| query.user_id).collect::<Vec<_>>())
        .bind(column(|query| query.org_id))
        .bind(column(|query| query.session_id))
        .bind(column(|query| query.impersonation_id))
        .fetch_all(connection)
        .await?;
    let mut answers = vec![None; queries.len()];
    for row in rows {
        // No `is_platform_admin`: no such user, and the answer stays `None`.
        if let Some(is_platform_admin) = row.is_platform_admin
            && let Some(answer) = usize::try_from(row.n).ok().and_then(|n| answers.get_mut(n))
        {
            *answer = Some(Standing {
                is_platform_admin,
                org_suspended: row.org_suspended,
                role: row.role.and_then(|role| role.parse().ok()),
                session_revoked: row.session_revoked,
                impersonation_ended: row.impersonation_ended,
                text: row.standing_text,
            });
        }
    }
    Ok(answers)
}

#[derive(sqlx::FromRow)]
struct StandingRow {
    n: i32,
    is_platform_admin: Option<bool>,
    org_suspended: Option<bool>,
    role: Option<String>,
    session_revoked: bool,
    impersonation_ended: bool,
    standing_text: String,
}

/// The impersonations of the user that have not ended nor expired, for ending them all.
pub async fn live_impersonations_of(pool: &PgPool, user_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT impersonation_id FROM impersonations
          WHERE user_id = $1 AND ended_at IS NULL AND expires_at > now()",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// The user's sessions that have not ended, for ending them all.
pub async fn live_sessions_of(pool: &PgPool, user_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT session_id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .fetch_all(pool)
        .await
}

/// Whether the key exists in this organization (another organization's key is "not found").
pub async fn api_key_in_org(pool: &PgPool, org_id: Uuid, key_id: Uuid) -> Result<bool, sqlx::Error> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT key_id FROM api_keys WHERE org_id = $1 AND key_id = $2")
            .bind(org_id)
            .bind(key_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some())
}

/// The organization's keys, newest first.
pub async fn api_keys_of(pool: &PgPool, org_id: Uuid) -> Result<Vec<KeySummary>, sqlx::Error> {
    type Row = (
        Uuid,
        String,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT key_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys
          WHERE org_id = $1 ORDER BY created_at DESC, key_id",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(key_id, name, prefix, created_at, last_used_at, revoked_at)| KeySummary {
                key_id,
                name,
                prefix,
                created_at,
                last_used_at,
                revoked_at,
            },
        )
        .collect())
}

/// Records that a key was used, at most once a minute per key so authentication does not
/// write on every request (and does not even ask when the lookup saw a recent use:
/// [`KeyRow::used_recently`]).
pub async fn touch_api_key(pool: &PgPool, key_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
          WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(key_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The organization's members with their emails.
pub async fn members_of(pool: &PgPool, org_id: Uuid) -> Result<Vec<MemberRow>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT m.user_id, u.email, m.role FROM memberships m JOIN users u USING (user_id)
          WHERE m.org_id = $1 ORDER BY m.added_at, m.user_id",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, email, role)| {
            Some(MemberRow {
                user_id,
                email,
                role: role.parse().ok()?,
            })
        })
        .collect())
}
