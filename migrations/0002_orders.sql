-- Live offers, reservations (with their idempotency keys) and orders.
--
-- Same conventions as 0001: portable SQL for SQLite and PostgreSQL, TEXT ids,
-- BIGINT money (fen), quantities and Unix-millisecond times.
--
-- Stock accounting: creating an offer moves `quantity` units out of
-- products.stock into offers.allotted. Units come back to products.stock
-- when the offer ends (everything still available) and, after it ended,
-- whenever a reservation is released or an unshipped order is cancelled.
-- A unit is therefore counted in exactly one place at any time.
-- offers.sold counts units of orders not cancelled before shipping: a shipped
-- parcel that is cancelled has left the farm and is counted back by hand.

CREATE TABLE offers (
    id              TEXT PRIMARY KEY,
    broadcast_id    TEXT NOT NULL REFERENCES broadcasts (id),
    shop_id         TEXT NOT NULL REFERENCES shops (id),
    product_id      TEXT NOT NULL REFERENCES products (id),
    -- Copied from the product when the offer is made, so orders show what
    -- the buyer saw even if the product is edited later.
    title           TEXT NOT NULL,
    unit            TEXT NOT NULL,
    ships_on        TEXT,
    price_fen       BIGINT NOT NULL CHECK (price_fen > 0),
    per_buyer_limit BIGINT NOT NULL CHECK (per_buyer_limit > 0),
    hold_ms         BIGINT NOT NULL CHECK (hold_ms > 0),
    starts_at       BIGINT,
    ends_at         BIGINT,
    allotted        BIGINT NOT NULL,
    available       BIGINT NOT NULL,
    held            BIGINT NOT NULL,
    sold            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    -- The stock invariant, enforced by the database as a last line of defence.
    CHECK (available >= 0 AND held >= 0 AND sold >= 0 AND available + held + sold = allotted)
);
CREATE INDEX offers_broadcast ON offers (broadcast_id);
-- Offers the order service must load on start: not ended, or still holding.
CREATE INDEX offers_open ON offers (ended_at, held);

-- One row per accepted "buy now" tap. `buyer` is the subject (usr_… or
-- gst_…). `idempotency_key` is the client's key, scoped per buyer; it is not
-- UNIQUE on purpose: keys are remembered for a limited time (the service
-- decides repeats in memory), and a forgotten key may be used again.
CREATE TABLE reservations (
    id              TEXT PRIMARY KEY,
    offer_id        TEXT NOT NULL REFERENCES offers (id),
    buyer           TEXT NOT NULL,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    state           TEXT NOT NULL CHECK (state IN ('held', 'confirmed', 'cancelled', 'expired')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    closed_at       BIGINT,
    idempotency_key TEXT
);
CREATE INDEX reservations_offer_state ON reservations (offer_id, state);
CREATE INDEX reservations_keys ON reservations (created_at) WHERE idempotency_key IS NOT NULL;

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    -- The buyer's private link: a bearer secret, separate from the id.
    token           TEXT NOT NULL UNIQUE,
    reservation_id  TEXT NOT NULL UNIQUE REFERENCES reservations (id),
    offer_id        TEXT NOT NULL REFERENCES offers (id),
    broadcast_id    TEXT NOT NULL REFERENCES broadcasts (id),
    shop_id         TEXT NOT NULL REFERENCES shops (id),
    product_id      TEXT NOT NULL REFERENCES products (id),
    buyer           TEXT NOT NULL,
    title           TEXT NOT NULL,
    unit            TEXT NOT NULL,
    ships_on        TEXT,
    quantity        BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_fen  BIGINT NOT NULL CHECK (unit_price_fen > 0),
    total_fen       BIGINT NOT NULL CHECK (total_fen > 0),
    recipient_name  TEXT NOT NULL,
    mobile          TEXT NOT NULL,
    address         TEXT NOT NULL,
    -- Province and one division below, for the sales ticker; never finer.
    coarse_place    TEXT,
    payment_method  TEXT NOT NULL CHECK (payment_method IN ('cash_on_delivery', 'bank_transfer', 'wechat_transfer')),
    state           TEXT NOT NULL CHECK (state IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    carrier         TEXT,
    tracking_number TEXT,
    cancel_reason   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    shipped_at      BIGINT,
    delivered_at    BIGINT,
    cancelled_at    BIGINT
);
CREATE INDEX orders_shop ON orders (shop_id, created_at);
CREATE INDEX orders_offer_buyer ON orders (offer_id, buyer);
CREATE INDEX orders_buyer ON orders (buyer, created_at);
