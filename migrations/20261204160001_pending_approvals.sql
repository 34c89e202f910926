-- Tool calls recorded as awaiting approval: what GET /v1/approvals lists (per organization,
-- newest first) and what the approval-expiry sweep reads. Decided calls stay in the index
-- (their decision is a later event); the queries check for it, and the index stays as small
-- as the number of calls that ever needed approval.
CREATE INDEX events_pending_approvals ON events (org_id, position)
    WHERE aggregate_type = 'run'
      AND event_type = 'tool_call.requested'
      AND (payload -> 'call' ->> 'approval') = 'pending';
