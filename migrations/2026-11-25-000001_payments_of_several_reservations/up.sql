-- A payment may pay several reservations of its user at once, with one debit of their sum
-- (`reservationIds`). `payments.reservation_id` stays the first of them (unique, as a reservation
-- is paid once); this table names every one, with the price it was paid at.
CREATE TABLE payment_reservations (
    payment_id     BIGINT NOT NULL REFERENCES payments (id),
    reservation_id BIGINT NOT NULL UNIQUE REFERENCES reservations (id),
    amount         BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (payment_id, reservation_id)
);

INSERT INTO payment_reservations (payment_id, reservation_id, amount)
SELECT id, reservation_id, amount FROM payments;
