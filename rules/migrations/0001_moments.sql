-- Moments: what rules decided is worth telling a device's people. notify/ turns each moment
-- into messages per recipient. dedup_key makes creating a moment idempotent.

CREATE TABLE moments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    kind         text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    occurred_at  timestamptz NOT NULL,
    facts        jsonb NOT NULL DEFAULT '{}',
    rule_id      bigint,
    alert_id     bigint,
    dedup_key    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moments_device_time_idx ON moments (device_id, occurred_at DESC);
