-- A person's history: their rows of a few event types, newest first, without reading past
-- the many per-message rows of their imports.
CREATE INDEX audit_rows_by_actor_and_type ON audit_rows (actor, event_type, occurred_at DESC);
