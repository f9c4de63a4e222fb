//! Hostile browsers and clients against the web surface (issue 11,
//! findings 6, 7 and 8): forged origins, writes that hide where they come
//! from, broken websocket frames, invisible names and chat, and asset URLs
//! spelled a thousand ways.

use crate::harness::*;
use crate::live::{Phone, next_of, send};
use crate::media::scheduled_broadcast;
use futures::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A cookie jar that, unlike a browser, sends no `Origin` by itself.
fn bare_client() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

/// This server under the other scheme: same host and port.
fn other_scheme(app: &TestApp) -> String {
    app.url("").replacen("http://", "https://", 1)
}

#[tokio::test]
async fn writes_with_a_session_cookie_must_come_from_this_very_origin() {
    let app = TestApp::spawn().await;
    let phone = bare_client();
    // Sign-up carries no cookie yet: no Origin needed (apps, curl).
    app.sign_up(&phone, "13800138000", "王大姐").await;
    let shop = json!({"name": "王家沟小米", "place": "山西 岢岚县"});
    let shops = app.url("/api/v1/shops");

    // The same host and port under https is another origin.
    let res = phone
        .post(&shops)
        .header("origin", other_scheme(&app))
        .json(&shop)
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "cross_site_request").await;
    // So is another port, or an opaque origin.
    let port = app.server.as_ref().unwrap().addr.port();
    for origin in [format!("http://127.0.0.1:{}", port + 1), "null".to_owned()] {
        let res = phone
            .post(&shops)
            .header("origin", origin)
            .json(&shop)
            .send()
            .await
            .unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "cross_site_request").await;
    }

    // With the cookie and neither Origin nor Referer, writes are refused,
    // a body-less one (sign out) included: the session survives.
    let res = phone.post(&shops).json(&shop).send().await.unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "origin_required").await;
    let res = phone
        .delete(app.url("/api/v1/session"))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "origin_required").await;
    expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    // A foreign Referer is no better.
    let res = phone
        .post(&shops)
        .header("referer", format!("{}/studio", other_scheme(&app)))
        .json(&shop)
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "cross_site_request").await;

    // Nothing was created by any of that.
    let me = expect(app.get(&phone, "/api/v1/session").await, StatusCode::OK).await;
    assert_eq!(me["shops"], json!([]), "{me}");

    // This site's Referer (older browsers send no Origin) or Origin pass.
    let res = phone
        .post(&shops)
        .header("referer", app.url("/studio"))
        .json(&shop)
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::CREATED).await;
    let res = phone
        .delete(app.url("/api/v1/session"))
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::NO_CONTENT).await;
    app.shutdown().await;
}

#[tokio::test]
async fn writes_without_a_session_cookie_need_no_origin() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    // OBS and GStreamer: a stream key, no cookie, no Origin. A bad offer is
    // refused for what it is, not for where it came from.
    let res = Client::new()
        .post(app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast)))
        .bearer_auth(&live.stream_key)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["code"], "origin_required", "{body}");
    // Signing in sets the cookie; it needs no Origin either.
    let res = bare_client()
        .post(app.url("/api/v1/session"))
        .json(&json!({"mobile": "13800138000", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::OK).await;
    app.shutdown().await;
}

async fn connect_from(app: &TestApp, broadcast: &str, origin: &str) -> Result<Socket, String> {
    let url = app
        .url(&format!("/api/v1/broadcasts/{broadcast}/live"))
        .replacen("http", "ws", 1);
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn websocket_upgrades_compare_the_scheme_too() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let err = connect_from(&app, &live.broadcast, &other_scheme(&app))
        .await
        .expect_err("another scheme is another origin");
    assert!(err.contains("403"), "{err}");
    let mut socket = connect_from(&app, &live.broadcast, &app.url(""))
        .await
        .expect("this site's pages connect");
    next_of(&mut socket, "hello").await;
    app.shutdown().await;
}

/// Reads until the server's close frame; its code and reason.
async fn close_frame(socket: &mut Socket) -> (u16, String) {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a close frame within 10 s")
}

#[tokio::test]
async fn a_text_frame_of_invalid_utf8_is_closed_with_1007() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let mut socket = connect_from(&app, &live.broadcast, &app.url(""))
        .await
        .unwrap();
    next_of(&mut socket, "hello").await;
    let invalid = b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}".to_vec();
    socket
        .send(Message::Frame(Frame::message(
            invalid,
            OpCode::Data(Data::Text),
            true,
        )))
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut socket).await,
        (1007, "invalid_utf8".to_owned())
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_closed_with_1009() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let mut socket = connect_from(&app, &live.broadcast, &app.url(""))
        .await
        .unwrap();
    next_of(&mut socket, "hello").await;
    // 4 KiB frames get an `error`; the websocket limit is 16 KiB.
    let huge = format!("{{\"type\":\"ping\",\"id\":\"{}\"}}", "x".repeat(64 * 1024));
    socket.send(Message::text(huge)).await.unwrap();
    assert_eq!(
        close_frame(&mut socket).await,
        (1009, "message_too_big".to_owned())
    );
    app.shutdown().await;
}

/// Code points that hide in text or look blank (finding 7).
const SNEAKY: &[char] = &[
    '\u{2060}',
    '\u{061C}',
    '\u{00AD}',
    '\u{E0041}',
    '\u{180E}',
    '\u{200D}',
    '\u{202E}',
    '\u{FEFF}',
];

