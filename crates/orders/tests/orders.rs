//! The order service end to end, on SQLite and on PostgreSQL: every test
//! body runs once per engine on a fresh database.

use domain::*;
use orders::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use store::testing::TestDb;
use store::*;

/// `mod name { sqlite(); postgres() }` running `body(TestDb)` under the
/// given test attribute.
macro_rules! both_engines {
    (#[$attr:meta] $name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[$attr]
            async fn sqlite() {
                $body(TestDb::sqlite()).await;
            }

            #[$attr]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else {
                    return;
                };
                $body(db).await;
            }
        }
    };
}

const MIN: i64 = 60_000;

/// A farmer with a shop, a product in stock and a live broadcast.
struct Farm {
    owner: UserRecord,
    shop: ShopRecord,
    product: ProductRecord,
    broadcast: BroadcastRecord,
}

static MOBILES: AtomicU32 = AtomicU32::new(0);

async fn farm(store: &Store, stock: u32) -> Farm {
    let n = MOBILES.fetch_add(1, Ordering::Relaxed);
    let owner = store
        .create_user(
            &Mobile::parse(&format!("139{n:08}")).unwrap(),
            &DisplayName::parse("老王").unwrap(),
            "$argon2id$fake",
            ms(1),
        )
        .await
        .unwrap();
    let shop = store
        .create_shop(
            NewShop {
                owner_id: owner.id.clone(),
                name: ShopName::parse("王家沟小米").unwrap(),
                place: Place::parse("山西 岢岚县 王家沟村").unwrap(),
                story: Story::parse("").unwrap(),
                payment_note: domain::PaymentNote::from_trusted(String::new()),
            },
            ms(1),
        )
        .await
        .unwrap();
    let product = store
        .create_product(
            NewProduct {
                shop_id: shop.id.clone(),
                title: ProductTitle::parse("羊粪小米 20斤").unwrap(),
                description: Description::parse("").unwrap(),
                unit: Unit::parse("20斤袋").unwrap(),
                price: Fen::price(16_800).unwrap(),
                stock,
                ships_on: Some(ShipDate::parse("2026-10-08").unwrap()),
            },
            ms(1),
        )
        .await
        .unwrap();
    let broadcast = store
        .create_broadcast(
            NewBroadcast {
                shop_id: shop.id.clone(),
                title: BroadcastTitle::parse("秋收直播").unwrap(),
                scheduled_at: None,
                stream_key: domain::secret_token(),
            },
            ms(1),
        )
        .await
        .unwrap();
    store
        .set_broadcast_state(&broadcast.id, BroadcastState::Live, ms(2))
        .await
        .unwrap();
    Farm {
        owner,
        shop,
        product,
        broadcast,
    }
}

/// The order service on `store` with the default settings.
async fn service(store: &Store) -> OrderService {
    OrderService::start(store.clone(), OrdersConfig::default())
        .await
        .unwrap()
}

fn new_offer(farm: &Farm, quantity: u32, limit: u32) -> NewOffer {
    NewOffer {
        broadcast: farm.broadcast.id.clone(),
        product: farm.product.id.clone(),
        price: Fen::price(9_900).unwrap(),
        quantity,
        per_buyer_limit: limit,
        buyers: Buyers::Anyone,
        starts_at: None,
        ends_at: None,
        hold: None,
    }
}

fn tap(offer: &OfferSnapshot, buyer: &str, quantity: u32, key: Option<&str>) -> ReserveRequest {
    ReserveRequest {
        offer: offer.offer_id.clone(),
        buyer: sub(buyer),
        quantity,
        idempotency_key: key.map(str::to_owned),
    }
}

fn checkout() -> Checkout {
    Checkout::parse(
        "李四",
        "138 0013 8000",
        "山西省忻州市岢岚县宋家沟村, \"东头\"第三户\n12号",
        "bank_transfer",
    )
    .unwrap()
}

/// Keeps a paused tokio clock from jumping ahead on its own while the test
/// waits for the database: the runtime is never idle, so time moves only
/// when the test calls `advance`.
struct HoldClock(tokio::task::JoinHandle<()>);

impl HoldClock {
    fn start() -> HoldClock {
        HoldClock(tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        }))
    }
}

impl Drop for HoldClock {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls `check` until it holds, for at most 30 s of real time (the tokio
/// clock may be paused).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::task::yield_now().await;
    }
}

async fn assert_consistent(store: &Store, svc: &OrderService, offer: &OfferId) -> StockCounts {
    let audit = store.audit_offer(offer).await.unwrap();
    assert!(audit.is_consistent(), "database out of balance: {audit:?}");
    let memory = svc.offer_snapshot(offer).await.unwrap().counts;
    assert_eq!(memory, audit.counts, "memory and database agree");
    memory
}

// ------------------------------------------------------------ concurrency --

