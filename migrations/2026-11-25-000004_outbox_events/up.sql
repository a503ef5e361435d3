-- The transactional outbox: every change of a reservation or a balance writes its event here, in
-- the statement (so the transaction) that makes the change; a refused change writes none. The
-- relay of every instance claims unsent rows for a while (claim, claimed_until: a lease, taken
-- by one statement with FOR UPDATE SKIP LOCKED), publishes them to the Redis stream and sets
-- sent_at. A relay that dies leaves its lease to lapse. `id` is the event's id in the stream,
-- and its order.
CREATE TABLE outbox_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type           TEXT        NOT NULL CHECK (type IN (
                       'reservation.held', 'reservation.confirmed', 'reservation.cancelled',
                       'reservation.expired', 'reservation.refunded',
                       'balance.charged', 'balance.debited', 'balance.refunded')),
    occurred_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    reservation_id BIGINT,
    user_id        BIGINT,
    performance_id BIGINT,
    seat_no        INTEGER,
    amount         BIGINT,
    balance        BIGINT,
    claim          BIGINT,
    claimed_until  TIMESTAMPTZ,
    sent_at        TIMESTAMPTZ
);
-- What the relay claims, oldest first.
CREATE INDEX outbox_events_unsent ON outbox_events (id) WHERE sent_at IS NULL;
-- What holds a claimed event back: an earlier unsent event of its reservation or user.
CREATE INDEX outbox_events_unsent_by_reservation
    ON outbox_events (reservation_id, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_events_unsent_by_user ON outbox_events (user_id, id) WHERE sent_at IS NULL;
-- What the clean-up forgets.
CREATE INDEX outbox_events_sent ON outbox_events (sent_at) WHERE sent_at IS NOT NULL;
