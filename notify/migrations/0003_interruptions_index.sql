-- Fan-out counts each person's interrupting messages since their local midnight (daily cap)
-- for a whole batch of moments at once: by person and time, only rows that interrupt.
CREATE INDEX notifications_interruptions ON notifications (customer_id, created_at)
    WHERE purpose = 'moment' AND channel <> 'feed' AND status IN ('sent', 'pending');
