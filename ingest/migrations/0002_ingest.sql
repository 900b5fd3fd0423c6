-- What ingest keeps besides telemetry: dead letters, quarantined readings, sequence gaps.

-- Messages that could not be accepted, with the reason, so nothing is lost silently.
-- payload holds at most the first bytes of the message (ingest bounds it); payload_size
-- is the size that arrived.
CREATE TABLE ingest_dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    topic         text NOT NULL,
    device_uid    text,
    reason        text NOT NULL,
    detail        text NOT NULL,
    payload       bytea NOT NULL,
    payload_size  integer NOT NULL
);
CREATE INDEX ingest_dead_letters_time_idx ON ingest_dead_letters (received_at DESC);
CREATE INDEX ingest_dead_letters_reason_idx ON ingest_dead_letters (reason, received_at DESC);

-- Valid readings whose device time cannot be right (far future, 1970, factory dates):
-- kept out of telemetry, with the time they actually arrived.
CREATE TABLE ingest_quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    seq          bigint NOT NULL,
    device_ts    timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    reason       text NOT NULL,
    reading      jsonb NOT NULL,
    UNIQUE (device_id, seq, device_ts)
);
CREATE INDEX ingest_quarantine_device_idx ON ingest_quarantine (device_id, received_at DESC);

-- Sequence numbers a device skipped that have not arrived (yet). A late message that
-- fills part of a gap splits or removes the row.
CREATE TABLE ingest_seq_gaps (
    device_id    bigint NOT NULL REFERENCES devices (id),
    first_seq    bigint NOT NULL,
    last_seq     bigint NOT NULL,
    detected_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, first_seq),
    CHECK (last_seq >= first_seq)
);
