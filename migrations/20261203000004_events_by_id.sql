-- One event by its id: GET /v1/events/{id}, which is how a bus subscriber reads an event that
-- travelled cut (too large for NATS). Unique, because the id is the event's identity on the bus
-- (the JetStream message id that deduplicates re-publishes): two rows must never share one.
-- Ids are UUID v7, time-ordered, so inserts land at the right edge of the index.
CREATE UNIQUE INDEX events_event_id ON events (event_id);
