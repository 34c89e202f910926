-- Read models of conversations, runs and usage (projections/src/{conversations,runs,usage}).
-- Each is kept by its own projector, whose checkpoint commits with its rows; each row knows how
-- far it folded its aggregate (`version`: the aggregate's last sequence folded, or for usage
-- the organization's last log cursor folded), so an event delivered again changes nothing.
-- `agentry projections rebuild NAME` builds these tables anew in a schema of their own and then
-- moves them here: no foreign keys, no sequences, nothing that would tie them to `public`.

-- One row per run: what the run history shows, and the folded aggregate to fold more into.
CREATE TABLE run_history (
    run_id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    status text NOT NULL,
    input text NOT NULL,
    output text,
    error_code text,
    error_detail text,
    steps jsonb NOT NULL,
    step_count integer NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    credits bigint NOT NULL,
    last_event_id bigint NOT NULL,
    queued_at timestamptz NOT NULL,
    queued_position bigint NOT NULL,
    ended_at timestamptz,
    updated_at timestamptz NOT NULL,
    state jsonb NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX run_history_by_org ON run_history (org_id, queued_position DESC);
CREATE INDEX run_history_by_conversation ON run_history (conversation_id, queued_position DESC);

-- One row per conversation.
CREATE TABLE conversation_views (
    conversation_id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    agent_id uuid NOT NULL,
    agent_version integer NOT NULL,
    title text,
    archived boolean NOT NULL,
    active_run uuid,
    run_count integer NOT NULL,
    created_at timestamptz NOT NULL,
    created_position bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX conversation_views_by_org ON conversation_views (org_id, created_position DESC);

-- How far the conversation view folded each run, and where the run's messages sort.
CREATE TABLE conversation_view_runs (
    run_id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    run_position bigint NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX conversation_view_runs_by_conversation ON conversation_view_runs (conversation_id);

-- The messages of every conversation, in (run_position, ordinal) order.
CREATE TABLE conversation_messages (
    run_id uuid NOT NULL,
    ordinal integer NOT NULL,
    conversation_id uuid NOT NULL,
    run_position bigint NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    tool_calls jsonb NOT NULL,
    call jsonb,
    PRIMARY KEY (run_id, ordinal)
);
CREATE INDEX conversation_messages_in_order ON conversation_messages (conversation_id, run_position, ordinal);

-- Usage per organization and UTC day (months are sums of days).
CREATE TABLE usage_daily (
    org_id uuid NOT NULL,
    day date NOT NULL,
    runs bigint NOT NULL,
    llm_calls bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    credits bigint NOT NULL,
    PRIMARY KEY (org_id, day)
);

-- The last log cursor each organization's usage folded: usage adds up, so an event at or before
-- it is one already counted.
CREATE TABLE usage_cursors (
    org_id uuid PRIMARY KEY,
    transaction_id bigint NOT NULL,
    position bigint NOT NULL
);
