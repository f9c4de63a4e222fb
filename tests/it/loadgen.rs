//! Smoke runs of the load generator scenarios (correctness, not speed):
//! each drives a real `fieldcast serve` process (this build's binary) the way
//! `loadgen` does, in a few seconds, and checks that the numbers are there
//! and sane and that the flash sale never oversells. The speed is measured
//! by `loadgen` itself; see BENCHMARKS.md.

use loadgen::chat::ChatOptions;
use loadgen::media::ViewersOptions;
use loadgen::media::publisher::PublisherOptions;
use loadgen::report::{Report, RunContext};
use loadgen::sale::{SaleOptions, Via};
use loadgen::server::{Database, Server, ServerOptions};
use serde_json::Value;
use std::time::Duration;

async fn server(database: Database) -> Server {
    let mut opts = ServerOptions::new(env!("CARGO_BIN_EXE_fieldcast").into());
    opts.database = database;
    Server::start(&opts).await.expect("fieldcast starts")
}

/// The JSON report is written, reads back, and carries the run's conditions.
/// `busy_server`: the window was long enough (seconds, not a sub-second
/// burst) for the server's CPU time to have moved at 10 ms resolution.
fn json_of(report: &Report, busy_server: bool) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    report.write_json(&path).unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["scenario"], report.scenario);
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(v["load_before"].as_array().unwrap().len() == 3);
    let server_cpu = v["cpu"]["server"]["cpu_s"]
        .as_f64()
        .expect("the server's CPU time was read from /proc");
    if busy_server {
        assert!(server_cpu > 0.0, "{}", v["cpu"]);
    }
    assert!(!report.table().is_empty());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_viewers_smoke() {
    let mut server = server(Database::Sqlite).await;
    let opts = ViewersOptions {
        viewers: 4,
        ramp_per_s: 20.0,
        settle: Duration::from_secs(1),
        duration: Duration::from_secs(3),
        sample_every: 4,
        // The benchmark's stream: 1.5 Mbit/s, above the SFU's starting
        // estimate for a new viewer, which must not hold it on audio only.
        publisher: PublisherOptions::default(),
        ..Default::default()
    };
    let report = loadgen::media::run(&mut server, &opts, RunContext::capture("smoke".into()))
        .await
        .expect("viewers scenario runs");
    server.stop().await.unwrap();
    let v = json_of(&report, true);
    let r = &v["results"];
    assert_eq!(r["joined"], 4, "every viewer got a keyframe: {r}");
    assert_eq!(r["first_video_not_keyframe"], 0);
    let p50 = r["video_kbps"]["p50"].as_f64().unwrap();
    assert!(
        (1200.0..2500.0).contains(&p50),
        "a viewer receives about what the publisher sends (1.5 Mbit/s + headers): {p50}"
    );
    assert!(r["audio_kbps"]["p50"].as_f64().unwrap() > 20.0);
    assert!(r["forwarded_packets"].as_u64().unwrap() > 4 * 3 * 50);
    assert!(r["loss_pct"].as_f64().unwrap() < 5.0, "{r}");
    assert!(r["delay_video"]["count"].as_u64().unwrap() > 0);
    let p50_delay = r["delay_video"]["p50_ms"].as_f64().unwrap();
    assert!(p50_delay > 0.0 && p50_delay < 1000.0, "{p50_delay}");
    assert!(r["join"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(r["server_us_per_packet"].as_f64().unwrap() > 0.0);
    assert!(r["publisher"]["keyframes"].as_u64().unwrap() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_chat_smoke() {
    let mut server = server(Database::Sqlite).await;
    let opts = ChatOptions {
        viewers: 40,
        rate: 5.0,
        duration: Duration::from_secs(3),
        drain: Duration::from_secs(2),
        ..Default::default()
    };
    let report = loadgen::chat::run(&mut server, &opts, RunContext::capture("smoke".into()))
        .await
        .expect("chat scenario runs");
    server.stop().await.unwrap();
    let v = json_of(&report, true);
    let r = &v["results"];
    assert_eq!(r["connected"], 40, "{r}");
    assert!(
        r["senders"].as_u64().unwrap() >= 2,
        "15 messages need more than one sender under the 5-message burst"
    );
    let sent = r["sent_in_window"].as_u64().unwrap();
    assert!(sent >= 12, "about 5 messages a second for 3 s: {sent}");
    assert_eq!(
        r["refused"].as_object().unwrap().len(),
        0,
        "senders stay inside the rate limit: {r}"
    );
    assert_eq!(
        r["deliveries"].as_u64().unwrap(),
        sent * 40,
        "every message reached every connection: {r}"
    );
    assert_eq!(r["latency"]["count"], r["deliveries"]);
    assert!(r["latency"]["p99_ms"].as_f64().unwrap() < 5000.0);
    assert_eq!(r["lagged_snapshots"], 0);
}

async fn sale_smoke(database: Database, via: Via) {
    let mut server = server(database).await;
    let opts = SaleOptions {
        buyers: 40,
        taps: 2,
        stock: Some(50),
        per_buyer_limit: Some(2),
        via,
        ..Default::default()
    };
    let report = loadgen::sale::run(&mut server, &opts, RunContext::capture("smoke".into()))
        .await
        .expect("sale scenario runs");
    server.stop().await.unwrap();
    let v = json_of(&report, false);
    let r = &v["results"];
    assert_eq!(r["taps"], 80);
    assert_eq!(r["accepted"], 50, "exactly the stock was sold: {r}");
    assert_eq!(r["outcomes"]["sold_out"], 30, "{r}");
    let audit = &r["audit"];
    assert_eq!(audit["held"], 50, "{audit}");
    assert_eq!(audit["oversold"], 0);
    assert_eq!(audit["acknowledged_missing"], 0);
    assert_eq!(audit["buyers_over_limit"], 0);
    assert_eq!(audit["consistent"], true);
    assert!(r["accepted_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["latency_accepted"]["p99_ms"].as_f64().unwrap() > 0.0);
    let oversell = report
        .targets
        .iter()
        .find(|t| t.name == "oversell")
        .unwrap();
    assert_eq!(oversell.met, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sale_smoke_sqlite_http() {
    sale_smoke(Database::Sqlite, Via::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sale_smoke_sqlite_websocket() {
    sale_smoke(Database::Sqlite, Via::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_sale_smoke_postgres() {
    // Skips (loudly) without PostgreSQL unless FIELDCAST_REQUIRE_POSTGRES=1.
    let Some(db) = store::testing::TestDb::postgres().await else {
        return;
    };
    sale_smoke(Database::Url(db.url.clone()), Via::Http).await;
    drop(db);
}
