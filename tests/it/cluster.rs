//! Cluster mode through the real server: nodes on one PostgreSQL database
//! and one NATS server (FIELDCAST_TEST_NATS) find each other, operators see
//! them, a node that stops leaves at once. Without NATS these tests say
//! SKIPPED, unless FIELDCAST_REQUIRE_NATS=1.

use crate::harness::*;
use crate::live::{Phone, next_of, send};
use crate::orders::sale;
use fieldcast::config::ClusterSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use store::testing::TestDb;

const OPERATOR_TOKEN: &str = "operator-token-for-the-tests";

pub fn nats_url() -> String {
    std::env::var("FIELDCAST_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// NATS is there, or the test is skipped (or fails, when required).
pub async fn nats_available() -> bool {
    let url = nats_url();
    let addr = url.trim_start_matches("nats://").to_owned();
    match tokio::net::TcpStream::connect(&addr).await {
        Ok(_) => true,
        Err(e) if std::env::var("FIELDCAST_REQUIRE_NATS").as_deref() != Ok("1") => {
            eprintln!(
                "SKIPPED: no NATS at {url} ({e}); set FIELDCAST_REQUIRE_NATS=1 to make this an error"
            );
            false
        }
        Err(e) => panic!("NATS required but unreachable at {url}: {e}"),
    }
}

/// Cluster settings as `serve --cluster` resolves them: the node's URL is
/// the public URL (which the server then follows to its real port).
pub fn settings(config: &fieldcast::Config, prefix: &str, node: &str) -> ClusterSettings {
    ClusterSettings {
        url: nats_url(),
        node_id: node.to_owned(),
        node_url: config.public_url.clone(),
        prefix: prefix.to_owned(),
    }
}

async fn cluster_view(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(app.url("/api/v1/cluster"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn node_ids(app: &TestApp) -> Vec<String> {
    let view = expect(
        cluster_view(app, Some(OPERATOR_TOKEN)).await,
        StatusCode::OK,
    )
    .await;
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_other_and_one_that_stops_leaves_at_once() {
    if !nats_available().await {
        return;
    }
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let prefix = format!("it{}", domain::secret_token().to_lowercase());
    let url = db.url.clone();
    let a = TestApp::spawn_with(db, |c| {
        c.cluster = Some(settings(c, &prefix, "node-a"));
        c.operator_token = Some(OPERATOR_TOKEN.to_owned());
    })
    .await;
    // A second node on the same database and NATS.
    let data_dir = tempfile::tempdir().unwrap();
    let mut config_b = a.config.clone();
    config_b.database_url = url;
    config_b.data_dir = data_dir.path().to_owned();
    config_b.cluster = Some(settings(&config_b, &prefix, "node-b"));
    let b = fieldcast::start(config_b).await.expect("node b starts");

    // Operators only.
    expect_problem(
        cluster_view(&a, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    expect_problem(
        cluster_view(&a, Some("not-the-operator-token")).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    assert_eq!(node_ids(&a).await, ["node-a", "node-b"]);
    let view = expect(cluster_view(&a, Some(OPERATOR_TOKEN)).await, StatusCode::OK).await;
    assert_eq!(view["node_id"], "node-a");
    let node_b: &Value = &view["nodes"][1];
    assert_eq!(node_b["http_url"], b.public_url.as_str(), "{node_b}");
    assert!(!node_b["media"].as_array().unwrap().is_empty(), "{node_b}");
    assert_eq!(node_b["version"], env!("CARGO_PKG_VERSION"));
    assert!(node_b["owns"].as_array().unwrap().is_empty());

    // The operator's command line says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args(["cluster", "status", "--cluster", &nats_url()])
        .args(["--cluster-prefix", &prefix, "--node-id", "ops-laptop"])
        .args(["--database-url", &a.config.database_url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("2 node(s)"), "{text}");
    assert!(
        text.contains("node-a\t") && text.contains("node-b\t"),
        "{text}"
    );

    // Each node's cluster lag is a metric once a heartbeat measured it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = a
            .get(&reqwest::Client::new(), "/metrics")
            .await
            .text()
            .await
            .unwrap();
        if metrics.contains("fieldcast_cluster_heartbeat_rtt_seconds") {
            break;
        }
        assert!(Instant::now() < deadline, "no cluster lag in /metrics");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Node b stops: it leaves the registry now, not after its TTL.
    b.shutdown().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while node_ids(&a).await != ["node-a"] {
        assert!(Instant::now() < deadline, "node-b is still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().await;
    drop_buckets(&prefix).await;
}

/// Two nodes on one database and NATS; the second is a bare server.
async fn two_nodes(prefix: &str) -> Option<(TestApp, fieldcast::Running, tempfile::TempDir)> {
    if !nats_available().await {
        return None;
    }
    let db = TestDb::postgres().await?;
    let url = db.url.clone();
    let a = TestApp::spawn_with(db, |c| {
        c.cluster = Some(settings(c, prefix, "node-a"));
    })
    .await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut config_b = a.config.clone();
    config_b.database_url = url;
    config_b.data_dir = data_dir.path().to_owned();
    config_b.cluster = Some(settings(&config_b, prefix, "node-b"));
    let b = fieldcast::start(config_b).await.expect("node b starts");
    Some((a, b, data_dir))
}

/// Polls `probe` until it is true; how long that took.
pub async fn within(limit: Duration, what: &str, mut probe: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The caches keep answers for 5 s; across nodes a sign-out and a ban must
/// not wait for that.
const CACHE_WINDOW: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_and_a_ban_on_one_node_hold_on_the_other_at_once_and_close_its_socket_there() {
    let prefix = format!("it{}", domain::secret_token().to_lowercase());
    let Some((a, b, _dir)) = two_nodes(&prefix).await else {
        return;
    };

    // A guest's session, read (and so cached) on node b.
    let guest = Phone::guest(&a, "赶集的").await;
    let on_b = |path: &str| guest.http.get(b.url(path)).header("origin", b.url(""));
    assert_eq!(
        on_b("/api/v1/session").send().await.unwrap().status(),
        StatusCode::OK
    );
    // Signed out on node a: node b no longer takes the cookie.
    let out = a.delete(&guest.http, "/api/v1/session").await;
    assert!(out.status().is_success(), "{}", out.status());
    let took = within(
        CACHE_WINDOW / 2,
        "node b still takes a signed-out session",
        async || on_b("/api/v1/session").send().await.unwrap().status() == StatusCode::UNAUTHORIZED,
    )
    .await;
    println!("a sign-out on node a held on node b after {took:?}");

    // A buyer who reserved on node b (so b cached the shop's bans) ...
    let s = sale(&a, 10, 5).await;
    let buyer = Phone::guest(&a, "囤货哥").await;
    let mut buyer_ws = buyer.connect(&a, &s.broadcast).await;
    let subject = next_of(&mut buyer_ws, "hello").await["you"]["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let reserve_on_b = async |key: &str| {
        buyer
            .http
            .post(b.url(&format!("/api/v1/offers/{}/reservations", s.offer)))
            .header("origin", b.url(""))
            .header("idempotency-key", key)
            .json(&json!({"quantity": 1}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(
        reserve_on_b("before-the-ban").await.status(),
        StatusCode::CREATED
    );
    // ... and watches the room on node b too.
    let mut buyer_on_b = buyer.connect_at(&b.url(""), &s.broadcast).await;
    next_of(&mut buyer_on_b, "hello").await;
    // ... is banned by the farmer on node a, and node b refuses them at once.
    let owner = Phone::signed_in(&a, "13800138000").await;
    let mut owner_ws = owner.connect(&a, &s.broadcast).await;
    next_of(&mut owner_ws, "hello").await;
    send(
        &mut owner_ws,
        json!({"type": "ban", "subject": subject, "reason": "囤货"}),
    )
    .await;
    let mut tap = 0;
    let took = within(
        CACHE_WINDOW / 2,
        "node b still sells to a banned buyer",
        async || {
            tap += 1;
            let res = reserve_on_b(&format!("after-the-ban-{tap}")).await;
            if res.status() == StatusCode::FORBIDDEN {
                let problem: Value = res.json().await.unwrap();
                assert_eq!(problem["code"], "banned", "{problem}");
                true
            } else {
                false
            }
        },
    )
    .await;
    println!("a ban on node a held on node b after {took:?}");
    // Node b's room closed the banned viewer's socket too.
    let closed = tokio::time::timeout(CACHE_WINDOW, async {
        use futures::StreamExt;
        while let Some(msg) = buyer_on_b.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(frame)) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("node b's room closes the banned viewer's socket");
    assert_eq!(closed, Some(4001), "closed as banned");

    b.shutdown().await.unwrap();
    a.shutdown().await;
    drop_buckets(&prefix).await;
}

/// The test's buckets go, so runs do not pile up on the shared NATS server.
pub async fn drop_buckets(prefix: &str) {
    let mut config = cluster::ClusterConfig::new(nats_url(), "cleanup");
    config.prefix = prefix.to_owned();
    let c = cluster::Cluster::connect(config).await.unwrap();
    for bucket in ["nodes", "leases"] {
        let _ = c
            .jetstream()
            .delete_key_value(format!("{prefix}_{bucket}"))
            .await;
    }
}

#[tokio::test]
async fn a_single_server_has_no_cluster_view_and_cluster_mode_refuses_sqlite() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |c| {
        c.operator_token = Some(OPERATOR_TOKEN.to_owned());
    })
    .await;
    expect_problem(
        cluster_view(&app, Some(OPERATOR_TOKEN)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args([
            "serve",
            "--cluster",
            "nats://127.0.0.1:4222",
            "--node-id",
            "a",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("FIELDCAST_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster mode needs PostgreSQL"), "{err}");
}