async fn concurrent_taps_never_oversell(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 1_000).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 100, 5))
        .await
        .unwrap();

    // 2,000 calls at once: 500 buyers tap twice with the same key (a
    // retry), 1,000 buyers tap once without a key.
    let mut calls = Vec::new();
    for i in 0..500 {
        for _ in 0..2 {
            let (svc, req) = (
                svc.clone(),
                tap(&offer, &format!("gst_k{i}"), 1, Some(&format!("nonce-{i}"))),
            );
            calls.push(tokio::spawn(async move {
                (req.buyer.clone(), svc.reserve(req).await)
            }));
        }
    }
    for i in 0..1_000 {
        let (svc, req) = (svc.clone(), tap(&offer, &format!("usr_n{i}"), 1, None));
        calls.push(tokio::spawn(async move {
            (req.buyer.clone(), svc.reserve(req).await)
        }));
    }
    let mut by_buyer: HashMap<domain::Subject, HashSet<ReservationId>> = HashMap::new();
    let (mut ok, mut sold_out) = (0, 0);
    for call in calls {
        let (buyer, result) = call.await.unwrap();
        match result {
            Ok(view) => {
                ok += 1;
                by_buyer.entry(buyer).or_default().insert(view.id);
            }
            Err(OrdersError::SoldOut { .. }) => sold_out += 1,
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    let reservations: usize = by_buyer.values().map(HashSet::len).sum();
    assert_eq!(reservations, 100, "exactly the allotted units are held");
    assert!(
        by_buyer.values().all(|ids| ids.len() == 1),
        "a retry never holds twice"
    );
    assert_eq!(ok + sold_out, 2_000);
    assert!(
        (100..=200).contains(&ok),
        "replays answer with the same reservation: {ok}"
    );

    let counts = assert_consistent(&store, &svc, &offer.offer_id).await;
    assert_eq!(
        counts,
        StockCounts {
            allotted: 100,
            available: 0,
            held: 100,
            sold: 0
        }
    );
    assert_eq!(
        svc.offer_snapshot(&offer.offer_id).await.unwrap().state,
        OfferState::SoldOut
    );

    // Per-buyer limits under concurrency: 20 buyers, limit 2, 5 taps each.
    let limited = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 100, 2))
        .await
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..20 {
        for _ in 0..5 {
            let (svc, req) = (svc.clone(), tap(&limited, &format!("gst_l{i}"), 1, None));
            calls.push(tokio::spawn(async move {
                (req.buyer.clone(), svc.reserve(req).await)
            }));
        }
    }
    let mut held: HashMap<domain::Subject, u32> = HashMap::new();
    for call in calls {
        let (buyer, result) = call.await.unwrap();
        match result {
            Ok(view) => *held.entry(buyer).or_default() += view.quantity,
            Err(OrdersError::OverLimit {
                limit: 2,
                already: 2,
            }) => {}
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(held.len(), 20);
    assert!(held.values().all(|q| *q == 2), "{held:?}");
    let counts = assert_consistent(&store, &svc, &limited.offer_id).await;
    assert_eq!((counts.held, counts.available), (40, 60));
    // 1,000 in stock, 200 allotted to the two offers.
    assert_eq!(store.product(&farm.product.id).await.unwrap().stock, 800);
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    concurrency,
    concurrent_taps_never_oversell
);

// ----------------------------------------------------------------- expiry --

async fn held_units_return_when_reservations_expire(db: TestDb) {
    let _still = HoldClock::start();
    let store = db.store().await.unwrap();
    let farm = farm(&store, 10).await;
    let svc = service(&store).await;
    let mut events = svc.events();
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 1, 1))
        .await
        .unwrap();
    assert_eq!(offer.hold_secs, 600, "ten minutes by default");

    let first = svc
        .reserve(tap(&offer, "gst_first", 1, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_second", 1, None)).await,
        Err(OrdersError::SoldOut { available: 0 })
    ));

    tokio::time::advance(Duration::from_secs(9 * 60)).await;
    assert!(
        matches!(
            svc.reserve(tap(&offer, "gst_second", 1, None)).await,
            Err(OrdersError::SoldOut { .. })
        ),
        "still held after nine minutes"
    );

    tokio::time::advance(Duration::from_secs(61)).await;
    let svc2 = svc.clone();
    let id = offer.offer_id.clone();
    eventually("the expired unit is back", || {
        let (svc, id) = (svc2.clone(), id.clone());
        async move { svc.offer_snapshot(&id).await.unwrap().counts.available == 1 }
    })
    .await;
    let second = svc
        .reserve(tap(&offer, "gst_second", 1, None))
        .await
        .unwrap();
    assert_eq!(second.quantity, 1, "the buyer told sold out can now buy");

    // The first buyer was told privately, and can no longer confirm.
    let mut expired_for = None;
    while let Ok(event) = events.try_recv() {
        if let OfferEvent::ReservationExpired {
            buyer,
            reservation_id,
            ..
        } = event
        {
            expired_for = Some((buyer, reservation_id));
        }
    }
    assert_eq!(expired_for, Some((sub("gst_first"), first.id.clone())));
    assert!(matches!(
        svc.confirm(&sub("gst_first"), &first.id, checkout()).await,
        Err(OrdersError::InvalidState(StateConflict::ReservationExpired))
    ));
    assert_eq!(
        store.reservation(&first.id).await.unwrap().state,
        ReservationState::Expired
    );
    assert_consistent(&store, &svc, &offer.offer_id).await;
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test(start_paused = true)]
    expiry,
    held_units_return_when_reservations_expire
);

/// A farm, its order service and an offer of 5 units, at most 5 each.
async fn five_for_sale(db: &TestDb) -> (Store, Farm, OrderService, OfferSnapshot) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 10).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 5, 5))
        .await
        .unwrap();
    (store, farm, svc, offer)
}

async fn a_buyer_reads_their_reservations_and_an_expired_key_is_not_held_again(db: TestDb) {
    let _still = HoldClock::start();
    let (_store, _farm, svc, offer) = five_for_sale(&db).await;
    let held = svc
        .reserve(tap(&offer, "gst_buyer", 2, Some("tap-1")))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let cancelled = svc
        .reserve(tap(&offer, "gst_buyer", 1, Some("tap-2")))
        .await
        .unwrap();
    svc.cancel_reservation(&sub("gst_buyer"), &cancelled.id)
        .await
        .unwrap();

    let mine = svc
        .reservation_of_buyer(&sub("gst_buyer"), &held.id)
        .await
        .unwrap();
    assert_eq!((mine.state, &mine.view), (ReservationState::Held, &held));
    assert!(
        matches!(
            svc.reservation_of_buyer(&sub("gst_stranger"), &held.id)
                .await,
            Err(OrdersError::NotFound)
        ),
        "someone else's reservation is not theirs to see"
    );
    let listed = svc.reservations_of_buyer(&sub("gst_buyer")).await.unwrap();
    let states: Vec<_> = listed
        .iter()
        .map(|r| (r.view.id.clone(), r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (cancelled.id.clone(), ReservationState::Cancelled),
            (held.id.clone(), ReservationState::Held)
        ],
        "newest first"
    );
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_buyer", 1, Some("tap-2")))
            .await,
        Err(OrdersError::InvalidState(
            StateConflict::ReservationCancelled
        ))
    ));

    // While held, the key answers with the same reservation; once the
    // hold has expired, asking again does not pretend it is held.
    assert_eq!(
        svc.reserve(tap(&offer, "gst_buyer", 2, Some("tap-1")))
            .await
            .unwrap(),
        held
    );
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_buyer", 2, Some("tap-1")))
            .await,
        Err(OrdersError::InvalidState(StateConflict::ReservationExpired))
    ));
    let mine = svc
        .reservation_of_buyer(&sub("gst_buyer"), &held.id)
        .await
        .unwrap();
    assert_eq!(mine.state, ReservationState::Expired);
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test(start_paused = true)]
    reading_back,
    a_buyer_reads_their_reservations_and_an_expired_key_is_not_held_again
);

