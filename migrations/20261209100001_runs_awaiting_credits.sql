-- Runs waiting for credits, in the order they began to wait per organization: what the sweep
-- that resumes them reads every few seconds (commands/src/runs/credits.rs). Partial, so it
-- holds only the runs waiting now.
CREATE INDEX run_history_awaiting_credits ON run_history (org_id, queued_position)
    WHERE status = 'awaiting_credits';
