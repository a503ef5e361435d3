CREATE INDEX reservations_by_user ON reservations (user_id);
DROP INDEX reservations_by_user_newest;
