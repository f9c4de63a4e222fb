//! WHIP/WHEP over real HTTP with real WebRTC peers (webrtc-rs).

use crate::harness::*;
use reqwest::{Client, StatusCode};
use serde_json::json;
use sfu::testkit::{CountingViewer, PublisherOptions, SyntheticPublisher, ViewerOptions};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Live {
    pub owner: Client,
    pub broadcast: String,
    pub stream_key: String,
}

/// A farmer with a shop and a scheduled broadcast, and its stream key.
pub async fn scheduled_broadcast(app: &TestApp, mobile: &str) -> Live {
    let (owner, shop) = app.farmer_with_shop(mobile).await;
    let broadcast = app.broadcast(&owner, &shop, "谷子地直播").await;
    let key = expect(
        app.get(
            &owner,
            &format!("/api/v1/broadcasts/{broadcast}/stream-key"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    Live {
        owner,
        broadcast,
        stream_key: key["stream_key"].as_str().unwrap().to_owned(),
    }
}

/// Posts an SDP offer like any WHIP/WHEP client and returns the answer,
/// remembering the session's Location.
pub async fn exchange(
    url: String,
    bearer: Option<String>,
    offer: String,
    location: Arc<Mutex<Option<String>>>,
) -> Result<String, String> {
    let mut req = Client::new()
        .post(url)
        .header("content-type", "application/sdp")
        .body(offer);
    if let Some(key) = bearer {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    if res.status() != StatusCode::CREATED {
        return Err(format!(
            "{}: {}",
            res.status(),
            res.text().await.unwrap_or_default()
        ));
    }
    assert_eq!(res.headers()["content-type"], "application/sdp");
    assert!(res.headers().contains_key("etag"));
    *location.lock().unwrap() = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    res.text().await.map_err(|e| e.to_string())
}

pub async fn whip_publish(
    app: &TestApp,
    live: &Live,
    opts: PublisherOptions,
) -> (SyntheticPublisher, String) {
    let location = Arc::new(Mutex::new(None));
    let (url, key, loc) = (
        app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast)),
        live.stream_key.clone(),
        location.clone(),
    );
    let publisher =
        SyntheticPublisher::connect(opts, move |offer| exchange(url, Some(key), offer, loc))
            .await
            .expect("WHIP publish");
    let location = location.lock().unwrap().clone().expect("Location header");
    (publisher, location)
}

pub async fn whep_play(app: &TestApp, broadcast: &str) -> Result<(CountingViewer, String), String> {
    let location = Arc::new(Mutex::new(None));
    let (url, loc) = (
        app.url(&format!("/api/v1/broadcasts/{broadcast}/whep")),
        location.clone(),
    );
    let viewer = CountingViewer::connect(ViewerOptions::default(), move |offer| {
        exchange(url, None, offer, loc)
    })
    .await?;
    let location = location.lock().unwrap().clone().expect("Location header");
    Ok((viewer, location))
}

pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub async fn broadcast_state(app: &TestApp, broadcast: &str) -> String {
    let b = expect(
        app.get(&app.client(), &format!("/api/v1/broadcasts/{broadcast}"))
            .await,
        StatusCode::OK,
    )
    .await;
    b["state"].as_str().unwrap().to_owned()
}

async fn wait_for_state(app: &TestApp, broadcast: &str, state: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if broadcast_state(app, broadcast).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broadcast never became {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_stream_key_and_watch_over_whep() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let (publisher, publisher_session) =
        whip_publish(&app, &live, PublisherOptions::default()).await;
    assert!(
        publisher_session.starts_with(&format!("/api/v1/broadcasts/{}/sessions/", live.broadcast))
    );
    wait_for_state(&app, &live.broadcast, "live").await;

    let (a, a_session) = whep_play(&app, &live.broadcast).await.expect("viewer a");
    let (b, _) = whep_play(&app, &live.broadcast).await.expect("viewer b");
    assert!(
        wait_until(Duration::from_secs(10), || [&a, &b].iter().all(|v| v
            .video_packets()
            > 30
            && v.audio_packets() > 10
            && v.keyframes() > 0))
        .await,
        "both viewers receive video, audio and a keyframe"
    );

    // The operator's /metrics counts the broadcast's media.
    let series = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{room=")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let counted = |text: &str| {
        (
            series(text, "fieldcast_sfu_packets_in_total"),
            series(text, "fieldcast_sfu_packets_out_total"),
        )
    };
    let before = app
        .get(&app.client(), "/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(series(&before, "fieldcast_sfu_viewers"), 2.0);
    let (in_0, out_0) = counted(&before);
    assert!(in_0 > 40.0, "{before}");
    // Two viewers: about two forwarded packets per received one, counted from
    // when both watch (the publisher sent alone before they joined).
    let end = Instant::now() + Duration::from_secs(10);
    let text = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = app
            .get(&app.client(), "/metrics")
            .await
            .text()
            .await
            .unwrap();
        if counted(&text).0 - in_0 > 60.0 || Instant::now() > end {
            break text;
        }
    };
    let (in_1, out_1) = counted(&text);
    assert!(in_1 - in_0 > 60.0, "media keeps arriving: {text}");
    assert!(
        out_1 - out_0 > 1.2 * (in_1 - in_0),
        "each received packet goes to both viewers: {in_0}→{in_1} in, {out_0}→{out_1} out"
    );
    assert!(
        series(&text, "fieldcast_sfu_busy_seconds_total") > 0.0,
        "{text}"
    );

    // The studio sees the media's health; viewers do not.
    let stats = expect(
        app.get(
            &live.owner,
            &format!("/api/v1/broadcasts/{}/stats", live.broadcast),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stats["live"], true);
    assert_eq!(stats["viewer_count"], 2);
    assert_eq!(stats["publisher"]["video_codec"], "VP8");
    assert_eq!(stats["viewers"].as_array().unwrap().len(), 2);
    let res = app
        .get(
            &app.client(),
            &format!("/api/v1/broadcasts/{}/stats", live.broadcast),
        )
        .await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    // A viewer leaves with DELETE; its session is gone afterwards.
    let client = app.client();
    assert_eq!(
        client
            .delete(app.url(&a_session))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let again = client.delete(app.url(&a_session)).send().await.unwrap();
    expect_problem(again, StatusCode::NOT_FOUND, "unknown_session").await;
    a.close().await;

    // The owner ends the broadcast: it is over for everyone.
    let res = app
        .post(
            &live.owner,
            &format!("/api/v1/broadcasts/{}/end", live.broadcast),
            json!({}),
        )
        .await;
    assert_eq!(expect(res, StatusCode::OK).await["state"], "ended");
    let res = client
        .post(app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast)))
        .bearer_auth(&live.stream_key)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::CONFLICT, "broadcast_ended").await;
    let err = whep_play(&app, &live.broadcast)
        .await
        .err()
        .expect("no playback of an ended broadcast");
    assert!(
        err.contains("409") && err.contains("broadcast_ended"),
        "{err}"
    );
    b.close().await;
    publisher.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_refuse_bad_requests_clearly() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let client = app.client();
    let whip = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", live.broadcast));

    let res = client
        .post(&whip)
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let res = client
        .post(&whip)
        .bearer_auth("not-the-key")
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "wrong_stream_key").await;
    let res = client
        .post(&whip)
        .bearer_auth(&live.stream_key)
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for garbage in [
        "",
        "hello",
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ] {
        let res = client
            .post(&whip)
            .bearer_auth(&live.stream_key)
            .header("content-type", "application/sdp")
            .body(garbage)
            .send()
            .await
            .unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "bad_sdp").await;
    }
    let huge = "a=x\r\n".repeat(40_000);
    let res = client
        .post(&whip)
        .bearer_auth(&live.stream_key)
        .header("content-type", "application/sdp")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Not live yet: a clear answer, not a black screen.
    let err = whep_play(&app, &live.broadcast)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("404") && err.contains("no_publisher"), "{err}");
    let res = client
        .post(app.url("/api/v1/broadcasts/brd_nosuchthing/whep"))
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;

    // Trickle and delete on unknown sessions.
    let session = app.url(&format!(
        "/api/v1/broadcasts/{}/sessions/0123",
        live.broadcast
    ));
    let res = client
        .patch(&session)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "unknown_session").await;
    let res = client.patch(&session).body("x").send().await.unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // Browser clients on other sites can discover the endpoint (CORS).
    let res = client
        .request(reqwest::Method::OPTIONS, &whep)
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_may_publish_from_the_studio_without_the_key() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let owner = live.owner.clone();
    let url = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));
    let publisher =
        SyntheticPublisher::connect(PublisherOptions::default(), move |offer| async move {
            let res = owner
                .post(url)
                .header("content-type", "application/sdp")
                .body(offer)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if res.status() != StatusCode::CREATED {
                return Err(res.status().to_string());
            }
            res.text().await.map_err(|e| e.to_string())
        })
        .await
        .expect("owner publishes with the session cookie");
    wait_for_state(&app, &live.broadcast, "live").await;

    // Someone else's session is not enough.
    let (stranger, _) = app.farmer_with_shop("13900139000").await;
    let res = stranger
        .post(app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast)))
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    publisher.close().await;
    app.shutdown().await;
}