async fn banned_buyers_and_offers_of_another_room_are_refused_in_the_service(db: TestDb) {
    let (store, farm, svc, offer) = five_for_sale(&db).await;
    let before = svc
        .reserve(tap(&offer, "gst_troll", 1, Some("k-1")))
        .await
        .unwrap();
    store
        .apply_chat_writes(&[ChatWrite::Ban(BanRecord {
            shop_id: farm.shop.id.clone(),
            subject: "gst_troll".into(),
            banned_by: farm.owner.id.as_str().into(),
            reason: "spam".into(),
            created_at: ms(1),
        })])
        .await
        .unwrap();
    for key in [None, Some("k-2"), Some("k-1")] {
        let refused = svc.reserve(tap(&offer, "gst_troll", 1, key)).await;
        assert!(matches!(refused, Err(OrdersError::Banned)), "{refused:?}");
    }
    assert_eq!(OrdersError::Banned.code(), "banned");
    // From a live room, only that broadcast's offers are sold.
    let elsewhere = BroadcastId::generate();
    assert!(matches!(
        svc.reserve_in(&elsewhere, tap(&offer, "gst_other", 1, None))
            .await,
        Err(OrdersError::NotFound)
    ));
    svc.reserve_in(&offer.broadcast_id, tap(&offer, "gst_other", 1, None))
        .await
        .unwrap();
    // Everyone else buys as before.
    svc.reserve(tap(&offer, "gst_other", 1, None))
        .await
        .unwrap();
    // The hold from before the ban cannot become an order...
    let refused = svc.confirm(&sub("gst_troll"), &before.id, checkout()).await;
    assert!(matches!(refused, Err(OrdersError::Banned)), "{refused:?}");
    // ...and the ban gives it back at once (the server's bridge asks when a
    // moderator bans); holds in another shop and other buyers' stay.
    let available = svc
        .offer_snapshot(&offer.offer_id)
        .await
        .unwrap()
        .counts
        .available;
    let released = svc
        .release_holds_of_banned(&farm.shop.id, &sub("gst_troll"))
        .await
        .unwrap();
    assert_eq!(released, 1);
    let after = svc
        .offer_snapshot(&offer.offer_id)
        .await
        .unwrap()
        .counts
        .available;
    assert_eq!(after, available + 1);
    assert_eq!(
        svc.release_holds_of_banned(&ShopId::generate(), &sub("gst_other"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        svc.offer_snapshot(&offer.offer_id)
            .await
            .unwrap()
            .counts
            .available,
        after
    );
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    bans,
    banned_buyers_and_offers_of_another_room_are_refused_in_the_service
);

// ---------------------------------------------------------------- restart --

async fn a_restart_rebuilds_everything(db: TestDb) {
    let _still = HoldClock::start();
    let t0 = 1_800_000_000_000;
    let store = db.store().await.unwrap();
    let farm = farm(&store, 50).await;
    let config = |at| OrdersConfig {
        clock: Clock::starting_at(at),
        ..OrdersConfig::default()
    };

    let svc = OrderService::start(store.clone(), config(ms(t0)))
        .await
        .unwrap();
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 5, 2))
        .await
        .unwrap();
    let a = svc
        .reserve(tap(&offer, "gst_a", 2, Some("tap-a")))
        .await
        .unwrap();
    let b = svc.reserve(tap(&offer, "usr_b", 1, None)).await.unwrap();
    let c = svc.reserve(tap(&offer, "gst_c", 2, None)).await.unwrap();
    svc.confirm(&sub("gst_c"), &c.id, checkout()).await.unwrap();
    let before = svc.offer_snapshot(&offer.offer_id).await.unwrap().counts;
    svc.shutdown().await;
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_x", 1, None)).await,
        Err(OrdersError::Unavailable)
    ));
    drop(svc);

    // A minute later, a new process on the same database.
    tokio::time::advance(Duration::from_secs(60)).await;
    let store = Store::connect(&db.url).await.unwrap();
    let svc = OrderService::start(store.clone(), config(ms(t0 + MIN)))
        .await
        .unwrap();
    assert_eq!(
        before,
        StockCounts {
            allotted: 5,
            available: 0,
            held: 3,
            sold: 2
        }
    );
    assert_eq!(
        assert_consistent(&store, &svc, &offer.offer_id).await,
        before,
        "counts rebuilt"
    );
    assert_eq!(
        store.reservation(&a.id).await.unwrap().state,
        ReservationState::Held
    );

    // Per-buyer tallies rebuilt: held (a) and bought (c) both count.
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_a", 1, None)).await,
        Err(OrdersError::OverLimit {
            limit: 2,
            already: 2
        })
    ));
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_c", 1, None)).await,
        Err(OrdersError::OverLimit {
            limit: 2,
            already: 2
        })
    ));
    // Idempotency keys survive the restart.
    assert_eq!(
        svc.reserve(tap(&offer, "gst_a", 2, Some("tap-a")))
            .await
            .unwrap(),
        a
    );
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_a", 1, Some("tap-a"))).await,
        Err(OrdersError::IdempotencyMismatch)
    ));

    // Expiries are armed again: ten minutes after the taps, a and b lapse.
    tokio::time::advance(Duration::from_secs(9 * 60 + 1)).await;
    let (svc2, id) = (svc.clone(), offer.offer_id.clone());
    eventually("held units expire after the restart", || {
        let (svc, id) = (svc2.clone(), id.clone());
        async move { svc.offer_snapshot(&id).await.unwrap().counts.held == 0 }
    })
    .await;
    let after = assert_consistent(&store, &svc, &offer.offer_id).await;
    assert_eq!(
        after,
        StockCounts {
            allotted: 5,
            available: 3,
            held: 0,
            sold: 2
        }
    );
    assert_eq!(
        store.reservation(&b.id).await.unwrap().state,
        ReservationState::Expired
    );
    svc.reserve(tap(&offer, "gst_a", 2, None)).await.unwrap();
    svc.shutdown().await;
    store.close().await;
}
both_engines!(
    #[tokio::test(start_paused = true)]
    restart,
    a_restart_rebuilds_everything
);

