-- Sessions (refresh-token families), a projection of session.* events, rebuildable from the
-- log. It answers two questions: is the session behind an access token still alive (so a
-- revoked family's access tokens stop at once, not when they expire), and which sessions a
-- user has (so a password change can end them all).
CREATE TABLE sessions
(
    session_id uuid PRIMARY KEY,
    user_id    uuid        NOT NULL,
    org_id     uuid,
    started_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
