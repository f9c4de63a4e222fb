use crate::harness::*;
use reqwest::StatusCode;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let client = app.client();
    assert_eq!(app.get(&client, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get(&client, "/readyz").await.status(), StatusCode::OK);
    app.get(&client, "/api/v1/broadcasts/live").await;
    let metrics = app.get(&client, "/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(
        text.contains(r#"route="/api/v1/broadcasts/live""#),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    let client = app.client();
    app.server.as_ref().unwrap().store.close().await;
    assert_eq!(
        app.get(&client, "/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get(&client, "/healthz").await.status(), StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_api_routes_are_problem_documents() {
    let app = TestApp::spawn().await;
    let res = app.get(&app.client(), "/api/v1/no-such-thing").await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app
        .get(&app.client(), "/api/v1/shops/shp_doesnotexist")
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app.get(&app.client(), "/api/v1/shops/garbage").await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}