// ------------------------------------------------------------ idempotency --

async fn idempotency_keys_are_per_buyer_and_bind_the_request(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 100).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 3, 3))
        .await
        .unwrap();
    let other = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 3, 3))
        .await
        .unwrap();

    let first = svc
        .reserve(tap(&offer, "gst_a", 1, Some("k1")))
        .await
        .unwrap();
    assert_eq!(
        svc.reserve(tap(&offer, "gst_a", 1, Some("k1")))
            .await
            .unwrap(),
        first
    );
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_a", 2, Some("k1"))).await,
        Err(OrdersError::IdempotencyMismatch)
    ));
    assert!(matches!(
        svc.reserve(tap(&other, "gst_a", 1, Some("k1"))).await,
        Err(OrdersError::IdempotencyMismatch)
    ));
    let b = svc
        .reserve(tap(&offer, "gst_b", 1, Some("k1")))
        .await
        .unwrap();
    assert_ne!(b.id, first.id, "another buyer's key is another key");
    assert_eq!(
        svc.offer_snapshot(&offer.offer_id)
            .await
            .unwrap()
            .counts
            .held,
        2
    );

    // A refusal does not bind the key: once units are back, it buys.
    svc.reserve(tap(&offer, "gst_c", 1, None)).await.unwrap();
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_d", 1, Some("late"))).await,
        Err(OrdersError::SoldOut { .. })
    ));
    svc.cancel_reservation(&sub("gst_b"), &b.id).await.unwrap();
    let late = svc
        .reserve(tap(&offer, "gst_d", 1, Some("late")))
        .await
        .unwrap();
    assert_eq!(
        svc.reserve(tap(&offer, "gst_d", 1, Some("late")))
            .await
            .unwrap(),
        late
    );

    assert!(matches!(
        svc.reserve(tap(&offer, "gst_e", 1, Some("bad key with spaces")))
            .await,
        Err(OrdersError::Validation(_))
    ));
    // As long as the API documents, and not a character more.
    let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN);
    let too_long = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
    match svc.reserve(tap(&offer, "gst_e", 1, Some(&too_long))).await {
        Err(OrdersError::Validation(errors)) => {
            assert_eq!(errors[0].field, "idempotency_key");
            assert_eq!(errors[0].code, "invalid_idempotency_key");
            assert!(errors[0].message.contains("100"), "{}", errors[0].message);
        }
        other => panic!("a 101-character key must be refused: {other:?}"),
    }
    svc.cancel_reservation(&sub("gst_d"), &late.id)
        .await
        .unwrap();
    svc.reserve(tap(&offer, "gst_e", 1, Some(&longest)))
        .await
        .unwrap();
    // A buyer that is neither an account nor a guest cannot reach the
    // service any more: it is not a `Subject`.
    assert!(domain::Subject::parse("nobody").is_err());
    assert!(matches!(
        svc.reserve(ReserveRequest {
            offer: OfferId::generate(),
            ..tap(&offer, "gst_a", 1, None)
        })
        .await,
        Err(OrdersError::NotFound)
    ));
    assert_consistent(&store, &svc, &offer.offer_id).await;
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    idempotency,
    idempotency_keys_are_per_buyer_and_bind_the_request
);

// --------------------------------------------------------- who may buy --

async fn an_accounts_only_offer_refuses_guests(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 100).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(
            &farm.owner.id,
            NewOffer {
                buyers: Buyers::AccountsOnly,
                ..new_offer(&farm, 10, 2)
            },
        )
        .await
        .unwrap();
    assert_eq!(offer.buyers, Buyers::AccountsOnly);
    let guest = store
        .create_guest(&DisplayName::parse("路人").unwrap(), ms(1))
        .await
        .unwrap();
    for key in [None, Some("g-1")] {
        let refused = svc.reserve(tap(&offer, guest.as_str(), 1, key)).await;
        assert!(
            matches!(refused, Err(OrdersError::AccountRequired)),
            "{refused:?}"
        );
    }
    let e = OrdersError::AccountRequired;
    assert_eq!(e.code(), "account_required");
    let held = svc
        .reserve(tap(&offer, farm.owner.id.as_str(), 2, Some("g-1")))
        .await
        .unwrap();
    assert_eq!(held.quantity, 2);
    // The rule is the offer's: it survives a restart and reads back.
    svc.shutdown().await;
    let svc = service(&store).await;
    let again = svc.offer_snapshot(&offer.offer_id).await.unwrap();
    assert_eq!(again.buyers, Buyers::AccountsOnly);
    assert!(matches!(
        svc.reserve(tap(&offer, guest.as_str(), 1, None)).await,
        Err(OrdersError::AccountRequired)
    ));
    // Offers made without saying keep today's rule: anyone may buy.
    let open = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 10, 2))
        .await
        .unwrap();
    assert_eq!(open.buyers, Buyers::Anyone);
    svc.reserve(tap(&open, guest.as_str(), 1, None))
        .await
        .unwrap();
    assert_consistent(&store, &svc, &offer.offer_id).await;
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    accounts_only,
    an_accounts_only_offer_refuses_guests
);

