//! The shop service's rules, on a fresh SQLite database per test: who may
//! do what, the stock cap, moderators, and the reaction to an ended
//! broadcast.

use domain::*;
use shops::*;
use std::sync::{Arc, Mutex};
use store::testing::TestDb;
use store::{BroadcastRecord, Store, UserRecord};

/// Records every event with the broadcast's state in the database at the
/// moment the bridge would react, as the bridge sees it.
#[derive(Default)]
struct Seen {
    store: Mutex<Option<Store>>,
    events: Mutex<Vec<(ShopEvent, BroadcastState)>>,
}

#[async_trait::async_trait]
impl ShopEvents for Seen {
    async fn happened(&self, event: ShopEvent) {
        let store = self.store.lock().unwrap().clone().expect("store set");
        let ShopEvent::BroadcastEnded { broadcast } = &event;
        let state = store.broadcast(broadcast).await.unwrap().state;
        self.events.lock().unwrap().push((event, state));
    }
}

struct World {
    _db: TestDb,
    store: Store,
    shops: ShopService,
    seen: Arc<Seen>,
    owner: UserRecord,
    shop: store::ShopRecord,
}

async fn user(store: &Store, mobile: &str, name: &str) -> UserRecord {
    store
        .create_user(
            &Mobile::parse(mobile).unwrap(),
            &DisplayName::parse(name).unwrap(),
            "$argon2id$fake",
            domain::UnixMillis::from_millis(1),
        )
        .await
        .unwrap()
}

async fn world() -> World {
    let db = TestDb::sqlite();
    let store = db.store().await.unwrap();
    let seen = Arc::new(Seen::default());
    *seen.store.lock().unwrap() = Some(store.clone());
    let shops = ShopService::new(store.clone(), seen.clone());
    let owner = user(&store, "13800138000", "老王").await;
    let shop = shops
        .open_shop(
            &owner.id,
            ShopDraft {
                name: ShopName::parse("王家沟小米").unwrap(),
                place: Place::parse("山西 岢岚县 王家沟村").unwrap(),
                story: Story::parse("").unwrap(),
                payment_note: PaymentNote::parse("").unwrap(),
            },
        )
        .await
        .unwrap();
    World {
        _db: db,
        store,
        shops,
        seen,
        owner,
        shop,
    }
}

fn product(stock: Stock) -> ProductDraft {
    ProductDraft {
        title: ProductTitle::parse("羊粪小米 20斤").unwrap(),
        description: Description::parse("").unwrap(),
        unit: Unit::parse("20斤袋").unwrap(),
        price: Fen::price(16_800).unwrap(),
        stock,
        ships_on: None,
    }
}

