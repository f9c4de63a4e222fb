-- A per-buyer limit that means a person, not a cookie.
--
-- Same conventions as 0001: one dialect for SQLite and PostgreSQL.
--
-- offers.buyers: who may buy. 'anyone' (guests and accounts, as before) or
-- 'accounts_only' (signed in with a mobile account), for offers a farmer
-- does not want one phone to take with a handful of guest nicknames.
--
-- guests.person: the person a guest stands for, shared by every guest one
-- browser started (a new guest asked for with an earlier session's cookie
-- inherits that session's person: the earlier guest's person, or the
-- account's user id). NULL means the guest is its own person. Per-buyer
-- limits count per person.

ALTER TABLE offers ADD COLUMN buyers TEXT NOT NULL DEFAULT 'anyone'
    CHECK (buyers IN ('anyone', 'accounts_only'));

ALTER TABLE guests ADD COLUMN person TEXT;
