//! Storage of offers, reservations and orders, on both engines: each test
//! body runs once on a fresh SQLite file and once on a fresh PostgreSQL
//! database.

use domain::*;
use store::on_both_engines;
use store::*;

struct Setup {
    shop: ShopRecord,
    product: ProductRecord,
    broadcast: BroadcastRecord,
}

async fn setup(store: &Store, stock: u32) -> Setup {
    let owner = store
        .create_user(
            &Mobile::parse("13800138000").unwrap(),
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
                place: Place::parse("山西 岢岚县").unwrap(),
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
                title: ProductTitle::parse("小米").unwrap(),
                description: Description::parse("").unwrap(),
                unit: Unit::parse("20斤袋").unwrap(),
                price: Fen::price(16_800).unwrap(),
                stock,
                ships_on: None,
            },
            ms(1),
        )
        .await
        .unwrap();
    let broadcast = store
        .create_broadcast(
            NewBroadcast {
                shop_id: shop.id.clone(),
                title: BroadcastTitle::parse("秋收").unwrap(),
                scheduled_at: None,
                stream_key: "key".into(),
            },
            ms(1),
        )
        .await
        .unwrap();
    Setup {
        shop,
        product,
        broadcast,
    }
}

async fn offer(store: &Store, s: &Setup, quantity: u32) -> Result<OfferRecord, StoreError> {
    store
        .create_offer(
            NewOfferRecord {
                broadcast_id: s.broadcast.id.clone(),
                shop_id: s.shop.id.clone(),
                product_id: s.product.id.clone(),
                title: s.product.title.clone(),
                unit: s.product.unit.clone(),
                ships_on: None,
                price: Fen::price(9_900).unwrap(),
                quantity,
                per_buyer_limit: 5,
                buyers: Buyers::Anyone,
                hold_ms: 600_000,
                starts_at: None,
                ends_at: None,
            },
            ms(10),
        )
        .await
}

fn group(o: &OfferRecord, ended_before: bool) -> OfferGroup {
    let mut g = OfferGroup::new(o.id.clone(), o.product_id.clone(), ended_before);
    g.now = ms(100);
    g
}

fn hold(g: &mut OfferGroup, buyer: &str, quantity: u32, key: Option<&str>) -> ReservationId {
    let id = ReservationId::generate();
    g.holds.push(NewReservationRow {
        id: id.clone(),
        buyer: sub(buyer),
        quantity,
        created_at: ms(100),
        expires_at: ms(600_100),
        idempotency_key: key.map(str::to_owned),
    });
    g.delta.available -= i64::from(quantity);
    g.delta.held += i64::from(quantity);
    id
}

fn order_of(
    o: &OfferRecord,
    reservation: &ReservationId,
    buyer: &str,
    quantity: u32,
) -> NewOrderRecord {
    NewOrderRecord {
        id: OrderId::generate(),
        token: secret_token(),
        reservation_id: reservation.clone(),
        offer_id: o.id.clone(),
        broadcast_id: o.broadcast_id.clone(),
        shop_id: o.shop_id.clone(),
        product_id: o.product_id.clone(),
        buyer: sub(buyer),
        title: o.title.clone(),
        unit: o.unit.clone(),
        ships_on: None,
        quantity,
        unit_price: o.price,
        recipient_name: PersonName::parse("李四").unwrap(),
        mobile: Mobile::parse("13900139000").unwrap(),
        address: Address::parse("山西省忻州市岢岚县").unwrap(),
        coarse_place: Some("山西 忻州市".into()),
        payment_method: PaymentMethod::WechatTransfer,
        created_at: ms(200),
    }
}