#[tokio::test]
async fn nicknames_that_look_blank_are_refused_and_invisible_characters_dropped() {
    let app = TestApp::spawn().await;
    for blank in [
        "\u{3164}",
        "\u{2800}\u{2800}",
        "\u{115F}\u{1160}\u{FFA0}",
        "\u{2060}",
    ] {
        let res = app
            .post(&app.client(), "/api/v1/guest", json!({"nickname": blank}))
            .await;
        let problem =
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "nickname", "{problem}");
        assert_eq!(problem["errors"][0]["code"], "blank", "{problem}");
    }
    // Sign-up names follow the same rule.
    let res = app
        .post(
            &app.client(),
            "/api/v1/accounts",
            json!({"mobile": "13900139000", "password": "correct horse battery", "display_name": "\u{2800}"}),
        )
        .await;
    let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem["errors"][0]["code"], "blank", "{problem}");

    let sneaky: String = SNEAKY.iter().map(|c| format!("{c}小")).collect();
    let res = app
        .post(&app.client(), "/api/v1/guest", json!({"nickname": sneaky}))
        .await;
    let me = expect(res, StatusCode::CREATED).await;
    assert_eq!(me["display_name"], "小".repeat(SNEAKY.len()));
    app.shutdown().await;
}

#[tokio::test]
async fn chat_loses_invisible_characters_and_invisible_chat_is_refused() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let li = Phone::guest(&app, "小李").await;
    let mut ws = li.connect(&app, &live.broadcast).await;
    next_of(&mut ws, "hello").await;
    let mut watcher = Phone::new().connect(&app, &live.broadcast).await;
    next_of(&mut watcher, "hello").await;

    for (i, invisible) in [
        "\u{2060}",
        "\u{2060}\u{200D}\u{2060}",
        "\u{E0041}\u{E0042}",
        "\u{2800}\u{3164}",
    ]
    .iter()
    .enumerate()
    {
        let nonce = format!("blank{i}");
        send(
            &mut ws,
            json!({"type": "chat", "text": invisible, "nonce": nonce}),
        )
        .await;
        let refused = next_of(&mut ws, "refused").await;
        assert_eq!(refused["nonce"], nonce, "{refused}");
        assert_eq!(refused["code"], "invalid_text", "{refused}");
    }

    let sneaky: String = SNEAKY.iter().map(|c| format!("好{c}")).collect();
    send(
        &mut ws,
        json!({"type": "chat", "text": sneaky, "nonce": "s1"}),
    )
    .await;
    let chat = next_of(&mut watcher, "chat").await;
    assert_eq!(chat["text"], "好".repeat(SNEAKY.len()));

    // Emoji keep their joiners and presentation selectors.
    let family = "小米真香👨\u{200D}👩\u{200D}👧❤\u{FE0F}";
    send(
        &mut ws,
        json!({"type": "chat", "text": family, "nonce": "e1"}),
    )
    .await;
    assert_eq!(next_of(&mut watcher, "chat").await["text"], family);
    app.shutdown().await;
}

/// `name` with each character spelled plainly, as `%xx` or as `%XX`, chosen
/// by the base-3 digits of `n`.
fn spelling(name: &str, mut n: usize) -> String {
    let mut out = String::new();
    for c in name.chars() {
        match n % 3 {
            0 => out.push(c),
            1 => out.push_str(&format!("%{:02x}", c as u32)),
            _ => out.push_str(&format!("%{:02X}", c as u32)),
        }
        n /= 3;
    }
    out
}

#[tokio::test]
async fn asset_url_spellings_all_serve_the_one_asset() {
    let app = TestApp::spawn().await;
    let client = Client::new();
    let home = client.get(app.url("/")).send().await.unwrap();
    let home = home.text().await.unwrap();
    let at = home.find("/static/").expect("pages link their assets") + "/static/".len();
    let version = home[at..].split('/').next().unwrap().to_owned();

    let plain = client
        .get(app.url(&format!("/static/{version}/js/api.js")))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.headers()["content-encoding"], "gzip");
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    let gzipped = plain.bytes().await.unwrap();

    // Compression is per response (no cache a spelling could grow):
    // 300 spellings of one immutable asset, 32 at a time.
    let spellings = 300;
    futures::stream::iter(1..=spellings)
        .map(|n| {
            let (client, url) = (
                client.clone(),
                app.url(&format!("/static/{version}/{}", spelling("js/api.js", n))),
            );
            async move {
                let res = client
                    .get(url)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                assert_eq!(res.headers()["content-encoding"], "gzip");
                res.bytes().await.unwrap()
            }
        })
        .buffer_unordered(32)
        .for_each(|body| {
            assert_eq!(body, gzipped, "every spelling is the same asset");
            async {}
        })
        .await;

    // Spellings that decode to something other than an asset's name find
    // nothing. (Encoded dot segments such as `%2E` are resolved by URL
    // parsers on the client side, as browsers do, so they cannot be sent
    // from here; on the server they decode to a name no asset has.)
    for odd in ["js//api.js", "js/./api.js%00", "js/api.js/"] {
        let res = client
            .get(app.url(&format!("/static/{version}/{odd}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{odd}");
    }
    app.shutdown().await;
}
