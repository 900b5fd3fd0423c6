-- Rule specs, per-device rule state with durable timers, alerts with history, operator
-- notifications and device command intents. Everything a rule does is written in the
-- transaction that stored the telemetry (or fired the timer), so it happens exactly once.

CREATE TABLE rules (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key                text NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$'),
    source             text NOT NULL CHECK (source IN ('pack', 'api')),
    scope_model_id     text CHECK (scope_model_id ~ '^[a-z][a-z0-9_]{0,39}$'),
    scope_device_id    bigint REFERENCES devices (id),
    scope_customer_id  bigint REFERENCES customers (id),
    spec               jsonb NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CHECK (num_nonnulls(scope_model_id, scope_device_id, scope_customer_id) = 1)
);
CREATE INDEX rules_model_idx ON rules (scope_model_id) WHERE deleted_at IS NULL;
CREATE INDEX rules_device_idx ON rules (scope_device_id) WHERE deleted_at IS NULL;
CREATE INDEX rules_customer_idx ON rules (scope_customer_id) WHERE deleted_at IS NULL;

-- state: per-condition evaluator state (JSON); holding: the rule's condition currently
-- holds; last_ts: newest device time this rule has evaluated for the device (late inputs
-- older than it do not drive state); due_at: the next durable timer (scheduler wakes it).
CREATE TABLE rule_states (
    rule_id       bigint NOT NULL REFERENCES rules (id),
    device_id     bigint NOT NULL REFERENCES devices (id),
    rule_version  integer NOT NULL,
    state         jsonb NOT NULL DEFAULT '{}',
    holding       boolean NOT NULL DEFAULT false,
    last_ts       timestamptz,
    due_at        timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, device_id)
);
CREATE INDEX rule_states_due_idx ON rule_states (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX rule_states_device_idx ON rule_states (device_id);

CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          bigint NOT NULL REFERENCES rules (id),
    device_id        bigint NOT NULL REFERENCES devices (id),
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'acknowledged', 'cleared')),
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text CHECK (length(acknowledged_by) <= 128),
    cleared_at       timestamptz,
    clear_reason     text CHECK (clear_reason IN ('auto', 'manual', 'rule_changed')),
    facts            jsonb NOT NULL DEFAULT '{}',
    dedup_key        text NOT NULL UNIQUE
);
-- At most one open (active or acknowledged) alert per device and rule.
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, device_id) WHERE status <> 'cleared';
CREATE INDEX alerts_open_idx ON alerts (opened_at DESC) WHERE status <> 'cleared';
CREATE INDEX alerts_device_idx ON alerts (device_id, opened_at DESC);

CREATE TABLE alert_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (id),
    at           timestamptz NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    actor        text NOT NULL CHECK (length(actor) <= 128),
    note         text CHECK (length(note) <= 500)
);
CREATE INDEX alert_history_alert_idx ON alert_history (alert_id, at);

CREATE TABLE operator_notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    rule_id      bigint NOT NULL REFERENCES rules (id),
    alert_id     bigint REFERENCES alerts (id),
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message      text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    dedup_key    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz
);
CREATE INDEX operator_notifications_unread_idx
    ON operator_notifications (occurred_at DESC) WHERE read_at IS NULL;

-- A command a rule wants sent. command_id is set when devices/ accepted the request.
CREATE TABLE rule_command_intents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id),
    rule_id      bigint NOT NULL REFERENCES rules (id),
    name         text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL,
    dedup_key    text NOT NULL UNIQUE,
    command_id   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
