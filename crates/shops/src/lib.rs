//! The shop service: shops, their products and broadcasts, moderators and
//! bans, and who may do what with them. Every ownership and moderation rule
//! is decided here, once per action; the HTTP routes parse, call and render.
//!
//! # Proofs instead of repeated checks
//! [`ShopService::owned_shop`] checks that the caller owns the shop and
//! returns an [`OwnedShop`]; [`ShopService::moderating`] checks that they
//! own or moderate it and returns a [`Moderating`]. Only this crate can make
//! those values, and every owner-only (or moderator-only) action takes one,
//! so an action cannot run unchecked and no caller checks twice.
//!
//! # What happens elsewhere
//! Ending a broadcast is written here and then told to the server through
//! [`ShopEvents`] (the binary's bridge stops the media, tells the room and
//! ends the offers), so this crate knows neither the SFU nor the rooms.
//! Offers and orders have their own service (`orders`); bans are imposed and
//! lifted in the live room (`live`), which owns their write order.

mod error;

pub use error::{ShopsError, Thing};

use async_trait::async_trait;
use domain::{
    BroadcastId, BroadcastState, BroadcastTitle, Description, DisplayName, Fen, Mobile,
    PaymentNote, Place, ProductId, ProductTitle, Role, ShipDate, ShopId, ShopName, Stock, Story,
    UnixMillis, UserId,
};
use error::Found;
use std::ops::Deref;
use std::sync::Arc;
use store::{BanRecord, BroadcastRecord, ProductRecord, ShopRecord, Store, StoreError};

/// Something that happened to a shop that other parts of the server react
/// to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShopEvent {
    /// The owner ended the broadcast (it is written as ended already).
    BroadcastEnded { broadcast: BroadcastId },
}

/// Where [`ShopEvent`]s go: the server's bridge. Awaited, so when an action
/// returns, its reactions have happened (a page that reloads sees them).
#[async_trait]
pub trait ShopEvents: Send + Sync {
    async fn happened(&self, event: ShopEvent);
}

/// A shop whose owner is the caller; see the crate docs.
#[derive(Debug)]
pub struct OwnedShop(ShopRecord);

impl Deref for OwnedShop {
    type Target = ShopRecord;
    fn deref(&self) -> &ShopRecord {
        &self.0
    }
}

impl OwnedShop {
    pub fn into_record(self) -> ShopRecord {
        self.0
    }
}

/// A shop the caller owns or moderates, and which of the two.
#[derive(Debug)]
pub struct Moderating {
    pub shop: ShopRecord,
    pub role: Role,
}

/// A broadcast of a shop the caller owns.
#[derive(Debug)]
pub struct OwnedBroadcast {
    pub broadcast: BroadcastRecord,
    pub shop: OwnedShop,
}

/// A product of a shop the caller owns.
#[derive(Debug)]
pub struct OwnedProduct {
    pub product: ProductRecord,
    pub shop: OwnedShop,
}

/// A new shop, parsed.
pub struct ShopDraft {
    pub name: ShopName,
    pub place: Place,
    pub story: Story,
    pub payment_note: PaymentNote,
}

/// A new product, parsed; [`Stock`] is within the one stock cap.
pub struct ProductDraft {
    pub title: ProductTitle,
    pub description: Description,
    pub unit: domain::Unit,
    pub price: Fen,
    pub stock: Stock,
    pub ships_on: Option<ShipDate>,
}

/// Product fields to change; `None` keeps the value, `ships_on: Some(None)`
/// clears the presale date.
#[derive(Default)]
pub struct ProductChanges {
    pub title: Option<ProductTitle>,
    pub description: Option<Description>,
    pub unit: Option<domain::Unit>,
    pub price: Option<Fen>,
    pub stock: Option<Stock>,
    pub ships_on: Option<Option<ShipDate>>,
}

/// A new broadcast, parsed.
pub struct BroadcastDraft {
    pub title: BroadcastTitle,
    pub scheduled_at: Option<UnixMillis>,
}

