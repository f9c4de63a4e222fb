//! Live-channel storage on both engines: each test body runs once on a fresh
//! SQLite file and once on a fresh PostgreSQL database.

use domain::Subject;
use domain::*;
use store::on_both_engines;
use store::*;

struct Fixture {
    shop: ShopId,
    broadcast: BroadcastId,
    other_broadcast: BroadcastId,
}

async fn fixture(store: &Store) -> Fixture {
    let owner = store
        .create_user(
            &Mobile::parse("13800138000").unwrap(),
            &DisplayName::parse("老王").unwrap(),
            "$argon2id$fake",
            ms(1_000),
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
            ms(1_000),
        )
        .await
        .unwrap();
    let mut broadcasts = Vec::new();
    for title in ["收割", "脱粒"] {
        let b = store
            .create_broadcast(
                NewBroadcast {
                    shop_id: shop.id.clone(),
                    title: BroadcastTitle::parse(title).unwrap(),
                    scheduled_at: None,
                    stream_key: secret_token(),
                },
                ms(1_000),
            )
            .await
            .unwrap();
        broadcasts.push(b.id);
    }
    Fixture {
        shop: shop.id,
        other_broadcast: broadcasts.pop().unwrap(),
        broadcast: broadcasts.pop().unwrap(),
    }
}

fn message(
    f: &Fixture,
    broadcast: &BroadcastId,
    author: &str,
    text: &str,
    nonce: &str,
    seq: i64,
) -> NewChatMessage {
    NewChatMessage {
        id: ChatMessageId::generate(),
        broadcast_id: broadcast.clone(),
        shop_id: f.shop.clone(),
        author_subject: author.to_owned(),
        author_name: DisplayName::parse("小李").unwrap(),
        author_role: Role::Viewer,
        text: ChatText::parse(text).unwrap(),
        nonce: nonce.to_owned(),
        posted_at: ms(10_000 + seq),
        seq,
    }
}