on_both_engines!(
    offers_take_stock_and_many_holds_commit_at_once,
    |store: Store| async move {
        let s = setup(&store, 1_000).await;
        let o = offer(&store, &s, 600).await.unwrap();
        assert_eq!(o.counts, StockCounts::allot(600));
        assert_eq!(store.product(&s.product.id).await.unwrap().stock, 400);
        assert!(matches!(
            offer(&store, &s, 401).await,
            Err(StoreError::Conflict("stock"))
        ));
        assert_eq!(
            store.product(&s.product.id).await.unwrap().stock,
            400,
            "nothing taken"
        );

        // 300 reservations: several multi-row chunk sizes in one transaction.
        let mut g = group(&o, false);
        for i in 0..300 {
            let key = format!("k{i}");
            hold(
                &mut g,
                &format!("gst_{i}"),
                1,
                (i % 3 == 0).then_some(key.as_str()),
            );
        }
        store.commit_offer_group(&g).await.unwrap();
        let audit = store.audit_offer(&o.id).await.unwrap();
        assert!(audit.is_consistent(), "{audit:?}");
        assert_eq!(
            audit.counts,
            StockCounts {
                allotted: 600,
                available: 300,
                held: 300,
                sold: 0
            }
        );
        assert_eq!(store.held_reservations(&o.id).await.unwrap().len(), 300);
        let keyed = store.keyed_reservations_since(ms(0)).await.unwrap();
        assert_eq!(keyed.len(), 100);
        assert_eq!(keyed[0].unit_price.get(), 9_900);
        assert!(
            store
                .keyed_reservations_since(ms(101))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.offers_to_load().await.unwrap().len(), 1);
        assert_eq!(
            store.offers_of_broadcast(&s.broadcast.id).await.unwrap()[0].id,
            o.id
        );
    }
);

