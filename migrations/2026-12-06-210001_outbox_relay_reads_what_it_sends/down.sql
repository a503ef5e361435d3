DROP INDEX outbox_events_unsent_by_user;
CREATE INDEX outbox_events_unsent_by_user ON outbox_events (user_id, id) WHERE sent_at IS NULL;
DROP INDEX outbox_events_unsent_by_reservation;
CREATE INDEX outbox_events_unsent_by_reservation
    ON outbox_events (reservation_id, id) WHERE sent_at IS NULL;
