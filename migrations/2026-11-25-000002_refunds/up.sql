-- Refunds: a CONFIRMED reservation may become REFUNDED (before its performance starts), its price
-- going back to the balance as a REFUND entry of the wallet ledger.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('HELD', 'CONFIRMED', 'EXPIRED', 'CANCELLED', 'REFUNDED'));

ALTER TABLE wallet_entries DROP CONSTRAINT wallet_entries_reason_check;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_reason_check
    CHECK (reason IN ('CHARGE', 'PAYMENT', 'REFUND'));
