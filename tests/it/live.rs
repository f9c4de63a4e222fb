//! The live channel through the real server: cookies decide who you are,
//! chat reaches the room, buying goes to the order service, stock and the
//! sale ticker come back, the SFU's state reaches viewers.

use crate::harness::*;
use crate::media::{scheduled_broadcast, whip_publish};
use crate::orders::sale;
use futures::{SinkExt, StreamExt};
use reqwest::cookie::CookieStore;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A phone: an HTTP client whose cookies the websocket can reuse.
pub struct Phone {
    pub http: Client,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Phone {
    pub fn new() -> Phone {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Phone {
            http: Client::builder()
                .cookie_provider(jar.clone())
                .build()
                .unwrap(),
            jar,
        }
    }

    /// A phone on `app`'s pages: it sends their `Origin` (see
    /// [`TestApp::client`]).
    pub fn on(app: &TestApp) -> Phone {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Phone {
            http: app
                .client_builder()
                .cookie_provider(jar.clone())
                .build()
                .unwrap(),
            jar,
        }
    }

    pub async fn guest(app: &TestApp, nickname: &str) -> Phone {
        let phone = Phone::on(app);
        expect(
            app.post(&phone.http, "/api/v1/guest", json!({"nickname": nickname}))
                .await,
            StatusCode::CREATED,
        )
        .await;
        phone
    }

    /// Signs in an account made by the harness (its test password).
    pub async fn signed_in(app: &TestApp, mobile: &str) -> Phone {
        let phone = Phone::on(app);
        let res = app
            .post(
                &phone.http,
                "/api/v1/session",
                json!({"mobile": mobile, "password": "correct horse battery"}),
            )
            .await;
        expect(res, StatusCode::OK).await;
        phone
    }

    pub async fn connect(&self, app: &TestApp, broadcast: &str) -> Socket {
        self.connect_at(&app.url(""), broadcast).await
    }

    /// The live channel of a server at `base` (another node, say).
    pub async fn connect_at(&self, base: &str, broadcast: &str) -> Socket {
        let url = format!("{base}/api/v1/broadcasts/{broadcast}/live").replacen("http", "ws", 1);
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(cookie) = self.jar.cookies(&format!("{base}/").parse().unwrap()) {
            request.headers_mut().insert("cookie", cookie);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        socket
    }
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next server message of `kind`, skipping others (bounded wait).
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["type"] == kind {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended waiting for {kind}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} within 10 s"))
}

#[tokio::test]
async fn chat_reaches_the_room_and_anonymous_visitors_only_watch() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let li = Phone::guest(&app, "小李").await;
    let mut li_ws = li.connect(&app, &live.broadcast).await;
    let hello = next_of(&mut li_ws, "hello").await;
    assert_eq!(hello["you"]["name"], "小李");
    assert_eq!(hello["you"]["role"], "viewer");
    assert_eq!(hello["you"]["can_chat"], true);

    let anonymous = Phone::new();
    let mut anon_ws = anonymous.connect(&app, &live.broadcast).await;
    let hello = next_of(&mut anon_ws, "hello").await;
    assert_eq!(hello["you"]["anonymous"], true);
    send(
        &mut anon_ws,
        json!({"type": "chat", "text": "hi", "nonce": "a1"}),
    )
    .await;
    let refused = next_of(&mut anon_ws, "refused").await;
    assert_eq!(refused["code"], "nickname_required");

    // The owner's cookie makes them the owner in their own room.
    let owner = Phone::signed_in(&app, "13800138000").await;
    let mut owner_ws = owner.connect(&app, &live.broadcast).await;
    assert_eq!(
        next_of(&mut owner_ws, "hello").await["you"]["role"],
        "owner"
    );

    send(
        &mut li_ws,
        json!({"type": "chat", "text": "<b>今年的小米真黄！</b>", "nonce": "c1"}),
    )
    .await;
    for ws in [&mut owner_ws, &mut anon_ws] {
        let chat = next_of(ws, "chat").await;
        assert_eq!(
            chat["text"], "<b>今年的小米真黄！</b>",
            "text as typed, never HTML-interpreted by the server"
        );
        assert_eq!(chat["author"]["name"], "小李");
    }
    assert_eq!(next_of(&mut li_ws, "accepted").await["nonce"], "c1");
    app.shutdown().await;
}

#[tokio::test]
async fn websocket_requests_from_other_sites_or_without_upgrade_are_refused() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let url = app
        .url(&format!("/api/v1/broadcasts/{}/live", live.broadcast))
        .replacen("http", "ws", 1);
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(request)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");