/// Guests one browser started, one after another, are one person: the
/// per-buyer limit counts across them, also after a restart rebuilt the
/// tallies from the database.
async fn linked_guests_share_one_limit_across_a_restart(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 100).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 40, 2))
        .await
        .unwrap();
    let name = DisplayName::parse("路人").unwrap();
    let first = store.create_guest(&name, ms(1)).await.unwrap();
    let person = store.person_of(&sub(first.as_str())).await.unwrap();
    assert_eq!(
        person,
        sub(first.as_str()),
        "a fresh guest is its own person"
    );
    let second = store
        .create_guest_of(&name, Some(person.as_str()), ms(2))
        .await
        .unwrap();
    let stranger = store.create_guest(&name, ms(3)).await.unwrap();

    let a = svc
        .reserve(tap(&offer, first.as_str(), 1, None))
        .await
        .unwrap();
    let b = svc
        .reserve(tap(&offer, second.as_str(), 1, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.reserve(tap(&offer, second.as_str(), 1, None)).await,
        Err(OrdersError::OverLimit {
            limit: 2,
            already: 2
        })
    ));
    // Someone else is not affected; and the hold stays the second guest's.
    svc.reserve(tap(&offer, stranger.as_str(), 2, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.confirm(&sub(first.as_str()), &b.id, checkout()).await,
        Err(OrdersError::Forbidden)
    ));
    let order = svc
        .confirm(&sub(first.as_str()), &a.id, checkout())
        .await
        .unwrap();

    // A new process rebuilds the person's tally: one bought, one held.
    svc.shutdown().await;
    drop(svc);
    let store = Store::connect(&db.url).await.unwrap();
    let svc = service(&store).await;
    let third = store
        .create_guest_of(&name, Some(person.as_str()), ms(4))
        .await
        .unwrap();
    assert!(matches!(
        svc.reserve(tap(&offer, third.as_str(), 1, None)).await,
        Err(OrdersError::OverLimit {
            limit: 2,
            already: 2
        })
    ));
    // Giving units back frees the person's limit, whichever guest gives.
    svc.cancel_reservation(&sub(second.as_str()), &b.id)
        .await
        .unwrap();
    svc.reserve(tap(&offer, third.as_str(), 1, None))
        .await
        .unwrap();
    svc.cancel_order(&farm.owner.id, &order.id, Reason::parse("").unwrap())
        .await
        .unwrap();
    svc.reserve(tap(&offer, second.as_str(), 1, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.reserve(tap(&offer, first.as_str(), 1, None)).await,
        Err(OrdersError::OverLimit { .. })
    ));
    let counts = assert_consistent(&store, &svc, &offer.offer_id).await;
    assert_eq!(counts.held, 4, "two for the person, two for the stranger");
    svc.shutdown().await;
    store.close().await;
}
both_engines!(
    #[tokio::test]
    linked_guests,
    linked_guests_share_one_limit_across_a_restart
);

// ---------------------------------------------------------- order life --

async fn an_order_goes_from_tap_to_doorstep(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 100).await;
    let stranger = self::farm(&store, 1).await;
    let svc = service(&store).await;
    let mut events = svc.events();
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 10, 3))
        .await
        .unwrap();
    assert_eq!(
        offer.ships_on.unwrap().to_string(),
        "2026-10-08",
        "presale date carried"
    );

    let held = svc
        .reserve(tap(&offer, "gst_buyer", 2, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.confirm(&sub("gst_other"), &held.id, checkout()).await,
        Err(OrdersError::Forbidden)
    ));
    assert!(matches!(
        svc.cancel_reservation(&sub("gst_other"), &held.id).await,
        Err(OrdersError::Forbidden)
    ));
    let order = svc
        .confirm(&sub("gst_buyer"), &held.id, checkout())
        .await
        .unwrap();
    assert_eq!(
        (order.state, order.quantity, order.total.get()),
        (OrderState::Placed, 2, 19_800)
    );
    assert_eq!(order.mobile.as_str(), "13800138000");
    let again = svc
        .confirm(&sub("gst_buyer"), &held.id, checkout())
        .await
        .unwrap();
    assert_eq!(
        again.id, order.id,
        "a double-submitted confirm places one order"
    );
    assert!(matches!(
        svc.cancel_reservation(&sub("gst_buyer"), &held.id).await,
        Err(OrdersError::InvalidState(
            StateConflict::ReservationConfirmed
        ))
    ));

    // The buyer's private link.
    assert_ne!(order.token, order.id.as_str());
    assert_eq!(svc.order_by_token(&order.token).await.unwrap().id, order.id);
    assert!(matches!(
        svc.order_by_token(&domain::secret_token()).await,
        Err(OrdersError::NotFound)
    ));
    assert!(matches!(
        svc.order_by_token(order.id.as_str()).await,
        Err(OrdersError::NotFound)
    ));

    // The ticker heard a sale with a coarse place only.
    let sale = std::iter::from_fn(|| events.try_recv().ok())
        .find_map(|e| match e {
            OfferEvent::Sale {
                quantity, place, ..
            } => Some((quantity, place)),
            _ => None,
        })
        .expect("a sale event");
    assert_eq!(sale, (2, Some("山西 忻州市".to_owned())));

    // Only the owner sees and moves orders.
    let owner = &farm.owner.id;
    let list = svc
        .orders_of_shop(owner, &farm.shop.id, OrderFilter::default())
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert!(matches!(
        svc.orders_of_shop(&stranger.owner.id, &farm.shop.id, OrderFilter::default())
            .await,
        Err(OrdersError::Forbidden)
    ));
    assert!(matches!(
        svc.mark_paid(&stranger.owner.id, &order.id).await,
        Err(OrdersError::Forbidden)
    ));

    let carrier = || Carrier::parse("顺丰").unwrap();
    let tracking = || TrackingNumber::parse("SF1234567890").unwrap();
    assert!(
        matches!(
            svc.mark_shipped(owner, &order.id, carrier(), tracking())
                .await,
            Err(OrdersError::InvalidState(StateConflict::Order(_)))
        ),
        "a transfer order ships once paid"
    );
    assert!(matches!(
        svc.mark_delivered(owner, &order.id).await,
        Err(OrdersError::InvalidState(_))
    ));
    assert_eq!(
        svc.mark_paid(owner, &order.id).await.unwrap().state,
        OrderState::Paid
    );
    assert!(matches!(
        svc.mark_paid(owner, &order.id).await,
        Err(OrdersError::InvalidState(_))
    ));
    let shipped = svc
        .mark_shipped(owner, &order.id, carrier(), tracking())
        .await
        .unwrap();
    assert_eq!(shipped.state, OrderState::Shipped);
    assert_eq!(
        shipped.tracking_number.as_ref().unwrap().as_str(),
        "SF1234567890"
    );
    let delivered = svc.mark_delivered(owner, &order.id).await.unwrap();
    assert_eq!(delivered.state, OrderState::Delivered);
    assert!(
        delivered.paid_at.is_some()
            && delivered.shipped_at.is_some()
            && delivered.delivered_at.is_some()
    );
    assert!(matches!(
        svc.cancel_order(owner, &order.id, Reason::parse("x").unwrap())
            .await,
        Err(OrdersError::InvalidState(_))
    ));
    assert_eq!(
        svc.order_by_token(&order.token).await.unwrap().state,
        OrderState::Delivered
    );

    // A second, cash-on-delivery order, for filters and the export.
    let cod = svc.reserve(tap(&offer, "usr_cod", 1, None)).await.unwrap();
    let cod = svc
        .confirm(
            &sub("usr_cod"),
            &cod.id,
            Checkout::parse(
                "=王五",
                "13900139000",
                "北京市朝阳区建国路88号",
                "cash_on_delivery",
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        svc.mark_shipped(owner, &cod.id, carrier(), tracking())
            .await
            .unwrap()
            .state,
        OrderState::Shipped,
        "cash on delivery ships unpaid"
    );
    let delivered_only = OrderFilter {
        state: Some(OrderState::Delivered),
        ..OrderFilter::default()
    };
    let list = svc
        .orders_of_shop(owner, &farm.shop.id, delivered_only)
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|o| &o.id).collect::<Vec<_>>(),
        vec![&order.id]
    );
    let by_broadcast = OrderFilter {
        broadcast: Some(farm.broadcast.id.clone()),
        product: Some(farm.product.id.clone()),
        ..OrderFilter::default()
    };
    assert_eq!(
        svc.orders_of_shop(owner, &farm.shop.id, by_broadcast)
            .await
            .unwrap()
            .len(),
        2
    );
    let elsewhere = OrderFilter {
        broadcast: Some(stranger.broadcast.id.clone()),
        ..OrderFilter::default()
    };
    assert!(
        svc.orders_of_shop(owner, &farm.shop.id, elsewhere)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(svc.orders_of_buyer(&sub("usr_cod")).await.unwrap().len(), 1);

    let csv = svc
        .export_csv(
            owner,
            &farm.shop.id,
            OrderFilter::default(),
            SheetOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{FEFF}订单号,下单时间(UTC+08:00),状态"),
        "BOM and header"
    );
    assert_eq!(csv.matches("\r\n").count(), 3, "header and two rows");
    assert!(
        csv.contains("\"山西省忻州市岢岚县宋家沟村, \"\"东头\"\"第三户\n12号\""),
        "comma, quotes and newline quoted: {csv}"
    );
    assert!(csv.contains(",\"'=王五\","), "formula guarded");
    assert!(csv.contains(",13800138000,") && csv.contains(",198.00,") && csv.contains(",已送达,"));
    assert!(matches!(
        svc.export_csv(
            &stranger.owner.id,
            &farm.shop.id,
            OrderFilter::default(),
            SheetOptions::default()
        )
        .await,
        Err(OrdersError::Forbidden)
    ));
    assert_consistent(&store, &svc, &offer.offer_id).await;
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    order_life,
    an_order_goes_from_tap_to_doorstep
);

