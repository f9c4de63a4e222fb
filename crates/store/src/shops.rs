//! Shops and the moderators their owners appoint.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{DisplayName, Mobile, PaymentNote, Place, Role, ShopId, ShopName, Story, UserId};

#[derive(Clone, Debug)]
pub struct ShopRecord {
    pub id: ShopId,
    pub owner_id: UserId,
    pub name: ShopName,
    pub place: Place,
    pub story: Story,
    pub payment_note: PaymentNote,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct ShopRow {
    id: String,
    owner_id: String,
    name: String,
    place: String,
    story: String,
    payment_note: String,
    created_at: i64,
    updated_at: i64,
}

impl From<ShopRow> for ShopRecord {
    fn from(r: ShopRow) -> Self {
        ShopRecord {
            id: ShopId::from_trusted(r.id),
            owner_id: UserId::from_trusted(r.owner_id),
            name: ShopName::from_trusted(r.name),
            place: Place::from_trusted(r.place),
            story: Story::from_trusted(r.story),
            payment_note: PaymentNote::from_trusted(r.payment_note),
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
        }
    }
}

pub struct NewShop {
    pub owner_id: UserId,
    pub name: ShopName,
    pub place: Place,
    pub story: Story,
    pub payment_note: PaymentNote,
}

/// Fields left `None` keep their value.
#[derive(Default)]
pub struct ShopUpdate {
    pub name: Option<ShopName>,
    pub place: Option<Place>,
    pub story: Option<Story>,
    pub payment_note: Option<PaymentNote>,
}

#[derive(Clone, Debug)]
pub struct ModeratorRecord {
    pub user_id: UserId,
    pub display_name: DisplayName,
    pub mobile: Mobile,
    pub appointed_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct ModeratorRow {
    user_id: String,
    display_name: String,
    mobile: String,
    appointed_at: i64,
}

/// Column list shared by every query of this table (a macro so queries stay
/// `&'static str`, which sqlx accepts as audited SQL).
macro_rules! shop_columns {
    () => {
        "id, owner_id, name, place, story, payment_note, created_at, updated_at"
    };
}

impl Store {
    pub async fn create_shop(
        &self,
        new: NewShop,
        now: UnixMillis,
    ) -> Result<ShopRecord, StoreError> {
        let id = ShopId::generate();
        sqlx::query(
            "INSERT INTO shops (id, owner_id, name, place, story, payment_note, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(new.owner_id.as_str())
        .bind(new.name.as_str())
        .bind(new.place.as_str())
        .bind(new.story.as_str())
        .bind(new.payment_note.as_str())
        .bind(now.millis())
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(ShopRecord {
            id,
            owner_id: new.owner_id,
            name: new.name,
            place: new.place,
            story: new.story,
            payment_note: new.payment_note,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn shop(&self, id: &ShopId) -> Result<ShopRecord, StoreError> {
        let row: ShopRow = sqlx::query_as(concat!(
            "SELECT ",
            shop_columns!(),
            " FROM shops WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    pub async fn shops_of_owner(&self, owner: &UserId) -> Result<Vec<ShopRecord>, StoreError> {
        let rows: Vec<ShopRow> = sqlx::query_as(concat!(
            "SELECT ",
            shop_columns!(),
            " FROM shops WHERE owner_id = $1 ORDER BY created_at, id"
        ))
        .bind(owner.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Shops where `user` is a moderator.
    pub async fn shops_moderated_by(&self, user: &UserId) -> Result<Vec<ShopRecord>, StoreError> {
        let rows: Vec<ShopRow> = sqlx::query_as(
            "SELECT s.id, s.owner_id, s.name, s.place, s.story, s.payment_note, s.created_at, s.updated_at \
             FROM shops s JOIN shop_moderators m ON m.shop_id = s.id \
             WHERE m.user_id = $1 ORDER BY m.appointed_at, s.id",
        )
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn update_shop(
        &self,
        id: &ShopId,
        update: ShopUpdate,
        now: UnixMillis,
    ) -> Result<ShopRecord, StoreError> {
        let done = sqlx::query(
            "UPDATE shops SET name = COALESCE($1, name), place = COALESCE($2, place), \
             story = COALESCE($3, story), payment_note = COALESCE($4, payment_note), \
             updated_at = $5 WHERE id = $6",
        )
        .bind(update.name.as_ref().map(|v| v.as_str()))
        .bind(update.place.as_ref().map(|v| v.as_str()))
        .bind(update.story.as_ref().map(|v| v.as_str()))
        .bind(update.payment_note.as_ref().map(|v| v.as_str()))
        .bind(now.millis())
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.shop(id).await
    }

    /// `subject` is a `usr_…` or `gst_…` id. Guests and accounts without a
    /// part in the shop are viewers.
    pub async fn role_in_shop(&self, shop: &ShopId, subject: &str) -> Result<Role, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM shops WHERE id = $1 AND owner_id = $2), \
               (SELECT COUNT(*) FROM shop_moderators WHERE shop_id = $1 AND user_id = $2)",
        )
        .bind(shop.as_str())
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some((owner, _)) if owner > 0 => Role::Owner,
            Some((_, moderator)) if moderator > 0 => Role::Moderator,
            _ => Role::Viewer,
        })
    }

    pub async fn add_moderator(
        &self,
        shop: &ShopId,
        user: &UserId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO shop_moderators (shop_id, user_id, appointed_at) VALUES ($1, $2, $3)",
        )
        .bind(shop.as_str())
        .bind(user.as_str())
        .bind(now.millis())
        .execute(self.pool())
        .await
        .map_err(StoreError::unique("moderator"))?;
        Ok(())
    }

    pub async fn remove_moderator(&self, shop: &ShopId, user: &UserId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM shop_moderators WHERE shop_id = $1 AND user_id = $2")
            .bind(shop.as_str())
            .bind(user.as_str())
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn moderators(&self, shop: &ShopId) -> Result<Vec<ModeratorRecord>, StoreError> {
        let rows: Vec<ModeratorRow> = sqlx::query_as(
            "SELECT m.user_id, u.display_name, u.mobile, m.appointed_at \
             FROM shop_moderators m JOIN users u ON u.id = m.user_id \
             WHERE m.shop_id = $1 ORDER BY m.appointed_at, m.user_id",
        )
        .bind(shop.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ModeratorRecord {
                user_id: UserId::from_trusted(r.user_id),
                display_name: DisplayName::from_trusted(r.display_name),
                mobile: Mobile::from_trusted(r.mobile),
                appointed_at: millis(r.appointed_at),
            })
            .collect())
    }
}
