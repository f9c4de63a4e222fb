//! Starting servers and talking to them.

use fieldcast::{Config, Running};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use store::testing::TestDb;

pub struct TestApp {
    pub server: Option<Running>,
    #[allow(dead_code)] // keeps the database alive for the server
    pub db: TestDb,
    #[allow(dead_code)] // for tests that restart with the same settings
    pub config: Config,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    /// A server on a fresh SQLite database.
    pub async fn spawn() -> TestApp {
        Self::spawn_on(TestDb::sqlite()).await
    }

    /// A server on a fresh PostgreSQL database, or `None` when PostgreSQL is
    /// unavailable and not required (see `store::testing`).
    pub async fn spawn_postgres() -> Option<TestApp> {
        Some(Self::spawn_on(TestDb::postgres().await?).await)
    }

    pub async fn spawn_on(db: TestDb) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    /// A server whose test configuration `adjust` may change first.
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::defaults();
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.database_url = db.url.clone();
        config.data_dir = data_dir.path().to_owned();
        config.media = fieldcast::config::MediaSettings::loopback_for_tests();
        adjust(&mut config);
        fieldcast::telemetry::init_test_logging();
        let server = fieldcast::start(config.clone())
            .await
            .expect("server starts");
        TestApp {
            server: Some(server),
            db,
            config,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.as_ref().expect("running").url(path)
    }

    /// A new "phone": its own cookie jar, and this site's `Origin` on every
    /// request, as a browser sends on its writes (writes with a session
    /// cookie and no Origin are refused as possible cross-site requests).
    pub fn client(&self) -> Client {
        self.client_builder().cookie_store(true).build().unwrap()
    }

    /// A client builder that sends this site's `Origin`, like a page of it.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ORIGIN,
            self.url("").parse().expect("origin header"),
        );
        Client::builder().default_headers(headers)
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, client: &Client, path: &str, body: Value) -> Response {
        client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, client: &Client, path: &str, body: Value) -> Response {
        client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, client: &Client, path: &str) -> Response {
        client.delete(self.url(path)).send().await.unwrap()
    }

    /// Signs up a new account on `client` and returns its `Me` document.
    pub async fn sign_up(&self, client: &Client, mobile: &str, name: &str) -> Value {
        let res = self
            .post(
                client,
                "/api/v1/accounts",
                json!({"mobile": mobile, "password": "correct horse battery", "display_name": name}),
            )
            .await;
        expect(res, StatusCode::CREATED).await
    }

    /// A signed-up farmer with a shop; returns (client, shop id).
    pub async fn farmer_with_shop(&self, mobile: &str) -> (Client, String) {
        let client = self.client();
        self.sign_up(&client, mobile, "王大姐").await;
        let shop = self
            .post(
                &client,
                "/api/v1/shops",
                json!({"name": "王家沟小米", "place": "山西 岢岚县 王家沟村", "story": "羊粪小米", "payment_note": "微信转账 wangdajie"}),
            )
            .await;
        let shop = expect(shop, StatusCode::CREATED).await;
        (client, shop["id"].as_str().unwrap().to_owned())
    }

    /// Schedules a broadcast titled `title` in `owner`'s `shop`; its id.
    pub async fn broadcast(&self, owner: &Client, shop: &str, title: &str) -> String {
        let b = self
            .post(
                owner,
                &format!("/api/v1/shops/{shop}/broadcasts"),
                json!({ "title": title }),
            )
            .await;
        expect(b, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Whether an external tool a test needs is present. When it is missing the
/// test is skipped with a message, unless the environment variable
/// `require_var` is `1` (CI sets it), in which case the test fails.
pub fn tool_available(tool: &str, require_var: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var(require_var).is_ok_and(|v| v == "1") {
            panic!("{tool} is required ({require_var}=1) but not on PATH");
        }
        eprintln!("SKIPPED: {tool} not found; set {require_var}=1 to make this an error");
    }
    found
}

/// Asserts the status (printing the body when it differs) and returns the
/// JSON body (or `Null` when there is none).
pub async fn expect(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            content_type, "application/problem+json",
            "errors are problem documents"
        );
    }
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Asserts an error response with the given status and stable code.
pub async fn expect_problem(res: Response, status: StatusCode, code: &str) -> Value {
    let body = expect(res, status).await;
    assert_eq!(body["code"], code, "problem: {body}");
    body
}
