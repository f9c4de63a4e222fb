//! Live offers, buying, checkout and the farmer's order desk, over HTTP.

use crate::harness::*;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

pub struct Sale {
    pub owner: Client,
    pub shop: String,
    pub broadcast: String,
    pub product: String,
    pub offer: String,
}

/// A farmer with a product (stock 500) and a live offer of `quantity` units.
pub async fn sale(app: &TestApp, quantity: u32, per_buyer_limit: u32) -> Sale {
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let product = app
        .post(
            &owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": "羊粪小米 20斤", "unit": "20斤袋", "price_fen": 16800, "stock": 500}),
        )
        .await;
    let product = expect(product, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let broadcast = app.broadcast(&owner, &shop, "秋收直播").await;
    let offer = app
        .post(
            &owner,
            &format!("/api/v1/broadcasts/{broadcast}/offers"),
            json!({"product_id": product, "price_fen": 12800, "quantity": quantity, "per_buyer_limit": per_buyer_limit}),
        )
        .await;
    let offer = expect(offer, StatusCode::CREATED).await;
    assert_eq!(offer["state"], "open");
    assert_eq!(offer["available"], quantity);
    Sale {
        owner,
        shop,
        broadcast,
        product,
        offer: offer["id"].as_str().unwrap().to_owned(),
    }
}

pub async fn guest(app: &TestApp, nickname: &str) -> Client {
    let client = app.client();
    expect(
        app.post(&client, "/api/v1/guest", json!({"nickname": nickname}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    client
}

pub async fn buy(
    app: &TestApp,
    buyer: &Client,
    offer: &str,
    quantity: u32,
    key: &str,
) -> reqwest::Response {
    buyer
        .post(app.url(&format!("/api/v1/offers/{offer}/reservations")))
        .header("idempotency-key", key)
        .json(&json!({"quantity": quantity}))
        .send()
        .await
        .unwrap()
}

/// A JSON object's field names, sorted.
fn field_names(body: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names
}

fn checkout_body() -> Value {
    json!({"name": "李华", "mobile": "13912345678", "address": "北京市海淀区学院路 1 号, 3 单元 \"东门\"", "payment_method": "bank_transfer"})
}

#[tokio::test]
async fn a_buyer_reserves_checks_out_and_the_farmer_ships() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 10, 3).await;
    let buyer = guest(&app, "李华").await;

    // Buy now, and a retry of the same tap.
    let first = expect(
        buy(&app, &buyer, &s.offer, 2, "tap-1").await,
        StatusCode::CREATED,
    )
    .await;
    let retry = expect(
        buy(&app, &buyer, &s.offer, 2, "tap-1").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        first["id"], retry["id"],
        "a retried tap is not a second reservation"
    );
    assert_eq!(first["total_fen"], 2 * 12800);
    assert_eq!(
        field_names(&first),
        [
            "created_at",
            "expires_at",
            "id",
            "offer_id",
            "quantity",
            "total_fen",
            "unit_price_fen"
        ],
        "the reservation body's wire shape"
    );
    expect_problem(
        buy(&app, &buyer, &s.offer, 1, "tap-1").await,
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    )
    .await;
    let offer = expect(
        app.get(&buyer, &format!("/api/v1/offers/{}", s.offer))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (offer["available"].as_u64(), offer["held"].as_u64()),
        (Some(8), Some(2))
    );

    // Over the per-buyer limit (2 held + 2 > 3), in the live channel's
    // word, with the numbers.
    let over = expect_problem(
        buy(&app, &buyer, &s.offer, 2, "tap-2").await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    assert_eq!(over["params"], json!({"limit": 3, "already": 2}));

    // Checkout: every bad field is named at once.
    let reservation = first["id"].as_str().unwrap();
    let bad = app
        .post(
            &buyer,
            &format!("/api/v1/reservations/{reservation}/order"),
            json!({"name": "", "mobile": "123", "address": "x", "payment_method": "bitcoin"}),
        )
        .await;
    let bad = expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "mobile", "address", "payment_method"]);

    // Another buyer cannot check out someone else's reservation.
    let stranger = guest(&app, "路人").await;
    let res = app
        .post(
            &stranger,
            &format!("/api/v1/reservations/{reservation}/order"),
            checkout_body(),
        )
        .await;
    assert!(
        matches!(res.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        res.status()
    );

    let order = app
        .post(
            &buyer,
            &format!("/api/v1/reservations/{reservation}/order"),
            checkout_body(),
        )
        .await;
    let order = expect(order, StatusCode::CREATED).await;
    assert_eq!(order["state"], "placed");
    // The order body's wire shape, pinned: pages and the OpenAPI document
    // read exactly these fields (and never the token, buyer or reservation).
    assert_eq!(
        field_names(&order),
        [
            "address",
            "broadcast_id",
            "cancel_reason",
            "cancelled_at",
            "carrier",
            "created_at",
            "delivered_at",
            "id",
            "mobile",
            "offer_id",
            "paid_at",
            "payment_method",
            "private_url",
            "product_id",
            "quantity",
            "recipient_name",
            "shipped_at",
            "ships_on",
            "shop_id",
            "state",
            "title",
            "total_fen",
            "tracking_number",
            "unit",
            "unit_price_fen",
        ]
    );
    assert_eq!(
        (
            &order["unit_price_fen"],
            &order["total_fen"],
            &order["quantity"]
        ),
        (&json!(12800), &json!(2 * 12800), &json!(2))
    );
    assert_eq!(order["payment_method"], checkout_body()["payment_method"]);
    assert!(order["paid_at"].is_null() && order["carrier"].is_null());
    assert!(
        order["offer_id"] == s.offer.as_str() && order["id"].as_str().unwrap().starts_with("ord_")
    );
    assert!(
        order["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {}",
        order["created_at"]
    );
    assert_eq!(order["shop_id"], s.shop.as_str());
    // A transfer buyer learns how to pay from the shop.
    let shop = expect(
        app.get(&buyer, &format!("/api/v1/shops/{}", s.shop)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shop["payment_note"], "微信转账 wangdajie");
    let again = app
        .post(
            &buyer,
            &format!("/api/v1/reservations/{reservation}/order"),
            checkout_body(),
        )
        .await;
    assert_eq!(
        expect(again, StatusCode::CREATED).await["id"],
        order["id"],
        "double submit, one order"
    );

    // The buyer's private link works without a session; other people's do not leak.
    let private_url = order["private_url"].as_str().unwrap();
    let token = private_url.rsplit('/').next().unwrap();
    let by_link = app
        .get(&app.client(), &format!("/api/v1/orders/private/{token}"))
        .await;
    assert_eq!(expect(by_link, StatusCode::OK).await["id"], order["id"]);
    expect_problem(
        app.get(&app.client(), "/api/v1/orders/private/not-a-token")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let mine = expect(app.get(&buyer, "/api/v1/orders/mine").await, StatusCode::OK).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let theirs = expect(
        app.get(&stranger, "/api/v1/orders/mine").await,
        StatusCode::OK,
    )
    .await;
    assert!(theirs.as_array().unwrap().is_empty());
    let order_id = order["id"].as_str().unwrap();
    let res = app
        .get(&stranger, &format!("/api/v1/orders/{order_id}"))
        .await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    // Only the owner runs the order desk.
    let viewer = app.client();
    app.sign_up(&viewer, "13700137000", "买家").await;
    for client in [&buyer, &viewer] {
        let res = app
            .post(
                client,
                &format!("/api/v1/orders/{order_id}/shipped"),
                json!({"carrier": "邮政", "tracking_number": "123"}),
            )
            .await;
        assert!(
            matches!(
                res.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            "{}",
            res.status()
        );
        let res = app
            .get(client, &format!("/api/v1/shops/{}/orders", s.shop))
            .await;
        assert!(matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
    }
    // A transfer order ships only after it is paid.
    let res = app
        .post(
            &s.owner,
            &format!("/api/v1/orders/{order_id}/shipped"),
            json!({"carrier": "中国邮政", "tracking_number": "9876543210"}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "invalid_order_transition").await;
    let paid = app
        .post(
            &s.owner,
            &format!("/api/v1/orders/{order_id}/paid"),
            json!({}),
        )
        .await;
    assert_eq!(expect(paid, StatusCode::OK).await["state"], "paid");
    let shipped = app
        .post(
            &s.owner,
            &format!("/api/v1/orders/{order_id}/shipped"),
            json!({"carrier": "中国邮政", "tracking_number": "9876543210"}),
        )
        .await;
    let shipped = expect(shipped, StatusCode::OK).await;
    assert_eq!(
        (
            shipped["state"].as_str(),
            shipped["tracking_number"].as_str()
        ),
        (Some("shipped"), Some("9876543210"))
    );
    let delivered = app
        .post(
            &s.owner,
            &format!("/api/v1/orders/{order_id}/delivered"),
            json!({}),
        )
        .await;
    assert_eq!(
        expect(delivered, StatusCode::OK).await["state"],
        "delivered"
    );
    let by_link = expect(
        app.get(&app.client(), &format!("/api/v1/orders/private/{token}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_link["state"], "delivered", "the buyer sees the status");

    // The farmer's list, filtered, and the CSV for the post office.
    let list = expect(
        app.get(
            &s.owner,
            &format!("/api/v1/shops/{}/orders?state=delivered", s.shop),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let none = expect(
        app.get(
            &s.owner,
            &format!("/api/v1/shops/{}/orders?state=placed", s.shop),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(none.as_array().unwrap().is_empty());
    expect_problem(
        app.get(
            &s.owner,
            &format!("/api/v1/shops/{}/orders?state=lost", s.shop),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let csv = app
        .get(&s.owner, &format!("/api/v1/shops/{}/orders.csv", s.shop))
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with('\u{feff}'), "BOM for Excel");
    assert!(csv.contains("李华") && csv.contains("9876543210"), "{csv}");
    assert!(
        csv.contains("\"北京市海淀区学院路 1 号, 3 单元 \"\"东门\"\"\""),
        "address quoted: {csv}"
    );
    // The number buyers quote, and nothing private: no order-link token,
    // no buyer id, no internal order id.
    let number = order_id[order_id.len() - 6..].to_uppercase();
    assert!(csv.contains(&format!("\r\n{number},")), "{csv}");
    for private in [token, order_id, "gst_", "usr_", "订单链接码", "买家"] {
        assert!(!csv.contains(private), "{private} in {csv}");
    }
    assert!(csv.starts_with("\u{feff}订单号,下单时间(UTC+08:00),状态,"));

    // In English, in the phone's zone (New York, UTC-05:00).
    let placed = time::OffsetDateTime::parse(
        order["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .to_offset(time::macros::offset!(-5));
    let local = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        placed.year(),
        u8::from(placed.month()),
        placed.day(),
        placed.hour(),
        placed.minute()
    );
    let en = app
        .get(
            &s.owner,
            &format!(
                "/api/v1/shops/{}/orders.csv?lang=en&tz_offset_minutes=-300",
                s.shop
            ),
        )
        .await;
    assert_eq!(en.status(), StatusCode::OK);
    let en = en.text().await.unwrap();
    assert!(
        en.starts_with("\u{feff}Order number,Ordered at (UTC-05:00),Status,Product,"),
        "{en}"
    );
    assert!(
        en.contains(&format!("\r\n{number},{local},Delivered,")),
        "the row in English at {local}: {en}"
    );
    for bad in [
        "lang=fr",
        "tz_offset_minutes=9999",
        "tz_offset_minutes=east",
    ] {
        expect_problem(
            app.get(
                &s.owner,
                &format!("/api/v1/shops/{}/orders.csv?{bad}", s.shop),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn sold_out_is_immediate_and_cancelled_units_come_back() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 3, 5).await;
    let a = guest(&app, "甲").await;
    let b = guest(&app, "乙").await;
    let held = expect(buy(&app, &a, &s.offer, 3, "a-1").await, StatusCode::CREATED).await;
    let refused = expect_problem(
        buy(&app, &b, &s.offer, 1, "b-1").await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("sold out"));
    let offer = expect(
        app.get(&b, &format!("/api/v1/offers/{}", s.offer)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offer["state"], "sold_out");

    // B cannot cancel A's reservation; A can.
    let id = held["id"].as_str().unwrap();
    let res = app.delete(&b, &format!("/api/v1/reservations/{id}")).await;
    assert!(matches!(
        res.status(),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ));
    expect(
        app.delete(&a, &format!("/api/v1/reservations/{id}")).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect(buy(&app, &b, &s.offer, 1, "b-2").await, StatusCode::CREATED).await;

    // Anonymous visitors must pick a nickname first, and are told that a
    // nickname is enough.
    let problem = expect_problem(
        buy(&app, &app.client(), &s.offer, 1, "x").await,
        StatusCode::UNAUTHORIZED,
        "nickname_required",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("nickname"),
        "{problem}"
    );

    // Ending the offer stops sales and returns unsold units to the product.
    let ended = app
        .post(
            &s.owner,
            &format!("/api/v1/offers/{}/end", s.offer),
            json!({}),
        )
        .await;
    assert_eq!(expect(ended, StatusCode::OK).await["state"], "ended");
    expect_problem(
        buy(&app, &a, &s.offer, 1, "a-2").await,
        StatusCode::CONFLICT,
        "offer_ended",
    )
    .await;
    let product = expect(
        app.get(&a, &format!("/api/v1/products/{}", s.product))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        product["stock"],
        500 - 1,
        "only the held unit is still out of stock"
    );
    let offers = expect(
        app.get(&a, &format!("/api/v1/broadcasts/{}/offers", s.broadcast))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offers.as_array().unwrap().len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn only_the_owner_creates_offers() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 5, 1).await;
    let body =
        json!({"product_id": s.product, "price_fen": 100, "quantity": 1, "per_buyer_limit": 1});
    let path = format!("/api/v1/broadcasts/{}/offers", s.broadcast);
    let viewer = app.client();
    app.sign_up(&viewer, "13700137000", "买家").await;
    expect_problem(
        app.post(&viewer, &path, body.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        app.post(&guest(&app, "g").await, &path, body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    for (body, field) in [
        (
            json!({"product_id": s.product, "price_fen": 0, "quantity": 1, "per_buyer_limit": 1}),
            "price_fen",
        ),
        (
            json!({"product_id": s.product, "price_fen": 100, "quantity": 1, "per_buyer_limit": 1, "hold_minutes": 600}),
            "hold_minutes",
        ),
    ] {
        let res = app.post(&s.owner, &path, body).await;
        let problem =
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(
            problem["errors"][0]["field"], field,
            "named as the request names it: {problem}"
        );
    }
    let too_many = json!({"product_id": s.product, "price_fen": 100, "quantity": 100_000, "per_buyer_limit": 1});
    let res = app.post(&s.owner, &path, too_many).await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "quantity");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_buyers_over_http_never_oversell() {
    // Forty guests from 127.0.0.1: past the per-address guest limit, which
    // hostile_auth tests; this test is about the stock.
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |c| {
        c.limits.guest = api::limits::Rate::per_minute(100, 100);
    })
    .await;
    let s = sale(&app, 20, 2).await;
    let mut buyers = Vec::new();
    for i in 0..40 {
        buyers.push(guest(&app, &format!("买家{i}")).await);
    }
    let mut taps = Vec::new();
    for (i, buyer) in buyers.iter().enumerate() {
        for t in 0..3 {
            let (app_url, buyer, offer) = (app.url(""), buyer.clone(), s.offer.clone());
            taps.push(tokio::spawn(async move {
                buyer
                    .post(format!("{app_url}/api/v1/offers/{offer}/reservations"))
                    .header("idempotency-key", format!("{i}-{t}"))
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
    }
    let mut accepted = 0;
    for tap in taps {
        match tap.await.unwrap() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 20, "exactly the allotted units are held");
    let offer = expect(
        app.get(&buyers[0], &format!("/api/v1/offers/{}", s.offer))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (offer["available"].as_u64(), offer["held"].as_u64()),
        (Some(0), Some(20))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn orders_work_on_postgres_too() {
    let Some(app) = TestApp::spawn_postgres().await else {
        return;
    };
    let s = sale(&app, 5, 2).await;
    let buyer = guest(&app, "李华").await;
    let held = expect(
        buy(&app, &buyer, &s.offer, 2, "k").await,
        StatusCode::CREATED,
    )
    .await;
    let order = app
        .post(
            &buyer,
            &format!(
                "/api/v1/reservations/{}/order",
                held["id"].as_str().unwrap()
            ),
            checkout_body(),
        )
        .await;
    expect(order, StatusCode::CREATED).await;
    let csv = app
        .get(&s.owner, &format!("/api/v1/shops/{}/orders.csv", s.shop))
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("李华"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_buyer_reads_back_their_reservations_and_is_told_how_many_are_left() {
    let app = TestApp::spawn().await;
    let s = sale(&app, 3, 3).await;
    let buyer = guest(&app, "李华").await;
    let other = guest(&app, "王五").await;
    let first = expect(
        buy(&app, &buyer, &s.offer, 2, "tap-1").await,
        StatusCode::CREATED,
    )
    .await;

    // Two asked for, one left: the same code and number as the websocket.
    let fewer = expect_problem(
        buy(&app, &other, &s.offer, 2, "o-1").await,
        StatusCode::CONFLICT,
        "insufficient_stock",
    )
    .await;
    assert_eq!(fewer["params"]["available"], 1);
    let second = expect(
        buy(&app, &other, &s.offer, 1, "o-2").await,
        StatusCode::CREATED,
    )
    .await;
    let gone = expect_problem(
        buy(&app, &buyer, &s.offer, 1, "tap-2").await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;
    assert!(gone.get("params").is_none(), "{gone}");

    // Each buyer reads their own reservation, one and all; not others'.
    let id = first["id"].as_str().unwrap();
    let mine = expect(
        app.get(&buyer, &format!("/api/v1/reservations/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (mine["state"].as_str(), mine["quantity"].as_u64()),
        (Some("held"), Some(2))
    );
    assert_eq!(mine["expires_at"], first["expires_at"]);
    expect_problem(
        app.get(&other, &format!("/api/v1/reservations/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let listed = expect(
        app.get(&other, "/api/v1/reservations/mine").await,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second["id"].as_str().unwrap()]);
    expect_problem(
        app.get(&app.client(), "/api/v1/reservations/mine").await,
        StatusCode::UNAUTHORIZED,
        "nickname_required",
    )
    .await;

    // Given back, it reads as cancelled, and its key does not hold again.
    let res = app
        .delete(&buyer, &format!("/api/v1/reservations/{id}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let mine = expect(
        app.get(&buyer, &format!("/api/v1/reservations/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine["state"], "cancelled");
    expect_problem(
        buy(&app, &buyer, &s.offer, 2, "tap-1").await,
        StatusCode::CONFLICT,
        "reservation_cancelled",
    )
    .await;
}
