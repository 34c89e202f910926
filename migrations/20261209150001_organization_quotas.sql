-- Plan limits (quotas) per organization, from `organization.quotas_set` (projections/src/identity/
-- organizations.rs); NULL is unlimited, which is also what an organization whose limits were
-- never set has. No existing row needs a value: the event is new with this migration.
ALTER TABLE organizations
    ADD COLUMN tokens_per_month bigint,
    ADD COLUMN concurrent_runs integer,
    ADD COLUMN requests_per_minute integer;

-- A run start under a concurrent-run limit counts the organization's runs not ended
-- (commands/src/quotas/admission.rs): only those rows, however many runs the organization had.
CREATE INDEX run_history_not_ended_by_org ON run_history (org_id) WHERE ended_at IS NULL;