/// A moderator as the shop's team sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moderator {
    pub user_id: UserId,
    pub display_name: DisplayName,
    /// In full for the owner, masked (`138****8000`) for moderators.
    pub mobile: String,
    pub appointed_at: UnixMillis,
}

/// Someone banned from the shop's broadcasts, with their chat name.
#[derive(Clone, Debug)]
pub struct Ban {
    pub record: BanRecord,
    pub name: Option<DisplayName>,
}

/// The shop service. Cheap to clone.
#[derive(Clone)]
pub struct ShopService {
    store: Store,
    events: Arc<dyn ShopEvents>,
}

impl ShopService {
    pub fn new(store: Store, events: Arc<dyn ShopEvents>) -> ShopService {
        ShopService { store, events }
    }

    // ------------------------------------------------------------ shops --

    /// A shop (public).
    pub async fn shop(&self, id: &ShopId) -> Result<ShopRecord, ShopsError> {
        self.store.shop(id).await.or_missing(Thing::Shop)
    }

    /// Opens a shop; the caller becomes its owner.
    pub async fn open_shop(
        &self,
        owner: &UserId,
        draft: ShopDraft,
    ) -> Result<ShopRecord, ShopsError> {
        let shop = self
            .store
            .create_shop(
                store::NewShop {
                    owner_id: owner.clone(),
                    name: draft.name,
                    place: draft.place,
                    story: draft.story,
                    payment_note: draft.payment_note,
                },
                domain::UnixMillis::wall_now(),
            )
            .await?;
        tracing::info!(shop = %shop.id, "shop opened");
        Ok(shop)
    }

    /// The shop, if `user` owns it: the one ownership rule.
    pub async fn owned_shop(&self, user: &UserId, shop: &ShopId) -> Result<OwnedShop, ShopsError> {
        let shop = self.shop(shop).await?;
        owned(shop, user)
    }

    /// The shop and the caller's role in it, if they own or moderate it.
    pub async fn moderating(&self, user: &UserId, shop: &ShopId) -> Result<Moderating, ShopsError> {
        let shop = self.shop(shop).await?;
        let role = self.store.role_in_shop(&shop.id, user.as_str()).await?;
        if !role.can_moderate() {
            return Err(ShopsError::NotModerator);
        }
        Ok(Moderating { shop, role })
    }

    /// What the person (`subject`: an account or a guest) is in the shop:
    /// owner, moderator or viewer.
    pub async fn role_in_shop(&self, shop: &ShopId, subject: &str) -> Result<Role, ShopsError> {
        Ok(self.store.role_in_shop(shop, subject).await?)
    }

    pub async fn update_shop(
        &self,
        shop: &OwnedShop,
        update: store::ShopUpdate,
    ) -> Result<ShopRecord, ShopsError> {
        Ok(self
            .store
            .update_shop(&shop.id, update, domain::UnixMillis::wall_now())
            .await?)
    }

    // --------------------------------------------------------- products --

    pub async fn product(&self, id: &ProductId) -> Result<ProductRecord, ShopsError> {
        self.store.product(id).await.or_missing(Thing::Product)
    }

    /// The shop's products on sale, for its page (public).
    pub async fn products_of(&self, shop: &ShopId) -> Result<Vec<ProductRecord>, ShopsError> {
        Ok(self.store.products_of_shop(shop).await?)
    }

    /// The product, if `user` owns its shop.
    pub async fn owned_product(
        &self,
        user: &UserId,
        id: &ProductId,
    ) -> Result<OwnedProduct, ShopsError> {
        let product = self.product(id).await?;
        let shop = self.owned_shop(user, &product.shop_id).await?;
        Ok(OwnedProduct { product, shop })
    }

    pub async fn add_product(
        &self,
        shop: &OwnedShop,
        draft: ProductDraft,
    ) -> Result<ProductRecord, ShopsError> {
        Ok(self
            .store
            .create_product(
                store::NewProduct {
                    shop_id: shop.id.clone(),
                    title: draft.title,
                    description: draft.description,
                    unit: draft.unit,
                    price: draft.price,
                    stock: draft.stock.get(),
                    ships_on: draft.ships_on,
                },
                domain::UnixMillis::wall_now(),
            )
            .await?)
    }

