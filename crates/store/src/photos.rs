//! Photos of shops and products (and, later, farm-journal entries): which
//! picture belongs to whom. The picture files themselves are written and
//! served by the HTTP layer under the data directory; this is their index.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{ProductId, ShopId};
use rand::Rng;
use std::collections::HashMap;

/// Length of the random part of a photo id (`pho_` + 16 of `[a-z0-9]`).
const ID_RANDOM_LEN: usize = 16;

/// What a photo shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PhotoSubject {
    Shop(ShopId),
    Product(ProductId),
}

impl PhotoSubject {
    /// The stored form, e.g. `product:prd_…`.
    pub fn key(&self) -> String {
        match self {
            PhotoSubject::Shop(id) => format!("shop:{id}"),
            PhotoSubject::Product(id) => format!("product:{id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoRecord {
    pub id: String,
    pub shop_id: ShopId,
    /// [`PhotoSubject::key`] of what it shows.
    pub subject: String,
    pub width: u32,
    pub height: u32,
    /// Size of the largest stored file.
    pub bytes: u64,
    pub created_at: UnixMillis,
}

pub struct NewPhoto {
    pub id: String,
    pub shop_id: ShopId,
    pub subject: PhotoSubject,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

#[derive(sqlx::FromRow)]
struct PhotoRow {
    id: String,
    shop_id: String,
    subject: String,
    width: i64,
    height: i64,
    bytes: i64,
    created_at: i64,
}

impl From<PhotoRow> for PhotoRecord {
    fn from(r: PhotoRow) -> Self {
        PhotoRecord {
            id: r.id,
            shop_id: ShopId::from_trusted(r.shop_id),
            subject: r.subject,
            width: u32::try_from(r.width).unwrap_or(0),
            height: u32::try_from(r.height).unwrap_or(0),
            bytes: u64::try_from(r.bytes).unwrap_or(0),
            created_at: millis(r.created_at),
        }
    }
}

/// A new photo id: `pho_` and 16 random lowercase letters and digits.
pub fn new_photo_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..ID_RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("pho_{suffix}")
}

/// Whether `raw` has the shape of a photo id (so a URL can be checked
/// before it reaches the database or the file system).
pub fn is_photo_id(raw: &str) -> bool {
    raw.strip_prefix("pho_").is_some_and(|rest| {
        rest.len() == ID_RANDOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Retires a subject's current photos inside `tx`; their ids.
async fn retire(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    subject: &str,
    now: UnixMillis,
) -> Result<Vec<String>, StoreError> {
    let ids: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM photos WHERE subject = $1 AND retired_at IS NULL")
            .bind(subject)
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query("UPDATE photos SET retired_at = $1 WHERE subject = $2 AND retired_at IS NULL")
        .bind(now.millis())
        .bind(subject)
        .execute(&mut **tx)
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

macro_rules! photo_columns {
    () => {
        "id, shop_id, subject, width, height, bytes, created_at"
    };
}

impl Store {
    /// Records a subject's new photo and retires the one it replaces.
    /// Returns the retired photos' ids, whose files may go.
    pub async fn add_photo(
        &self,
        new: NewPhoto,
        now: UnixMillis,
    ) -> Result<Vec<String>, StoreError> {
        let subject = new.subject.key();
        let mut tx = self.pool().begin().await?;
        let retired = retire(&mut tx, &subject, now).await?;
        sqlx::query(
            "INSERT INTO photos (id, shop_id, subject, width, height, bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&new.id)
        .bind(new.shop_id.as_str())
        .bind(&subject)
        .bind(i64::from(new.width))
        .bind(i64::from(new.height))
        .bind(i64::try_from(new.bytes).unwrap_or(i64::MAX))
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(retired)
    }

    /// Retires a subject's photo (it shows none afterwards); the retired ids.
    pub async fn remove_photo(
        &self,
        subject: &PhotoSubject,
        now: UnixMillis,
    ) -> Result<Vec<String>, StoreError> {
        let subject = subject.key();
        let mut tx = self.pool().begin().await?;
        let retired = retire(&mut tx, &subject, now).await?;
        tx.commit().await?;
        Ok(retired)
    }

    /// The subject's current photo, if it has one.
    pub async fn current_photo(
        &self,
        subject: &PhotoSubject,
    ) -> Result<Option<PhotoRecord>, StoreError> {
        let row: Option<PhotoRow> = sqlx::query_as(concat!(
            "SELECT ",
            photo_columns!(),
            " FROM photos WHERE subject = $1 AND retired_at IS NULL ORDER BY created_at DESC, id LIMIT 1"
        ))
        .bind(subject.key())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Into::into))
    }

    /// Every current photo of a shop and its products, by subject key.
    pub async fn current_photos_of_shop(
        &self,
        shop: &ShopId,
    ) -> Result<HashMap<String, PhotoRecord>, StoreError> {
        let rows: Vec<PhotoRow> = sqlx::query_as(concat!(
            "SELECT ",
            photo_columns!(),
            " FROM photos WHERE shop_id = $1 AND retired_at IS NULL ORDER BY created_at, id"
        ))
        .bind(shop.as_str())
        .fetch_all(self.pool())
        .await?;
        // Newest last, so it wins.
        Ok(rows
            .into_iter()
            .map(|r| (r.subject.clone(), PhotoRecord::from(r)))
            .collect())
    }

    /// One photo by id, current or retired.
    pub async fn photo(&self, id: &str) -> Result<Option<PhotoRecord>, StoreError> {
        let row: Option<PhotoRow> = sqlx::query_as(concat!(
            "SELECT ",
            photo_columns!(),
            " FROM photos WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_ids_are_recognised_and_nothing_else_is() {
        let id = new_photo_id();
        assert!(is_photo_id(&id), "{id}");
        assert_ne!(id, new_photo_id());
        for bad in [
            "",
            "pho_",
            "pho_../../etc/passwd",
            "pho_ABCDEFGHIJKLMNOP",
            "shp_abcdefghijklmnop",
            "pho_abcdefghijklmnopq",
        ] {
            assert!(!is_photo_id(bad), "{bad}");
        }
    }
}
