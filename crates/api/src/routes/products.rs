//! A shop's products: what the farmer sells, at what price, how many.

use super::shops::{load_shop, owned_shop};
use crate::auth::SignedIn;
use crate::error::{ApiResult, not_found};
use crate::extract::{FromRaw, Json, Path, Valid, parse_id};
use crate::state::AppState;
use crate::views::{Patch, Timestamp, ts};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{
    Description, Fen, FieldError, Fields, ProductId, ProductTitle, ShipDate, Stock, Unit, field,
    optional,
};
use serde::{Deserialize, Serialize};
use store::ProductRecord;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product, remove_product))
}

#[derive(Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    pub shop_id: String,
    pub title: String,
    pub description: String,
    /// The selling unit, e.g. "20斤袋".
    pub unit: String,
    /// Price per unit in fen (1 yuan = 100 fen).
    pub price_fen: i64,
    pub stock: i64,
    /// Presale: expected ship date `YYYY-MM-DD`, absent when in stock.
    #[schema(value_type = Option<String>, example = "2026-10-08")]
    pub ships_on: Option<ShipDate>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The product's photo (`/photos/…/large.jpg`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

impl From<ProductRecord> for ProductView {
    fn from(p: ProductRecord) -> Self {
        ProductView {
            id: p.id.into_string(),
            shop_id: p.shop_id.into_string(),
            title: p.title.into_string(),
            description: p.description.into_string(),
            unit: p.unit.into_string(),
            price_fen: p.price.get(),
            stock: p.stock,
            ships_on: p.ships_on,
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            photo: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewProductBody {
    #[schema(example = "羊粪小米 20斤")]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[schema(example = "20斤袋")]
    pub unit: String,
    #[schema(example = 16800)]
    pub price_fen: i64,
    #[schema(example = 300)]
    pub stock: i64,
    #[serde(default)]
    #[schema(example = "2026-10-08")]
    pub ships_on: Option<String>,
}

/// Absent fields keep their value; `"ships_on": null` clears the presale date.
#[derive(Deserialize, ToSchema)]
pub struct ProductPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub price_fen: Option<i64>,
    #[serde(default)]
    pub stock: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ships_on: Patch<String>,
}

/// A new product, parsed.
pub struct ProductDraft {
    title: ProductTitle,
    description: Description,
    unit: Unit,
    price: Fen,
    stock: Stock,
    ships_on: Option<ShipDate>,
}

impl TryFrom<NewProductBody> for ProductDraft {
    type Error = Vec<FieldError>;

    fn try_from(body: NewProductBody) -> Result<Self, Self::Error> {
        let (title, description, unit, price, stock, ships_on) = (
            field("title", ProductTitle::parse(&body.title)),
            field("description", Description::parse(&body.description)),
            field("unit", Unit::parse(&body.unit)),
            field("price_fen", Fen::price(body.price_fen)),
            field("stock", Stock::parse(body.stock)),
            optional("ships_on", body.ships_on.as_deref().map(ShipDate::parse)),
        )
            .all()?;
        Ok(ProductDraft {
            title,
            description,
            unit,
            price,
            stock,
            ships_on,
        })
    }
}

impl FromRaw for ProductDraft {
    type Raw = NewProductBody;
}

impl TryFrom<ProductPatch> for store::ProductUpdate {
    type Error = Vec<FieldError>;

    fn try_from(body: ProductPatch) -> Result<Self, Self::Error> {
        let ships_on = match body.ships_on {
            Patch::Keep => Ok(None),
            Patch::Clear => Ok(Some(None)),
            Patch::Set(raw) => field("ships_on", ShipDate::parse(&raw)).map(|d| Some(Some(d))),
        };
        let (title, description, unit, price, stock, ships_on) = (
            optional("title", body.title.as_deref().map(ProductTitle::parse)),
            optional(
                "description",
                body.description.as_deref().map(Description::parse),
            ),
            optional("unit", body.unit.as_deref().map(Unit::parse)),
            optional("price_fen", body.price_fen.map(Fen::price)),
            optional("stock", body.stock.map(Stock::parse)),
            ships_on,
        )
            .all()?;
        Ok(store::ProductUpdate {
            title,
            description,
            unit,
            price,
            stock: stock.map(Stock::get),
            ships_on,
        })
    }
}

impl FromRaw for store::ProductUpdate {
    type Raw = ProductPatch;
}

/// A shop's products (public).
#[utoipa::path(get, path = "/shops/{shop_id}/products", tag = "products", params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<ProductView>), (status = 404, body = crate::error::Problem)))]
async fn list_products(
    State(state): State<AppState>,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<ProductView>>> {
    let shop = load_shop(&state, &shop_id).await?;
    let products = state.store.products_of_shop(&shop.id).await?;
    let photos = super::photos::product_photos(&state, &shop.id).await?;
    Ok(Json(
        products
            .into_iter()
            .map(|p| {
                let photo = photos.get(&format!("product:{}", p.id)).cloned();
                ProductView {
                    photo,
                    ..ProductView::from(p)
                }
            })
            .collect(),
    ))
}

/// Add a product (owner only).
#[utoipa::path(post, path = "/shops/{shop_id}/products", tag = "products", params(("shop_id" = String, Path)),
    request_body = NewProductBody,
    responses((status = 201, body = ProductView), (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_product(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    Valid(draft): Valid<ProductDraft>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let product = state
        .store
        .create_product(
            store::NewProduct {
                shop_id: shop.id,
                title: draft.title,
                description: draft.description,
                unit: draft.unit,
                price: draft.price,
                stock: draft.stock.get(),
                ships_on: draft.ships_on,
            },
            domain::UnixMillis::wall_now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

async fn load_product(state: &AppState, raw_id: &str) -> ApiResult<ProductRecord> {
    let id = parse_id("product", raw_id, ProductId::parse)?;
    state.store.product(&id).await.map_err(not_found("product"))
}

/// One product (public).
#[utoipa::path(get, path = "/products/{product_id}", tag = "products", params(("product_id" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = crate::error::Problem)))]
async fn get_product(
    State(state): State<AppState>,
    Path(product_id): Path<String>,
) -> ApiResult<Json<ProductView>> {
    let product = load_product(&state, &product_id).await?;
    let photo =
        super::photos::current_photo_url(&state, &store::PhotoSubject::Product(product.id.clone()))
            .await?;
    Ok(Json(ProductView {
        photo,
        ..product.into()
    }))
}

/// Edit a product: title, price, stock, presale date… (owner only).
#[utoipa::path(patch, path = "/products/{product_id}", tag = "products", params(("product_id" = String, Path)),
    request_body = ProductPatch,
    responses((status = 200, body = ProductView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_product(
    State(state): State<AppState>,
    me: SignedIn,
    Path(product_id): Path<String>,
    Valid(update): Valid<store::ProductUpdate>,
) -> ApiResult<Json<ProductView>> {
    let product = load_product(&state, &product_id).await?;
    owned_shop(&state, product.shop_id.as_str(), &me.user).await?;
    let product = state
        .store
        .update_product(&product.id, update, domain::UnixMillis::wall_now())
        .await?;
    Ok(Json(product.into()))
}

/// Remove a product from the shop (owner only). Past orders keep it.
#[utoipa::path(delete, path = "/products/{product_id}", tag = "products", params(("product_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn remove_product(
    State(state): State<AppState>,
    me: SignedIn,
    Path(product_id): Path<String>,
) -> ApiResult<StatusCode> {
    let product = load_product(&state, &product_id).await?;
    owned_shop(&state, product.shop_id.as_str(), &me.user).await?;
    state
        .store
        .archive_product(&product.id, domain::UnixMillis::wall_now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
