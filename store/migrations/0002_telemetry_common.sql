-- Telemetry metadata and device events: the same on PostgreSQL and TimescaleDB.
--
-- A telemetry row holds one message's values as float8[] (docs/ingest.md has the
-- measurements behind that choice). telemetry_slots says which array index holds which
-- metric of a product model. Slots are append-only: a metric keeps its index for ever, so
-- old rows stay readable when a product model gains metrics. Booleans are stored as 0/1
-- and enum values as the code recorded in telemetry_enum_codes (also append-only).

CREATE TABLE telemetry_slots (
    model_id  text NOT NULL REFERENCES product_models (id),
    metric    text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_]{0,63}$'),
    slot      smallint NOT NULL CHECK (slot >= 1),
    kind      text NOT NULL CHECK (kind IN ('number', 'integer', 'boolean', 'enum')),
    PRIMARY KEY (model_id, metric),
    UNIQUE (model_id, slot)
);

CREATE TABLE telemetry_enum_codes (
    model_id  text NOT NULL,
    metric    text NOT NULL,
    code      smallint NOT NULL CHECK (code >= 0),
    value     text NOT NULL,
    PRIMARY KEY (model_id, metric, value),
    UNIQUE (model_id, metric, code),
    FOREIGN KEY (model_id, metric) REFERENCES telemetry_slots (model_id, metric)
);

-- Discrete device events (door opened, charge complete). Far fewer than readings, so a
-- plain table; the unique key makes a redelivered event a no-op.
CREATE TABLE device_events (
    device_id    bigint NOT NULL REFERENCES devices (id),
    ts           timestamptz NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    event        text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (device_id, ts, seq)
);
