//! Issue 11, the account side: sign-in, guests and sign-up turned against
//! the server or the farmer by one laptop. The server under test trusts
//! loopback as a reverse proxy, so each request can say (X-Forwarded-For)
//! which client address it stands for, as a proxy in front would.

use crate::harness::*;
use futures::future::join_all;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use store::testing::TestDb;

const PASSWORD: &str = "correct horse battery";

async fn behind_proxy() -> TestApp {
    TestApp::spawn_with(TestDb::sqlite(), |config| {
        config.client_ip.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

/// A POST as the client at `from` (the proxy's header), from our own page.
async fn post_from(
    app: &TestApp,
    client: &Client,
    path: &str,
    body: Value,
    from: &str,
) -> Response {
    client
        .post(app.url(path))
        .header("x-forwarded-for", from)
        .header("origin", app.url(""))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn sign_in_from(
    app: &TestApp,
    client: &Client,
    mobile: &str,
    password: &str,
    from: &str,
) -> Response {
    post_from(
        app,
        client,
        "/api/v1/session",
        json!({"mobile": mobile, "password": password}),
        from,
    )
    .await
}

async fn sign_up_from(app: &TestApp, client: &Client, mobile: &str, from: &str) -> Response {
    post_from(
        app,
        client,
        "/api/v1/accounts",
        json!({"mobile": mobile, "password": PASSWORD, "display_name": "王大姐"}),
        from,
    )
    .await
}

/// Status → how many, checking every 429/503 says when to come back.
fn tally(responses: &[Response]) -> HashMap<u16, usize> {
    let mut counts = HashMap::new();
    for res in responses {
        if matches!(res.status().as_u16(), 429 | 503) {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1, "Retry-After: {retry}");
        }
        *counts.entry(res.status().as_u16()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn parallel_sign_ins_cannot_skip_the_throttle() {
    let app = behind_proxy().await;
    let owner = app.client();
    let res = sign_up_from(&app, &owner, "13800138000", "198.51.100.1").await;
    expect(res, StatusCode::CREATED).await;

    // One attacker address: 29 wrong passwords and the right one at once.
    let attacker = app.client();
    let attempts = (0..30).map(|n| {
        let password = if n == 17 {
            PASSWORD.to_owned()
        } else {
            format!("guess number {n}")
        };
        let (app, attacker) = (&app, &attacker);
        async move { sign_in_from(app, attacker, "13800138000", &password, "203.0.113.66").await }
    });
    let responses = join_all(attempts).await;
    let counts = tally(&responses);
    let checked = counts.get(&200).unwrap_or(&0) + counts.get(&401).unwrap_or(&0);
    assert!(
        checked <= 5,
        "at most the per-number-and-address burst is hashed: {counts:?}"
    );
    assert!(counts.get(&429).copied().unwrap_or(0) >= 25, "{counts:?}");

    // Spread over 30 addresses, the per-number allowance still holds.
    let owner2 = app.client();
    expect(
        sign_up_from(&app, &owner2, "13900139000", "198.51.100.2").await,
        StatusCode::CREATED,
    )
    .await;
    let attempts = (0..30).map(|n| {
        let app = &app;
        async move {
            let phone = app.client();
            let from = format!("203.0.113.{}", 100 + n);
            sign_in_from(app, &phone, "13900139000", "guess guess", &from).await
        }
    });
    let counts = tally(&join_all(attempts).await);
    assert!(
        counts.get(&401).copied().unwrap_or(0) <= 10,
        "at most the per-number burst is hashed: {counts:?}"
    );
    assert!(counts.get(&429).copied().unwrap_or(0) >= 20, "{counts:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_owner_signs_in_from_a_known_device_while_the_number_is_under_attack() {
    let app = behind_proxy().await;
    let home = "198.51.100.1";
    let phone = app.client();
    expect(
        sign_up_from(&app, &phone, "13800138000", home).await,
        StatusCode::CREATED,
    )
    .await;
    // A second phone signs in once; the first later signs it out (lost).
    let lost_phone = app.client();
    expect(
        sign_in_from(&app, &lost_phone, "13800138000", PASSWORD, home).await,
        StatusCode::OK,
    )
    .await;
    let sessions = expect(app.get(&phone, "/api/v1/session/all").await, StatusCode::OK).await;
    let lost = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = phone
        .delete(app.url(&format!("/api/v1/session/all/{lost}")))
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::NO_CONTENT).await;
    // The owner signs out too: a known device needs no live session.
    let res = phone
        .delete(app.url("/api/v1/session"))
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::NO_CONTENT).await;

    // Many wrong passwords from many addresses, one of them the owner's
    // own (a shared carrier address).
    let attempts = (0..40).map(|n| {
        let app = &app;
        async move {
            let from = if n == 0 {
                home.to_owned()
            } else {
                format!("203.0.113.{n}")
            };
            sign_in_from(app, &app.client(), "13800138000", "guess guess", &from).await
        }
    });
    let counts = tally(&join_all(attempts).await);
    assert!(counts.get(&429).copied().unwrap_or(0) > 0, "{counts:?}");

    // A stranger with the right password waits…
    let res = sign_in_from(&app, &app.client(), "13800138000", PASSWORD, "192.0.2.50").await;
    expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // …and so does the phone signed out from elsewhere…
    let res = sign_in_from(&app, &lost_phone, "13800138000", PASSWORD, "192.0.2.51").await;
    expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // …but the owner's phone gets in, from home or from anywhere.
    let me = expect(
        sign_in_from(&app, &phone, "13800138000", PASSWORD, home).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["mobile"], "13800138000");
    let res = phone
        .delete(app.url("/api/v1/session"))
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::NO_CONTENT).await;
    expect(
        sign_in_from(&app, &phone, "13800138000", PASSWORD, "203.0.113.200").await,
        StatusCode::OK,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_guest_flood_from_one_address_is_limited_and_others_still_get_in() {
    let app = behind_proxy().await;
    let flood = (0..30).map(|n| {
        let app = &app;
        async move {
            post_from(
                app,
                &app.client(),
                "/api/v1/guest",
                json!({"nickname": format!("买家{n}")}),
                "203.0.113.9",
            )
            .await
        }
    });
    let counts = tally(&join_all(flood).await);
    // A burst of 10, then one every 12 s (one more if the machine is slow).
    let created = counts.get(&201).copied().unwrap_or(0);
    assert!((10..=11).contains(&created), "a room's worth: {counts:?}");
    assert_eq!(
        counts.get(&429).copied().unwrap_or(0),
        30 - created,
        "{counts:?}"
    );

    // Another address (another village) is not affected, nor is the same
    // address's IPv6 neighbour outside its /64.
    for from in ["198.51.100.7", "2001:db8:0:2::1"] {
        let res = post_from(
            &app,
            &app.client(),
            "/api/v1/guest",
            json!({"nickname": "老李"}),
            from,
        )
        .await;
        expect(res, StatusCode::CREATED).await;
    }
    // One phone rotating addresses inside its /64 is one client.
    let mut statuses = Vec::new();
    for n in 0..12 {
        let from = format!("2001:db8:0:1::{n:x}");
        let res = post_from(
            &app,
            &app.client(),
            "/api/v1/guest",
            json!({"nickname": "换地址"}),
            &from,
        )
        .await;
        statuses.push(res.status().as_u16());
    }
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 1,
        "{statuses:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn sign_up_and_appointment_cannot_enumerate_accounts_cheaply() {
    let app = behind_proxy().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    for n in 0..3 {
        let res = sign_up_from(
            &app,
            &app.client(),
            &format!("1370013700{n}"),
            "198.51.100.3",
        )
        .await;
        expect(res, StatusCode::CREATED).await;
    }

    // Probing numbers through sign-up: after the burst every answer is the
    // same 429, whether the number is taken or free.
    let mut answers = Vec::new();
    for n in 0..14 {
        let mobile = if n % 2 == 0 {
            format!("1370013700{}", n % 3)
        } else {
            format!("1360013{n:04}")
        };
        let res = sign_up_from(&app, &app.client(), &mobile, "203.0.113.77").await;
        answers.push((mobile, res.status().as_u16()));
    }
    let (early, late) = answers.split_at(10);
    assert!(
        early.iter().all(|(_, s)| *s == 201 || *s == 409),
        "{answers:?}"
    );
    assert!(late.iter().all(|(_, s)| *s == 429), "{answers:?}");

    // Probing through moderator appointment: the owner hears whether the
    // number has an account, a few times, then waits.
    let mut statuses = Vec::new();
    for n in 0..14 {
        let res = owner
            .post(app.url(&format!("/api/v1/shops/{shop}/moderators")))
            .header("origin", app.url(""))
            .json(&json!({"mobile": format!("1350013{n:04}")}))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 422), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn private_order_link_lookups_are_limited_per_address() {
    let app = behind_proxy().await;
    let lookups = (0..40).map(|n| {
        let app = &app;
        async move {
            app.client()
                .get(app.url(&format!("/api/v1/orders/private/guess{n:028}")))
                .header("x-forwarded-for", "203.0.113.5")
                .send()
                .await
                .unwrap()
        }
    });
    let counts = tally(&join_all(lookups).await);
    // A burst of 30, then one every 2 s.
    let looked_up = counts.get(&404).copied().unwrap_or(0);
    assert!((30..=32).contains(&looked_up), "{counts:?}");
    assert_eq!(
        counts.get(&429).copied().unwrap_or(0),
        40 - looked_up,
        "{counts:?}"
    );
    let res = app
        .client()
        .get(app.url("/api/v1/orders/private/guess"))
        .header("x-forwarded-for", "198.51.100.5")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    app.shutdown().await;
}

/// Rounds of parallel sign-ins for unknown numbers, each from its own
/// address (so no per-address limit helps): the server's resident memory
/// stays flat because only a few hashes run at once. Measured on a real
/// `fieldcast serve` process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_does_not_grow_memory() {
    use loadgen::server::{Server, ServerOptions};
    let server = Server::start(&ServerOptions::new(env!("CARGO_BIN_EXE_fieldcast").into()))
        .await
        .expect("fieldcast starts");
    let pid = server.pid().expect("we started it");
    let rss_mib = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib / 1024
    };
    let http = Client::new();
    let mut counts: HashMap<u16, usize> = HashMap::new();
    let mut after_first = 0;
    let mut peak = 0;
    let before = rss_mib();
    for round in 0..5 {
        let attempts = (0..30).map(|n| {
            let (http, server) = (&http, &server);
            async move {
                http.post(server.url("/api/v1/session"))
                    .header("x-forwarded-for", format!("10.{round}.{n}.1"))
                    .json(
                        &json!({"mobile": format!("1360{round}{n:06}"), "password": "guess guess"}),
                    )
                    .send()
                    .await
                    .unwrap()
            }
        });
        for (status, n) in tally(&join_all(attempts).await) {
            *counts.entry(status).or_default() += n;
        }
        let rss = rss_mib();
        peak = peak.max(rss);
        if round == 0 {
            after_first = rss;
        }
    }
    server.stop().await.unwrap();
    assert_eq!(
        counts.keys().filter(|s| **s != 401 && **s != 503).count(),
        0,
        "wrong or busy, nothing else: {counts:?}"
    );
    assert!(counts.get(&401).copied().unwrap_or(0) > 0, "{counts:?}");
    // Unbounded, each round of 30 hashes adds hundreds of MiB for good;
    // bounded, later rounds reuse what the first one took.
    assert!(
        peak < after_first + 60,
        "RSS keeps growing: {before} MiB before, {after_first} after one round, {peak} at most"
    );
}