    pub async fn update_product(
        &self,
        product: &OwnedProduct,
        changes: ProductChanges,
    ) -> Result<ProductRecord, ShopsError> {
        let update = store::ProductUpdate {
            title: changes.title,
            description: changes.description,
            unit: changes.unit,
            price: changes.price,
            stock: changes.stock.map(Stock::get),
            ships_on: changes.ships_on,
        };
        Ok(self
            .store
            .update_product(&product.product.id, update, domain::UnixMillis::wall_now())
            .await?)
    }

    /// Takes the product off the shop; past orders keep it.
    pub async fn remove_product(&self, product: &OwnedProduct) -> Result<(), ShopsError> {
        Ok(self
            .store
            .archive_product(&product.product.id, domain::UnixMillis::wall_now())
            .await?)
    }

    // ------------------------------------------------------- broadcasts --

    /// A broadcast and its shop (public).
    pub async fn broadcast(
        &self,
        id: &BroadcastId,
    ) -> Result<(BroadcastRecord, ShopRecord), ShopsError> {
        let broadcast = self
            .store
            .broadcast(id)
            .await
            .or_missing(Thing::Broadcast)?;
        let shop = self.store.shop(&broadcast.shop_id).await?;
        Ok((broadcast, shop))
    }

    /// Broadcasts live now with their shops, newest first, at most `limit`
    /// (public).
    pub async fn live_broadcasts(
        &self,
        limit: usize,
    ) -> Result<Vec<(BroadcastRecord, ShopRecord)>, ShopsError> {
        let mut live = Vec::new();
        for b in self.store.live_broadcasts().await?.into_iter().take(limit) {
            let shop = self.store.shop(&b.shop_id).await?;
            live.push((b, shop));
        }
        Ok(live)
    }

    /// The shop's broadcasts, newest first (public).
    pub async fn broadcasts_of(&self, shop: &ShopId) -> Result<Vec<BroadcastRecord>, ShopsError> {
        Ok(self.store.broadcasts_of_shop(shop).await?)
    }

    /// The broadcast, if `user` owns its shop.
    pub async fn owned_broadcast(
        &self,
        user: &UserId,
        id: &BroadcastId,
    ) -> Result<OwnedBroadcast, ShopsError> {
        let (broadcast, shop) = self.broadcast(id).await?;
        Ok(OwnedBroadcast {
            broadcast,
            shop: owned(shop, user)?,
        })
    }

    /// Schedules a broadcast with its own secret stream key.
    pub async fn schedule_broadcast(
        &self,
        shop: &OwnedShop,
        draft: BroadcastDraft,
    ) -> Result<BroadcastRecord, ShopsError> {
        let broadcast = self
            .store
            .create_broadcast(
                store::NewBroadcast {
                    shop_id: shop.id.clone(),
                    title: draft.title,
                    scheduled_at: draft.scheduled_at,
                    stream_key: domain::secret_token(),
                },
                domain::UnixMillis::wall_now(),
            )
            .await?;
        tracing::info!(broadcast = %broadcast.id, shop = %shop.id, "broadcast scheduled");
        Ok(broadcast)
    }

    pub async fn update_broadcast(
        &self,
        broadcast: &OwnedBroadcast,
        update: store::BroadcastUpdate,
    ) -> Result<BroadcastRecord, ShopsError> {
        Ok(self
            .store
            .update_broadcast(
                &broadcast.broadcast.id,
                update,
                domain::UnixMillis::wall_now(),
            )
            .await?)
    }

    /// A new stream key; apps holding the old one can no longer publish.
    pub async fn rotate_stream_key(
        &self,
        broadcast: &OwnedBroadcast,
    ) -> Result<String, ShopsError> {
        let key = domain::secret_token();
        self.store
            .set_stream_key(
                &broadcast.broadcast.id,
                &key,
                domain::UnixMillis::wall_now(),
            )
            .await?;
        tracing::info!(broadcast = %broadcast.broadcast.id, "stream key rotated");
        Ok(key)
    }

