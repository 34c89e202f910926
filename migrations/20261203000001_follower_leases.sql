-- Which process runs each follower of the log (the relay, each projector) right now.
--
-- A lease expires unless its holder renews it (about every second); once expired, any
-- process may take it over, which bumps the epoch. Times come from the database clock only.
-- A checkpoint moves only while this row still names the mover's holder and epoch (checked
-- in the same statement), so a holder that was paused (SIGSTOP, a long GC, a partition) and
-- lost its lease cannot move the checkpoint when it wakes.
-- See docs/event-store.md, "Leadership".
CREATE TABLE follower_leases
(
    name       text PRIMARY KEY,
    -- Random per process and follower.
    holder     uuid        NOT NULL,
    -- Counts takeovers: a holder that lost the lease and took it again has a new epoch.
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The event a follower could not apply, so that `/readyz` on every node can name it. Only
-- meaningful while the follower's checkpoint is still before the event: once the follower
-- got past it (the read side was fixed, the event handled), the row is ignored and replaced
-- at the next failure.
CREATE TABLE follower_faults
(
    name           text PRIMARY KEY,
    event_id       uuid        NOT NULL,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    error          text        NOT NULL,
    attempts       integer     NOT NULL,
    first_failed   timestamptz NOT NULL,
    last_failed    timestamptz NOT NULL
);
