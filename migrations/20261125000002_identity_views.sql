-- Identity read models, kept by the `identity` projector (projections/src/identity/).
--
-- Every table here is a projection of the user, organization and api_key events: nothing in it
-- is a fact of its own, and each can be rebuilt from the log by deleting its rows and the
-- `identity` row of follower_checkpoints. The projector writes rows and checkpoint in one
-- transaction, keyed on primary keys, so a replay gives the same rows.

-- Who can sign in: login looks a user up by email and verifies the password hash; the
-- platform-admin guard reads is_platform_admin.
-- From user.registered, user.password_changed, user.password_reset_completed and
-- user.promoted_to_platform_admin.
CREATE TABLE users
(
    user_id           uuid PRIMARY KEY,
    email             text        NOT NULL UNIQUE,
    password_hash     text        NOT NULL,
    is_platform_admin boolean     NOT NULL DEFAULT false,
    registered_at     timestamptz NOT NULL
);

-- The tenants: their names for listings, and whether a platform administrator suspended
-- them (the auth guard refuses tokens and keys of a suspended organization).
-- From organization.created, .renamed, .suspended and .reactivated.
CREATE TABLE organizations
(
    org_id     uuid PRIMARY KEY,
    name       text        NOT NULL,
    suspended  boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

-- Who belongs to which organization with which role: the guard's role lookup by
-- (org_id, user_id), an organization's member list, and a user's organizations (by user_id).
-- From organization.member_added, .member_role_changed and .member_removed (which deletes
-- the row). The founder arrives through member_added like everyone else.
CREATE TABLE memberships
(
    org_id   uuid        NOT NULL,
    user_id  uuid        NOT NULL,
    role     text        NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

CREATE INDEX memberships_by_user ON memberships (user_id);

-- An organization's API keys: the guard finds a presented key by its public prefix and
-- compares hashes; listings show name, prefix, creator and dates, never the hash.
-- From api_key.created and api_key.revoked.
--
-- last_used_at is the one column written outside the projector: the auth guard stamps it,
-- throttled, when a key authenticates. A last-used time is telemetry, not a fact worth an
-- event, so it is not in the log: the projector never writes it (its upserts leave it alone),
-- and a rebuild from empty tables starts it over as NULL.
CREATE TABLE api_keys
(
    key_id       uuid PRIMARY KEY,
    org_id       uuid        NOT NULL,
    name         text        NOT NULL,
    prefix       text        NOT NULL UNIQUE,
    key_hash     text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX api_keys_by_org ON api_keys (org_id);
