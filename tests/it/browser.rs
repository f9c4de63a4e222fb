//! Browser end-to-end tests (headless Chromium).
//!
//! Each test starts its own chromedriver on a free port and drives Chromium
//! through it with fantoccini, against the real server (fresh database,
//! loopback WebRTC). The fake camera feeds the studio page; a second
//! browser session plays as the viewer. Screenshots at 360x740 go to
//! `$FIELDCAST_ARTIFACTS` (default `artifacts/` at the repo root).
//!
//! Without `chromium`/`chromedriver` the browser parts print `SKIPPED` and
//! return, unless `FIELDCAST_REQUIRE_BROWSER=1` (CI), where that fails.
//! The plain-HTTP checks of the pages (headers, escaping, 404s) always run.

use crate::harness::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ── tools ──────────────────────────────────────────────────────────────

pub(crate) struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_tool(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The browser tools, or `None` (after saying so) when the test should skip.
pub(crate) fn tools(test: &str) -> Option<Tools> {
    let chromium = find_tool(
        "FIELDCAST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find_tool("FIELDCAST_CHROMEDRIVER", &["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        _ => {
            let required = std::env::var("FIELDCAST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: chromium and chromedriver are required (FIELDCAST_REQUIRE_BROWSER=1) but missing"
            );
            eprintln!("SKIPPED: {test}: chromium/chromedriver not installed");
            None
        }
    }
}

pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("FIELDCAST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A chromedriver process of our own; killed (by its handle) on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    tools: Tools,
    _log_dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub(crate) async fn start(tools: Tools) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log_dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log_dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            tools,
            _log_dir: log_dir,
        };
        let http = reqwest::Client::new();
        let ready = poll(Duration::from_secs(30), || async {
            let res = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()?;
            let body: Value = res.json().await.ok()?;
            body["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        assert!(ready.is_some(), "chromedriver did not become ready");
        driver
    }

    /// A fresh browser (own profile, own cookies) with a 360x740 phone screen.
    pub(crate) async fn browser(&self) -> Browser {
        self.browser_sized(360, 740, true).await
    }

    /// A fresh browser with a `width`x`height` screen: a touch phone when
    /// `phone`, else a desktop window.
    pub(crate) async fn browser_sized(&self, width: u32, height: u32, phone: bool) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let window = format!("--window-size={width},{height}");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--allow-loopback-in-peer-connection",
            "--disable-quic",
            "--disable-sync",
            "--hide-scrollbars",
            "--lang=zh-CN",
            &window,
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options = json!({ "binary": self.tools.chromium, "args": args });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": true}
            });
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .expect("browser starts in time")
        .expect("browser session");
        Browser {
            client,
            driver: self.url.clone(),
            _profile: profile,
        }
    }
}

pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: String,
    _profile: tempfile::TempDir,
}

