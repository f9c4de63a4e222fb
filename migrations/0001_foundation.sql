-- Accounts, sessions, shops, products and broadcasts.
--
-- Written once for both engines (SQLite and PostgreSQL): TEXT ids generated
-- by the application, BIGINT for money (fen), quantities and times (Unix
-- milliseconds, UTC), nullable timestamps instead of booleans.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    mobile        TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE guests (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- A session belongs to exactly one account or one guest. Only a hash of the
-- cookie's token is kept, so a copy of the database opens no sessions.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    guest_id     TEXT REFERENCES guests (id) ON DELETE CASCADE,
    user_agent   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    CHECK ((user_id IS NULL) <> (guest_id IS NULL))
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE shops (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    place      TEXT NOT NULL,
    story      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX shops_owner ON shops (owner_id);

CREATE TABLE shop_moderators (
    shop_id      TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    appointed_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, user_id)
);
CREATE INDEX shop_moderators_user ON shop_moderators (user_id);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL REFERENCES shops (id),
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    unit        TEXT NOT NULL,
    price_fen   BIGINT NOT NULL CHECK (price_fen > 0),
    stock       BIGINT NOT NULL CHECK (stock >= 0),
    -- Presale: the expected harvest/ship date, 'YYYY-MM-DD', or NULL when in stock.
    ships_on    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    archived_at BIGINT
);
CREATE INDEX products_shop ON products (shop_id);

CREATE TABLE broadcasts (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL REFERENCES shops (id),
    title        TEXT NOT NULL,
    scheduled_at BIGINT,
    state        TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended')),
    -- The WHIP bearer secret. Kept in clear because the owner's studio shows
    -- it for copying into OBS/Larix; it is never sent to anyone else and can
    -- be rotated at any time.
    stream_key   TEXT NOT NULL UNIQUE,
    started_at   BIGINT,
    ended_at     BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX broadcasts_shop ON broadcasts (shop_id);
