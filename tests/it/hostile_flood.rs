//! Everything a hostile client from one laptop was found to do, at once,
//! while a farmer is live and selling: sign-in, guest and WHEP floods. The
//! people who are really there (the farmer, a viewer, a buyer) must not
//! notice (issue 11).

use crate::harness::*;
use crate::hostile_media::{post_sdp, viewer_offer};
use crate::media::{Live, wait_until, whep_play, whip_publish};
use crate::orders::{buy, guest, sale};
use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::json;
use sfu::testkit::PublisherOptions;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_sign_ins_guests_and_viewer_sessions_leave_real_people_unharmed() {
    let server = TestApp::spawn().await;
    let app = &server;
    let sale = sale(app, 40, 2).await;
    let key = expect(
        app.get(
            &sale.owner,
            &format!("/api/v1/broadcasts/{}/stream-key", sale.broadcast),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let live = Live {
        owner: sale.owner.clone(),
        broadcast: sale.broadcast.clone(),
        stream_key: key["stream_key"].as_str().unwrap().to_owned(),
    };
    let (publisher, _) = whip_publish(app, &live, PublisherOptions::default()).await;
    let offer_sdp = viewer_offer().await;

    // The attacker: one machine (127.0.0.9), no cookies it wants to keep.
    let attacker = Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))
        .build()
        .unwrap();
    let whep = app.url(&format!("/api/v1/broadcasts/{}/whep", sale.broadcast));
    let sign_ins = async {
        let mut statuses = Vec::new();
        for round in 0..3 {
            let batch = join_all((0..30).map(|i| {
                let attacker = &attacker;
                // Unknown numbers and wrong guesses at the farmer's.
                let mobile = if i % 2 == 0 {
                    "13800138000".to_owned()
                } else {
                    format!("1390000{round}{i:03}")
                };
                async move {
                    attacker
                        .post(app.url("/api/v1/session"))
                        .json(&json!({"mobile": mobile, "password": format!("guess {i}")}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            }))
            .await;
            statuses.extend(batch);
        }
        statuses
    };
    let guests = join_all((0..60).map(|i| {
        let attacker = &attacker;
        async move {
            attacker
                .post(app.url("/api/v1/guest"))
                .json(&json!({"nickname": format!("抢{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    }));
    let viewers = join_all((0..100).map(|_| {
        let (attacker, whep, sdp) = (&attacker, &whep, offer_sdp.clone());
        async move { post_sdp(attacker, whep, None, sdp).await.status() }
    }));

    // The real people, from their own phones (127.0.0.1), at the same time.
    let people = async {
        // The farmer signs in again on the phone they are streaming from.
        let again = app
            .post(
                &sale.owner,
                "/api/v1/session",
                json!({"mobile": "13800138000", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(again.status(), StatusCode::OK, "the farmer signs in");
        // A viewer watches.
        let (viewer, _) = whep_play(app, &sale.broadcast)
            .await
            .expect("a real viewer gets a session");
        assert!(
            wait_until(Duration::from_secs(20), || viewer.video_packets() > 30).await,
            "the real viewer plays"
        );
        // A buyer buys.
        let buyer = guest(app, "李华").await;
        let held = buy(app, &buyer, &sale.offer, 2, "real-buyer-1").await;
        assert_eq!(held.status(), StatusCode::CREATED, "the real buyer holds 2");
        viewer
    };

    let (sign_ins, guests, viewers, viewer) = tokio::join!(sign_ins, guests, viewers, people);

    // The attacker was held back on every front…
    let refused = |s: &StatusCode| {
        matches!(
            *s,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    };
    assert!(
        !sign_ins.contains(&StatusCode::OK),
        "no guess got in: {sign_ins:?}"
    );
    assert!(
        sign_ins.iter().filter(|s| refused(s)).count() >= 45,
        "most sign-ins refused before hashing: {sign_ins:?}"
    );
    assert!(
        guests.iter().filter(|s| refused(s)).count() >= 40,
        "guest flood limited: {guests:?}"
    );
    assert!(
        viewers.iter().filter(|s| refused(s)).count() >= 60,
        "viewer-session flood limited: {viewers:?}"
    );

    // …and the viewer still plays, counted once; the stock saw one buyer.
    let before = viewer.video_packets();
    assert!(
        wait_until(Duration::from_secs(10), || viewer.video_packets()
            > before + 30)
        .await
    );
    let offer = expect(
        app.get(&app.client(), &format!("/api/v1/offers/{}", sale.offer))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(offer["available"], 38, "{offer}");
    viewer.close().await;
    publisher.close().await;
    server.shutdown().await;
}