/// Calls `probe` until it returns `Some`, or gives up after `limit`.
pub(crate) async fn poll<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Browser {
    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `condition` (a JS expression) is truthy.
    pub(crate) async fn wait(&self, condition: &str, limit: Duration, what: &str) {
        let script = format!("return Boolean({condition});");
        let ok = poll(limit, || async {
            let v = self.client.execute(&script, vec![]).await.ok()?;
            v.as_bool().filter(|b| *b)
        })
        .await;
        if ok.is_none() {
            let text = self.js("return document.body.innerText").await;
            panic!("timed out waiting for {what} ({condition}); page text:\n{text}");
        }
    }

    pub(crate) async fn visible(&self, css: &str, what: &str) {
        let cond = format!(
            "(() => {{ const e = document.querySelector({css:?}); return Boolean(e && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden'); }})()"
        );
        self.wait(&cond, Duration::from_secs(15), what).await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.js(&format!(
            "const e = document.querySelector({css:?}); return e ? e.textContent : null;"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned()
    }

    /// Finds `css` and scrolls it to the middle of the screen, as a person
    /// scrolls to what they are about to tap: pages have sticky bars (the
    /// studio's camera and tabs) an element at the screen's edge may sit under.
    async fn reach(&self, css: &str) -> fantoccini::elements::Element {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        let arg = serde_json::to_value(&element).expect("element reference");
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'}); return true;",
                vec![arg],
            )
            .await
            .unwrap_or_else(|e| panic!("cannot scroll to {css}: {e}"));
        element
    }

    pub(crate) async fn click(&self, css: &str) {
        self.reach(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types into a field like a person (replacing what was there).
    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let field = self.reach(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Sets a value the way a native picker would (date/time inputs).
    pub(crate) async fn pick(&self, css: &str, value: &str) {
        self.js(&format!(
            "const e = document.querySelector({css:?}); e.value = {value:?}; e.dispatchEvent(new Event('change', {{bubbles: true}})); return true;"
        ))
        .await;
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    /// Script errors the page logged since the last call (uncaught
    /// exceptions, failed module loads, CSP refusals). Failed HTTP requests
    /// are left out: a 401 or 422 the page handles is expected; so are
    /// websocket connections refused while a server restarts (Chromium logs
    /// those itself; the page retries).
    pub(crate) async fn script_errors(&self) -> Vec<String> {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let res = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("browser log");
        let body: Value = res.json().await.expect("log JSON");
        body["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter_map(|e| e["message"].as_str())
                    .filter(|m| !m.contains("Failed to load resource"))
                    .filter(|m| !(m.contains("WebSocket connection to") && m.contains("failed")))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) async fn assert_no_script_errors(&self, who: &str) {
        let errors = self.script_errors().await;
        assert!(errors.is_empty(), "{who}'s page logged errors: {errors:#?}");
    }

    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }

    /// The viewer's decoded video: (videoWidth, total frames).
    async fn video_progress(&self) -> (u64, u64) {
        let v = self
            .js(
                "const v = document.getElementById('player'); \
                 const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0; \
                 return [v.videoWidth, q];",
            )
            .await;
        (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0))
    }
}

// ── the farmer goes live from the studio, a viewer watches ───────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmer_goes_live_from_the_studio_and_a_viewer_watches() {
    let Some(tools) = tools("farmer_goes_live_from_the_studio_and_a_viewer_watches") else {
        return;
    };
    let app = TestApp::spawn().await;
    let driver = Driver::start(tools).await;
    let farmer = driver.browser().await;

    // Sign up.
    farmer.goto(&app.url("/studio")).await;
    farmer.visible("#form-signin", "the sign-in form").await;
    farmer.click("#tab-signup").await;
    farmer
        .fill("#form-signup [name=mobile]", "13912345678")
        .await;
    farmer
        .fill("#form-signup [name=display_name]", "李大哥")
        .await;
    farmer.fill("#form-signup [name=password]", "short").await;
    farmer.click("#form-signup [type=submit]").await;
    // The API's field error shows next to the password field.
    farmer
        .wait(
            "document.querySelector('#form-signup [data-error-for=password]').textContent.length > 0",
            Duration::from_secs(10),
            "the password error",
        )
        .await;
    assert!(
        farmer
            .text("#form-signup [data-error-for=password]")
            .await
            .contains('8'),
        "the error says how long a password must be"
    );
    farmer
        .fill("#form-signup [name=password]", "millet harvest 2026")
        .await;
    farmer.click("#form-signup [type=submit]").await;

    // A new account opens its shop first.
    farmer.visible("#form-shop", "the shop form").await;
    farmer.fill("#form-shop [name=name]", "李家坡小米").await;
    farmer
        .fill("#form-shop [name=place]", "山西 岢岚县 李家坡村")
        .await;
    farmer
        .fill("#form-shop [name=story]", "坡上的谷子，只上羊粪。")
        .await;
    farmer.click("#form-shop [type=submit]").await;
    farmer.visible("#view-home", "the dashboard").await;
    assert_eq!(farmer.text("#my-shop-name").await, "李家坡小米");

    // A product, priced in yuan; a missing title is flagged by its field.
    farmer.click("a[href='/studio/products/new']").await;
    farmer.visible("#form-product", "the product form").await;
    farmer.fill("#form-product [name=price]", "168.5").await;
    farmer.fill("#form-product [name=unit]", "20斤袋").await;
    farmer.fill("#form-product [name=stock]", "300").await;
    farmer.click("#presale").await;
    farmer
        .pick("#form-product [name=ships_on]", "2026-12-20")
        .await;
    farmer.click("#form-product [type=submit]").await;
    farmer
        .wait(
            "document.querySelector('#form-product [data-error-for=title]').textContent.length > 0",
            Duration::from_secs(10),
            "the title error",
        )
        .await;
    farmer.screenshot("studio-product-error").await;
    farmer
        .fill("#form-product [name=title]", "羊粪小米 20斤装")
        .await;
    farmer.click("#form-product [type=submit]").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer
        .wait(
            "document.getElementById('product-rows').textContent.includes('¥168.50')",
            Duration::from_secs(10),
            "the product row",
        )
        .await;

    // Stock changes as the harvest sells: edit the product.
    farmer.click("#product-rows a").await;
    farmer
        .wait(
            "document.querySelector('#form-product [name=title]').value === '羊粪小米 20斤装'",
            Duration::from_secs(10),
            "the product form filled in",
        )
        .await;
    assert_eq!(
        farmer
            .js("return document.querySelector('#form-product [name=price]').value")
            .await,
        json!("168.50")
    );
    farmer.click("#form-product [data-step='-1']").await;
    farmer.click("#form-product [type=submit]").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer
        .wait(
            "document.getElementById('product-rows').textContent.includes('库存 299')",
            Duration::from_secs(10),
            "the new stock",
        )
        .await;

    // Schedule a broadcast.
    farmer.click("a[href='/studio/broadcasts/new']").await;
    farmer.visible("#form-broadcast", "the schedule form").await;
    farmer
        .fill("#form-broadcast [name=title]", "谷子收割第一天")
        .await;
    farmer
        .pick("#form-broadcast [name=scheduled_at]", "2027-09-20T09:30")
        .await;
    farmer.click("#form-broadcast [type=submit]").await;
    farmer.visible("#view-live", "the go-live view").await;
    let path = farmer.js("return location.pathname").await;
    let broadcast = path
        .as_str()
        .and_then(|p| p.strip_prefix("/studio/broadcasts/"))
        .expect("the go-live view has the broadcast in its path")
        .to_owned();
    farmer.goto(&app.url("/studio")).await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer
        .wait(
            "document.getElementById('broadcast-list').textContent.includes('谷子收割第一天')",
            Duration::from_secs(10),
            "the broadcast row",
        )
        .await;
    farmer.screenshot("studio-dashboard").await;
    farmer
        .click(&format!("a[href='/studio/broadcasts/{broadcast}']"))
        .await;
    farmer.visible("#view-live", "the go-live view").await;
    farmer.screenshot("studio-golive").await;

    // For apps: the WHIP URL and the stream key, which can be replaced.
    // App keys sit in the cockpit's share tab.
    farmer.click("#tab-more").await;
    farmer.click("#apps summary").await;
    farmer
        .wait(
            "document.getElementById('stream-key').textContent.length >= 16",
            Duration::from_secs(10),
            "the stream key",
        )
        .await;
    let whip_url = farmer.text("#whip-url").await;
    assert_eq!(
        whip_url,
        app.url(&format!("/api/v1/broadcasts/{broadcast}/whip"))
    );
    let old_key = farmer.text("#stream-key").await;
    farmer.click("#key-rotate").await;
    farmer.visible("#confirm", "the confirmation").await;
    farmer.click("#confirm-yes").await;
    farmer
        .wait(
            &format!(
                "document.getElementById('stream-key').textContent.length >= 16 && document.getElementById('stream-key').textContent !== {old_key:?}"
            ),
            Duration::from_secs(10),
            "a new stream key",
        )
        .await;
    farmer.click("#apps summary").await;

    // A viewer opens the shared link before the farmer is live.
    let viewer = driver.browser().await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    viewer
        .wait(
            "document.getElementById('cover-title').textContent === '还没开播'",
            Duration::from_secs(10),
            "the not-live-yet notice",
        )
        .await;

    // Go live with the (fake) back camera.
    farmer.click("#camera-on").await;
    farmer
        .wait(
            "document.getElementById('camera').dataset.status === 'preview' && document.getElementById('preview').videoWidth > 0",
            Duration::from_secs(15),
            "the camera preview",
        )
        .await;
    farmer.click("#go-live").await;
    farmer
        .wait(
            "document.getElementById('camera').dataset.status === 'live'",
            Duration::from_secs(15),
            "the on-air indicator",
        )
        .await;
    let live_at = Instant::now();
    assert!(farmer.text("#onair").await.contains("正在直播"));

    // The waiting viewer starts playing by itself, with moving video.
    let playing = poll(Duration::from_secs(10), || async {
        let (width, frames) = viewer.video_progress().await;
        (width > 0 && frames > 0).then_some(frames)
    })
    .await;
    let Some(first) = playing else {
        let text = viewer.js("return document.body.innerText").await;
        panic!("no video on the viewer page within 10 s of going live; page:\n{text}");
    };
    let moved = poll(Duration::from_secs(10), || async {
        let (_, frames) = viewer.video_progress().await;
        (frames > first + 5).then_some(frames)
    })
    .await;
    if moved.is_none() {
        let text = viewer.js("return document.body.innerText").await;
        eprintln!("viewer page while the video stood still:\n{text}");
    }
    assert!(moved.is_some(), "decoded frames keep rising (video moves)");
    eprintln!(
        "viewer playing {:.1} s after the farmer went live",
        live_at.elapsed().as_secs_f64()
    );
    viewer.visible("#live-badge", "the live badge").await;
    assert_eq!(
        viewer
            .js("return document.getElementById('player').muted")
            .await,
        json!(true),
        "video starts muted"
    );
    viewer.visible("#unmute", "the tap-to-unmute button").await;
    // The farmer sees the connection quality.
    farmer.visible("#quality", "the signal quality").await;
    farmer.screenshot("studio-live").await;
    viewer.screenshot("viewer-live").await;
    viewer.click("#unmute").await;
    assert_eq!(
        viewer
            .js("return document.getElementById('player').muted")
            .await,
        json!(false),
        "one tap turns the sound on"
    );
    assert!(
        viewer
            .js("return document.getElementById('unmute').hidden")
            .await
            == json!(true)
    );

    // Home lists the broadcast as live.
    viewer.goto(&app.url("/")).await;
    viewer
        .wait(
            "document.getElementById('live-list').textContent.includes('谷子收割第一天')",
            Duration::from_secs(10),
            "the broadcast on the home page",
        )
        .await;
    viewer.screenshot("home").await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    viewer.visible("#live-badge", "the live badge again").await;

    // The farmer ends the broadcast; the viewer is told.
    farmer.click("#end-live").await;
    farmer.visible("#confirm", "the confirmation").await;
    farmer.click("#confirm-yes").await;
    farmer
        .wait(
            "document.getElementById('live-state-chip').dataset.state === 'ended'",
            Duration::from_secs(10),
            "the ended state in the studio",
        )
        .await;
    viewer
        .wait(
            "document.getElementById('stage').dataset.status === 'ended'",
            Duration::from_secs(30),
            "the ended notice for the viewer",
        )
        .await;
    assert_eq!(viewer.text("#cover-title").await, "直播已结束");
    viewer.screenshot("viewer-ended").await;

    // Sign out, and back in with the same number and password.
    farmer.goto(&app.url("/studio")).await;
    farmer.visible("#sign-out", "the sign-out button").await;
    farmer.click("#sign-out").await;
    farmer.visible("#form-signin", "the sign-in form").await;
    farmer
        .fill("#form-signin [name=mobile]", "139 1234 5678")
        .await;
    farmer
        .fill("#form-signin [name=password]", "millet harvest 2026")
        .await;
    farmer.click("#form-signin [type=submit]").await;
    farmer
        .visible("#view-home", "the dashboard after signing in")
        .await;
    assert_eq!(farmer.text("#my-shop-name").await, "李家坡小米");

    farmer.assert_no_script_errors("the farmer").await;
    viewer.assert_no_script_errors("the viewer").await;
    viewer.close().await;
    farmer.close().await;
    drop(driver);
    app.shutdown().await;
}

// ── the shared link before the broadcast: preview tags, escaping ─────────

async fn scheduled_with_hostile_text(app: &TestApp) -> (String, String) {
    let client = app.client();
    app.sign_up(&client, "13700001111", "<i>王</i>").await;
    let shop = expect(
        app.post(
            &client,
            "/api/v1/shops",
            json!({
                "name": "王家\"沟\" & <b>小米</b>",
                "place": "山西 <岢岚县>",
                "story": "<script>alert('story')</script>\n第二段",
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let title = "<script>alert(\"x\")</script> 谷子 & 小米 'ok'";
    let b = expect(
        app.post(
            &client,
            &format!("/api/v1/shops/{}/broadcasts", shop["id"].as_str().unwrap()),
            json!({"title": title, "scheduled_at": "2030-10-08T06:30:00Z"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    (b["id"].as_str().unwrap().to_owned(), title.to_owned())
}

/// `content` of `<meta {attr}="{key}" content="…">`, still escaped.
fn meta(html: &str, attr: &str, key: &str) -> Option<String> {
    let start = html.find(&format!(r#"<meta {attr}="{key}" content=""#))?;
    let rest = &html[start..];
    let value_start = rest.find("content=\"")? + "content=\"".len();
    let value_end = rest[value_start..].find('"')?;
    Some(rest[value_start..value_start + value_end].to_owned())
}

/// HTML character references (named or numeric, as escapers write them)
/// read back into text.
fn unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 8) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let c = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn shared_link_previews_well_and_escapes_what_people_typed() {
    let app = TestApp::spawn().await;
    let (broadcast, _) = scheduled_with_hostile_text(&app).await;
    let client = app.client();
    let res = app.get(&client, &format!("/live/{broadcast}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = res.text().await.unwrap();

    // Nothing anyone typed became markup.
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>小米"), "{html}");
    assert!(!html.contains("<i>王"), "{html}");
    // It is shown as the text it was (escaped, read back as a browser would).
    assert!(
        unescape(&html).contains(r#"<script>alert("x")</script> 谷子 & 小米 'ok'"#),
        "{html}"
    );
    // The only scripts are our module files; no inline script or style.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(r#"<script type="module" src="/static/"#));
    assert!(!html.contains(" style="), "{html}");

    // Link preview tags, absolute URLs.
    let og_title = meta(&html, "property", "og:title").expect("og:title");
    assert!(!og_title.contains(['<', '>', '"']), "{og_title}");
    let og_title = unescape(&og_title);
    assert!(og_title.starts_with("<script>"), "{og_title}");
    assert!(og_title.contains(r#"王家"沟" & <b>小米</b>"#), "{og_title}");
    let description = meta(&html, "property", "og:description").expect("og:description");
    assert!(
        description.contains("开播时间 10月8日 14:30（北京时间）"),
        "{description}"
    );
    assert!(
        !description.contains(['<', '>', '"'])
            && unescape(&description).contains("<script>alert('story')"),
        "{description}"
    );
    assert_eq!(
        meta(&html, "property", "og:url").as_deref(),
        Some(app.url(&format!("/live/{broadcast}")).as_str())
    );
    assert_eq!(
        meta(&html, "name", "twitter:card").as_deref(),
        Some("summary_large_image")
    );
    let image = meta(&html, "property", "og:image").expect("og:image");
    assert!(image.starts_with(&app.url("/static/")), "{image}");
    let png = client.get(&image).send().await.unwrap();
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(!png.bytes().await.unwrap().is_empty());

    // An unknown broadcast is a friendly page with a 404 status.
    let missing = app.get(&client, "/live/brd_doesnotexist").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(missing.text().await.unwrap().contains("找不到这个直播"));
    let garbage = app.get(&client, "/live/%3Cscript%3E").await;
    assert_eq!(garbage.status(), StatusCode::NOT_FOUND);
    assert!(!garbage.text().await.unwrap().contains("<script>"));
    app.shutdown().await;
}

#[tokio::test]
async fn assets_are_versioned_cached_and_typed() {
    let app = TestApp::spawn().await;
    let client = app.client();
    for page in ["/", "/studio", "/studio/broadcasts/new"] {
        let res = app.get(&client, page).await;
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        assert_eq!(res.headers()["cache-control"], "no-cache", "{page}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    }
    let html = app.get(&client, "/").await.text().await.unwrap();
    let css = html
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|s| s.ends_with("/css/app.css"))
        .expect("stylesheet link")
        .to_owned();
    let version = css.split('/').nth(2).unwrap().to_owned();
    assert_eq!(version.len(), 12, "{css}");

    let res = app.get(&client, &css).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(res.headers().get("content-encoding").is_none());
    // Phones get text compressed: a quarter of the bytes on a weak link.
    let plain_len = res.bytes().await.unwrap().len();
    for _ in 0..2 {
        let packed = client
            .get(app.url(&css))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        // Brotli where the browser offers it, gzip otherwise.
        assert_eq!(packed.headers()["content-encoding"], "br");
        assert_eq!(packed.headers()["vary"], "accept-encoding");
        assert!(packed.bytes().await.unwrap().len() * 3 < plain_len);
    }
    let page = client
        .get(app.url("/studio"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-encoding"], "gzip");
    let js = app
        .get(&client, &format!("/static/{version}/js/viewer.js"))
        .await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let svg = app
        .get(&client, &format!("/static/{version}/img/icons.svg"))
        .await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");

    // A stale version still works but is not cached for long.
    let stale = app.get(&client, "/static/000000000000/css/app.css").await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let missing = app
        .get(&client, &format!("/static/{version}/js/nope.js"))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Unknown pages are friendly HTML 404s; the API keeps problem documents.
    let page = app.get(&client, "/no/such/page").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    expect_problem(
        app.get(&client, "/api/v1/no-such-thing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_of_a_scheduled_broadcast_is_told_when_and_sees_text_as_text() {
    let Some(tools) = tools("viewer_of_a_scheduled_broadcast_is_told_when_and_sees_text_as_text")
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let (broadcast, title) = scheduled_with_hostile_text(&app).await;
    let driver = Driver::start(tools).await;
    let viewer = driver.browser().await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    viewer
        .wait(
            "document.getElementById('cover-title').textContent === '还没开播'",
            Duration::from_secs(10),
            "the not-live-yet notice",
        )
        .await;
    assert!(
        viewer.text("#cover-time").await.contains("开播时间"),
        "says when it starts"
    );
    // What people typed shows as text, exactly.
    assert_eq!(viewer.text("#broadcast-title").await, title);
    assert_eq!(viewer.text("#shop-name").await, "王家\"沟\" & <b>小米</b>");
    assert_eq!(
        viewer
            .js("return document.querySelectorAll('script:not([type=module]), b, i').length")
            .await,
        json!(0)
    );
    assert!(
        viewer
            .client
            .get_alert_text()
            .await
            .is_err_and(|e| e.is_no_such_alert()),
        "no script ran"
    );
    viewer.screenshot("viewer-scheduled").await;
    viewer.assert_no_script_errors("the viewer").await;
    // The error check itself works: an uncaught exception is reported.
    viewer
        .js("setTimeout(() => { throw new Error('probe-7f3'); }); return true;")
        .await;
    let caught = poll(Duration::from_secs(5), || async {
        let errors = viewer.script_errors().await;
        errors.iter().any(|e| e.contains("probe-7f3")).then_some(())
    })
    .await;
    assert!(
        caught.is_some(),
        "uncaught page errors are seen by the test"
    );

    // English, remembered across a reload.
    viewer.click("#lang-switch").await;
    assert_eq!(viewer.text("#cover-title").await, "Not live yet");
    viewer.client.refresh().await.expect("reload");
    viewer
        .wait(
            "document.getElementById('cover-title').textContent === 'Not live yet'",
            Duration::from_secs(10),
            "English after reload",
        )
        .await;
    assert_eq!(viewer.text("#share span").await, "Share");
    assert_eq!(
        viewer
            .js("return document.getElementById('share').getAttribute('aria-label')")
            .await,
        json!("Share with friends")
    );
    viewer.screenshot("viewer-scheduled-en").await;

    // The studio's sign-in page, for a look.
    viewer.click("#lang-switch").await;
    viewer.goto(&app.url("/studio")).await;
    viewer.visible("#form-signin", "the sign-in form").await;
    viewer.screenshot("studio-signin").await;

    viewer.assert_no_script_errors("the viewer").await;
    viewer.close().await;
    drop(driver);
    app.shutdown().await;
}
