-- Replays: chapters are made from what happened live.
--
-- Same conventions as 0001: one dialect for SQLite and PostgreSQL.
--
-- offers.sold_out_at: when the offer's available count first reached zero
-- (every unit held or sold), the moment a live viewer saw "sold out". NULL
-- when it never sold out, or sold out before this column existed.
ALTER TABLE offers ADD COLUMN sold_out_at BIGINT;

-- A replay reads its broadcast's pins and unpins from the moderation log, in order.
CREATE INDEX moderation_log_broadcast ON moderation_log (broadcast_id, ordinal);