    let res = app
        .get(
            &app.client(),
            &format!("/api/v1/broadcasts/{}/live", live.broadcast),
        )
        .await;
    expect_problem(res, StatusCode::UPGRADE_REQUIRED, "websocket_required").await;
    let res = app
        .get(&app.client(), "/api/v1/broadcasts/brd_nosuchroom/live")
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn buying_in_the_room_reserves_and_everyone_sees_stock_fall() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 10, 3).await;
    let owner = Phone::signed_in(&app, "13800138000").await;
    let mut owner_ws = owner.connect(&app, &s.broadcast).await;
    next_of(&mut owner_ws, "hello").await;
    send(
        &mut owner_ws,
        json!({"type": "pin_offer", "offer": s.offer}),
    )
    .await;
    let pinned = next_of(&mut owner_ws, "offer_pinned").await;
    assert_eq!(pinned["offer"]["available"], 10);
    assert_eq!(pinned["offer"]["price_fen"], 12800);

    let buyer = Phone::guest(&app, "李华").await;
    let mut buyer_ws = buyer.connect(&app, &s.broadcast).await;
    let snapshot = next_of(&mut buyer_ws, "snapshot").await;
    assert_eq!(
        snapshot["state"]["offers"][0]["offer"],
        s.offer.as_str(),
        "the pinned card is in the snapshot"
    );
    let other = Phone::guest(&app, "路人").await;
    let mut other_ws = other.connect(&app, &s.broadcast).await;
    next_of(&mut other_ws, "hello").await;

    send(
        &mut buyer_ws,
        json!({"type": "buy", "offer": s.offer, "quantity": 2, "nonce": "b1"}),
    )
    .await;
    let reservation = next_of(&mut buyer_ws, "reservation").await;
    assert_eq!(reservation["quantity"], 2);
    assert_eq!(reservation["total_fen"], 2 * 12800);
    // Everyone's card shows the stock fall (coalesced, so maybe after a beat).
    let updated = loop {
        let u = next_of(&mut other_ws, "offer_updated").await;
        if u["offer"]["available"] == 8 {
            break u;
        }
    };
    assert_eq!(updated["offer"]["offer"], s.offer.as_str());

    // A retried tap with the same nonce is the same reservation.
    send(
        &mut buyer_ws,
        json!({"type": "buy", "offer": s.offer, "quantity": 2, "nonce": "b1"}),
    )
    .await;
    assert_eq!(
        next_of(&mut buyer_ws, "reservation").await["reservation"],
        reservation["reservation"]
    );
    // Over the limit is refused privately, with the numbers to say so.
    send(
        &mut buyer_ws,
        json!({"type": "buy", "offer": s.offer, "quantity": 2, "nonce": "b2"}),
    )
    .await;
    let refused = next_of(&mut buyer_ws, "buy_refused").await;
    assert_eq!(refused["code"], "limit_reached");
    assert_eq!(
        (refused["limit"].as_u64(), refused["already"].as_u64()),
        (Some(3), Some(2))
    );

    // Checkout over HTTP; the room's ticker names only a region.
    let id = reservation["reservation"].as_str().unwrap();
    let order = buyer
        .http
        .post(app.url(&format!("/api/v1/reservations/{id}/order")))
        .json(&json!({"name": "李华", "mobile": "13912345678", "address": "山西省太原市小店区 1 号", "payment_method": "cash_on_delivery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    let placed = next_of(&mut buyer_ws, "order_placed").await;
    assert_eq!(
        placed["reservation"], reservation["reservation"],
        "the buyer's room hears of the order"
    );
    let ticker = next_of(&mut other_ws, "sale").await;
    assert_eq!(ticker["quantity"], 2);
    let region = ticker["buyer_region"].as_str().unwrap_or("");
    assert!(
        region.contains("太原") || region.contains("山西"),
        "{ticker}"
    );
    assert!(!ticker.to_string().contains("李华") && !ticker.to_string().contains("13912345678"));
    app.shutdown().await;
}

#[tokio::test]
async fn moderation_is_logged_for_the_owner_and_moderators_only() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let shop = expect(
        app.get(
            &live.owner,
            &format!("/api/v1/broadcasts/{}", live.broadcast),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let shop = shop["shop"]["id"].as_str().unwrap().to_owned();
    let spammer = Phone::guest(&app, "广告哥").await;
    let mut spam_ws = spammer.connect(&app, &live.broadcast).await;
    next_of(&mut spam_ws, "hello").await;
    send(
        &mut spam_ws,
        json!({"type": "chat", "text": "加我微信买便宜货", "nonce": "s1"}),
    )
    .await;
    let message = next_of(&mut spam_ws, "chat").await;

    let owner = Phone::signed_in(&app, "13800138000").await;
    let mut owner_ws = owner.connect(&app, &live.broadcast).await;
    next_of(&mut owner_ws, "hello").await;
    send(
        &mut owner_ws,
        json!({"type": "delete_message", "message": message["id"]}),
    )
    .await;
    assert_eq!(
        next_of(&mut spam_ws, "message_deleted").await["message"],
        message["id"]
    );

    let path = format!("/api/v1/shops/{shop}/moderation-log");
    let log = loop {
        // Moderation is persisted in batches off the fan-out path.
        let log = expect(app.get(&owner.http, &path).await, StatusCode::OK).await;
        if !log.as_array().unwrap().is_empty() {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(log[0]["action"], "delete_message");
    assert_eq!(log[0]["actor_name"], "王大姐");
    let viewer = app.client();
    app.sign_up(&viewer, "13700137000", "买家").await;
    expect_problem(
        app.get(&viewer, &path).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        app.get(&spammer.http, &path).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_the_broadcast_go_live_and_end() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let viewer = Phone::guest(&app, "小李").await;
    let mut ws = viewer.connect(&app, &live.broadcast).await;
    let snapshot = next_of(&mut ws, "snapshot").await;
    assert_eq!(snapshot["state"]["broadcast_state"], "scheduled");

    let (publisher, _) = whip_publish(&app, &live, sfu::testkit::PublisherOptions::default()).await;
    let state = next_of(&mut ws, "broadcast_state").await;
    assert_eq!(state["state"], "live");
    let res = app
        .post(
            &live.owner,
            &format!("/api/v1/broadcasts/{}/end", live.broadcast),
            json!({}),
        )
        .await;
    expect(res, StatusCode::OK).await;
    assert_eq!(next_of(&mut ws, "broadcast_state").await["state"], "ended");
    publisher.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_ban_gives_the_banned_buyers_held_units_back_at_once() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 5, 3).await;
    let owner = Phone::signed_in(&app, "13800138000").await;
    let mut owner_ws = owner.connect(&app, &s.broadcast).await;
    next_of(&mut owner_ws, "hello").await;
    send(
        &mut owner_ws,
        json!({"type": "pin_offer", "offer": s.offer}),
    )
    .await;
    next_of(&mut owner_ws, "offer_pinned").await;
    let hoarder = Phone::guest(&app, "囤货哥").await;
    let mut hoarder_ws = hoarder.connect(&app, &s.broadcast).await;
    let subject = next_of(&mut hoarder_ws, "hello").await["you"]["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &mut hoarder_ws,
        json!({"type": "buy", "offer": s.offer, "quantity": 3, "nonce": "all-of-it"}),
    )
    .await;
    let held = next_of(&mut hoarder_ws, "reservation").await;
    let reservation = held["reservation"].as_str().unwrap().to_owned();
    let offer_path = format!("/api/v1/offers/{}", s.offer);
    let offer = expect(app.get(&app.client(), &offer_path).await, StatusCode::OK).await;
    assert_eq!(offer["available"], 2);

    send(
        &mut owner_ws,
        json!({"type": "ban", "subject": subject, "reason": "囤货"}),
    )
    .await;

    // The three units are on sale again without waiting out the hold, and
    // the room shows it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let offer = expect(app.get(&app.client(), &offer_path).await, StatusCode::OK).await;
        if offer["available"] == 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the banned buyer's hold still counts: {offer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let card = loop {
        let ev = next_of(&mut owner_ws, "offer_updated").await;
        if ev["offer"]["available"] == 5 {
            break ev;
        }
    };
    assert_eq!(card["offer"]["offer"], s.offer.as_str());
    // The released hold cannot become an order.
    let res = hoarder
        .http
        .post(app.url(&format!("/api/v1/reservations/{reservation}/order")))
        .json(&json!({"name": "李华", "mobile": "13912345678", "address": "山西省太原市小店区 1 号", "payment_method": "cash_on_delivery"}))
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == StatusCode::FORBIDDEN || res.status() == StatusCode::CONFLICT,
        "a banned buyer's checkout is refused: {}",
        res.status()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_banned_viewer_can_no_longer_buy_over_http() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 10, 3).await;
    let spammer = Phone::guest(&app, "广告哥").await;
    let mut spam_ws = spammer.connect(&app, &s.broadcast).await;
    let subject = next_of(&mut spam_ws, "hello").await["you"]["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let owner = Phone::signed_in(&app, "13800138000").await;
    let mut owner_ws = owner.connect(&app, &s.broadcast).await;
    next_of(&mut owner_ws, "hello").await;
    send(
        &mut owner_ws,
        json!({"type": "ban", "subject": subject, "reason": "广告"}),
    )
    .await;

    // The ban closes the socket (4001), then reaches the database in the
    // next persistence batch.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match spam_ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                None | Some(Err(_)) => return None,
                _ => {}
            }
        }
    })
    .await
    .expect("banned socket closes");
    assert_eq!(closed, Some(4001));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = spammer
            .http
            .post(app.url(&format!("/api/v1/offers/{}/reservations", s.offer)))
            .header(
                "idempotency-key",
                format!("try-{}", deadline.elapsed().as_nanos()),
            )
            .json(&json!({"quantity": 1}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::FORBIDDEN {
            expect_problem(res, StatusCode::FORBIDDEN, "banned").await;
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still buying after the ban: {}",
            res.status()
        );
        // Not yet persisted: the reservation went through; give it back.
        let held = expect(res, StatusCode::CREATED).await;
        let id = held["id"].as_str().unwrap();
        spammer
            .http
            .delete(app.url(&format!("/api/v1/reservations/{id}")))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The studio lists the ban with the person's chat name and lifts it;
    // then they may buy again. Viewers cannot see or lift bans.
    let path = format!("/api/v1/shops/{}/bans", s.shop);
    expect_problem(
        app.get(&spammer.http, &path).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let bans = expect(app.get(&owner.http, &path).await, StatusCode::OK).await;
    assert_eq!(bans[0]["subject"], subject.as_str());
    assert_eq!(bans[0]["name"], "广告哥");
    let viewer = app.client();
    app.sign_up(&viewer, "13700137000", "买家").await;
    expect_problem(
        app.delete(&viewer, &format!("{path}/{subject}")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect(
        app.delete(&owner.http, &format!("{path}/{subject}")).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.delete(&owner.http, &format!("{path}/{subject}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = spammer
        .http
        .post(app.url(&format!("/api/v1/offers/{}/reservations", s.offer)))
        .header("idempotency-key", "after-unban")
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::CREATED).await;
    let mut back = spammer.connect(&app, &s.broadcast).await;
    assert_eq!(
        next_of(&mut back, "hello").await["you"]["can_chat"],
        true,
        "welcome back"
    );
    let log = expect(
        app.get(
            &owner.http,
            &format!("/api/v1/shops/{}/moderation-log", s.shop),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(log[0]["action"], "unban");
    assert_eq!(log[0]["target_name"], "广告哥");
    app.shutdown().await;
}
