use sqlx::PgExecutor;

use super::progress::{CHANNEL, progress_payload};
use super::{Cursor, LeaseClaim};

/// Where the follower named `name` has got to; the start of the log for a new follower.
pub async fn load_checkpoint<'e, E: PgExecutor<'e>>(executor: E, name: &str) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT transaction_id::text, position FROM follower_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(executor)
            .await?;
    row.map_or(Ok(Cursor::START), |(transaction_id, position)| {
        cursor_from_row(&transaction_id, position)
    })
}

/// A stored cursor, refusing a transaction id that is not a number: reading it as 0 would
/// restart the follower from the beginning of the log.
pub(crate) fn cursor_from_row(transaction_id: &str, position: i64) -> Result<Cursor, sqlx::Error> {
    let transaction_id = transaction_id.parse().map_err(|error| {
        sqlx::Error::Decode(format!("transaction id {transaction_id:?} is not an xid8: {error}").into())
    })?;
    Ok(Cursor {
        transaction_id,
        position,
    })
}

/// Moves the checkpoint from `from` forward to `to`, only if it still stands at `from`.
///
/// Returns `false` when another instance moved it first, or when `to` is not after `from`:
/// the caller must roll back whatever it did in the same transaction and reload. This
/// compare-and-set is what lets a projector's rows and its checkpoint commit together without
/// double-applying, even with two runners; a checkpoint never moves backwards.
///
/// Runners under a lease use [`save_checkpoint_as`]; this form is for tools and tests that
/// step a follower by hand.
pub async fn save_checkpoint<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    from: Cursor,
    to: Cursor,
) -> Result<bool, sqlx::Error> {
    if to <= from {
        return Ok(false);
    }
    let result = sqlx::query(
        "INSERT INTO follower_checkpoints AS c (name, transaction_id, position, updated_at)
         VALUES ($1, $4::text::xid8, $5, now())
         ON CONFLICT (name) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()
          WHERE c.transaction_id = $2::text::xid8 AND c.position = $3
            AND (EXCLUDED.transaction_id, EXCLUDED.position) > (c.transaction_id, c.position)",
    )
    .bind(name)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The lease holder's compare-and-set of a checkpoint ($1 name, $2/$3 from, $4/$5 to, $6/$7
/// the claim's holder and epoch), shared by the two statements below.
macro_rules! leased_move_sql {
    () => {
        "INSERT INTO follower_checkpoints AS c (name, transaction_id, position, updated_at)
         SELECT l.name, $4::text::xid8, $5, now()
           FROM follower_leases l
          WHERE l.name = $1 AND l.holder = $6 AND l.epoch = $7
            FOR SHARE
         ON CONFLICT (name) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()
          WHERE c.transaction_id = $2::text::xid8 AND c.position = $3
            AND (EXCLUDED.transaction_id, EXCLUDED.position) > (c.transaction_id, c.position)"
    };
}

/// The move alone.
const LEASED_MOVE: &str = leased_move_sql!();
/// The move and, only if it happened, the progress notification ($8 channel, $9 payload). A
/// `SELECT`'s count is the rows it returned: one when the checkpoint moved.
const LEASED_MOVE_ANNOUNCED: &str = concat!(
    "WITH saved AS (",
    leased_move_sql!(),
    " RETURNING 1) SELECT pg_notify($8, $9) FROM saved"
);

/// [`save_checkpoint`] for the holder of the follower's lease: the checkpoint moves only if
/// the lease row (same name) still names `claim`'s holder and epoch, checked in the same
/// statement. The lease row is share-locked until the caller's transaction ends, so a takeover
/// waits for this move to commit (and then sees it) or wins first (and this move is refused).
///
/// `false` means: another holder took over, or the checkpoint is not at `from`. Either way the
/// caller is no longer the one to move it and must stop.
pub async fn save_checkpoint_as<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    from: Cursor,
    to: Cursor,
    claim: LeaseClaim,
) -> Result<bool, sqlx::Error> {
    move_leased(executor, name, (from, to), claim, false).await
}

/// [`save_checkpoint_as`] and [`announce_progress`](super::announce_progress) in one
/// statement: the notification is sent only if the checkpoint moved, and delivered when the
/// caller's transaction commits (at once outside a transaction). A batch's commit is one round
/// trip fewer, and a batch that wrote nothing else needs no transaction at all.
pub async fn save_checkpoint_announced<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    from: Cursor,
    to: Cursor,
    claim: LeaseClaim,
) -> Result<bool, sqlx::Error> {
    move_leased(executor, name, (from, to), claim, true).await
}

async fn move_leased<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    (from, to): (Cursor, Cursor),
    claim: LeaseClaim,
    announce: bool,
) -> Result<bool, sqlx::Error> {
    if to <= from {
        return Ok(false);
    }
    let mut query = sqlx::query(if announce {
        LEASED_MOVE_ANNOUNCED
    } else {
        LEASED_MOVE
    })
    .bind(name)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .bind(claim.holder)
    .bind(claim.epoch);
    if announce {
        query = query.bind(CHANNEL).bind(progress_payload(name, to));
    }
    Ok(query.execute(executor).await?.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::cursor_from_row;

    #[test]
    fn a_transaction_id_that_is_not_a_number_is_an_error_not_the_start_of_the_log() {
        assert!(cursor_from_row("12x", 7).is_err());
        assert!(cursor_from_row("", 7).is_err());
        assert_eq!(
            cursor_from_row("42", 7).ok().map(|cursor| cursor.transaction_id),
            Some(42)
        );
    }
}