// ------------------------------------------------ where units go back --

async fn units_return_to_the_offer_while_on_sale_then_to_the_product(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 20).await;
    let svc = service(&store).await;
    let owner = &farm.owner.id;
    let offer = svc
        .create_offer(owner, new_offer(&farm, 10, 5))
        .await
        .unwrap();
    let stock = || async { store.product(&farm.product.id).await.unwrap().stock };
    assert_eq!(
        stock().await,
        10,
        "allotting takes units out of the product"
    );

    let mut orders = Vec::new();
    for buyer in ["gst_a", "gst_b", "gst_c", "gst_d"] {
        let r = svc.reserve(tap(&offer, buyer, 2, None)).await.unwrap();
        orders.push(svc.confirm(&sub(buyer), &r.id, checkout()).await.unwrap());
    }
    let held = svc.reserve(tap(&offer, "gst_e", 1, None)).await.unwrap();
    assert_eq!(
        assert_consistent(&store, &svc, &offer.offer_id).await,
        StockCounts {
            allotted: 10,
            available: 1,
            held: 1,
            sold: 8
        }
    );

    // While on sale: a cancelled unshipped order's units go back on sale.
    let cancelled = svc
        .cancel_order(owner, &orders[0].id, Reason::parse("买家不要了").unwrap())
        .await
        .unwrap();
    assert_eq!(cancelled.state, OrderState::Cancelled);
    assert_eq!(cancelled.cancel_reason.unwrap().as_str(), "买家不要了");
    assert_eq!(
        assert_consistent(&store, &svc, &offer.offer_id).await,
        StockCounts {
            allotted: 10,
            available: 3,
            held: 1,
            sold: 6
        }
    );
    // ... and stop counting towards that buyer's limit.
    svc.reserve(tap(&offer, "gst_a", 3, None)).await.unwrap();

    // Ending returns what is available to the product; the held
    // reservation may still be confirmed.
    let ended = svc.end_offer(owner, &offer.offer_id).await.unwrap();
    assert_eq!(ended.state, OfferState::Ended);
    assert_eq!(
        ended.counts,
        StockCounts {
            allotted: 10,
            available: 0,
            held: 4,
            sold: 6
        }
    );
    assert_eq!(stock().await, 10);
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_z", 1, None)).await,
        Err(OrdersError::Ended)
    ));
    svc.confirm(&sub("gst_e"), &held.id, checkout())
        .await
        .unwrap();

    // After the end: cancelled unshipped orders go back to the product;
    // a shipped order's units do not come back by themselves.
    svc.mark_paid(owner, &orders[1].id).await.unwrap();
    svc.cancel_order(owner, &orders[1].id, Reason::parse("").unwrap())
        .await
        .unwrap();
    assert_eq!(stock().await, 12);
    svc.mark_paid(owner, &orders[2].id).await.unwrap();
    svc.mark_shipped(
        owner,
        &orders[2].id,
        Carrier::parse("中通").unwrap(),
        TrackingNumber::parse("7300001").unwrap(),
    )
    .await
    .unwrap();
    svc.cancel_order(owner, &orders[2].id, Reason::parse("退回").unwrap())
        .await
        .unwrap();
    assert_eq!(stock().await, 12);
    let counts = assert_consistent(&store, &svc, &offer.offer_id).await;
    assert_eq!(
        counts,
        StockCounts {
            allotted: 8,
            available: 0,
            held: 3,
            sold: 5
        }
    );

    // Non-owners cannot end offers; an ended offer ends once.
    let stranger = self::farm(&store, 1).await;
    assert!(matches!(
        svc.end_offer(&stranger.owner.id, &offer.offer_id).await,
        Err(OrdersError::Forbidden)
    ));
    assert_eq!(
        svc.end_offer(owner, &offer.offer_id).await.unwrap().counts,
        counts
    );
    svc.shutdown().await;

    // After a restart the ended offer is loaded on demand and still correct.
    let svc = service(&store).await;
    svc.cancel_order(owner, &orders[3].id, Reason::parse("").unwrap())
        .await
        .unwrap();
    assert_eq!(stock().await, 14);
    assert_eq!(
        assert_consistent(&store, &svc, &offer.offer_id).await,
        StockCounts {
            allotted: 6,
            available: 0,
            held: 3,
            sold: 3
        }
    );
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    units_return,
    units_return_to_the_offer_while_on_sale_then_to_the_product
);

