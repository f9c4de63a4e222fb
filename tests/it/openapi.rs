//! The OpenAPI document served at /api/v1/openapi.json lists every route,
//! and every route it lists exists.

use crate::harness::*;
use reqwest::{Method, StatusCode};

/// Every `/api/v1` operation the server has. A new route must be added
/// here and to the document (the utoipa route macros add it to both the
/// router and the document, so forgetting it fails this test).
const EXPECTED: &[(&str, &str)] = &[
    ("POST", "/accounts"),
    ("GET", "/broadcasts/live"),
    ("GET", "/broadcasts/{broadcast_id}"),
    ("PATCH", "/broadcasts/{broadcast_id}"),
    ("POST", "/broadcasts/{broadcast_id}/end"),
    ("GET", "/broadcasts/{broadcast_id}/live"),
    ("GET", "/broadcasts/{broadcast_id}/offers"),
    ("POST", "/broadcasts/{broadcast_id}/offers"),
    ("PATCH", "/broadcasts/{broadcast_id}/sessions/{session_id}"),
    ("DELETE", "/broadcasts/{broadcast_id}/sessions/{session_id}"),
    ("GET", "/broadcasts/{broadcast_id}/stats"),
    ("GET", "/broadcasts/{broadcast_id}/stream-key"),
    ("POST", "/broadcasts/{broadcast_id}/stream-key"),
    ("OPTIONS", "/broadcasts/{broadcast_id}/whep"),
    ("POST", "/broadcasts/{broadcast_id}/whep"),
    ("OPTIONS", "/broadcasts/{broadcast_id}/whip"),
    ("POST", "/broadcasts/{broadcast_id}/whip"),
    ("POST", "/guest"),
    ("GET", "/offers/{offer_id}"),
    ("POST", "/offers/{offer_id}/end"),
    ("POST", "/offers/{offer_id}/reservations"),
    ("GET", "/orders/mine"),
    ("GET", "/orders/private/{token}"),
    ("GET", "/orders/{order_id}"),
    ("POST", "/orders/{order_id}/cancel"),
    ("POST", "/orders/{order_id}/delivered"),
    ("POST", "/orders/{order_id}/paid"),
    ("POST", "/orders/{order_id}/shipped"),
    ("GET", "/products/{product_id}"),
    ("PATCH", "/products/{product_id}"),
    ("DELETE", "/products/{product_id}"),
    ("GET", "/reservations/mine"),
    ("GET", "/reservations/{reservation_id}"),
    ("DELETE", "/reservations/{reservation_id}"),
    ("POST", "/reservations/{reservation_id}/order"),
    ("GET", "/session"),
    ("POST", "/session"),
    ("DELETE", "/session"),
    ("GET", "/session/all"),
    ("DELETE", "/session/all/{session_id}"),
    ("POST", "/shops"),
    ("GET", "/shops/{shop_id}"),
    ("PATCH", "/shops/{shop_id}"),
    ("GET", "/shops/{shop_id}/bans"),
    ("DELETE", "/shops/{shop_id}/bans/{subject}"),
    ("GET", "/shops/{shop_id}/broadcasts"),
    ("POST", "/shops/{shop_id}/broadcasts"),
    ("GET", "/shops/{shop_id}/moderation-log"),
    ("GET", "/shops/{shop_id}/moderators"),
    ("POST", "/shops/{shop_id}/moderators"),
    ("DELETE", "/shops/{shop_id}/moderators/{user_id}"),
    ("GET", "/shops/{shop_id}/orders"),
    ("GET", "/shops/{shop_id}/orders.csv"),
    ("GET", "/shops/{shop_id}/products"),
    ("POST", "/shops/{shop_id}/products"),
    ("PUT", "/shops/{shop_id}/photo"),
    ("DELETE", "/shops/{shop_id}/photo"),
    ("PUT", "/products/{product_id}/photo"),
    ("DELETE", "/products/{product_id}/photo"),
    ("GET", "/broadcasts/{broadcast_id}/recording"),
    ("PUT", "/broadcasts/{broadcast_id}/recording"),
    ("GET", "/broadcasts/{broadcast_id}/replay"),
    ("GET", "/broadcasts/{broadcast_id}/replay/chat"),
    ("GET", "/shops/{shop_id}/replays"),
    ("GET", "/cluster"),
];

fn documented(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete", "options", "head"]
                .contains(&method.as_str())
            {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_listed_route_exists() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let doc = expect(
        app.get(&client, "/api/v1/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let mut expected: Vec<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented(&doc), expected, "document and route list differ");

    // Each documented operation is routed: with placeholder ids it may be
    // 401/404/422…, but never the router's own "no such route" or 405.
    for (method, path) in documented(&doc) {
        let concrete = path
            .replace("{shop_id}", "shp_placeholder")
            .replace("{broadcast_id}", "brd_placeholder")
            .replace("{product_id}", "prd_placeholder")
            .replace("{session_id}", "ses_placeholder")
            .replace("{user_id}", "usr_placeholder")
            .replace("{offer_id}", "ofr_placeholder")
            .replace("{reservation_id}", "rsv_placeholder")
            .replace("{order_id}", "ord_placeholder")
            .replace("{token}", "placeholder")
            .replace("{subject}", "gst_placeholder");
        let res = client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("/api/v1{concrete}")),
            )
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("route not found"),
            "{method} {path} is documented but not routed"
        );
    }
    app.shutdown().await;
}

#[test]
fn the_idempotency_key_limit_is_the_one_the_order_service_checks() {
    let doc = serde_json::to_value(api::openapi()).unwrap();
    let params = doc
        .pointer("/paths/~1offers~1{offer_id}~1reservations/post/parameters")
        .and_then(serde_json::Value::as_array)
        .expect("reserve's parameters");
    let key = params
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("the Idempotency-Key header is documented");
    let limit = format!("1–{} ", orders::MAX_IDEMPOTENCY_KEY_LEN);
    assert!(
        key["description"].as_str().unwrap().contains(&limit),
        "{key}"
    );
}
