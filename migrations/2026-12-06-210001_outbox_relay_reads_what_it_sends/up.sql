-- The relay's claim asks for unsent events (sent_at IS NULL) in id order. Every unsent-event
-- index answered that predicate, and with stale statistics the planner chose a bitmap of the
-- whole of outbox_events_unsent_by_user, sorted: every entry of every event sent since the last
-- vacuum, as a bitmap scan never marks dead entries (60,000 entries a claim within a minute of
-- a benchmark run; docs/holds-benchmark.md). With a predicate of their own, these two indexes
-- serve only the reads that name a reservation or a user, and the claim walks
-- outbox_events_unsent.
DROP INDEX outbox_events_unsent_by_reservation;
CREATE INDEX outbox_events_unsent_by_reservation
    ON outbox_events (reservation_id, id) WHERE sent_at IS NULL AND reservation_id IS NOT NULL;
DROP INDEX outbox_events_unsent_by_user;
CREATE INDEX outbox_events_unsent_by_user
    ON outbox_events (user_id, id) WHERE sent_at IS NULL AND user_id IS NOT NULL;
