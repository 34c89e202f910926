-- Failed logins, counted where every node sees them and a restart forgets nothing (issue 11,
-- finding 3). Not events: this is operational state, pruned as it goes stale.
--
-- `account` is the SHA-256 (hex) of the normalized email as typed, whether or not an account
-- has it (the email claim's id), so unknown emails are throttled exactly like known ones and
-- no address is stored in clear. `client` is the client address as the rate limit keys it (an
-- IPv4 address, or an IPv6 /64). Times come from the database clock only.

-- Per (account, client address): five failures within the window lock the pair for a time
-- that doubles with each lock (capped); a success clears the pair. Another address is
-- unaffected, so a guesser cannot lock the owner out.
CREATE TABLE login_throttle_pairs
(
    account           text        NOT NULL,
    client            text        NOT NULL,
    -- Failures since `window_started_at`, counted before the hash (a guess in flight counts).
    failures          integer     NOT NULL DEFAULT 0,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    -- Locks so far; the next lasts first_lock × 2^locks (capped). Cleared by a success or a
    -- day without failures.
    locks             integer     NOT NULL DEFAULT 0,
    locked_until      timestamptz,
    last_failure_at   timestamptz,
    -- A successful login from this address: it stays trusted past the account-wide ceiling.
    last_success_at   timestamptz,
    PRIMARY KEY (account, client)
);

-- Per account, across addresses: past a ceiling of failures within the hour, addresses
-- without a recent success for the account are refused until the hour ends.
CREATE TABLE login_throttle_accounts
(
    account           text PRIMARY KEY,
    failures          integer     NOT NULL DEFAULT 0,
    window_started_at timestamptz NOT NULL DEFAULT now()
);
