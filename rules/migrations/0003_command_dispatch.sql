-- Dispatch of rule command intents to devices/ (outside the ingest transaction).
-- dispatched_at is set in the same transaction that stores the device command, so an intent
-- is sent at most once; detail says why an intent could not be sent.
ALTER TABLE rule_command_intents
    ADD COLUMN dispatched_at timestamptz,
    ADD COLUMN detail text CHECK (length(detail) <= 256);
CREATE INDEX rule_command_intents_pending_idx ON rule_command_intents (id)
    WHERE dispatched_at IS NULL;
