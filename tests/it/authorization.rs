use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

async fn product_body() -> serde_json::Value {
    json!({"title": "羊粪小米 20斤", "unit": "20斤袋", "price_fen": 16800, "stock": 100})
}

/// A farmer with a shop and a broadcast, plus a guest, a signed-in viewer
/// and a moderator of that shop.
struct Cast {
    app: TestApp,
    owner: reqwest::Client,
    guest: reqwest::Client,
    viewer: reqwest::Client,
    moderator: reqwest::Client,
    anonymous: reqwest::Client,
    shop: String,
    broadcast: String,
}

async fn cast() -> Cast {
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let broadcast = app.broadcast(&owner, &shop, "秋收直播").await;

    let guest = app.client();
    expect(
        app.post(&guest, "/api/v1/guest", json!({"nickname": "路人"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let viewer = app.client();
    app.sign_up(&viewer, "13700137000", "买家").await;
    let moderator = app.client();
    app.sign_up(&moderator, "13600136000", "管理员").await;
    let res = app
        .post(
            &owner,
            &format!("/api/v1/shops/{shop}/moderators"),
            json!({"mobile": "13600136000"}),
        )
        .await;
    expect(res, StatusCode::CREATED).await;
    let anonymous = app.client();
    Cast {
        app,
        owner,
        guest,
        viewer,
        moderator,
        anonymous,
        shop,
        broadcast,
    }
}

#[tokio::test]
async fn only_the_owner_manages_products() {
    let c = cast().await;
    let path = format!("/api/v1/shops/{}/products", c.shop);
    for (who, client, status, code) in [
        (
            "anonymous",
            &c.anonymous,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "guest",
            &c.guest,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        ("viewer", &c.viewer, StatusCode::FORBIDDEN, "forbidden"),
        (
            "moderator",
            &c.moderator,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let res = c.app.post(client, &path, product_body().await).await;
        assert_eq!(res.status(), status, "{who} creating a product");
        expect_problem(res, status, code).await;
    }
    let product = expect(
        c.app.post(&c.owner, &path, product_body().await).await,
        StatusCode::CREATED,
    )
    .await;
    let product_path = format!("/api/v1/products/{}", product["id"].as_str().unwrap());

    for client in [&c.guest, &c.viewer, &c.moderator] {
        let res = c
            .app
            .patch(client, &product_path, json!({"price_fen": 1}))
            .await;
        assert!(matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
        let res = c.app.delete(client, &product_path).await;
        assert!(matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
    }
    // Everyone may look.
    let seen = expect(c.app.get(&c.anonymous, &product_path).await, StatusCode::OK).await;
    assert_eq!(seen["price_fen"], 16800, "nobody else changed the price");
    let listed = expect(c.app.get(&c.guest, &path).await, StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    c.app.shutdown().await;
}

#[tokio::test]
async fn only_the_owner_sees_and_rotates_the_stream_key() {
    let c = cast().await;
    let path = format!("/api/v1/broadcasts/{}/stream-key", c.broadcast);
    for client in [&c.anonymous, &c.guest, &c.viewer, &c.moderator] {
        let res = c.app.get(client, &path).await;
        assert!(matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
        let body = res.text().await.unwrap();
        assert!(!body.contains("stream_key"), "{body}");
        let res = c.app.post(client, &path, json!({})).await;
        assert!(matches!(
            res.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ));
    }
    // Another shop's owner cannot read it either.
    let (other_owner, _) = c.app.farmer_with_shop("13500135000").await;
    expect_problem(
        c.app.get(&other_owner, &path).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let key = expect(c.app.get(&c.owner, &path).await, StatusCode::OK).await;
    assert!(
        key["whip_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/broadcasts/{}/whip", c.broadcast))
    );
    let rotated = expect(c.app.post(&c.owner, &path, json!({})).await, StatusCode::OK).await;
    assert_ne!(rotated["stream_key"], key["stream_key"]);
    let again = expect(c.app.get(&c.owner, &path).await, StatusCode::OK).await;
    assert_eq!(again["stream_key"], rotated["stream_key"]);

    // The public broadcast view never carries it.
    let public = c
        .app
        .get(&c.anonymous, &format!("/api/v1/broadcasts/{}", c.broadcast))
        .await;
    let public = expect(public, StatusCode::OK).await;
    assert!(public.get("stream_key").is_none());
    assert_eq!(public["state"], "scheduled");
    c.app.shutdown().await;
}

#[tokio::test]
async fn only_the_owner_appoints_and_removes_moderators() {
    let c = cast().await;
    let path = format!("/api/v1/shops/{}/moderators", c.shop);
    let res = c
        .app
        .post(&c.moderator, &path, json!({"mobile": "13700137000"}))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = c
        .app
        .post(&c.viewer, &path, json!({"mobile": "13700137000"}))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    // Moderators see the list with masked numbers; viewers do not see it.
    let list = expect(c.app.get(&c.moderator, &path).await, StatusCode::OK).await;
    assert_eq!(list[0]["mobile"], "136****6000");
    expect_problem(
        c.app.get(&c.viewer, &path).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let list = expect(c.app.get(&c.owner, &path).await, StatusCode::OK).await;
    assert_eq!(list[0]["mobile"], "13600136000");
    let moderator_id = list[0]["user_id"].as_str().unwrap().to_owned();

    let res = c
        .app
        .delete(&c.moderator, &format!("{path}/{moderator_id}"))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    // Appointing twice, an unknown number, the owner themselves.
    let res = c
        .app
        .post(&c.owner, &path, json!({"mobile": "13600136000"}))
        .await;
    expect_problem(res, StatusCode::CONFLICT, "already_moderator").await;
    let res = c
        .app
        .post(&c.owner, &path, json!({"mobile": "13100131000"}))
        .await;
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "mobile");
    assert_eq!(body["errors"][0]["code"], "no_such_account");
    let res = c
        .app
        .post(&c.owner, &path, json!({"mobile": "13800138000"}))
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    expect(
        c.app
            .delete(&c.owner, &format!("{path}/{moderator_id}"))
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        c.app.get(&c.moderator, &path).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    c.app.shutdown().await;
}

#[tokio::test]
async fn validation_errors_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            &app.client(),
            "/api/v1/accounts",
            json!({"mobile": "12345", "password": "short", "display_name": "好名字"}),
        )
        .await;
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mobile", "password"]);
    assert_eq!(body["errors"][1]["code"], "too_short");

    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let res = app
        .post(
            &owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": "", "unit": "袋", "price_fen": 0, "stock": -1, "ships_on": "next week"}),
        )
        .await;
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "price_fen", "stock", "ships_on"]);

    // A missing field and a wrong type are named by the JSON decoder.
    let res = app
        .post(&owner, "/api/v1/shops", json!({"place": "村"}))
        .await;
    let body = expect_problem(res, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(body["detail"].as_str().unwrap().contains("name"), "{body}");
    let res = owner
        .post(app.url("/api/v1/shops"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::BAD_REQUEST, "malformed_json").await;
    let res = owner
        .post(app.url("/api/v1/shops"))
        .body("name=x")
        .send()
        .await
        .unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.farmer_with_shop("13800138000").await;
    let huge = "米".repeat(200_000);
    let res = app
        .post(
            &owner,
            "/api/v1/shops",
            json!({"name": "x", "place": "y", "story": huge}),
        )
        .await;
    expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // The server is fine afterwards.
    expect(app.get(&owner, "/api/v1/session").await, StatusCode::OK).await;
    app.shutdown().await;
}

#[tokio::test]
async fn cross_site_writes_with_cookies_are_refused() {
    let app = TestApp::spawn().await;
    let (owner, _) = app.farmer_with_shop("13800138000").await;
    let res = owner
        .post(app.url("/api/v1/shops"))
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x", "place": "y"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "cross_site_request").await;
    let same_origin = app.url("");
    let res = owner
        .post(app.url("/api/v1/shops"))
        .header("origin", same_origin)
        .json(&json!({"name": "第二家店", "place": "村"}))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::CREATED).await;
    app.shutdown().await;
}
