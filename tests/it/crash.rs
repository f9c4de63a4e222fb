//! Crash safety with a real process: start the server, fire a burst of
//! buys, SIGKILL it mid-burst, restart it on the same database. Every
//! reservation that was acknowledged must exist, the stock invariants must
//! hold, and expiries must still fire. On SQLite and PostgreSQL.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::testing::TestDb;
use tokio::process::{Child, Command};

const ALLOTTED: u32 = 300;
const PER_BUYER: u32 = 3;
const BUYERS: usize = 100;
const TAPS_PER_BUYER: usize = 10;
/// Acknowledgements to see before pulling the plug.
const KILL_AFTER_ACKS: usize = 40;

pub struct Server {
    pub child: Child,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_server(database_url: &str, data_dir: &Path) -> Server {
    start_server_with(database_url, data_dir, &[]).await
}

/// [`start_server`] with more `serve` arguments (a cluster node's, say).
pub async fn start_server_with(database_url: &str, data_dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(["--media-udp-port", "0", "--media-tcp-port", "0"])
        // Every buyer here is a guest from 127.0.0.1; the per-address guest
        // limit is tested elsewhere (hostile_auth).
        .args(["--guest-burst", "1000", "--guests-per-minute", "1000"])
        .env("FIELDCAST_DATABASE_URL", database_url)
        .env("FIELDCAST_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start fieldcast");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = reqwest::get(format!("{base}/readyz")).await
            && res.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

pub async fn post(client: &Client, url: String, body: Value) -> Value {
    let res = client.post(url).json(&body).send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap()
}

/// A farmer signs up on `base`, opens a shop and a broadcast and puts
/// `allotted` bags on sale, at most `per_buyer` each; the offer's id.
pub async fn farmer_with_offer(base: &str, allotted: u32, per_buyer: u32) -> String {
    let owner = phone(base);
    post(
        &owner,
        format!("{base}/api/v1/accounts"),
        json!({"mobile": "13800138000", "password": "correct horse battery", "display_name": "王"}),
    )
    .await;
    let shop = post(
        &owner,
        format!("{base}/api/v1/shops"),
        json!({"name": "小米", "place": "岢岚县"}),
    )
    .await;
    let shop = shop["id"].as_str().unwrap();
    let product = post(
        &owner,
        format!("{base}/api/v1/shops/{shop}/products"),
        json!({"title": "小米", "unit": "袋", "price_fen": 100, "stock": 1000}),
    )
    .await;
    let broadcast = post(
        &owner,
        format!("{base}/api/v1/shops/{shop}/broadcasts"),
        json!({"title": "直播"}),
    )
    .await;
    let offer = post(
        &owner,
        format!("{base}/api/v1/broadcasts/{}/offers", broadcast["id"].as_str().unwrap()),
        json!({"product_id": product["id"], "price_fen": 100, "quantity": allotted, "per_buyer_limit": per_buyer}),
    )
    .await;
    offer["id"].as_str().unwrap().to_owned()
}

/// The crash scenario on the database behind `db`.
async fn crash_and_recover(db: TestDb) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = start_server(&db.url, data_dir.path()).await;
    let base = server.base.clone();

    // A farmer puts 300 bags on sale.
    let offer_id = farmer_with_offer(&base, ALLOTTED, PER_BUYER).await;

    // Many guests, each tapping many times at once.
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let client = phone(&base);
        let me = post(
            &client,
            format!("{base}/api/v1/guest"),
            json!({"nickname": format!("买家{i}")}),
        )
        .await;
        buyers.push((client, me["id"].as_str().unwrap().to_owned()));
    }
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut taps = Vec::new();
    for (b, (client, subject)) in buyers.iter().enumerate() {
        for t in 0..TAPS_PER_BUYER {
            let (client, subject, url) = (
                client.clone(),
                subject.clone(),
                format!("{base}/api/v1/offers/{offer_id}/reservations"),
            );
            let (acked, acks, failed) = (acked.clone(), acks.clone(), failed.clone());
            taps.push(tokio::spawn(async move {
                let res = client
                    .post(url)
                    .header("idempotency-key", format!("{b}-{t}"))
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await;
                match res {
                    Ok(res) if res.status() == StatusCode::CREATED => {
                        match res.json::<Value>().await {
                            // Acknowledged only once the whole answer arrived.
                            Ok(body) => {
                                acked
                                    .lock()
                                    .unwrap()
                                    .push((body["id"].as_str().unwrap().to_owned(), subject));
                                acks.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(res) => assert_eq!(
                        res.status(),
                        StatusCode::CONFLICT,
                        "only refusals besides acks"
                    ),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        assert!(Instant::now() < deadline, "the burst never got going");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.child.start_kill().expect("SIGKILL");
    server.child.wait().await.unwrap();
    for tap in taps {
        tap.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "crash test: {} acknowledged, {} cut off by the kill",
        acked.len(),
        failed.load(Ordering::SeqCst)
    );
    assert!(
        failed.load(Ordering::SeqCst) > 0,
        "the kill landed mid-burst"
    );

    // Straight from the database, before anything restarts.
    let store = db.store().await.unwrap();
    let offer = domain::OfferId::parse(&offer_id).unwrap();
    for (id, buyer) in &acked {
        let r = store
            .reservation(&domain::ReservationId::parse(id).unwrap())
            .await
            .unwrap_or_else(|e| panic!("acknowledged reservation {id} lost: {e}"));
        assert_eq!((r.buyer.as_str(), r.quantity), (buyer.as_str(), 1));
        assert_eq!(r.state, domain::ReservationState::Held);
    }
    let audit = store.audit_offer(&offer).await.unwrap();
    assert!(audit.is_consistent(), "{audit:?}");
    assert!(audit.counts.held as usize >= acked.len());
    assert!(audit.counts.held <= ALLOTTED, "never oversold");
    let held = store.held_reservations(&offer).await.unwrap();
    let mut per_buyer: HashMap<&str, u32> = HashMap::new();
    for r in &held {
        *per_buyer.entry(r.buyer.as_str()).or_default() += r.quantity;
    }
    assert!(
        per_buyer.values().all(|n| *n <= PER_BUYER),
        "per-buyer limit held: {per_buyer:?}"
    );

    // While the server is down, time passes for half the holds: they are
    // now overdue and must be released as soon as the server is back.
    let overdue: Vec<&str> = held.iter().step_by(2).map(|r| r.id.as_str()).collect();
    let ids = overdue
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    db.execute(&format!(
        "UPDATE reservations SET expires_at = expires_at - 3600000 WHERE id IN ({ids})"
    ))
    .await
    .unwrap();
    store.close().await;

    let server = start_server(&db.url, data_dir.path()).await;
    let base = server.base.clone();
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let expected_held = (held.len() - overdue.len()) as u64;
    loop {
        let offer: Value = client
            .get(format!("{base}/api/v1/offers/{offer_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (a, h, s) = (
            offer["available"].as_u64().unwrap(),
            offer["held"].as_u64().unwrap(),
            offer["sold"].as_u64().unwrap(),
        );
        assert_eq!(
            a + h + s,
            u64::from(ALLOTTED),
            "available + held + sold = allotted: {offer}"
        );
        if h == expected_held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "overdue holds were not released after restart: {offer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = db.store().await.unwrap();
    for id in &overdue {
        let r = store
            .reservation(&domain::ReservationId::parse(id).unwrap())
            .await
            .unwrap();
        assert_eq!(r.state, domain::ReservationState::Expired, "{id}");
    }
    assert!(store.audit_offer(&offer).await.unwrap().is_consistent());

    // And it keeps selling: a buyer told "sold out" earlier can buy now.
    let late = guest_at(&base, "晚到的买家").await;
    let res = late
        .post(format!("{base}/api/v1/offers/{offer_id}/reservations"))
        .header("idempotency-key", "late")
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    store.close().await;
    drop(server);
}

/// A cookie jar that sends the site's `Origin` like its pages do.
pub fn phone(base: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ORIGIN, base.parse().unwrap());
    Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

pub async fn guest_at(base: &str, nickname: &str) -> Client {
    let client = phone(base);
    post(
        &client,
        format!("{base}/api/v1/guest"),
        json!({"nickname": nickname}),
    )
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_reservation_sqlite() {
    crash_and_recover(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_reservation_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crash_and_recover(db).await;
}
