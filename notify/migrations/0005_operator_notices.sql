-- Operator notices (rules' notify_operators action writes operator_notifications) are
-- delivered by notify to the operators' addresses in settings (KIZUNA_NOTIFY__OPERATOR_*),
-- through the same outbox as customers' messages: leases, retries, idempotency keys.

-- Notices not yet turned into outbox rows, queued by a trigger in the rules transaction
-- (the same guarantee as notify_inbox for moments: a committed notice cannot be missed).
CREATE TABLE notify_operator_inbox (
    notice_id  bigint PRIMARY KEY REFERENCES operator_notifications (id),
    queued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_enqueue_operator_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_operator_inbox (notice_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('kizuna_notify', '');
    RETURN NEW;
END
$$;

CREATE TRIGGER operator_notifications_notify_inbox AFTER INSERT ON operator_notifications
    FOR EACH ROW EXECUTE FUNCTION notify_enqueue_operator_notice();

-- An outbox row is addressed either to a customer or, for an operator notice, to the
-- operator address it was sent to (operators are staff, not customers).
ALTER TABLE notifications
    ALTER COLUMN customer_id DROP NOT NULL,
    ADD COLUMN operator_notice_id bigint REFERENCES operator_notifications (id),
    ADD COLUMN recipient text CHECK (length(recipient) <= 2048),
    DROP CONSTRAINT notifications_purpose_check,
    ADD CONSTRAINT notifications_purpose_check
        CHECK (purpose IN ('moment', 'escalation', 'digest', 'operator')),
    ADD CONSTRAINT notifications_addressee CHECK (
        (customer_id IS NOT NULL AND operator_notice_id IS NULL AND purpose <> 'operator')
        OR (customer_id IS NULL AND operator_notice_id IS NOT NULL AND recipient IS NOT NULL
            AND purpose = 'operator'));
CREATE UNIQUE INDEX notifications_operator_once
    ON notifications (operator_notice_id, channel, recipient)
    WHERE operator_notice_id IS NOT NULL;
