-- notify/: the inbox of new moments, per-person preferences, the notification outbox,
-- the friend feed with reactions, and the items waiting for a daily digest.

-- Moments not yet turned into messages. Filled by a trigger so that a moment and its inbox
-- entry commit in the same (ingest) transaction: a moment can never be missed by notify/.
CREATE TABLE notify_inbox (
    moment_id  bigint PRIMARY KEY REFERENCES moments (id),
    queued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_enqueue_moment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_inbox (moment_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    -- Wakes the outbox workers at commit; identical notifications in one transaction fold.
    PERFORM pg_notify('kizuna_notify', '');
    RETURN NEW;
END
$$;

CREATE TRIGGER moments_notify_inbox AFTER INSERT ON moments
    FOR EACH ROW EXECUTE FUNCTION notify_enqueue_moment();

-- One row per person: quiet hours (local time in customers.time_zone), daily cap, digest
-- hour and channel addresses that are not part of the customer record.
CREATE TABLE notify_profiles (
    customer_id        bigint PRIMARY KEY REFERENCES customers (id),
    quiet_start        time,
    quiet_end          time,
    daily_cap          integer NOT NULL DEFAULT 10 CHECK (daily_cap BETWEEN 0 AND 1000),
    digest_hour        smallint NOT NULL DEFAULT 19 CHECK (digest_hour BETWEEN 0 AND 23),
    escalation_channel text NOT NULL DEFAULT 'email'
                       CHECK (escalation_channel IN ('email', 'webhook', 'mqtt', 'chat')),
    webhook_url        text CHECK (length(webhook_url) <= 2048),
    chat_urls_enc      bytea,  -- apprise URLs carry tokens: sealed with FieldCipher
    last_digest_on     date,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Preferences per person, optionally narrowed to one device and/or one moment kind.
-- The most specific row wins, field by field (NULL = inherit from a broader row).
CREATE TABLE notify_preferences (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    device_id    bigint REFERENCES devices (id),
    moment_kind  text CHECK (moment_kind ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
    channels     text[] CHECK (channels <@ ARRAY['feed', 'email', 'webhook', 'mqtt', 'chat']),
    delivery     text CHECK (delivery IN ('instant', 'digest', 'off')),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX notify_preferences_scope
    ON notify_preferences (customer_id, coalesce(device_id, 0), coalesce(moment_kind, ''));

-- The friend feed: what a person's products posted to them.
CREATE TABLE feed_posts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    device_id    bigint REFERENCES devices (id),
    moment_id    bigint REFERENCES moments (id),
    kind         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    language     text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    remind_at    timestamptz,
    UNIQUE (customer_id, moment_id)
);
CREATE INDEX feed_posts_timeline ON feed_posts (customer_id, id DESC);

CREATE TABLE feed_reactions (
    post_id      bigint NOT NULL REFERENCES feed_posts (id),
    reaction     text NOT NULL CHECK (reaction IN ('thanks', 'remind_later', 'mute')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, reaction)
);

-- The outbox: one row per (moment, person, channel, purpose). Workers claim due rows with
-- FOR UPDATE SKIP LOCKED and a lease, deliver outside the transaction, then record the result.
CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    moment_id        bigint REFERENCES moments (id),
    customer_id      bigint NOT NULL REFERENCES customers (id),
    device_id        bigint REFERENCES devices (id),
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    channel          text NOT NULL CHECK (channel IN ('feed', 'email', 'webhook', 'mqtt', 'chat')),
    purpose          text NOT NULL DEFAULT 'moment'
                     CHECK (purpose IN ('moment', 'escalation', 'digest')),
    language         text NOT NULL,
    title            text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    reason           text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    idempotency_key  uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    last_error       text,
    feed_post_id     bigint REFERENCES feed_posts (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX notifications_once
    ON notifications (moment_id, customer_id, channel, purpose) WHERE moment_id IS NOT NULL;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_recent ON notifications (customer_id, device_id, kind, created_at DESC);

-- Minor moments held for a person's daily "friend update".
CREATE TABLE notify_digest_items (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES customers (id),
    device_id       bigint REFERENCES devices (id),
    moment_id       bigint REFERENCES moments (id),
    kind            text NOT NULL,
    title           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    digest_post_id  bigint REFERENCES feed_posts (id),
    UNIQUE (customer_id, moment_id)
);
CREATE INDEX notify_digest_items_open ON notify_digest_items (customer_id)
    WHERE digest_post_id IS NULL;
