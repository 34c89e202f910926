-- Impersonations, a projection of impersonation.* events, rebuildable from the log (kept by
-- the `identity` projector like the other identity tables). It answers two questions: has the
-- impersonation behind an impersonation token been ended (so an ended one's token stops at
-- once, not when it expires), and which impersonations of a user are live (so a password reset
-- can end them all).
--
-- Impersonations started before this table existed are not in it: their tokens carry no
-- impersonation id, authentication refuses such tokens, and they expired within the hour
-- anyway (an impersonation lasts at most one hour).
CREATE TABLE impersonations
(
    impersonation_id uuid PRIMARY KEY,
    user_id          uuid        NOT NULL,
    admin_user_id    uuid        NOT NULL,
    org_id           uuid        NOT NULL,
    started_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    version          bigint      NOT NULL DEFAULT 0
);
CREATE INDEX impersonations_live_by_user ON impersonations (user_id) WHERE ended_at IS NULL;
