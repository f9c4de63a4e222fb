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
    // Buckets, not a summary: latencies from sub-millisecond to seconds
    // resolve, and nodes' histograms can be added up.
    for le in ["0.001", "0.01", "0.1", "1"] {
        let bucket = format!(r#"le="{le}""#);
        assert!(
            text.lines()
                .any(|l| l.starts_with("http_request_duration_seconds_bucket{")
                    && l.contains(&bucket)),
            "no {bucket} bucket in {text}"
        );
    }
    app.shutdown().await;
}

/// The median bucket (its upper bound, seconds) of one route's request
/// latencies, read from the Prometheus text.
fn median_bucket(metrics: &str, route: &str) -> f64 {
    let route = format!(r#"route="{route}""#);
    // Cumulative counts per bound, summed over methods and statuses.
    let mut by_bound: Vec<(f64, u64)> = Vec::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("http_request_duration_seconds_bucket{") && l.contains(&route))
    {
        let le = line
            .split(r#"le=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        match by_bound.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, c)) => *c += count,
            None => by_bound.push((bound, count)),
        }
    }
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = by_bound.last().map(|(_, c)| *c).unwrap_or(0);
    assert!(total > 0, "no samples for {route} in {metrics}");
    by_bound
        .iter()
        .find(|(_, c)| *c * 2 >= total)
        .map(|(b, _)| *b)
        .unwrap()
}

#[tokio::test]
async fn latency_buckets_tell_fast_requests_from_slow_ones() {
    let app = TestApp::spawn().await;
    let client = app.client();
    // A health check answers from memory; signing up hashes a password
    // with a memory-hard function, tens of milliseconds at least.
    for _ in 0..20 {
        app.get(&client, "/healthz").await;
    }
    for n in 0..3 {
        app.sign_up(&app.client(), &format!("1390000{n:04}"), "快慢")
            .await;
    }
    let text = app.get(&client, "/metrics").await.text().await.unwrap();
    // Sub-millisecond requests have buckets of their own.
    for le in ["0.0001", "0.00025"] {
        let bucket = format!(r#"le="{le}""#);
        assert!(
            text.lines().any(|l| l.contains(&bucket)),
            "no {bucket} bucket in {text}"
        );
    }
    let fast = median_bucket(&text, "/healthz");
    let slow = median_bucket(&text, "/api/v1/accounts");
    assert!(fast.is_finite() && slow.is_finite(), "{fast} {slow}");
    assert!(
        fast < slow,
        "a health check ({fast} s) and a sign-up ({slow} s) share a median bucket"
    );
    app.shutdown().await;
}

/// Runs `fieldcast migrate` with its stdout going to a pipe (as to a file
/// or the journal) and returns what it logged.
fn migrate_log(dir: &std::path::Path, format: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldcast"))
        .args(["migrate", "--log-format", format, "--database-url"])
        .arg(format!(
            "sqlite://{}",
            dir.join(format!("{format}.db")).display()
        ))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["text", "json"] {
        let log = migrate_log(dir.path(), format);
        assert!(log.contains("migrations applied"), "{format}: {log}");
        assert!(!log.contains('\u{1b}'), "{format}: ANSI codes in {log:?}");
    }
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

#[tokio::test]
async fn serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.tls = Some((cert_path, key_path));
    })
    .await;
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .cookie_store(true)
        .resolve("localhost", app.server.as_ref().unwrap().addr)
        .build()
        .unwrap();
    let port = app.server.as_ref().unwrap().addr.port();
    let res = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Cookies become Secure when the public URL is https.
    let res = client
        .post(format!("https://localhost:{port}/api/v1/guest"))
        .json(&serde_json::json!({"nickname": "路人"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://localhost:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    app.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.server.as_ref().unwrap().addr;
    // A request whose body is still arriving when shutdown starts: it is
    // certainly in flight (the server has accepted it and waits for the rest).
    let body = r#"{"nickname": "最后一位观众"}"#;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/guest HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..5]).await.unwrap();
    // Make sure the server has read the head before stopping it.
    let probe = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);

    let stopping = tokio::spawn(app.shutdown());
    conn.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    stopping.await.unwrap();
}