on_both_engines!(
    history_is_ordered_bounded_and_deduplicated,
    |store: Store| async move {
        let f = fixture(&store).await;
        let mut writes = Vec::new();
        for i in 1..=60 {
            writes.push(ChatWrite::Post(message(
                &f,
                &f.broadcast,
                "gst_a",
                &format!("第{i}条"),
                &format!("n{i}"),
                i,
            )));
        }
        // A retry with a nonce already used posts nothing.
        let retry = message(&f, &f.broadcast, "gst_a", "第1条 again", "n1", 61);
        writes.push(ChatWrite::Post(retry.clone()));
        // Another broadcast's chat stays out of this one's history.
        writes.push(ChatWrite::Post(message(
            &f,
            &f.other_broadcast,
            "gst_a",
            "elsewhere",
            "n1",
            1,
        )));
        store.apply_chat_writes(&writes).await.unwrap();

        let history = store.chat_history(&f.broadcast, 50).await.unwrap();
        assert_eq!(history.len(), 50);
        assert_eq!(
            history.first().unwrap().text.as_str(),
            "第11条",
            "oldest first"
        );
        assert_eq!(history.last().unwrap().text.as_str(), "第60条");
        assert!(
            store.chat_message(&retry.id).await.unwrap().is_none(),
            "duplicate nonce was not stored"
        );
        assert_eq!(
            store
                .chat_history(&f.other_broadcast, 50)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

on_both_engines!(
    deletions_bans_and_clears_hide_messages,
    |store: Store| async move {
        let f = fixture(&store).await;
        let a1 = message(&f, &f.broadcast, "gst_a", "hello", "1", 1);
        let troll1 = message(&f, &f.broadcast, "gst_troll", "buy followers", "1", 2);
        let a2 = message(&f, &f.broadcast, "gst_a", "nice millet", "2", 3);
        let troll2 = message(&f, &f.other_broadcast, "gst_troll", "spam", "1", 1);
        // Asked before the ban (a buy over HTTP asks every time): the answer
        // must not outlive the ban.
        assert!(
            !store
                .is_chat_banned(&f.shop, &Subject::from_trusted("gst_troll"))
                .await
                .unwrap()
        );
        store
            .apply_chat_writes(&[
                ChatWrite::Post(a1.clone()),
                ChatWrite::Post(troll1.clone()),
                ChatWrite::Post(a2.clone()),
                ChatWrite::Post(troll2.clone()),
                ChatWrite::Delete {
                    message: a1.id.clone(),
                    by: "usr_mod".into(),
                    at: ms(20_000),
                },
                ChatWrite::Ban(BanRecord {
                    shop_id: f.shop.clone(),
                    subject: "gst_troll".into(),
                    banned_by: "usr_mod".into(),
                    reason: "spam".into(),
                    created_at: ms(20_001),
                }),
                ChatWrite::HideAuthor {
                    shop: f.shop.clone(),
                    subject: "gst_troll".into(),
                    at: ms(20_001),
                },
            ])
            .await
            .unwrap();

        let visible: Vec<_> = store
            .chat_history(&f.broadcast, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(visible, vec![a2.id.clone()]);
        assert!(
            store
                .chat_history(&f.other_broadcast, 50)
                .await
                .unwrap()
                .is_empty(),
            "ban hides shop-wide"
        );
        let deleted = store.chat_message(&a1.id).await.unwrap().unwrap();
        assert_eq!(deleted.deleted_at, Some(ms(20_000)));
        assert!(!deleted.is_visible());

        assert!(
            store
                .is_chat_banned(&f.shop, &Subject::from_trusted("gst_troll"))
                .await
                .unwrap()
        );
        assert_eq!(store.chat_bans(&f.shop).await.unwrap()[0].reason, "spam");
        store
            .apply_chat_writes(&[ChatWrite::Unban {
                shop: f.shop.clone(),
                subject: "gst_troll".into(),
            }])
            .await
            .unwrap();
        assert!(
            !store
                .is_chat_banned(&f.shop, &Subject::from_trusted("gst_troll"))
                .await
                .unwrap()
        );

        store
            .apply_chat_writes(&[ChatWrite::Clear {
                broadcast: f.broadcast.clone(),
                at: ms(30_000),
            }])
            .await
            .unwrap();
        assert!(
            store
                .chat_history(&f.broadcast, 50)
                .await
                .unwrap()
                .is_empty()
        );
        let after = message(&f, &f.broadcast, "gst_a", "after the clear", "3", 4);
        store
            .apply_chat_writes(&[ChatWrite::Post(after.clone())])
            .await
            .unwrap();
        assert_eq!(
            store.chat_history(&f.broadcast, 50).await.unwrap()[0].id,
            after.id
        );
    }
);

on_both_engines!(
    timeouts_settings_and_room_state,
    |store: Store| async move {
        let f = fixture(&store).await;
        let timeout = |until| {
            ChatWrite::Timeout(TimeoutRecord {
                shop_id: f.shop.clone(),
                subject: "gst_a".into(),
                until,
                timed_out_by: "usr_mod".into(),
                reason: String::new(),
                created_at: ms(1_000),
            })
        };
        store
            .apply_chat_writes(&[timeout(ms(5_000))])
            .await
            .unwrap();
        assert_eq!(
            store
                .active_timeouts(&f.shop, ms(4_999))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .active_timeouts(&f.shop, ms(5_000))
                .await
                .unwrap()
                .is_empty(),
            "over at `until`"
        );
        store
            .apply_chat_writes(&[timeout(ms(9_000))])
            .await
            .unwrap();
        assert_eq!(
            store.active_timeouts(&f.shop, ms(6_000)).await.unwrap()[0].until,
            ms(9_000),
            "replaced"
        );

        assert_eq!(
            store.live_room(&f.broadcast).await.unwrap(),
            LiveRoomRecord::default()
        );
        assert!(store.blocked_words(&f.shop).await.unwrap().is_empty());
        let pinned = ChatMessageId::generate();
        let offers = vec![OfferId::generate(), OfferId::generate()];
        store
            .apply_chat_writes(&[
                ChatWrite::SlowMode {
                    broadcast: f.broadcast.clone(),
                    shop: f.shop.clone(),
                    seconds: 30,
                    at: ms(1),
                },
                ChatWrite::PinMessage {
                    broadcast: f.broadcast.clone(),
                    shop: f.shop.clone(),
                    message: Some(pinned.clone()),
                    at: ms(2),
                },
                ChatWrite::PinnedOffers {
                    broadcast: f.broadcast.clone(),
                    shop: f.shop.clone(),
                    offers: offers.clone(),
                    at: ms(3),
                },
                ChatWrite::BlockedWords {
                    shop: f.shop.clone(),
                    words: vec!["加微信".into(), "spam".into()],
                    at: ms(4),
                },
            ])
            .await
            .unwrap();
        let room = store.live_room(&f.broadcast).await.unwrap();
        assert_eq!(room.slow_mode_seconds, 30);
        assert_eq!(room.pinned_message_id, Some(pinned));
        assert_eq!(room.pinned_offers, offers);
        assert_eq!(
            store.blocked_words(&f.shop).await.unwrap(),
            vec!["加微信".to_owned(), "spam".to_owned()]
        );
        assert_eq!(
            store.live_room(&f.other_broadcast).await.unwrap(),
            LiveRoomRecord::default(),
            "per broadcast"
        );

        store
            .apply_chat_writes(&[
                ChatWrite::PinMessage {
                    broadcast: f.broadcast.clone(),
                    shop: f.shop.clone(),
                    message: None,
                    at: ms(5),
                },
                ChatWrite::PinnedOffers {
                    broadcast: f.broadcast.clone(),
                    shop: f.shop.clone(),
                    offers: vec![offers[1].clone()],
                    at: ms(6),
                },
            ])
            .await
            .unwrap();
        let room = store.live_room(&f.broadcast).await.unwrap();
        assert_eq!(room.slow_mode_seconds, 30, "other settings kept");
        assert_eq!(room.pinned_message_id, None);
        assert_eq!(room.pinned_offers, vec![offers[1].clone()]);
    }
);

on_both_engines!(
    moderation_log_is_newest_first_per_shop,
    |store: Store| async move {
        let f = fixture(&store).await;
        let moderator = ModerationActor {
            subject: "usr_mod".into(),
            name: DisplayName::parse("管理员").unwrap(),
            role: Role::Moderator,
        };
        let entry = |ordinal, action: &str, actor: Option<ModerationActor>| {
            ChatWrite::Log(ModerationRecord {
                shop_id: f.shop.clone(),
                broadcast_id: Some(f.broadcast.clone()),
                ordinal,
                actor,
                action: action.into(),
                target_subject: Some("gst_a".into()),
                message_id: None,
                detail: Some("600 s".into()),
                created_at: ms(1_000), // same millisecond: the ordinal decides
            })
        };
        store
            .apply_chat_writes(&[
                entry(1, "timeout", Some(moderator.clone())),
                entry(2, "ban", Some(moderator.clone())),
                entry(3, "auto_mute", None),
            ])
            .await
            .unwrap();
        let log = store.moderation_log(&f.shop, 2).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "auto_mute");
        assert_eq!(log[0].actor, None);
        assert_eq!(log[1].action, "ban");
        assert_eq!(log[1].actor, Some(moderator));
        assert_eq!(log[1].detail.as_deref(), Some("600 s"));
    }
);

on_both_engines!(a_failing_batch_writes_nothing, |store: Store| async move {
    let f = fixture(&store).await;
    let good = message(&f, &f.broadcast, "gst_a", "kept?", "1", 1);
    let mut bad = message(&f, &f.broadcast, "gst_a", "orphan", "2", 2);
    bad.broadcast_id = BroadcastId::generate(); // no such broadcast
    let err = store
        .apply_chat_writes(&[ChatWrite::Post(good.clone()), ChatWrite::Post(bad)])
        .await;
    assert!(err.is_err());
    assert!(
        store.chat_message(&good.id).await.unwrap().is_none(),
        "rolled back"
    );
});

on_both_engines!(
    a_replay_reads_pins_and_its_chat_in_time_order,
    |store: Store| async move {
        let f = fixture(&store).await;
        let (a, b) = (OfferId::generate(), OfferId::generate());
        let log = |ordinal: i64, action: &str, detail: String, at: i64| {
            ChatWrite::Log(ModerationRecord {
                shop_id: f.shop.clone(),
                broadcast_id: Some(f.broadcast.clone()),
                ordinal,
                actor: None,
                action: action.into(),
                target_subject: None,
                message_id: None,
                detail: Some(detail),
                created_at: ms(at),
            })
        };
        let mut posts: Vec<NewChatMessage> = (0..5)
            .map(|i| message(&f, &f.broadcast, "gst_a", "谷子", &format!("n{i}"), i))
            .collect();
        posts.push(message(&f, &f.other_broadcast, "gst_a", "别处", "x", 9));
        let deleted = posts[1].id.clone();
        let mut writes = vec![
            log(1, "pin_offer", format!("{a}: 小米: 新米"), 2_000),
            log(2, "ban", "gst_z".into(), 2_100),
            log(3, "pin_offer", format!("{b}: 黄米"), 2_500),
            log(4, "unpin_offer", a.to_string(), 3_000),
        ];
        writes.extend(posts.into_iter().map(ChatWrite::Post));
        writes.push(ChatWrite::Delete {
            message: deleted.clone(),
            by: "usr_x".into(),
            at: ms(20_000),
        });
        store.apply_chat_writes(&writes).await.unwrap();

        let pins = store.pin_moments(&f.broadcast).await.unwrap();
        let seen: Vec<_> = pins
            .iter()
            .map(|p| (p.offer_id.clone(), p.pinned, p.at.millis()))
            .collect();
        assert_eq!(
            seen,
            [
                (a.clone(), true, 2_000),
                (b, true, 2_500),
                (a, false, 3_000)
            ]
        );
        assert!(
            store
                .pin_moments(&f.other_broadcast)
                .await
                .unwrap()
                .is_empty()
        );

        // Two pages of two, then the last: the deleted line is not there.
        let first = store.chat_for_replay(&f.broadcast, None, 2).await.unwrap();
        let last = first.last().unwrap();
        let second = store
            .chat_for_replay(&f.broadcast, Some((last.posted_at.millis(), &last.id)), 2)
            .await
            .unwrap();
        let last = second.last().unwrap();
        let third = store
            .chat_for_replay(&f.broadcast, Some((last.posted_at.millis(), &last.id)), 2)
            .await
            .unwrap();
        let times: Vec<i64> = [first, second, third]
            .concat()
            .iter()
            .map(|m| m.posted_at.millis())
            .collect();
        assert_eq!(times, [10_000, 10_002, 10_003, 10_004]);
    }
);

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}
