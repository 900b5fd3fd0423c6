-- Product models, customers, devices, ownership and the device twin.

CREATE TABLE product_models (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,39}$'),
    version     integer NOT NULL DEFAULT 1,
    spec        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Personal data columns (*_enc) hold AES-GCM ciphertext (store/encryption.py);
-- email_index is a keyed hash of the normalized email, for lookups without decrypting.
CREATE TABLE customers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id    uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    language     text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'ja')),
    time_zone    text NOT NULL DEFAULT 'Asia/Tokyo',
    name_enc     bytea,
    email_enc    bytea,
    phone_enc    bytea,
    address_enc  bytea,
    email_index  bytea UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz
);

CREATE TABLE devices (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid                text NOT NULL UNIQUE CHECK (uid ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    serial             text NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 64),
    model_id           text NOT NULL REFERENCES product_models (id),
    firmware           text CHECK (length(firmware) <= 64),
    nickname           text CHECK (length(nickname) <= 80),
    latitude           double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude          double precision CHECK (longitude BETWEEN -180 AND 180),
    created_at         timestamptz NOT NULL DEFAULT now(),
    decommissioned_at  timestamptz
);
CREATE INDEX devices_model_idx ON devices (model_id);

CREATE TABLE device_ownerships (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    customer_id  bigint NOT NULL REFERENCES customers (id),
    role         text NOT NULL CHECK (role IN ('owner', 'family')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE UNIQUE INDEX device_ownerships_one_owner
    ON device_ownerships (device_id) WHERE role = 'owner' AND ended_at IS NULL;
CREATE UNIQUE INDEX device_ownerships_one_active_per_person
    ON device_ownerships (device_id, customer_id) WHERE ended_at IS NULL;
CREATE INDEX device_ownerships_customer_idx
    ON device_ownerships (customer_id) WHERE ended_at IS NULL;

-- Latest state. reported: {"metric": {"v": value, "t": "device time"}}, newest per metric
-- by device time, so a late reading never overwrites a newer one.
CREATE TABLE device_twins (
    device_id              bigint PRIMARY KEY REFERENCES devices (id),
    reported               jsonb NOT NULL DEFAULT '{}',
    reported_at            timestamptz,
    desired                jsonb NOT NULL DEFAULT '{}',
    desired_version        integer NOT NULL DEFAULT 0,
    last_seen              timestamptz,
    last_seq               bigint,
    connection             text NOT NULL DEFAULT 'unknown'
                           CHECK (connection IN ('online', 'offline', 'unknown')),
    connection_changed_at  timestamptz
);
