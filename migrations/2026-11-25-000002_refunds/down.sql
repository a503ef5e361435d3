-- Rows written with the new values stay; the old checks then hold only for new rows.
ALTER TABLE wallet_entries DROP CONSTRAINT wallet_entries_reason_check;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_reason_check
    CHECK (reason IN ('CHARGE', 'PAYMENT')) NOT VALID;

ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('HELD', 'CONFIRMED', 'EXPIRED', 'CANCELLED')) NOT VALID;