    /// Ends the broadcast for good (it cannot be restarted) and has the
    /// server react before answering: media stops, the room is told, the
    /// offers end. Ending an ended broadcast repeats the reactions, which
    /// change nothing.
    pub async fn end_broadcast(
        &self,
        broadcast: OwnedBroadcast,
    ) -> Result<OwnedBroadcast, ShopsError> {
        let OwnedBroadcast { broadcast, shop } = broadcast;
        let ended = self
            .store
            .set_broadcast_state(
                &broadcast.id,
                BroadcastState::Ended,
                domain::UnixMillis::wall_now(),
            )
            .await?
            .unwrap_or(broadcast);
        self.events
            .happened(ShopEvent::BroadcastEnded {
                broadcast: ended.id.clone(),
            })
            .await;
        tracing::info!(broadcast = %ended.id, "broadcast ended by its owner");
        Ok(OwnedBroadcast {
            broadcast: ended,
            shop,
        })
    }

    // ------------------------------------------------------- moderators --

    /// The shop's moderators, numbers in full for the owner only.
    pub async fn moderators(&self, team: &Moderating) -> Result<Vec<Moderator>, ShopsError> {
        let owner = team.role == Role::Owner;
        Ok(self
            .store
            .moderators(&team.shop.id)
            .await?
            .into_iter()
            .map(|m| Moderator {
                mobile: if owner {
                    m.mobile.as_str().to_owned()
                } else {
                    m.mobile.masked()
                },
                user_id: m.user_id,
                display_name: m.display_name,
                appointed_at: m.appointed_at,
            })
            .collect())
    }

    /// Appoints the account with this number. The answer tells whether the
    /// number has an account, which the owner needs to hear ("ask them to
    /// sign up first"), so callers keep the asking scarce.
    pub async fn appoint_moderator(
        &self,
        shop: &OwnedShop,
        mobile: &Mobile,
    ) -> Result<Moderator, ShopsError> {
        let Some(user) = self.store.user_by_mobile(mobile).await? else {
            return Err(ShopsError::field(
                "mobile",
                domain::FieldCode::NoSuchAccount,
                "no account uses this number; ask them to sign up first",
            ));
        };
        if user.id == shop.owner_id {
            return Err(ShopsError::field(
                "mobile",
                domain::FieldCode::IsOwner,
                "this is the owner's own number",
            ));
        }
        let now = domain::UnixMillis::wall_now();
        self.store
            .add_moderator(&shop.id, &user.id, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ShopsError::AlreadyModerator,
                other => other.into(),
            })?;
        tracing::info!(shop = %shop.id, moderator = %user.id, "moderator appointed");
        Ok(Moderator {
            user_id: user.id,
            display_name: user.display_name,
            mobile: user.mobile.as_str().to_owned(),
            appointed_at: now,
        })
    }

    pub async fn remove_moderator(
        &self,
        shop: &OwnedShop,
        moderator: &UserId,
    ) -> Result<(), ShopsError> {
        self.store
            .remove_moderator(&shop.id, moderator)
            .await
            .or_missing(Thing::Moderator)
    }

    // ------------------------------------------------------------- bans --

    /// Everyone banned from the shop's broadcasts, with their chat names.
    pub async fn bans(&self, team: &Moderating) -> Result<Vec<Ban>, ShopsError> {
        let mut bans = Vec::new();
        for record in self.store.chat_bans(&team.shop.id).await? {
            let name = self.store.subject_name(&record.subject).await?;
            bans.push(Ban { record, name });
        }
        Ok(bans)
    }
}

fn owned(shop: ShopRecord, user: &UserId) -> Result<OwnedShop, ShopsError> {
    if &shop.owner_id == user {
        Ok(OwnedShop(shop))
    } else {
        Err(ShopsError::NotOwner)
    }
}
