//! Shops and their moderators.

use crate::auth::SignedIn;
use crate::error::{ApiError, ApiResult, not_found};
use crate::extract::{FromRaw, Json, Path, Valid, parse_id};
use crate::state::AppState;
use crate::views::{Timestamp, ts};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{
    FieldError, Fields, Mobile, PaymentNote, Place, Role, ShopId, ShopName, Story, UserId, field,
    optional,
};
use serde::{Deserialize, Serialize};
use store::ShopRecord;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_shop))
        .routes(routes!(get_shop, update_shop))
        .routes(routes!(list_moderators, appoint_moderator))
        .routes(routes!(remove_moderator))
}

#[derive(Serialize, ToSchema)]
pub struct ShopView {
    pub id: String,
    pub name: String,
    /// Village and county.
    pub place: String,
    pub story: String,
    /// How to pay by transfer (WeChat ID, bank account, what to note).
    pub payment_note: String,
    pub owner_name: String,
    pub created_at: Timestamp,
    /// The shop's photo (`/photos/…/large.jpg`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewShopBody {
    #[schema(example = "王家沟羊粪小米")]
    pub name: String,
    #[schema(example = "山西省忻州市岢岚县王家沟村")]
    pub place: String,
    #[serde(default)]
    pub story: String,
    /// How buyers who pay by transfer should pay (shown on their order).
    #[serde(default)]
    pub payment_note: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ShopPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub place: Option<String>,
    #[serde(default)]
    pub story: Option<String>,
    #[serde(default)]
    pub payment_note: Option<String>,
}

/// A new shop, parsed.
pub struct ShopDraft {
    name: ShopName,
    place: Place,
    story: Story,
    payment_note: PaymentNote,
}

impl TryFrom<NewShopBody> for ShopDraft {
    type Error = Vec<FieldError>;

    fn try_from(body: NewShopBody) -> Result<Self, Self::Error> {
        let (name, place, story, payment_note) = (
            field("name", ShopName::parse(&body.name)),
            field("place", Place::parse(&body.place)),
            field("story", Story::parse(&body.story)),
            field("payment_note", PaymentNote::parse(&body.payment_note)),
        )
            .all()?;
        Ok(ShopDraft {
            name,
            place,
            story,
            payment_note,
        })
    }
}

impl FromRaw for ShopDraft {
    type Raw = NewShopBody;
}

impl TryFrom<ShopPatch> for store::ShopUpdate {
    type Error = Vec<FieldError>;

    fn try_from(body: ShopPatch) -> Result<Self, Self::Error> {
        let (name, place, story, payment_note) = (
            optional("name", body.name.as_deref().map(ShopName::parse)),
            optional("place", body.place.as_deref().map(Place::parse)),
            optional("story", body.story.as_deref().map(Story::parse)),
            optional(
                "payment_note",
                body.payment_note.as_deref().map(PaymentNote::parse),
            ),
        )
            .all()?;
        Ok(store::ShopUpdate {
            name,
            place,
            story,
            payment_note,
        })
    }
}

impl FromRaw for store::ShopUpdate {
    type Raw = ShopPatch;
}

#[derive(Serialize, ToSchema)]
pub struct ModeratorView {
    pub user_id: String,
    pub display_name: String,
    /// Masked (`138****8000`) except for the owner.
    pub mobile: String,
    pub appointed_at: Timestamp,
}

#[derive(Deserialize, ToSchema)]
pub struct AppointModerator {
    /// The mobile number the moderator signed up with.
    pub mobile: String,
}

/// The number of the account to appoint, parsed.
pub struct ModeratorMobile(Mobile);

impl TryFrom<AppointModerator> for ModeratorMobile {
    type Error = Vec<FieldError>;

    fn try_from(body: AppointModerator) -> Result<Self, Self::Error> {
        let (mobile,) = (field("mobile", Mobile::parse(&body.mobile)),).all()?;
        Ok(ModeratorMobile(mobile))
    }
}

impl FromRaw for ModeratorMobile {
    type Raw = AppointModerator;
}

pub(crate) async fn shop_view(state: &AppState, shop: ShopRecord) -> ApiResult<ShopView> {
    let owner = state.store.user(&shop.owner_id).await?;
    let photo =
        super::photos::current_photo_url(state, &store::PhotoSubject::Shop(shop.id.clone()))
            .await?;
    Ok(ShopView {
        photo,
        id: shop.id.into_string(),
        name: shop.name.into_string(),
        place: shop.place.into_string(),
        story: shop.story.into_string(),
        payment_note: shop.payment_note.into_string(),
        owner_name: owner.display_name.into_string(),
        created_at: ts(shop.created_at),
    })
}

pub(crate) async fn load_shop(state: &AppState, raw_id: &str) -> ApiResult<ShopRecord> {
    let id = parse_id("shop", raw_id, ShopId::parse)?;
    state.store.shop(&id).await.map_err(not_found("shop"))
}

/// The shop, if `user` owns it; 403 otherwise.
pub(crate) async fn owned_shop(
    state: &AppState,
    raw_id: &str,
    user: &UserId,
) -> ApiResult<ShopRecord> {
    let shop = load_shop(state, raw_id).await?;
    if &shop.owner_id != user {
        return Err(ApiError::Forbidden("only the shop's owner may do this"));
    }
    Ok(shop)
}

