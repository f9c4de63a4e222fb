-- How buyers who pay by transfer should pay this shop (WeChat ID, bank
-- account, what to write in the note). Shown to buyers on their order.
ALTER TABLE shops ADD COLUMN payment_note TEXT NOT NULL DEFAULT '';
