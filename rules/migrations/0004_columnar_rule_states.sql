-- State of the rules the columnar evaluator runs (rules/vector.py, rules/columnar.py): one row
-- per device instead of one per device and rule, so a batch of 1,000 devices with 10 rules
-- reads and writes 1,000 rows, not 10,000. slots packs one little-endian float64 row per rule,
-- each starting with its rule id, version and width; raw_values holds, per rule id, the
-- last-known values a float cannot hold exactly (text, integers beyond 2^53); due_at is the
-- earliest timer of the row (the scheduler claims rows by it, like rule_states.due_at).
CREATE TABLE columnar_rule_states (
    device_id   bigint PRIMARY KEY REFERENCES devices (id),
    slots       bytea NOT NULL,
    raw_values  jsonb,
    due_at      timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX columnar_rule_states_due_idx ON columnar_rule_states (due_at)
    WHERE due_at IS NOT NULL;