async fn broadcast(w: &World) -> BroadcastRecord {
    let shop = w.shops.owned_shop(&w.owner.id, &w.shop.id).await.unwrap();
    w.shops
        .schedule_broadcast(
            &shop,
            BroadcastDraft {
                title: BroadcastTitle::parse("秋收直播").unwrap(),
                scheduled_at: None,
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn only_the_owner_gets_the_shop_its_products_and_broadcasts() {
    let w = world().await;
    let stranger = user(&w.store, "13900139000", "路人").await;
    let b = broadcast(&w).await;
    let shop = w.shops.owned_shop(&w.owner.id, &w.shop.id).await.unwrap();
    let p = w
        .shops
        .add_product(&shop, product(Stock::parse(300).unwrap()))
        .await
        .unwrap();

    assert!(matches!(
        w.shops.owned_shop(&stranger.id, &w.shop.id).await,
        Err(ShopsError::NotOwner)
    ));
    assert!(matches!(
        w.shops.owned_product(&stranger.id, &p.id).await,
        Err(ShopsError::NotOwner)
    ));
    assert!(matches!(
        w.shops.owned_broadcast(&stranger.id, &b.id).await,
        Err(ShopsError::NotOwner)
    ));
    // A moderator moderates; owning is the owner's alone.
    w.shops
        .appoint_moderator(&shop, &stranger.mobile)
        .await
        .unwrap();
    assert!(matches!(
        w.shops.owned_shop(&stranger.id, &w.shop.id).await,
        Err(ShopsError::NotOwner)
    ));
    let unknown = ShopId::parse("shp_0000000000000000").unwrap();
    assert!(matches!(
        w.shops.owned_shop(&w.owner.id, &unknown).await,
        Err(ShopsError::NotFound(Thing::Shop))
    ));

    let mine = w.shops.owned_product(&w.owner.id, &p.id).await.unwrap();
    let changed = w
        .shops
        .update_product(
            &mine,
            ProductChanges {
                stock: Some(Stock::parse(i64::from(MAX_STOCK)).unwrap()),
                ..ProductChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        changed.stock,
        i64::from(MAX_STOCK),
        "the cap itself is allowed"
    );
    w.shops.remove_product(&mine).await.unwrap();
    assert!(
        w.store
            .products_of_shop(&w.shop.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn stock_past_the_one_cap_never_reaches_a_product() {
    let w = world().await;
    // A product's stock is a `Stock`, and the only way to one is the cap.
    for refused in [-1, i64::from(MAX_STOCK) + 1, i64::MAX] {
        assert!(Stock::parse(refused).is_err(), "{refused}");
    }
    let shop = w.shops.owned_shop(&w.owner.id, &w.shop.id).await.unwrap();
    let p = w
        .shops
        .add_product(&shop, product(Stock::parse(0).unwrap()))
        .await
        .unwrap();
    assert_eq!(p.stock, 0);
}

#[tokio::test]
async fn the_team_is_the_owner_and_the_moderators() {
    let w = world().await;
    let moderator = user(&w.store, "13900139000", "小张").await;
    let stranger = user(&w.store, "13700137000", "路人").await;
    let shop = w.shops.owned_shop(&w.owner.id, &w.shop.id).await.unwrap();

    let refused = w
        .shops
        .appoint_moderator(&shop, &Mobile::parse("13600136000").unwrap())
        .await;
    assert!(
        matches!(&refused, Err(ShopsError::Validation(e)) if e[0].code == "no_such_account"),
        "{refused:?}"
    );
    let refused = w.shops.appoint_moderator(&shop, &w.owner.mobile).await;
    assert!(
        matches!(&refused, Err(ShopsError::Validation(e)) if e[0].code == "is_owner"),
        "{refused:?}"
    );
    w.shops
        .appoint_moderator(&shop, &moderator.mobile)
        .await
        .unwrap();
    assert!(matches!(
        w.shops.appoint_moderator(&shop, &moderator.mobile).await,
        Err(ShopsError::AlreadyModerator)
    ));

    assert!(matches!(
        w.shops.moderating(&stranger.id, &w.shop.id).await,
        Err(ShopsError::NotModerator)
    ));
    let as_owner = w.shops.moderating(&w.owner.id, &w.shop.id).await.unwrap();
    assert_eq!(as_owner.role, Role::Owner);
    let as_moderator = w.shops.moderating(&moderator.id, &w.shop.id).await.unwrap();
    assert_eq!(as_moderator.role, Role::Moderator);
    // The owner reads numbers in full; moderators see them masked.
    assert_eq!(
        w.shops.moderators(&as_owner).await.unwrap()[0].mobile,
        "13900139000"
    );
    assert_eq!(
        w.shops.moderators(&as_moderator).await.unwrap()[0].mobile,
        moderator.mobile.masked()
    );
    assert!(w.shops.bans(&as_moderator).await.unwrap().is_empty());

    w.shops
        .remove_moderator(&shop, &moderator.id)
        .await
        .unwrap();
    assert!(matches!(
        w.shops.moderating(&moderator.id, &w.shop.id).await,
        Err(ShopsError::NotModerator)
    ));
    assert!(matches!(
        w.shops.remove_moderator(&shop, &moderator.id).await,
        Err(ShopsError::NotFound(Thing::Moderator))
    ));
}

#[tokio::test]
async fn an_ended_broadcast_is_written_before_the_server_reacts_once() {
    let w = world().await;
    let b = broadcast(&w).await;
    let stranger = user(&w.store, "13900139000", "路人").await;
    assert!(w.shops.owned_broadcast(&stranger.id, &b.id).await.is_err());
    assert!(w.seen.events.lock().unwrap().is_empty());

    let owned = w.shops.owned_broadcast(&w.owner.id, &b.id).await.unwrap();
    let ended = w.shops.end_broadcast(owned).await.unwrap();
    assert_eq!(ended.broadcast.state, BroadcastState::Ended);
    assert_eq!(
        *w.seen.events.lock().unwrap(),
        [(
            ShopEvent::BroadcastEnded {
                broadcast: b.id.clone()
            },
            BroadcastState::Ended
        )]
    );
}
