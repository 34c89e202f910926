-- Every identity view row remembers the sequence of the last event of its aggregate it folded,
-- and the projector writes only when an event is newer than that (see
-- projections/src/identity/). Old events come back whenever a follower's cursor moves back (a
-- restore from a logical dump, a reset checkpoint, a re-delivery): without this, a replayed
-- `user.registered` put an old password digest back and a replayed `api_key.created`
-- un-revoked a key.
--
-- `memberships` has no column of its own: its rows are deleted on removal, so the guard of a
-- membership event is its organization's version (every membership event is an event of the
-- organization aggregate).
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN version bigint NOT NULL DEFAULT 0;

-- Existing rows: the projector's checkpoint commits with its rows, so the rows reflect exactly
-- the events up to the identity checkpoint; each row's version is its aggregate's last
-- sequence there. Without a checkpoint the tables are empty and nothing needs a version.
WITH checkpoint AS (
    SELECT transaction_id, position FROM follower_checkpoints WHERE name = 'identity'
), folded AS (
    SELECT e.aggregate_type, e.aggregate_id, max(e.sequence) AS version
      FROM events e, checkpoint c
     WHERE e.aggregate_type IN ('user', 'organization', 'api_key', 'session')
       AND (e.transaction_id, e.position) <= (c.transaction_id, c.position)
     GROUP BY e.aggregate_type, e.aggregate_id
), users_done AS (
    UPDATE users t SET version = f.version
      FROM folded f WHERE f.aggregate_type = 'user' AND f.aggregate_id = t.user_id::text
), organizations_done AS (
    UPDATE organizations t SET version = f.version
      FROM folded f WHERE f.aggregate_type = 'organization' AND f.aggregate_id = t.org_id::text
), api_keys_done AS (
    UPDATE api_keys t SET version = f.version
      FROM folded f WHERE f.aggregate_type = 'api_key' AND f.aggregate_id = t.key_id::text
)
UPDATE sessions t SET version = f.version
  FROM folded f WHERE f.aggregate_type = 'session' AND f.aggregate_id = t.session_id::text;