on_both_engines!(
    confirm_release_and_order_progress,
    |store: Store| async move {
        let s = setup(&store, 10).await;
        let o = offer(&store, &s, 10).await.unwrap();
        let mut g = group(&o, false);
        let a = hold(&mut g, "gst_a", 2, None);
        let b = hold(&mut g, "gst_b", 3, None);
        store.commit_offer_group(&g).await.unwrap();

        let mut g = group(&o, false);
        let order = order_of(&o, &a, "gst_a", 2);
        g.confirms.push(order.clone());
        g.delta.held -= 2;
        g.delta.sold += 2;
        g.releases.push(ReleaseRow {
            id: b.clone(),
            state: ReservationState::Expired,
            at: ms(300),
        });
        g.delta.held -= 3;
        g.delta.available += 3;
        store.commit_offer_group(&g).await.unwrap();
        let audit = store.audit_offer(&o.id).await.unwrap();
        assert!(audit.is_consistent(), "{audit:?}");
        assert_eq!(
            audit.counts,
            StockCounts {
                allotted: 10,
                available: 8,
                held: 0,
                sold: 2
            }
        );
        assert_eq!(
            store.reservation(&b).await.unwrap().state,
            ReservationState::Expired
        );
        assert_eq!(
            store.reservation(&a).await.unwrap().state,
            ReservationState::Confirmed
        );
        assert_eq!(
            store.bought_per_buyer(&o.id).await.unwrap(),
            vec![(sub("gst_a"), 2)]
        );

        let stored = store.order_by_token(&order.token).await.unwrap();
        assert_eq!(
            (stored.id.clone(), stored.total.get(), stored.state),
            (order.id.clone(), 19_800, OrderState::Placed)
        );
        assert_eq!(store.order_of_reservation(&a).await.unwrap().id, order.id);
        assert_eq!(store.orders_of_buyer(&sub("gst_a")).await.unwrap().len(), 1);

        let paid = OrderProgress {
            from: OrderState::Placed,
            to: OrderState::Paid,
            at: ms(400),
            shipping: None,
            cancel_reason: None,
        };
        assert!(store.update_order_state(&order.id, paid).await.unwrap());
        let stale = OrderProgress {
            from: OrderState::Placed,
            to: OrderState::Paid,
            at: ms(401),
            shipping: None,
            cancel_reason: None,
        };
        assert!(
            !store.update_order_state(&order.id, stale).await.unwrap(),
            "only from the state seen"
        );
        let carrier = Carrier::parse("顺丰").unwrap();
        let tracking = TrackingNumber::parse("SF1").unwrap();
        let ship = OrderProgress {
            from: OrderState::Paid,
            to: OrderState::Shipped,
            at: ms(500),
            shipping: Some((&carrier, &tracking)),
            cancel_reason: None,
        };
        assert!(store.update_order_state(&order.id, ship).await.unwrap());
        let shipped = store.order(&order.id).await.unwrap();
        assert_eq!(
            (shipped.paid_at, shipped.shipped_at),
            (Some(ms(400)), Some(ms(500)))
        );
        assert_eq!(shipped.carrier.unwrap().as_str(), "顺丰");

        let filter = |state| OrderFilter {
            state: Some(state),
            ..OrderFilter::default()
        };
        assert_eq!(
            store
                .orders_of_shop(&s.shop.id, &filter(OrderState::Shipped))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .orders_of_shop(&s.shop.id, &filter(OrderState::Placed))
                .await
                .unwrap()
                .is_empty()
        );
        let by_offer = OrderFilter {
            offer: Some(o.id.clone()),
            ..OrderFilter::default()
        };
        assert_eq!(
            store
                .orders_of_shop(&s.shop.id, &by_offer)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

on_both_engines!(a_bad_group_writes_nothing, |store: Store| async move {
    let s = setup(&store, 10).await;
    let o = offer(&store, &s, 3).await.unwrap();

    // Releasing a reservation that is not held: memory and database
    // disagree, so nothing of the group may land.
    let mut g = group(&o, false);
    let fresh = hold(&mut g, "gst_a", 1, None);
    g.releases.push(ReleaseRow {
        id: ReservationId::generate(),
        state: ReservationState::Cancelled,
        at: ms(100),
    });
    assert!(matches!(
        store.commit_offer_group(&g).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.reservation(&fresh).await,
        Err(StoreError::NotFound)
    ));

    // More held than allotted: the database's own check refuses it.
    let mut g = group(&o, false);
    let over = hold(&mut g, "gst_a", 4, None);
    assert!(store.commit_offer_group(&g).await.is_err());
    assert!(matches!(
        store.reservation(&over).await,
        Err(StoreError::NotFound)
    ));
    let audit = store.audit_offer(&o.id).await.unwrap();
    assert_eq!(audit.counts, StockCounts::allot(3));
    assert!(audit.is_consistent());
});

on_both_engines!(
    order_cancels_and_the_end_return_units,
    |store: Store| async move {
        let s = setup(&store, 10).await;
        let o = offer(&store, &s, 10).await.unwrap();
        let mut g = group(&o, false);
        let rs: Vec<_> = (0..3)
            .map(|i| hold(&mut g, &format!("gst_{i}"), 2, None))
            .collect();
        store.commit_offer_group(&g).await.unwrap();
        let mut g = group(&o, false);
        let orders: Vec<_> = rs
            .iter()
            .enumerate()
            .map(|(i, r)| order_of(&o, r, &format!("gst_{i}"), 2))
            .collect();
        g.confirms = orders.clone();
        g.delta.held -= 6;
        g.delta.sold += 6;
        store.commit_offer_group(&g).await.unwrap();

        // While on sale: back to the offer. A cancel from a stale state is void.
        let mut g = group(&o, false);
        g.order_cancels.push(OrderCancelRow {
            order_id: orders[0].id.clone(),
            from: OrderState::Placed,
            reason: Reason::parse("不要了").unwrap(),
            at: ms(300),
        });
        g.order_cancels.push(OrderCancelRow {
            order_id: orders[1].id.clone(),
            from: OrderState::Paid,
            reason: Reason::parse("").unwrap(),
            at: ms(300),
        });
        let outcome = store.commit_offer_group(&g).await.unwrap();
        assert_eq!(outcome.cancels_applied, vec![true, false]);
        let cancelled = store.order(&orders[0].id).await.unwrap();
        assert_eq!(
            (cancelled.state, cancelled.cancelled_at),
            (OrderState::Cancelled, Some(ms(300)))
        );
        assert_eq!(cancelled.cancel_reason.unwrap().as_str(), "不要了");
        let audit = store.audit_offer(&o.id).await.unwrap();
        assert_eq!(
            audit.counts,
            StockCounts {
                allotted: 10,
                available: 6,
                held: 0,
                sold: 4
            }
        );
        assert!(audit.is_consistent());

        // The end: what is available goes home to the product.
        let mut g = group(&o, false);
        g.end_at = Some(ms(400));
        store.commit_offer_group(&g).await.unwrap();
        let ended = store.offer(&o.id).await.unwrap();
        assert_eq!(ended.ended_at, Some(ms(400)));
        assert_eq!(
            ended.counts,
            StockCounts {
                allotted: 4,
                available: 0,
                held: 0,
                sold: 4
            }
        );
        assert_eq!(store.product(&s.product.id).await.unwrap().stock, 6);
        assert!(
            store.offers_to_load().await.unwrap().is_empty(),
            "ended and holding nothing"
        );

        // After the end: a cancelled order's units go to the product.
        let mut g = group(&o, true);
        g.order_cancels.push(OrderCancelRow {
            order_id: orders[1].id.clone(),
            from: OrderState::Placed,
            reason: Reason::parse("").unwrap(),
            at: ms(500),
        });
        assert_eq!(
            store.commit_offer_group(&g).await.unwrap().cancels_applied,
            vec![true]
        );
        let audit = store.audit_offer(&o.id).await.unwrap();
        assert_eq!(
            audit.counts,
            StockCounts {
                allotted: 2,
                available: 0,
                held: 0,
                sold: 2
            }
        );
        assert!(audit.is_consistent());
        assert_eq!(store.product(&s.product.id).await.unwrap().stock, 8);
    }
);

on_both_engines!(
    offers_keep_who_may_buy_and_tallies_read_per_person,
    |store: Store| async move {
        let s = setup(&store, 100).await;
        let open = offer(&store, &s, 10).await.unwrap();
        assert_eq!(open.buyers, Buyers::Anyone);
        let strict = store
            .create_offer(
                NewOfferRecord {
                    broadcast_id: s.broadcast.id.clone(),
                    shop_id: s.shop.id.clone(),
                    product_id: s.product.id.clone(),
                    title: s.product.title.clone(),
                    unit: s.product.unit.clone(),
                    ships_on: None,
                    price: Fen::price(9_900).unwrap(),
                    quantity: 10,
                    per_buyer_limit: 2,
                    buyers: Buyers::AccountsOnly,
                    hold_ms: 600_000,
                    starts_at: None,
                    ends_at: None,
                },
                ms(10),
            )
            .await
            .unwrap();
        assert_eq!(strict.buyers, Buyers::AccountsOnly);
        assert_eq!(
            store.offer(&strict.id).await.unwrap().buyers,
            Buyers::AccountsOnly
        );

        // One browser's guests: the second and third inherit the first's
        // person; a guest made with an account's cookie stands for it.
        let name = DisplayName::parse("路人").unwrap();
        let first = store.create_guest(&name, ms(1)).await.unwrap();
        store
            .create_session(NewSession {
                id: SessionId::generate(),
                token_hash: "first-cookie",
                subject: SessionSubject::Guest(first.clone()),
                user_agent: "",
                now: ms(1),
                expires_at: ms(100),
            })
            .await
            .unwrap();
        // Found even once the session has ended.
        let person = store
            .person_behind_session("first-cookie")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(person, first.as_str());
        assert_eq!(store.person_behind_session("no-such").await.unwrap(), None);
        let second = store
            .create_guest_of(&name, Some(&person), ms(2))
            .await
            .unwrap();
        store
            .create_session(NewSession {
                id: SessionId::generate(),
                token_hash: "second-cookie",
                subject: SessionSubject::Guest(second.clone()),
                user_agent: "",
                now: ms(2),
                expires_at: ms(3),
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .person_behind_session("second-cookie")
                .await
                .unwrap()
                .as_deref(),
            Some(first.as_str()),
            "the chain keeps its first person"
        );
        assert_eq!(
            store.person_of(&sub(second.as_str())).await.unwrap(),
            sub(first.as_str())
        );
        assert_eq!(
            store.person_of(&sub("usr_abc")).await.unwrap(),
            sub("usr_abc")
        );
        assert_eq!(
            store.person_of(&sub("gst_unknown")).await.unwrap(),
            sub("gst_unknown")
        );
        let user = store
            .create_user(
                &Mobile::parse("13900139111").unwrap(),
                &name,
                "$argon2id$fake",
                ms(1),
            )
            .await
            .unwrap();
        store
            .create_session(NewSession {
                id: SessionId::generate(),
                token_hash: "account-cookie",
                subject: SessionSubject::User(user.id.clone()),
                user_agent: "",
                now: ms(1),
                expires_at: ms(100),
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .person_behind_session("account-cookie")
                .await
                .unwrap()
                .as_deref(),
            Some(user.id.as_str())
        );
        let stranger = store.create_guest(&name, ms(3)).await.unwrap();

        let mut g = group(&open, false);
        let a = hold(&mut g, first.as_str(), 1, None);
        hold(&mut g, second.as_str(), 1, None);
        hold(&mut g, stranger.as_str(), 2, None);
        store.commit_offer_group(&g).await.unwrap();
        let mut g = group(&open, false);
        g.confirms.push(order_of(&open, &a, first.as_str(), 1));
        g.delta.held -= 1;
        g.delta.sold += 1;
        store.commit_offer_group(&g).await.unwrap();

        let mut held: Vec<(String, String, u32)> = store
            .held_reservations_by_person(&open.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(r, person)| (r.buyer.to_string(), person.to_string(), r.quantity))
            .collect();
        held.sort();
        let mut expected = vec![
            (second.to_string(), first.to_string(), 1),
            (stranger.to_string(), stranger.to_string(), 2),
        ];
        expected.sort();
        assert_eq!(held, expected);
        assert_eq!(
            store.bought_per_person(&open.id).await.unwrap(),
            vec![(sub(first.as_str()), 1)]
        );
    }
);

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}

fn sub(raw: &str) -> domain::Subject {
    domain::Subject::from_trusted(raw)
}

on_both_engines!(
    a_fenced_off_writer_commits_nothing,
    |store: Store| async move {
        let s = setup(&store, 100).await;
        let o = offer(&store, &s, 10).await.unwrap();
        // A single server's groups carry no fence.
        let mut g = group(&o, false);
        hold(&mut g, "gst_single", 1, None);
        store.commit_offer_group(&g).await.unwrap();

        // A cluster node takes the offer with token 5.
        assert!(store.raise_offer_fence(&o.id, 5).await.unwrap());
        assert!(
            !store.raise_offer_fence(&o.id, 5).await.unwrap(),
            "the same token twice"
        );
        assert!(
            !store.raise_offer_fence(&o.id, 3).await.unwrap(),
            "an older token"
        );
        let mut g = group(&o, false);
        g.fence = Some(5);
        hold(&mut g, "gst_first", 1, Some("k1"));
        store.commit_offer_group(&g).await.unwrap();

        // Another node takes over with token 9; the first one, paused,
        // wakes up and tries to commit: refused, and nothing is written.
        assert!(store.raise_offer_fence(&o.id, 9).await.unwrap());
        let mut late = group(&o, false);
        late.fence = Some(5);
        let lost = hold(&mut late, "gst_paused", 2, Some("k2"));
        assert!(matches!(
            store.commit_offer_group(&late).await,
            Err(StoreError::Fenced)
        ));
        assert!(
            store.reservation(&lost).await.is_err(),
            "the hold is not there"
        );
        let audit = store.audit_offer(&o.id).await.unwrap();
        assert!(audit.is_consistent(), "{audit:?}");
        assert_eq!(audit.counts.held, 2);

        // The new writer commits, and finds the old one's keyed taps.
        let mut g = group(&o, false);
        g.fence = Some(9);
        hold(&mut g, "gst_second", 1, None);
        store.commit_offer_group(&g).await.unwrap();
        let keyed = store
            .keyed_reservations_of_offer_since(&o.id, ms(0))
            .await
            .unwrap();
        assert_eq!(keyed.len(), 1);
        assert_eq!(keyed[0].reservation.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(store.audit_offer(&o.id).await.unwrap().counts.held, 3);
    }
);