/// Open a shop. The caller becomes its owner.
#[utoipa::path(post, path = "/shops", tag = "shops", request_body = NewShopBody,
    responses((status = 201, body = ShopView), (status = 401, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_shop(
    State(state): State<AppState>,
    me: SignedIn,
    Valid(draft): Valid<ShopDraft>,
) -> ApiResult<(StatusCode, Json<ShopView>)> {
    let shop = state
        .store
        .create_shop(
            store::NewShop {
                owner_id: me.user,
                name: draft.name,
                place: draft.place,
                story: draft.story,
                payment_note: draft.payment_note,
            },
            domain::UnixMillis::wall_now(),
        )
        .await?;
    tracing::info!(shop = %shop.id, "shop opened");
    Ok((StatusCode::CREATED, Json(shop_view(&state, shop).await?)))
}

/// A shop's public page data.
#[utoipa::path(get, path = "/shops/{shop_id}", tag = "shops", params(("shop_id" = String, Path)),
    responses((status = 200, body = ShopView), (status = 404, body = crate::error::Problem)))]
async fn get_shop(
    State(state): State<AppState>,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<ShopView>> {
    let shop = load_shop(&state, &shop_id).await?;
    Ok(Json(shop_view(&state, shop).await?))
}

/// Change the shop's name, place or story (owner only).
#[utoipa::path(patch, path = "/shops/{shop_id}", tag = "shops", params(("shop_id" = String, Path)),
    request_body = ShopPatch,
    responses((status = 200, body = ShopView), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_shop(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    Valid(update): Valid<store::ShopUpdate>,
) -> ApiResult<Json<ShopView>> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let shop = state
        .store
        .update_shop(&shop.id, update, domain::UnixMillis::wall_now())
        .await?;
    Ok(Json(shop_view(&state, shop).await?))
}

/// The shop's moderators (owner and moderators may look).
#[utoipa::path(get, path = "/shops/{shop_id}/moderators", tag = "shops", params(("shop_id" = String, Path)),
    responses((status = 200, body = Vec<ModeratorView>), (status = 403, body = crate::error::Problem)))]
async fn list_moderators(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
) -> ApiResult<Json<Vec<ModeratorView>>> {
    let shop = load_shop(&state, &shop_id).await?;
    let role = state.store.role_in_shop(&shop.id, me.user.as_str()).await?;
    if !role.can_moderate() {
        return Err(ApiError::Forbidden(
            "only the owner and moderators may see the moderator list",
        ));
    }
    let moderators = state.store.moderators(&shop.id).await?;
    Ok(Json(
        moderators
            .into_iter()
            .map(|m| ModeratorView {
                mobile: if role == Role::Owner {
                    m.mobile.as_str().to_owned()
                } else {
                    m.mobile.masked()
                },
                user_id: m.user_id.into_string(),
                display_name: m.display_name.into_string(),
                appointed_at: ts(m.appointed_at),
            })
            .collect(),
    ))
}

/// Appoint a moderator by the mobile number of their account (owner only).
#[utoipa::path(post, path = "/shops/{shop_id}/moderators", tag = "shops", params(("shop_id" = String, Path)),
    request_body = AppointModerator,
    responses((status = 201, body = ModeratorView), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem, description = "`already_moderator`"),
              (status = 422, body = crate::error::Problem, description = "no account with that number"),
              (status = 429, body = crate::error::Problem, description = "`rate_limited`: too many appointments")))]
async fn appoint_moderator(
    State(state): State<AppState>,
    client: crate::limits::ClientAddr,
    me: SignedIn,
    Path(shop_id): Path<String>,
    Valid(ModeratorMobile(mobile)): Valid<ModeratorMobile>,
) -> ApiResult<(StatusCode, Json<ModeratorView>)> {
    let shop = load_shop(&state, &shop_id).await?;
    let role = state.store.role_in_shop(&shop.id, me.user.as_str()).await?;
    if !role.can_appoint_moderators() {
        return Err(ApiError::Forbidden(
            "only the shop's owner appoints moderators",
        ));
    }
    // The answer tells whether the number has an account, which the owner
    // needs to hear ("ask them to sign up first"); so the asking is scarce,
    // per owner and per address (accounts are scarce per address too).
    state
        .limits
        .appointment_by_owner
        .check(me.user.to_string())?;
    state.limits.appointment_by_address.check(client)?;
    let Some(user) = state.store.user_by_mobile(&mobile).await? else {
        return Err(ApiError::field(
            "mobile",
            "no_such_account",
            "no account uses this number; ask them to sign up first",
        ));
    };
    if user.id == shop.owner_id {
        return Err(ApiError::field(
            "mobile",
            "is_owner",
            "this is the owner's own number",
        ));
    }
    let now = domain::UnixMillis::wall_now();
    state
        .store
        .add_moderator(&shop.id, &user.id, now)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(_) => {
                ApiError::conflict("already_moderator", "already a moderator of this shop")
            }
            other => other.into(),
        })?;
    tracing::info!(shop = %shop.id, moderator = %user.id, "moderator appointed");
    Ok((
        StatusCode::CREATED,
        Json(ModeratorView {
            user_id: user.id.into_string(),
            display_name: user.display_name.into_string(),
            mobile: user.mobile.as_str().to_owned(),
            appointed_at: ts(now),
        }),
    ))
}

/// Remove a moderator (owner only).
#[utoipa::path(delete, path = "/shops/{shop_id}/moderators/{user_id}", tag = "shops",
    params(("shop_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
async fn remove_moderator(
    State(state): State<AppState>,
    me: SignedIn,
    Path((shop_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let shop = load_shop(&state, &shop_id).await?;
    let role = state.store.role_in_shop(&shop.id, me.user.as_str()).await?;
    if !role.can_appoint_moderators() {
        return Err(ApiError::Forbidden(
            "only the shop's owner removes moderators",
        ));
    }
    let user = parse_id("moderator", &user_id, UserId::parse)?;
    state
        .store
        .remove_moderator(&shop.id, &user)
        .await
        .map_err(not_found("moderator"))?;
    Ok(StatusCode::NO_CONTENT)
}
