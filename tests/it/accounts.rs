use crate::harness::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn sign_up_sign_in_sign_out() {
    let app = TestApp::spawn().await;
    let phone = app.client();
    let me = app.sign_up(&phone, "138 0013 8000", "王大姐").await;
    assert_eq!(me["kind"], "account");
    assert_eq!(me["mobile"], "13800138000", "number normalized");
    assert_eq!(me["display_name"], "王大姐");

    // Signed in right away.
    let me = expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    assert_eq!(me["display_name"], "王大姐");

    // Signing out ends the session on the server, not just the cookie.
    expect(
        app.delete(&phone, "/api/v1/session").await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&phone, "/api/v1/session").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // Sign in again on another phone.
    let other = app.client();
    let res = app
        .post(
            &other,
            "/api/v1/session",
            json!({"mobile": "13800138000", "password": "correct horse battery"}),
        )
        .await;
    let me = expect(res, StatusCode::OK).await;
    assert_eq!(me["display_name"], "王大姐");
    app.shutdown().await;
}

#[tokio::test]
async fn session_cookie_is_http_only_and_same_site() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            &app.client(),
            "/api/v1/accounts",
            json!({"mobile": "13800138000", "password": "correct horse battery", "display_name": "王"}),
        )
        .await;
    // The session cookie (the known-device cookie comes along too).
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("fieldcast_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_number_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.sign_up(&app.client(), "13800138000", "王大姐").await;
    let phone = app.client();
    let wrong = app
        .post(
            &phone,
            "/api/v1/session",
            json!({"mobile": "13800138000", "password": "not the password"}),
        )
        .await;
    let wrong = expect_problem(wrong, StatusCode::UNAUTHORIZED, "wrong_credentials").await;
    let unknown = app
        .post(
            &phone,
            "/api/v1/session",
            json!({"mobile": "13900139000", "password": "not the password"}),
        )
        .await;
    let unknown = expect_problem(unknown, StatusCode::UNAUTHORIZED, "wrong_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    expect_problem(
        app.get(&phone, "/api/v1/session").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let app = TestApp::spawn().await;
    app.sign_up(&app.client(), "13800138000", "王大姐").await;
    let attacker = app.client();
    for _ in 0..5 {
        let res = app
            .post(
                &attacker,
                "/api/v1/session",
                json!({"mobile": "13800138000", "password": "guess guess"}),
            )
            .await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "wrong_credentials").await;
    }
    // Even the right password is refused while the number is locked.
    let res = app
        .post(
            &attacker,
            "/api/v1/session",
            json!({"mobile": "13800138000", "password": "correct horse battery"}),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_mobile_number_has_one_account() {
    let app = TestApp::spawn().await;
    app.sign_up(&app.client(), "13800138000", "王大姐").await;
    let res = app
        .post(
            &app.client(),
            "/api/v1/accounts",
            json!({"mobile": "+86 138 0013 8000", "password": "another password", "display_name": "冒名"}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "mobile_taken").await;
    app.shutdown().await;
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_from_another_phone() {
    let app = TestApp::spawn().await;
    let phone = app.client();
    app.sign_up(&phone, "13800138000", "王大姐").await;
    let lost_phone = app.client();
    let res = app
        .post(
            &lost_phone,
            "/api/v1/session",
            json!({"mobile": "13800138000", "password": "correct horse battery"}),
        )
        .await;
    expect(res, StatusCode::OK).await;

    let sessions = expect(app.get(&phone, "/api/v1/session/all").await, StatusCode::OK).await;
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let id = other["id"].as_str().unwrap();

    // Another account cannot revoke it.
    let stranger = app.client();
    app.sign_up(&stranger, "13900139000", "陌生人").await;
    let res = app
        .delete(&stranger, &format!("/api/v1/session/all/{id}"))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;

    expect(
        app.delete(&phone, &format!("/api/v1/session/all/{id}"))
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.get(&lost_phone, "/api/v1/session").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    app.shutdown().await;
}

#[tokio::test]
async fn guests_chat_with_a_nickname_without_signing_up() {
    let app = TestApp::spawn().await;
    let phone = app.client();
    let me = expect(
        app.post(&phone, "/api/v1/guest", json!({"nickname": "小米爱好者"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(me["kind"], "guest");
    assert!(me.get("mobile").is_none());
    let me = expect(
        app.post(&phone, "/api/v1/guest", json!({"nickname": "老李"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["display_name"], "老李", "same guest, new nickname");
    let me2 = expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    assert_eq!(me2["id"], me["id"]);

    let farmer = app.client();
    app.sign_up(&farmer, "13800138000", "王大姐").await;
    let res = app
        .post(&farmer, "/api/v1/guest", json!({"nickname": "x"}))
        .await;
    expect_problem(res, StatusCode::CONFLICT, "already_signed_in").await;
    app.shutdown().await;
}

#[tokio::test]
async fn accounts_work_on_postgres_too() {
    let Some(app) = TestApp::spawn_postgres().await else {
        return;
    };
    let phone = app.client();
    app.sign_up(&phone, "13800138000", "王大姐").await;
    expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    let (_, shop) = app.farmer_with_shop("13900139000").await;
    expect(
        app.get(&phone, &format!("/api/v1/shops/{shop}")).await,
        StatusCode::OK,
    )
    .await;
    app.shutdown().await;
}