// --------------------------------------------------------- offer rules --

async fn offers_check_owner_stock_and_times(db: TestDb) {
    let _still = HoldClock::start();
    let store = db.store().await.unwrap();
    let farm = farm(&store, 5).await;
    let stranger = self::farm(&store, 5).await;
    let t0 = 1_800_000_000_000;
    let config = OrdersConfig {
        clock: Clock::starting_at(ms(t0)),
        ..OrdersConfig::default()
    };
    let svc = OrderService::start(store.clone(), config).await.unwrap();
    let mut events = svc.events();
    let owner = &farm.owner.id;

    assert!(matches!(
        svc.create_offer(&stranger.owner.id, new_offer(&farm, 1, 1))
            .await,
        Err(OrdersError::Forbidden)
    ));
    let Err(OrdersError::Validation(errors)) =
        svc.create_offer(owner, new_offer(&farm, 6, 0)).await
    else {
        panic!("validation expected")
    };
    let codes: Vec<_> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("per_buyer_limit", "too_small"),
            ("quantity", "exceeds_stock")
        ]
    );
    let foreign = NewOffer {
        product: stranger.product.id.clone(),
        ..new_offer(&farm, 1, 1)
    };
    assert!(matches!(
        svc.create_offer(owner, foreign).await,
        Err(OrdersError::Validation(_))
    ));

    // A countdown: starts in a minute, ends after five.
    let timed = NewOffer {
        starts_at: Some(ms(t0 + MIN)),
        ends_at: Some(ms(t0 + 5 * MIN)),
        ..new_offer(&farm, 5, 5)
    };
    let offer = svc.create_offer(owner, timed).await.unwrap();
    assert_eq!(offer.state, OfferState::Upcoming);
    assert_eq!(store.product(&farm.product.id).await.unwrap().stock, 0);
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_a", 1, None)).await,
        Err(OrdersError::NotStarted { starts_at }) if starts_at == ms(t0 + MIN)
    ));
    tokio::time::advance(Duration::from_secs(60)).await;
    svc.reserve(tap(&offer, "gst_a", 2, None)).await.unwrap();
    assert_eq!(
        svc.offers_of_broadcast(&farm.broadcast.id).await.unwrap()[0].state,
        OfferState::Open
    );

    // At the end time the offer ends by itself and unsold units go home.
    tokio::time::advance(Duration::from_secs(4 * 60)).await;
    let (svc2, id) = (svc.clone(), offer.offer_id.clone());
    eventually("the offer ends at its end time", || {
        let (svc, id) = (svc2.clone(), id.clone());
        async move { svc.offer_snapshot(&id).await.unwrap().ended_at.is_some() }
    })
    .await;
    assert_eq!(store.product(&farm.product.id).await.unwrap().stock, 3);
    assert!(matches!(
        svc.reserve(tap(&offer, "gst_b", 1, None)).await,
        Err(OrdersError::Ended)
    ));
    let states: Vec<OfferState> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            OfferEvent::Snapshot { snapshot } if snapshot.offer_id == offer.offer_id => {
                Some(snapshot.state)
            }
            _ => None,
        })
        .collect();
    assert_eq!(states.first(), Some(&OfferState::Upcoming));
    assert!(states.contains(&OfferState::Open));
    assert_eq!(states.last(), Some(&OfferState::Ended));

    // No new offers in an ended broadcast.
    store
        .set_broadcast_state(&farm.broadcast.id, BroadcastState::Ended, ms(t0))
        .await
        .unwrap();
    assert!(matches!(
        svc.create_offer(owner, new_offer(&farm, 1, 1)).await,
        Err(OrdersError::InvalidState(StateConflict::BroadcastEnded))
    ));
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test(start_paused = true)]
    offer_rules,
    offers_check_owner_stock_and_times
);

// ------------------------------------------------------ failed commits --

async fn a_failed_commit_acknowledges_nothing_and_rebuilds(db: TestDb) {
    use sqlx::{Connection, Executor};
    let store = db.store().await.unwrap();
    let farm = farm(&store, 10).await;
    let svc = service(&store).await;
    let offer = svc
        .create_offer(&farm.owner.id, new_offer(&farm, 10, 5))
        .await
        .unwrap();
    svc.reserve(tap(&offer, "gst_a", 2, None)).await.unwrap();

    // Make every new reservation fail in the database, behind the
    // service's back (a full disk or a lost connection looks the same).
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let (inject, heal) = match db.engine {
        Engine::Sqlite => (
            "CREATE TRIGGER injected BEFORE INSERT ON reservations BEGIN SELECT RAISE(ABORT, 'injected'); END",
            "DROP TRIGGER injected",
        ),
        Engine::Postgres => (
            "ALTER TABLE reservations ADD CONSTRAINT injected CHECK (quantity < 0) NOT VALID",
            "ALTER TABLE reservations DROP CONSTRAINT injected",
        ),
    };
    conn.execute(inject).await.unwrap();
    let failed = svc.reserve(tap(&offer, "gst_b", 3, Some("retry-me"))).await;
    assert!(matches!(failed, Err(OrdersError::Store(_))), "{failed:?}");
    assert_eq!(
        svc.offer_snapshot(&offer.offer_id)
            .await
            .unwrap()
            .counts
            .held,
        2,
        "a hold that was not committed is never shown"
    );
    conn.execute(heal).await.unwrap();
    conn.close().await.unwrap();

    // The writer rebuilt its ledger from the database: the retry is decided
    // afresh, the failed attempt does not count towards the buyer's limit
    // (3 + 3 + 2 would exceed 5), and memory agrees with the rows.
    let retried = svc
        .reserve(tap(&offer, "gst_b", 3, Some("retry-me")))
        .await
        .unwrap();
    svc.reserve(tap(&offer, "gst_b", 2, None)).await.unwrap();
    assert_eq!(store.reservation(&retried.id).await.unwrap().quantity, 3);
    let counts = assert_consistent(&store, &svc, &offer.offer_id).await;
    assert_eq!(
        counts,
        StockCounts {
            allotted: 10,
            available: 3,
            held: 7,
            sold: 0
        }
    );
    svc.shutdown().await;
}
both_engines!(
    #[tokio::test]
    failed_commit,
    a_failed_commit_acknowledges_nothing_and_rebuilds
);

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}

