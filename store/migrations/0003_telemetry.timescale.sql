-- Telemetry on TimescaleDB: a hypertable with daily chunks (created automatically),
-- compressed per device after a week. Kept minimal: everything else is shared SQL.

CREATE TABLE telemetry (
    device_id    bigint NOT NULL,
    ts           timestamptz NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    vals         float8[] NOT NULL
);
SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => interval '1 day');
CREATE UNIQUE INDEX telemetry_device_ts_seq ON telemetry (device_id, ts, seq);

ALTER TABLE telemetry SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC, seq'
);
SELECT add_compression_policy('telemetry', interval '7 days');

-- Chunks are created on insert: nothing to prepare (same signature as on PostgreSQL).
CREATE FUNCTION telemetry_ensure_partitions(ahead_days integer, behind_days integer)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
