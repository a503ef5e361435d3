DROP TABLE payment_reservations;
