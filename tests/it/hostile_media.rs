//! WHIP/WHEP against a hostile client (issue 11): offer floods that never
//! connect, offers built to strain the SDP parser, trickle garbage and ICE
//! restarts, and a publish that never carried media.

use crate::harness::*;
use crate::media::{
    Live, broadcast_state, scheduled_broadcast, wait_until, whep_play, whip_publish,
};
use reqwest::{Client, StatusCode};
use sfu::testkit::{CountingViewer, PublisherOptions, SyntheticPublisher, ViewerOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An SDP offer as a player sends it; nothing ever connects for it.
pub async fn viewer_offer() -> String {
    let captured = Arc::new(Mutex::new(String::new()));
    let c2 = captured.clone();
    let _ = CountingViewer::connect(ViewerOptions::default(), move |offer| async move {
        *c2.lock().unwrap() = offer;
        Err::<String, String>("captured".into())
    })
    .await;
    captured.lock().unwrap().clone()
}

/// An SDP offer as a phone publishes it; nothing ever connects for it.
async fn publisher_offer() -> String {
    let captured = Arc::new(Mutex::new(String::new()));
    let c2 = captured.clone();
    let _ = SyntheticPublisher::connect(PublisherOptions::default(), move |offer| async move {
        *c2.lock().unwrap() = offer;
        Err::<String, String>("captured".into())
    })
    .await;
    captured.lock().unwrap().clone()
}

pub async fn post_sdp(
    client: &Client,
    url: &str,
    key: Option<&str>,
    sdp: String,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("content-type", "application/sdp")
        .body(sdp);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

async fn stats(app: &TestApp, live: &Live) -> serde_json::Value {
    expect(
        app.get(
            &live.owner,
            &format!("/api/v1/broadcasts/{}/stats", live.broadcast),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_flood_from_one_address_cannot_keep_real_viewers_out() {
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |c| {
        c.media.max_viewers = 20;
        // This test is about the cap on sessions still connecting; the
        // per-address rate of new sessions has its own test below.
        c.limits.media_session = api::limits::Rate::per_minute(1_000, 1_000);
    })
    .await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let (publisher, _) = whip_publish(&app, &live, PublisherOptions::default()).await;
    let sfu = app.server.as_ref().unwrap().sfu.clone();
    let per_client = sfu.config().max_pending_per_client;
    assert!(per_client > 20, "unchecked, the flood alone fills the room");

    // The attacker: another loopback address, offers whose ICE never starts.
    let attacker_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let attacker = Client::builder()
        .local_address(attacker_ip)
        .build()
        .unwrap();
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", live.broadcast));
    let offer = viewer_offer().await;
    let (mut created, mut throttled) = (0, 0);
    for _ in 0..100 {
        let res = post_sdp(&attacker, &whep, None, offer.clone()).await;
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=10).contains(&retry), "Retry-After {retry}");
                let problem =
                    expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "too_many_pending").await;
                assert!(problem["detail"].as_str().unwrap().contains("connecting"));
                throttled += 1;
            }
            other => panic!(
                "flood answered {other}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!(created, per_client);
    assert_eq!(throttled, 100 - per_client);
    assert_eq!(sfu.pending_of(attacker_ip), per_client);

    // Real viewers (127.0.0.1) still get in and play.
    let (a, _) = whep_play(&app, &live.broadcast).await.expect("viewer a");
    let (b, _) = whep_play(&app, &live.broadcast).await.expect("viewer b");
    assert!(
        wait_until(Duration::from_secs(10), || [&a, &b]
            .iter()
            .all(|v| v.video_packets() > 30))
        .await,
        "real viewers play"
    );
    // The studio counts connected viewers only.
    let s = stats(&app, &live).await;
    assert_eq!(s["viewer_count"], 2, "{s}");

    // Within seconds of the connect timeout the unconnected sessions are gone,
    // with the memory they held: the session count falls back.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(&app, &live).await;
        let counts = sfu.counts();
        if s["pending_viewers"] == 0
            && s["viewers"].as_array().unwrap().len() == 2
            && counts.sessions == 3
            && counts.pending == 0
            && counts.routed == 3
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "unconnected sessions linger: {s} {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sfu.pending_of(attacker_ip), 0);
    // The address may try again; the real viewers still play.
    let res = post_sdp(&attacker, &whep, None, offer.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = a.video_packets();
    assert!(wait_until(Duration::from_secs(5), || a.video_packets() > before + 30).await);
    a.close().await;
    b.close().await;
    publisher.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_built_to_strain_the_parser_are_refused_with_clear_codes() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let client = app.client();
    let whip = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", live.broadcast));
    let offer = publisher_offer().await;
    // Inserted right after the session-level lines, before the first m-section.
    let with = |extra: &str| offer.replacen("m=", &format!("{extra}m="), 1);
    let with_last = |extra: &str| format!("{offer}{extra}");

    let nul = with("s=a\0b\r\n");
    let res = post_sdp(&client, &whip, Some(&live.stream_key), nul).await;
    let p = expect_problem(res, StatusCode::BAD_REQUEST, "bad_sdp").await;
    assert!(
        p["detail"].as_str().unwrap().contains("control character"),
        "{p}"
    );

    let sections = with_last(&"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(1_000));
    let res = post_sdp(&client, &whip, Some(&live.stream_key), sections).await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sdp_too_complex").await;

    let rtpmaps = with_last(&"a=rtpmap:96 VP8/90000\r\n".repeat(2_000));
    let res = post_sdp(&client, &whip, Some(&live.stream_key), rtpmaps).await;
    let status = res.status();
    assert!(
        matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        ),
        "{status}"
    );
    let p: serde_json::Value = res.json().await.unwrap();
    assert!(
        ["bad_sdp", "sdp_too_complex"].contains(&p["code"].as_str().unwrap()),
        "{p}"
    );

    // The video section maps its payload type a second time.
    let vp8 = "a=rtpmap:96 VP8/90000\r\n";
    assert!(offer.contains(vp8), "{offer}");
    let duplicate = offer.replacen(vp8, &format!("{vp8}{vp8}"), 1);
    let res = post_sdp(&client, &whip, Some(&live.stream_key), duplicate).await;
    expect_problem(res, StatusCode::BAD_REQUEST, "bad_sdp").await;

    // None of that started a session; a real publisher and viewer work, and
    // WHEP applies the same rules.
    assert_eq!(app.server.as_ref().unwrap().sfu.counts().sessions, 0);
    let (publisher, _) = whip_publish(&app, &live, PublisherOptions::default()).await;
    let viewer = viewer_offer().await;
    let res = post_sdp(
        &client,
        &whep,
        None,
        viewer.replacen("m=", "a=x:\u{7f}\r\nm=", 1),
    )
    .await;
    expect_problem(res, StatusCode::BAD_REQUEST, "bad_sdp").await;
    let res = post_sdp(
        &client,
        &whep,
        None,
        format!(
            "{viewer}{}",
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n".repeat(20)
        ),
    )
    .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sdp_too_complex").await;
    let (v, _) = whep_play(&app, &live.broadcast)
        .await
        .expect("a real viewer");
    v.close().await;
    publisher.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickle_refuses_garbage_and_ice_restarts() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let client = app.client();
    // A session whose ETag we know.
    let res = post_sdp(
        &client,
        &app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast)),
        Some(&live.stream_key),
        publisher_offer().await,
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = app.url(res.headers()["location"].to_str().unwrap());
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let patch = |body: &str, if_match: Option<&str>| {
        let mut req = client
            .patch(&location)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body(body.to_owned());
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send()
    };
    let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";

    for garbage in [
        "",
        "hello",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\0\r\n",
        "a=candidate:garbage\r\n",
    ] {
        let res = patch(garbage, None).await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "bad_trickle").await;
    }
    // New ICE credentials are an ICE restart, which is not supported.
    let restart = format!(
        "a=ice-ufrag:brandnew\r\na=ice-pwd:anewpasswordanewpassword\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n{candidate}"
    );
    let res = patch(&restart, None).await.unwrap();
    let p = expect_problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ice_restart_unsupported",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("new offer"), "{p}");
    let res = patch(candidate, Some("*")).await.unwrap();
    expect_problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ice_restart_unsupported",
    )
    .await;
    // An entity tag of another ICE session.
    let res = patch(candidate, Some("\"someoneelse\"")).await.unwrap();
    expect_problem(res, StatusCode::PRECONDITION_FAILED, "etag_mismatch").await;
    // A real trickle is still accepted.
    let res = patch(candidate, Some(etag.as_str())).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = patch("a=end-of-candidates\r\n", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.shutdown().await;
}

/// Ends a WHIP session by DELETE, waits for the room's end, and checks that the
/// broadcast is still scheduled a second later (the bridge has had its turn).
async fn delete_and_see_the_room_end(app: &TestApp, live: &Live, location: &str) {
    let sfu = app.server.as_ref().unwrap().sfu.clone();
    let mut events = sfu.events();
    let res = app.client().delete(app.url(location)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < end, "the room never ended");
        if let Ok(Ok(sfu::SfuEvent::RoomEnded { room, .. })) =
            tokio::time::timeout(Duration::from_millis(200), events.recv()).await
            && room == live.broadcast
        {
            break;
        }
    }
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        assert_eq!(broadcast_state(app, &live.broadcast).await, "scheduled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_never_carried_media_leaves_the_broadcast_usable() {
    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |c| {
        c.media.publisher_grace = Duration::from_millis(500);
    })
    .await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let client = app.client();
    let whip = app.url(&format!("/api/v1/broadcasts/{}/whip", live.broadcast));

    // A WHIP session whose ICE never starts, then DELETEd.
    let res = post_sdp(
        &client,
        &whip,
        Some(&live.stream_key),
        publisher_offer().await,
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    delete_and_see_the_room_end(&app, &live, &location).await;

    // One that connects but never sends media, then DELETEd.
    let (silent, location) = whip_publish(
        &app,
        &live,
        PublisherOptions {
            silent: true,
            ..Default::default()
        },
    )
    .await;
    delete_and_see_the_room_end(&app, &live, &location).await;
    silent.close().await;

    // The farmer retries: the broadcast goes live and viewers watch.
    let (publisher, _) = whip_publish(&app, &live, PublisherOptions::default()).await;
    let end = Instant::now() + Duration::from_secs(10);
    while broadcast_state(&app, &live.broadcast).await != "live" {
        assert!(Instant::now() < end, "the broadcast never went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (v, _) = whep_play(&app, &live.broadcast).await.expect("viewer");
    assert!(wait_until(Duration::from_secs(10), || v.video_packets() > 30).await);
    v.close().await;
    publisher.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_media_sessions_are_rate_limited_per_address() {
    let app = TestApp::spawn().await;
    let live = scheduled_broadcast(&app, "13800138000").await;
    let (publisher, _) = whip_publish(&app, &live, PublisherOptions::default()).await;
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", live.broadcast));
    let offer = viewer_offer().await;

    // One address opening sessions as fast as it can: a burst gets answers,
    // then 429 with Retry-After, before any SDP is parsed.
    let flooder = Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .build()
        .unwrap();
    let answers =
        futures::future::join_all((0..60).map(|_| post_sdp(&flooder, &whep, None, offer.clone())))
            .await;
    let mut limited = 0;
    for res in answers {
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let problem = res.json::<serde_json::Value>().await.unwrap();
            if problem["code"] == "rate_limited" {
                limited += 1;
            }
        }
    }
    assert!(limited >= 30, "only {limited} of 60 rate limited");

    // Another address is not affected: a real viewer plays.
    let (viewer, _) = whep_play(&app, &live.broadcast).await.expect("viewer");
    assert!(
        wait_until(Duration::from_secs(10), || viewer.video_packets() > 30).await,
        "the real viewer plays"
    );
    viewer.close().await;
    publisher.close().await;
    app.shutdown().await;
}
