-- Telemetry on plain PostgreSQL: native range partitions by day, a default partition for
-- anything that arrives before its partition exists, BRIN on time for fleet-wide scans.
-- telemetry_ensure_partitions() is called by ingest at start and then periodically.

CREATE TABLE telemetry (
    device_id    bigint NOT NULL,
    ts           timestamptz NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    vals         float8[] NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;

-- The dedup key (a redelivered reading is the same device, seq and device time) and the
-- index every per-device time-range query uses.
CREATE UNIQUE INDEX telemetry_device_ts_seq ON telemetry (device_id, ts, seq);
CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts);

-- Create one partition per UTC day from `behind_days` ago to `ahead_days` ahead; rows
-- already sitting in the default partition for a new day are moved into it. Returns the
-- number of partitions created.
CREATE FUNCTION telemetry_ensure_partitions(ahead_days integer, behind_days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    name text;
    created integer := 0;
BEGIN
    FOR day IN
        SELECT generate_series((now() AT TIME ZONE 'UTC')::date - behind_days,
                               (now() AT TIME ZONE 'UTC')::date + ahead_days,
                               interval '1 day')::date
    LOOP
        name := 'telemetry_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE telemetry INCLUDING DEFAULTS)', name);
        EXECUTE format(
            'WITH moved AS (DELETE FROM telemetry_default WHERE ts >= %L AND ts < %L '
            'RETURNING *) INSERT INTO %I SELECT * FROM moved',
            day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC', name);
        EXECUTE format('ALTER TABLE telemetry ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        created := created + 1;
    END LOOP;
    RETURN created;
END;
$$;

SELECT telemetry_ensure_partitions(7, 35);
