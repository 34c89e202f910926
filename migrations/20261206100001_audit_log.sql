-- The audit log: every event as an entry in the log of each organization it concerns, each
-- organization's entries sealed into a hash chain (docs/audit-chain.md) by the `audit`
-- projector, which follows the event log in its delivery order.
--
-- Unlike the other read models this table is a record, not a cache: its chain is what auditors
-- check exports and outside checkpoints against, so it is never emptied and re-derived (a
-- re-derived chain could order entries differently and break every checkpoint taken of it).
-- The projector's `clear` leaves it alone, and a replay of the log seals only the events it
-- lacks (each organization's entries are unique by the event's position).
--
-- The text columns are the event's metadata values exactly as recorded; `recorded_at` is kept
-- to the microsecond, which is what the chain's canonical form writes.
CREATE TABLE audit_entries
(
    org_id          uuid        NOT NULL,
    -- 1, 2, 3, … in this organization's log, with no gaps.
    seq             bigint      NOT NULL CHECK (seq >= 1),
    event_id        uuid        NOT NULL,
    -- The event's position in the store: what a replay is recognised by. Not hashed (a restore
    -- keeps positions, but they mean nothing to an auditor).
    position        bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL,
    -- `user:<uuid>`, `api_key:<uuid>` or `system`.
    actor           text        NOT NULL,
    impersonator_id text,
    -- The event type, e.g. `organization.member_added`.
    action          text        NOT NULL,
    target_type     text        NOT NULL,
    target_id       text        NOT NULL,
    request_id      text,
    client_ip       text,
    user_agent      text,
    -- SHA-256 of the previous entry (32 zero bytes for the first) and of this one.
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE UNIQUE INDEX audit_entries_by_position ON audit_entries (org_id, position);
-- The filters of GET /v1/audit, each newest first within one organization.
CREATE INDEX audit_entries_by_actor ON audit_entries (org_id, actor, seq);
CREATE INDEX audit_entries_by_action ON audit_entries (org_id, action, seq);
CREATE INDEX audit_entries_by_target ON audit_entries (org_id, target_type, target_id, seq);

-- Who belongs to which organization at the projector's point in the log: a platform-wide
-- event about a person (a password change, a verified address) goes into the log of every
-- organization the person belongs to when it happens. Derived from the log; rebuilt on replay.
CREATE TABLE audit_memberships
(
    user_id uuid NOT NULL,
    org_id  uuid NOT NULL,
    PRIMARY KEY (user_id, org_id)
);

-- Platform-wide events about a person who belongs to no organization yet (a registration comes
-- before the organization created with it), waiting for the person's first organization, into
-- whose log they are sealed just before the event that made them a member. Derived from the
-- log; rebuilt on replay.
CREATE TABLE audit_held
(
    user_id         uuid        NOT NULL,
    position        bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    actor           text        NOT NULL,
    impersonator_id text,
    action          text        NOT NULL,
    target_type     text        NOT NULL,
    target_id       text        NOT NULL,
    request_id      text,
    client_ip       text,
    user_agent      text,
    PRIMARY KEY (user_id, position)
);
