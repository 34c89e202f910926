-- Stream tickets (issue 13): short-lived, single-use credentials for one run's stream, for
-- browsers, which cannot set headers on an EventSource or a WebSocket and would otherwise put a
-- long-lived bearer credential in a URL. Not events: operational state, like login throttles,
-- pruned as it goes stale.
--
-- Only the SHA-256 (hex) of a ticket is stored. A ticket acts as the credentials that asked for
-- it: the key, or the user with the session or impersonation of their token, whose standing is
-- read again when the ticket is used and while its stream lasts. Using a ticket stamps
-- `used_at` in the same statement that checks it is unset, so of two uses exactly one wins.
CREATE TABLE stream_tickets
(
    ticket_hash      text PRIMARY KEY,
    org_id           uuid        NOT NULL,
    run_id           uuid        NOT NULL,
    user_id          uuid,
    api_key_id       uuid,
    session_id       uuid,
    impersonation_id uuid,
    impersonator_id  uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    CHECK ((user_id IS NULL) <> (api_key_id IS NULL))
);

-- Pruning reads tickets by expiry.
CREATE INDEX stream_tickets_by_expiry ON stream_tickets (expires_at);
