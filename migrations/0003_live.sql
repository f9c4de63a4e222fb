-- The live channel: chat messages, moderation (bans, timeouts, deletions,
-- the log), per-shop chat settings and per-broadcast room state.
--
-- Same conventions as 0001: one dialect for SQLite and PostgreSQL, TEXT ids
-- made by the application, BIGINT Unix-millisecond times, nullable
-- timestamps instead of booleans. People are named by their subject
-- (`usr_…` or `gst_…`), so there is no foreign key to users or guests.
--
-- Scope decisions:
-- * bans, timeouts and blocked words belong to the SHOP: a troll banned
--   on Monday stays banned on Tuesday's broadcast, and the farmer keeps one
--   word list;
-- * slow mode, the pinned message and pinned offers belong to the
--   BROADCAST: they are crowd control for one stream and start fresh.

CREATE TABLE chat_messages (
    id             TEXT PRIMARY KEY,
    broadcast_id   TEXT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    shop_id        TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    author_subject TEXT NOT NULL,
    -- Name and role as they were when the message was posted.
    author_name    TEXT NOT NULL,
    author_role    TEXT NOT NULL CHECK (author_role IN ('owner', 'moderator', 'viewer')),
    body           TEXT NOT NULL,
    -- The sender's retry key: one message per (broadcast, author, nonce).
    nonce          TEXT NOT NULL,
    posted_at      BIGINT NOT NULL,
    -- The room sequence number it was sent with: orders messages posted in
    -- the same millisecond.
    seq            BIGINT NOT NULL,
    deleted_at     BIGINT,
    deleted_by     TEXT,
    -- Set when the author was banned: hidden everywhere in the shop.
    hidden_at      BIGINT,
    -- Set when a moderator cleared the chat.
    cleared_at     BIGINT
);
CREATE UNIQUE INDEX chat_messages_nonce ON chat_messages (broadcast_id, author_subject, nonce);
CREATE INDEX chat_messages_history ON chat_messages (broadcast_id, seq);
CREATE INDEX chat_messages_author ON chat_messages (shop_id, author_subject);

CREATE TABLE chat_bans (
    shop_id    TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    subject    TEXT NOT NULL,
    banned_by  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, subject)
);

-- One row per person and shop: a new timeout replaces the old one.
CREATE TABLE chat_timeouts (
    shop_id       TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    until_at      BIGINT NOT NULL,
    timed_out_by  TEXT NOT NULL,
    reason        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (shop_id, subject)
);

CREATE TABLE chat_shop_settings (
    shop_id       TEXT PRIMARY KEY REFERENCES shops (id) ON DELETE CASCADE,
    -- One normalized word or phrase per line.
    blocked_words TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE live_rooms (
    broadcast_id      TEXT PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    shop_id           TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    slow_mode_seconds BIGINT NOT NULL DEFAULT 0 CHECK (slow_mode_seconds >= 0),
    pinned_message_id TEXT,
    updated_at        BIGINT NOT NULL
);

-- Offers pinned on screen, in the order they were pinned. The offer itself
-- (stock, price) is the order service's; only its id is kept here.
CREATE TABLE live_pinned_offers (
    broadcast_id TEXT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    offer_id     TEXT NOT NULL,
    pinned_at    BIGINT NOT NULL,
    PRIMARY KEY (broadcast_id, offer_id)
);

CREATE TABLE moderation_log (
    id             TEXT PRIMARY KEY,
    shop_id        TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    broadcast_id   TEXT,
    -- Strictly increasing per server process (and across restarts, since it
    -- starts from the clock): orders entries written in the same millisecond.
    ordinal        BIGINT NOT NULL,
    -- NULL actor: the server itself (a flooding sender's automatic mute).
    actor_subject  TEXT,
    actor_name     TEXT,
    actor_role     TEXT CHECK (actor_role IN ('owner', 'moderator', 'viewer')),
    action         TEXT NOT NULL,
    target_subject TEXT,
    message_id     TEXT,
    detail         TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX moderation_log_shop ON moderation_log (shop_id, ordinal);
