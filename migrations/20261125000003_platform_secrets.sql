-- Secrets the platform generates for itself once and every node must share, such as the
-- access-token signing key when AGENTRY_JWT_SECRET is not set. Not event-sourced on purpose:
-- a signing key must never travel to NATS, the audit export or a projection.
CREATE TABLE platform_secrets
(
    name       text PRIMARY KEY,
    value      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
