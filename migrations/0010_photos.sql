-- Photos of shops and products (and later farm-journal entries): one row
-- per uploaded picture. The resized, EXIF-free JPEG files live under the
-- data directory (`photos/<id>/<size>.jpg`); the row says whose photo it is.
-- A subject's photo is its newest row not yet retired.
CREATE TABLE photos (
    id         TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL REFERENCES shops (id),
    -- What the photo shows: 'shop:<shop id>' or 'product:<product id>'.
    subject    TEXT NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX photos_subject ON photos (subject, created_at);
CREATE INDEX photos_shop ON photos (shop_id, retired_at);
