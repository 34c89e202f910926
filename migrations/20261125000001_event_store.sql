-- The event store: one table for every aggregate, a superset of postgres-es's layout so
-- cqrs-es/postgres-es can read it, plus what the platform needs around it.
--
-- position        global order across aggregates, taken at insert (NOT commit) time
-- transaction_id  the writer's transaction; with position it gives the follower's cursor
--                 that never back-fills (see docs/event-store.md)
-- event_id        stable identity of an event: JetStream message id, causation ids
-- org_id          the tenant, derived from metadata so every writer fills it the same way
CREATE TABLE events
(
    position       bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid                         NOT NULL DEFAULT gen_random_uuid(),
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 1) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    org_id         uuid GENERATED ALWAYS AS ((metadata ->> 'org_id')::uuid) STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- The follower reads in (transaction_id, position) order.
CREATE INDEX events_log_order ON events (transaction_id, position);
-- No per-organization index yet: every append pays for each index, and nothing reads the log
-- by organization until the audit read side (which will add the one its queries need).

-- Where each follower of the log (relay, projectors) has got to. Written in the same
-- transaction as the follower's own effects where it has any.
CREATE TABLE follower_checkpoints
(
    name           text PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT '0'::xid8,
    position       bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- postgres-es expects this table to exist even though Agentry never snapshots through it
-- (cqrs-es 0.5.0 snapshots double-apply events; see DESIGN-NOTES).
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
