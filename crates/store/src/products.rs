//! Products a shop sells.

use crate::millis;
use crate::{Store, StoreError};
use domain::UnixMillis;
use domain::{Description, Fen, ProductId, ProductTitle, ShipDate, ShopId, Unit};

#[derive(Clone, Debug)]
pub struct ProductRecord {
    pub id: ProductId,
    pub shop_id: ShopId,
    pub title: ProductTitle,
    pub description: Description,
    pub unit: Unit,
    pub price: Fen,
    pub stock: i64,
    /// Presale: when the harvest is expected to ship.
    pub ships_on: Option<ShipDate>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: String,
    shop_id: String,
    title: String,
    description: String,
    unit: String,
    price_fen: i64,
    stock: i64,
    ships_on: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProductRow> for ProductRecord {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        let ships_on = r
            .ships_on
            .map(|d| {
                ShipDate::parse(&d)
                    .map_err(|_| StoreError::Corrupt(format!("product {} ships_on {d:?}", r.id)))
            })
            .transpose()?;
        Ok(ProductRecord {
            id: ProductId::from_trusted(r.id),
            shop_id: ShopId::from_trusted(r.shop_id),
            title: ProductTitle::from_trusted(r.title),
            description: Description::from_trusted(r.description),
            unit: Unit::from_trusted(r.unit),
            price: Fen::from_trusted(r.price_fen),
            stock: r.stock,
            ships_on,
            created_at: millis(r.created_at),
            updated_at: millis(r.updated_at),
        })
    }
}

pub struct NewProduct {
    pub shop_id: ShopId,
    pub title: ProductTitle,
    pub description: Description,
    pub unit: Unit,
    pub price: Fen,
    pub stock: u32,
    pub ships_on: Option<ShipDate>,
}

/// Fields left `None` keep their value; `ships_on: Some(None)` clears the
/// presale date (the harvest is in).
#[derive(Default)]
pub struct ProductUpdate {
    pub title: Option<ProductTitle>,
    pub description: Option<Description>,
    pub unit: Option<Unit>,
    pub price: Option<Fen>,
    pub stock: Option<u32>,
    pub ships_on: Option<Option<ShipDate>>,
}

/// Column list shared by every query of this table (a macro so queries stay
/// `&'static str`, which sqlx accepts as audited SQL).
macro_rules! product_columns {
    () => {
        "id, shop_id, title, description, unit, price_fen, stock, ships_on, created_at, updated_at"
    };
}

impl Store {
    pub async fn create_product(
        &self,
        new: NewProduct,
        now: UnixMillis,
    ) -> Result<ProductRecord, StoreError> {
        let id = ProductId::generate();
        sqlx::query(concat!(
            "INSERT INTO products (",
            product_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(id.as_str())
        .bind(new.shop_id.as_str())
        .bind(new.title.as_str())
        .bind(new.description.as_str())
        .bind(new.unit.as_str())
        .bind(new.price.get())
        .bind(i64::from(new.stock))
        .bind(new.ships_on.map(|d| d.to_string()))
        .bind(now.millis())
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        self.product(&id).await
    }

    /// A product that has not been removed.
    pub async fn product(&self, id: &ProductId) -> Result<ProductRecord, StoreError> {
        let row: ProductRow = sqlx::query_as(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products WHERE id = $1 AND archived_at IS NULL"
        ))
        .bind(id.as_str())
        .fetch_one(self.pool())
        .await?;
        row.try_into()
    }

    pub async fn products_of_shop(&self, shop: &ShopId) -> Result<Vec<ProductRecord>, StoreError> {
        let rows: Vec<ProductRow> = sqlx::query_as(concat!(
            "SELECT ",
            product_columns!(),
            " FROM products WHERE shop_id = $1 AND archived_at IS NULL \
             ORDER BY created_at, id"
        ))
        .bind(shop.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(ProductRecord::try_from).collect()
    }

    pub async fn update_product(
        &self,
        id: &ProductId,
        update: ProductUpdate,
        now: UnixMillis,
    ) -> Result<ProductRecord, StoreError> {
        let (set_ships_on, ships_on) = match update.ships_on {
            None => (0_i64, None),
            Some(date) => (1_i64, date.map(|d| d.to_string())),
        };
        let done = sqlx::query(
            "UPDATE products SET \
               title = COALESCE($1, title), description = COALESCE($2, description), \
               unit = COALESCE($3, unit), price_fen = COALESCE($4, price_fen), \
               stock = COALESCE($5, stock), \
               ships_on = CASE WHEN $6 = 1 THEN $7 ELSE ships_on END, \
               updated_at = $8 \
             WHERE id = $9 AND archived_at IS NULL",
        )
        .bind(update.title.as_ref().map(|v| v.as_str()))
        .bind(update.description.as_ref().map(|v| v.as_str()))
        .bind(update.unit.as_ref().map(|v| v.as_str()))
        .bind(update.price.map(Fen::get))
        .bind(update.stock.map(i64::from))
        .bind(set_ships_on)
        .bind(ships_on)
        .bind(now.millis())
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.product(id).await
    }

    /// Removes a product from the shop. The row stays so past orders keep
    /// their product.
    pub async fn archive_product(&self, id: &ProductId, now: UnixMillis) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE products SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL",
        )
        .bind(now.millis())
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
