-- A user's reservations are listed newest (highest id) first, a page at a time
-- (GET /api/users/{userId}/reservations): the index walks them in that order. It also serves
-- every lookup by user alone, which the index it replaces served.
CREATE INDEX reservations_by_user_newest ON reservations (user_id, id DESC);
DROP INDEX reservations_by_user;
