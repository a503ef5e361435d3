CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE status = 'HELD';
DROP INDEX reservations_live_by_user_and_performance;