fn sub(raw: &str) -> domain::Subject {
    domain::Subject::from_trusted(raw)
}

// ---------------------------------------------------------------- cluster --

/// Claims on offers for services sharing one database, kept in memory and
/// answered in process: the seam the server fills with NATS leases and
/// request/reply. A claim can be taken away without its holder noticing,
/// as from a node that was paused past its lease.
#[derive(Clone, Default)]
struct Claims(std::sync::Arc<std::sync::Mutex<ClaimBoard>>);

#[derive(Default)]
struct ClaimBoard {
    last_token: u64,
    holders: HashMap<OfferId, (u64, ForwardedCalls, tokio::sync::watch::Sender<bool>)>,
    /// Claims taken away from holders that did not notice.
    unnoticed: Vec<tokio::sync::watch::Sender<bool>>,
}

impl Claims {
    fn board(&self) -> std::sync::MutexGuard<'_, ClaimBoard> {
        self.0.lock().unwrap()
    }

    fn node(&self) -> std::sync::Arc<dyn Placement> {
        std::sync::Arc::new(self.clone())
    }

    fn token_of(&self, offer: &OfferId) -> Option<u64> {
        self.board().holders.get(offer).map(|(token, ..)| *token)
    }

    /// The holder's claim ends, and the holder is not told.
    fn take_away_unnoticed(&self, offer: &OfferId) {
        let mut board = self.board();
        let (_, _, lost) = board.holders.remove(offer).expect("a holder");
        board.unnoticed.push(lost);
    }
}

struct HeldClaim {
    claims: Claims,
    offer: OfferId,
    token: u64,
    lost: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl OfferClaim for HeldClaim {
    fn token(&self) -> u64 {
        self.token
    }

    async fn lost(&self) {
        let _ = self.lost.clone().wait_for(|lost| *lost).await;
    }

    async fn release(&self) {
        let mut board = self.claims.board();
        if board
            .holders
            .get(&self.offer)
            .is_some_and(|(t, ..)| *t == self.token)
        {
            let (_, _, lost) = board.holders.remove(&self.offer).unwrap();
            let _ = lost.send(true);
        }
    }
}

#[async_trait::async_trait]
impl Placement for Claims {
    async fn claim(
        &self,
        offer: &OfferId,
        calls: ForwardedCalls,
    ) -> Result<Option<std::sync::Arc<dyn OfferClaim>>, OrdersError> {
        let mut board = self.board();
        if board.holders.contains_key(offer) {
            return Ok(None);
        }
        board.last_token += 1;
        let token = board.last_token;
        let (tx, lost) = tokio::sync::watch::channel(false);
        board.holders.insert(offer.clone(), (token, calls, tx));
        Ok(Some(std::sync::Arc::new(HeldClaim {
            claims: self.clone(),
            offer: offer.clone(),
            token,
            lost,
        })))
    }

    async fn forward(&self, offer: &OfferId, call: Vec<u8>) -> Result<Vec<u8>, Unreachable> {
        let calls = self
            .board()
            .holders
            .get(offer)
            .map(|(_, calls, _)| calls.clone());
        match calls {
            Some(calls) => Ok(calls.answer(&call).await),
            None => Err(Unreachable::NoWriter),
        }
    }
}

async fn a_paused_writer_that_lost_its_claim_commits_nothing(db: TestDb) {
    let store = db.store().await.unwrap();
    let farm = farm(&store, 1_000).await;
    let claims = Claims::default();
    let start =
        || OrderService::start_in_cluster(store.clone(), OrdersConfig::default(), claims.node());
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    let offer = a
        .create_offer(&farm.owner.id, new_offer(&farm, 4, 3))
        .await
        .unwrap();
    let first = claims.token_of(&offer.offer_id).expect("node a writes it");

    // A tap on node b is decided by node a's writer; its retry on node a
    // is the same reservation, and the limit is the writer's.
    let held = b
        .reserve(tap(&offer, "gst_b1", 1, Some("k1")))
        .await
        .unwrap();
    let again = a
        .reserve(tap(&offer, "gst_b1", 1, Some("k1")))
        .await
        .unwrap();
    assert_eq!(held.id, again.id);
    assert!(matches!(
        b.reserve(tap(&offer, "gst_b1", 3, None)).await,
        Err(OrdersError::OverLimit {
            limit: 3,
            already: 1
        })
    ));

    // Node a stalls past its claim without noticing; node b takes over and
    // sells the last three bags.
    claims.take_away_unnoticed(&offer.offer_id);
    b.reserve(tap(&offer, "gst_b2", 3, None)).await.unwrap();
    let second = claims.token_of(&offer.offer_id).expect("node b writes it");
    assert!(second > first, "a newer claim, a larger token");
    // Node a wakes with three bags in its memory and decides a tap: the
    // fence refuses its commit, and the tap goes to node b's writer.
    assert!(matches!(
        a.reserve(tap(&offer, "gst_a1", 1, None)).await,
        Err(OrdersError::SoldOut { available: 0 })
    ));
    // Node b knows the keys node a's writer had answered.
    assert_eq!(
        a.reserve(tap(&offer, "gst_b1", 1, Some("k1")))
            .await
            .unwrap()
            .id,
        held.id
    );

    let audit = store.audit_offer(&offer.offer_id).await.unwrap();
    assert!(audit.is_consistent(), "{audit:?}");
    assert_eq!(audit.counts.held, 4, "sold once, never over");
    assert_eq!(
        a.offer_snapshot(&offer.offer_id).await.unwrap().counts,
        audit.counts
    );
    a.shutdown().await;
    b.shutdown().await;
    store.close().await;
}

both_engines!(
    #[tokio::test]
    a_fenced_writer_in_a_cluster,
    a_paused_writer_that_lost_its_claim_commits_nothing
);
