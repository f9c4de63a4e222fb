-- A buyer reads their own reservations (GET /reservations/mine): newest
-- first, by buyer.
CREATE INDEX reservations_buyer ON reservations (buyer, created_at);
