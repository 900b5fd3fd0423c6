-- Connection history, commands (downlink with status) and per-device MQTT credentials.

-- One row per change of a device's connection state (from its retained status topic and
-- last will); duplicates of the current state are not recorded.
CREATE TABLE device_connection_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    state        text NOT NULL CHECK (state IN ('online', 'offline')),
    device_ts    timestamptz,
    received_at  timestamptz NOT NULL,
    firmware     text CHECK (length(firmware) <= 64)
);
CREATE INDEX device_connection_events_device_idx
    ON device_connection_events (device_id, received_at DESC);

-- pending: stored, waiting for the device; delivered: the device accepted it;
-- acked: the device reports it done; failed: rejected or failed on the device;
-- expired: no final answer before expires_at (set by the expiry sweep).
CREATE TABLE device_commands (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id    text NOT NULL UNIQUE CHECK (command_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    device_id     bigint NOT NULL REFERENCES devices (id),
    name          text NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'acked', 'failed', 'expired')),
    requested_by  text CHECK (length(requested_by) <= 128),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    published_at  timestamptz,
    delivered_at  timestamptz,
    finished_at   timestamptz,
    detail        text CHECK (length(detail) <= 256)
);
CREATE INDEX device_commands_device_idx ON device_commands (device_id, created_at DESC);
CREATE INDEX device_commands_open_idx
    ON device_commands (expires_at) WHERE status IN ('pending', 'delivered');

-- The broker keeps its own salted hash (dynamic security); this is the platform's record
-- of which credential is current, hashed with argon2id, never the secret itself.
CREATE TABLE device_credentials (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    username     text NOT NULL,
    secret_hash  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX device_credentials_one_active
    ON device_credentials (device_id) WHERE revoked_at IS NULL;

CREATE INDEX device_ownerships_device_idx
    ON device_ownerships (device_id, started_at DESC);
