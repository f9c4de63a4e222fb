//! The same storage tests on both engines: each test body runs once on a
//! fresh SQLite file and once on a fresh PostgreSQL database.

use domain::*;
use store::on_both_engines;
use store::*;

async fn farmer(store: &Store, mobile: &str) -> UserRecord {
    store
        .create_user(
            &Mobile::parse(mobile).unwrap(),
            &DisplayName::parse("老王").unwrap(),
            "$argon2id$fake",
            ms(1_000),
        )
        .await
        .unwrap()
}

async fn shop_of(store: &Store, owner: &UserRecord) -> ShopRecord {
    store
        .create_shop(
            NewShop {
                owner_id: owner.id.clone(),
                name: ShopName::parse("王家沟小米").unwrap(),
                place: Place::parse("山西 岢岚县 王家沟村").unwrap(),
                story: Story::parse("羊粪养出来的小米").unwrap(),
                payment_note: domain::PaymentNote::from_trusted(String::new()),
            },
            ms(1_000),
        )
        .await
        .unwrap()
}

on_both_engines!(migrations_are_idempotent, |store: Store| async move {
    store.migrate().await.expect("second migrate is a no-op");
    store.ping().await.unwrap();
});

on_both_engines!(accounts_and_sessions, |store: Store| async move {
    let user = farmer(&store, "13800138000").await;
    let dup = store
        .create_user(&user.mobile, &user.display_name, "x", ms(2_000))
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict("mobile")), "{dup:?}");

    let found = store.user_by_mobile(&user.mobile).await.unwrap().unwrap();
    assert_eq!(found.id, user.id);
    assert_eq!(found.password_hash, "$argon2id$fake");

    let session = SessionId::generate();
    store
        .create_session(NewSession {
            id: session.clone(),
            token_hash: "hash-1",
            subject: SessionSubject::User(user.id.clone()),
            user_agent: "test",
            now: ms(1_000),
            expires_at: ms(10_000),
        })
        .await
        .unwrap();
    let active = store
        .active_session("hash-1", ms(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.identity.user(), Some(&user.id));
    assert!(
        store
            .active_session("hash-1", ms(10_001))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );

    store
        .touch_session(&session, ms(9_000), ms(20_000))
        .await
        .unwrap();
    assert!(
        store
            .active_session("hash-1", ms(10_001))
            .await
            .unwrap()
            .is_some(),
        "slid forward"
    );
    assert_eq!(
        store
            .sessions_of_user(&user.id, ms(9_000))
            .await
            .unwrap()
            .len(),
        1
    );

    let other = farmer(&store, "13900139000").await;
    assert!(matches!(
        store
            .revoke_user_session(&other.id, &session, ms(9_500))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .revoke_user_session(&user.id, &session, ms(9_500))
        .await
        .unwrap();
    assert!(
        store
            .active_session("hash-1", ms(9_600))
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
});

on_both_engines!(guest_sessions, |store: Store| async move {
    let guest = store
        .create_guest(&DisplayName::parse("路人甲").unwrap(), ms(1))
        .await
        .unwrap();
    store
        .create_session(NewSession {
            id: SessionId::generate(),
            token_hash: "guest-hash",
            subject: SessionSubject::Guest(guest.clone()),
            user_agent: "",
            now: ms(1),
            expires_at: ms(100),
        })
        .await
        .unwrap();
    let before = store
        .active_session("guest-hash", ms(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.identity.name().as_str(), "路人甲");
    store
        .rename_guest(&guest, &DisplayName::parse("小李").unwrap())
        .await
        .unwrap();
    let s = store
        .active_session("guest-hash", ms(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.identity.subject().as_str(), guest.as_str());
    assert_eq!(s.identity.name().as_str(), "小李");
    assert!(s.identity.user().is_none());
});

on_both_engines!(shops_moderators_and_roles, |store: Store| async move {
    let owner = farmer(&store, "13800138000").await;
    let helper = farmer(&store, "13900139000").await;
    let shop = shop_of(&store, &owner).await;
    assert_eq!(
        store
            .role_in_shop(&shop.id, owner.id.as_str())
            .await
            .unwrap(),
        Role::Owner
    );
    assert_eq!(
        store
            .role_in_shop(&shop.id, helper.id.as_str())
            .await
            .unwrap(),
        Role::Viewer
    );
    assert_eq!(
        store.role_in_shop(&shop.id, "gst_whoever").await.unwrap(),
        Role::Viewer
    );

    store
        .add_moderator(&shop.id, &helper.id, ms(5))
        .await
        .unwrap();
    assert!(matches!(
        store.add_moderator(&shop.id, &helper.id, ms(6)).await,
        Err(StoreError::Conflict("moderator"))
    ));
    assert_eq!(
        store
            .role_in_shop(&shop.id, helper.id.as_str())
            .await
            .unwrap(),
        Role::Moderator
    );
    let mods = store.moderators(&shop.id).await.unwrap();
    assert_eq!(mods.len(), 1);
    assert_eq!(mods[0].user_id, helper.id);
    assert_eq!(
        store.shops_moderated_by(&helper.id).await.unwrap()[0].id,
        shop.id
    );

    store.remove_moderator(&shop.id, &helper.id).await.unwrap();
    assert_eq!(
        store
            .role_in_shop(&shop.id, helper.id.as_str())
            .await
            .unwrap(),
        Role::Viewer
    );
    assert!(matches!(
        store.remove_moderator(&shop.id, &helper.id).await,
        Err(StoreError::NotFound)
    ));

    let renamed = store
        .update_shop(
            &shop.id,
            ShopUpdate {
                name: Some(ShopName::parse("新名字").unwrap()),
                ..Default::default()
            },
            ms(7),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "新名字");
    assert_eq!(
        renamed.place, shop.place,
        "untouched fields keep their value"
    );
    assert_eq!(store.shops_of_owner(&owner.id).await.unwrap().len(), 1);
});

on_both_engines!(products, |store: Store| async move {
    let owner = farmer(&store, "13800138000").await;
    let shop = shop_of(&store, &owner).await;
    let p = store
        .create_product(
            NewProduct {
                shop_id: shop.id.clone(),
                title: ProductTitle::parse("羊粪小米 20斤").unwrap(),
                description: Description::parse("今年新米").unwrap(),
                unit: Unit::parse("20斤袋").unwrap(),
                price: Fen::price(16_800).unwrap(),
                stock: 300,
                ships_on: Some(ShipDate::parse("2026-10-08").unwrap()),
            },
            ms(10),
        )
        .await
        .unwrap();
    assert_eq!(p.price.get(), 16_800);
    assert_eq!(p.ships_on.unwrap().to_string(), "2026-10-08");

    let updated = store
        .update_product(
            &p.id,
            ProductUpdate {
                stock: Some(250),
                ships_on: Some(None),
                ..Default::default()
            },
            ms(11),
        )
        .await
        .unwrap();
    assert_eq!(updated.stock, 250);
    assert!(updated.ships_on.is_none(), "presale date cleared");
    assert_eq!(updated.title, p.title);

    store.archive_product(&p.id, ms(12)).await.unwrap();
    assert!(matches!(
        store.product(&p.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.products_of_shop(&shop.id).await.unwrap().is_empty());
});

on_both_engines!(broadcast_lifecycle, |store: Store| async move {
    let owner = farmer(&store, "13800138000").await;
    let shop = shop_of(&store, &owner).await;
    let b = store
        .create_broadcast(
            NewBroadcast {
                shop_id: shop.id.clone(),
                title: BroadcastTitle::parse("秋收直播").unwrap(),
                scheduled_at: Some(ms(50_000)),
                stream_key: "key-1".into(),
            },
            ms(100),
        )
        .await
        .unwrap();
    assert_eq!(b.state, BroadcastState::Scheduled);

    let live = store
        .set_broadcast_state(&b.id, BroadcastState::Live, ms(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (live.state, live.started_at),
        (BroadcastState::Live, Some(ms(200)))
    );
    assert_eq!(store.live_broadcasts().await.unwrap().len(), 1);

    let ended = store
        .set_broadcast_state(&b.id, BroadcastState::Ended, ms(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ended.state, ended.ended_at),
        (BroadcastState::Ended, Some(ms(300)))
    );
    assert!(
        store
            .set_broadcast_state(&b.id, BroadcastState::Live, ms(400))
            .await
            .unwrap()
            .is_none(),
        "an ended broadcast stays ended"
    );

    store.set_stream_key(&b.id, "key-2", ms(500)).await.unwrap();
    assert_eq!(store.broadcast(&b.id).await.unwrap().stream_key, "key-2");
    let cleared = store
        .update_broadcast(
            &b.id,
            BroadcastUpdate {
                scheduled_at: Some(None),
                ..Default::default()
            },
            ms(600),
        )
        .await
        .unwrap();
    assert_eq!(cleared.scheduled_at, None);
});

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}
