//! Replays of recorded broadcasts: GStreamer publishes VP8, a farmer puts a
//! product on sale, pins it, a buyer takes the last bag and a viewer chats;
//! after the end the replay API lists the segment, serves it with Range
//! requests, and makes chapters and a timed chat from what happened live;
//! the replay page plays it in Chromium at 360 px.

use crate::browser::{Driver, poll, tools};
use crate::harness::*;
use crate::interop::{VP8, gstreamer_publish};
use crate::live::{Phone, next_of, send};
use crate::media::scheduled_broadcast;
use crate::orders::{buy, guest};
use crate::recording::{ffmpeg_available, first_file, spawn};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FARMER: &str = "13800138000";
const PRODUCT: &str = "羊粪小米 20斤";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When something happened live, bracketed by the test's clock: the server
/// stamped it between `before` and `after` (Unix ms).
#[derive(Clone, Copy, Debug)]
struct Moment {
    before: i64,
    after: i64,
}

impl Moment {
    /// From `before` until now.
    fn since(before: i64) -> Moment {
        Moment {
            before,
            after: now_ms(),
        }
    }

    /// Whether `at_ms` on the replay timeline can be this moment, given that
    /// the timeline starts at the recording's first picture, which arrived at
    /// most `lead` ms before the test saw the file (`file_seen`).
    fn fits(self, at_ms: i64, file_seen: i64, lead: i64) -> bool {
        at_ms >= self.before - file_seen && at_ms <= self.after - file_seen + lead
    }
}

/// A recorded, ended broadcast with an offer opened, pinned and sold out,
/// and two chat lines.
struct Recorded {
    owner: Client,
    shop: String,
    broadcast: String,
    offer: String,
    file: PathBuf,
    file_seen: i64,
    opened: Moment,
    pinned: Moment,
    sold_out: Moment,
    chats: [Moment; 2],
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Posts a chat line and waits until the room took it.
async fn say(ws: &mut Socket, text: &str, nonce: &str) -> Moment {
    let before = now_ms();
    send(ws, json!({"type": "chat", "text": text, "nonce": nonce})).await;
    next_of(ws, "accepted").await;
    Moment::since(before)
}

/// The id of what a `201 Created` answer made.
async fn created(res: reqwest::Response) -> String {
    expect(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Records such a broadcast; `None` when GStreamer or FFmpeg is missing.
async fn recorded_sale(app: &TestApp) -> Option<Recorded> {
    if !ffmpeg_available() {
        return None;
    }
    let live = scheduled_broadcast(app, FARMER).await;
    let broadcast = live.broadcast.clone();
    let shop = expect(
        app.get(&live.owner, &format!("/api/v1/broadcasts/{broadcast}"))
            .await,
        StatusCode::OK,
    )
    .await["shop"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let product = created(
        app.post(
            &live.owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": PRODUCT, "unit": "20斤袋", "price_fen": 16800, "stock": 500}),
        )
        .await,
    )
    .await;
    let mut gst = gstreamer_publish(app, &live, VP8, Duration::from_secs(20)).await?;
    let (file, _) = first_file(app, Duration::from_secs(15)).await;
    let file_seen = now_ms();

    let farmer = Phone::signed_in(app, FARMER).await;
    let mut farmer_ws = farmer.connect(app, &broadcast).await;
    next_of(&mut farmer_ws, "hello").await;
    let viewer = Phone::guest(app, "小李").await;
    let mut viewer_ws = viewer.connect(app, &broadcast).await;
    next_of(&mut viewer_ws, "hello").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_chat = say(&mut viewer_ws, "谷子真黄！", "c1").await;

    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = now_ms();
    let offer = created(
        app.post(
            &live.owner,
            &format!("/api/v1/broadcasts/{broadcast}/offers"),
            json!({"product_id": product, "price_fen": 12800, "quantity": 1, "per_buyer_limit": 1}),
        )
        .await,
    )
    .await;
    let opened = Moment::since(before);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = now_ms();
    send(&mut farmer_ws, json!({"type": "pin_offer", "offer": offer})).await;
    next_of(&mut farmer_ws, "offer_pinned").await;
    let pinned = Moment::since(before);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let buyer = guest(app, "抢购的人").await;
    let before = now_ms();
    expect(
        buy(app, &buyer, &offer, 1, "last-bag").await,
        StatusCode::CREATED,
    )
    .await;
    let sold_out = Moment::since(before);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let second_chat = say(&mut viewer_ws, "抢到了！", "c2").await;

    // Some more picture after the last line, then the farmer ends.
    tokio::time::sleep(Duration::from_secs(3)).await;
    expect(
        app.post(
            &live.owner,
            &format!("/api/v1/broadcasts/{broadcast}/end"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    gst.process.kill().await.ok();
    let recording = format!("/api/v1/broadcasts/{broadcast}/recording");
    let finished = poll(Duration::from_secs(15), || async {
        let state = expect(app.get(&live.owner, &recording).await, StatusCode::OK).await;
        (state["state"] == "finished").then_some(())
    })
    .await;
    assert!(finished.is_some(), "the recording finishes after the end");
    Some(Recorded {
        owner: live.owner,
        shop,
        broadcast,
        offer,
        file,
        file_seen,
        opened,
        pinned,
        sold_out,
        chats: [first_chat, second_chat],
    })
}

/// The replay, once the room's writes (pins, chat) have reached the database.
async fn replay_of(app: &TestApp, broadcast: &str) -> Value {
    let url = app.url(&format!("/api/v1/broadcasts/{broadcast}/replay"));
    poll(Duration::from_secs(10), || async {
        let replay: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        (replay["chapters"].as_array()?.len() == 3).then_some(replay)
    })
    .await
    .unwrap_or_else(|| panic!("three chapters in the replay of {broadcast}"))
}

fn chapter<'a>(replay: &'a Value, kind: &str) -> &'a Value {
    replay["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind} chapter: {replay}"))
}

/// The picture arrives at most this long before the test sees the file.
const LEAD_MS: i64 = 1500;

async fn ranged(client: &Client, url: &str, range: &str) -> reqwest::Response {
    client
        .get(url)
        .header(header::RANGE, range)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_broadcast_is_served_with_ranges_and_chapters_from_what_happened_live() {
    let app = spawn(None).await;
    let Some(rec) = recorded_sale(&app).await else {
        return;
    };
    let b = &rec.broadcast;
    let replay = replay_of(&app, b).await;

    // The segment, and its bytes with Range requests.
    let segments = replay["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{replay}");
    assert_eq!(segments[0]["content_type"], "video/webm");
    let url = segments[0]["url"].as_str().unwrap();
    assert_eq!(url, format!("/recordings/{b}/part-1.webm"));
    let bytes = std::fs::read(&rec.file).unwrap();
    let len = bytes.len();
    assert_eq!(segments[0]["bytes"], len as u64);
    let url = app.url(url);
    let anyone = Client::new();
    let whole = anyone.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[header::CONTENT_TYPE], "video/webm");
    assert_eq!(whole.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.bytes().await.unwrap(), &bytes[..]);
    let mid = len / 2;
    for (range, want, from) in [
        ("bytes=0-99".to_owned(), 100, 0),
        (format!("bytes={mid}-{}", mid + 4095), 4096, mid),
        ("bytes=-500".to_owned(), 500, len - 500),
    ] {
        let res = ranged(&anyone, &url, &range).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            res.headers()[header::CONTENT_RANGE],
            format!("bytes {from}-{}/{len}", from + want - 1).as_str(),
            "{range}"
        );
        assert_eq!(res.headers()[header::CONTENT_TYPE], "video/webm");
        assert_eq!(
            res.bytes().await.unwrap(),
            &bytes[from..from + want],
            "{range}"
        );
    }
    assert_eq!(
        ranged(&anyone, &url, &format!("bytes={len}-"))
            .await
            .status(),
        StatusCode::RANGE_NOT_SATISFIABLE
    );

    // Chapters at the times things happened, on the recording's timeline.
    let kinds: Vec<&str> = replay["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["offer_opened", "pinned", "sold_out"]);
    for (kind, moment) in [
        ("offer_opened", rec.opened),
        ("pinned", rec.pinned),
        ("sold_out", rec.sold_out),
    ] {
        let c = chapter(&replay, kind);
        assert_eq!(c["offer"], rec.offer.as_str());
        assert_eq!(c["title"], PRODUCT);
        let at = c["at_ms"].as_i64().unwrap();
        assert!(
            moment.fits(at, rec.file_seen, LEAD_MS),
            "{kind} at {at} ms; it happened {:?} ms after the file appeared",
            (moment.before - rec.file_seen, moment.after - rec.file_seen)
        );
    }
    let pinned_at = chapter(&replay, "pinned")["at_ms"].as_i64().unwrap();
    assert_eq!(
        replay["pins"],
        json!([{"offer": rec.offer, "from_ms": pinned_at, "until_ms": null}])
    );
    let offer = &replay["offers"][0];
    assert_eq!(offer["price_fen"], 12800);
    assert_eq!(
        offer["open"], false,
        "the broadcast ended: so did the offer"
    );
    assert_eq!(offer["product"]["price_fen"], 16800);
    assert_eq!(offer["product"]["stock"], 499, "one bag went to the offer");

    // The chat, timed the same way.
    let page = expect(
        anyone
            .get(app.url(&format!("/api/v1/broadcasts/{b}/replay/chat")))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let lines = page["messages"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{page}");
    assert_eq!(page["next"], Value::Null);
    for (line, (text, moment)) in lines
        .iter()
        .zip([("谷子真黄！", rec.chats[0]), ("抢到了！", rec.chats[1])])
    {
        assert_eq!(line["text"], text);
        assert_eq!(line["author_name"], "小李");
        let at = line["at_ms"].as_i64().unwrap();
        assert!(moment.fits(at, rec.file_seen, LEAD_MS), "{line}");
    }

    // The shop lists it, and the pages exist.
    let replays = expect(
        app.get(&anyone, &format!("/api/v1/shops/{}/replays", rec.shop))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replays[0]["id"], b.as_str(), "{replays}");
    assert_eq!(replays[0]["replay_url"], format!("/replay/{b}"));
    for page in [format!("/replay/{b}"), format!("/shop/{}", rec.shop)] {
        assert_eq!(app.get(&anyone, &page).await.status(), StatusCode::OK);
    }

    // Bad input.
    let unknown = "brd_nosuchbroadcast1";
    let api = |path: &str| app.url(&format!("/api/v1{path}"));
    for path in [
        format!("/broadcasts/{unknown}/replay"),
        format!("/broadcasts/{unknown}/replay/chat"),
        "/broadcasts/not-an-id/replay".to_owned(),
    ] {
        let res = anyone.get(api(&path)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    let res = anyone
        .get(api(&format!(
            "/broadcasts/{b}/replay/chat?after=..%2F..%2Fetc"
        )))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::BAD_REQUEST).await;
    for path in [
        format!("/replay/{unknown}"),
        format!("/recordings/{unknown}/part-1.webm"),
        format!("/recordings/{b}/part-0.webm"),
        format!("/recordings/{b}/part-2.webm"),
        format!("/recordings/{b}/part-01.webm"),
        format!("/recordings/{b}/part-1.mkv"),
        format!("/recordings/{b}/part-1.start"),
        format!("/recordings/{b}/..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/recordings/{b}/%2E%2E%2Fpart-1.webm"),
        format!("/recordings/..%2F{b}/part-1.webm"),
        format!("/recordings/{b}%2F..%2F{b}/part-1.webm"),
    ] {
        let res = anyone.get(app.url(&path)).send().await.unwrap();
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST].contains(&res.status()),
            "{path}: {}",
            res.status()
        );
    }

    // Switched off: no replay, no files, not listed.
    expect(
        rec.owner
            .put(app.url(&format!("/api/v1/broadcasts/{b}/recording")))
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let res = anyone
        .get(api(&format!("/broadcasts/{b}/replay")))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        anyone.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&anyone, &format!("/replay/{b}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let replays = expect(
        app.get(&anyone, &format!("/api/v1/shops/{}/replays", rec.shop))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replays, json!([]));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_page_plays_at_360_px_and_its_chapters_and_chat_follow_the_video() {
    let Some(tools) = tools("the_replay_page_plays_at_360_px") else {
        return;
    };
    let app = spawn(None).await;
    let Some(rec) = recorded_sale(&app).await else {
        return;
    };
    let b = &rec.broadcast;
    let replay = replay_of(&app, b).await;
    let chats = expect(
        app.get(
            &Client::new(),
            &format!("/api/v1/broadcasts/{b}/replay/chat"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let second_at = chats["messages"][1]["at_ms"].as_i64().unwrap();

    let driver = Driver::start(tools).await;
    let page = driver.browser().await;
    // Someone opening the shared link after the end is offered the replay.
    page.goto(&app.url(&format!("/live/{b}"))).await;
    page.wait(
        "(() => { const a = document.getElementById('cover-replay'); return a && !a.hidden; })()",
        Duration::from_secs(15),
        "the ended room offers its replay",
    )
    .await;
    assert_eq!(
        page.js("return document.getElementById('cover-replay').getAttribute('href')")
            .await,
        json!(format!("/replay/{b}"))
    );
    assert!(page.text("#cover-replay").await.contains("回放"));
    page.click("#cover-replay").await;
    page.wait(
        "location.pathname.startsWith('/replay/') && document.readyState === 'complete'",
        Duration::from_secs(15),
        "the replay page opens",
    )
    .await;
    page.wait(
        "document.querySelectorAll('#chapters .chapter').length === 3",
        Duration::from_secs(15),
        "three chapters",
    )
    .await;
    let kinds = page
        .js("return [...document.querySelectorAll('#chapters .chapter')].map((c) => c.dataset.kind)")
        .await;
    assert_eq!(kinds, json!(["offer_opened", "pinned", "sold_out"]));
    assert!(
        page.text("#chapters").await.contains(PRODUCT),
        "chapters name the product"
    );
    assert_eq!(
        page.js("return document.documentElement.scrollWidth").await,
        360,
        "nothing sticks out sideways at 360 px"
    );
    assert_eq!(
        page.js("return document.querySelectorAll('#replay-chat li').length")
            .await,
        0,
        "no chat before the video plays"
    );

    page.click("#replay-play").await;
    page.wait(
        "(() => { const v = document.getElementById('player'); return v.currentTime > 1 && v.videoWidth > 0; })()",
        Duration::from_secs(20),
        "the recording playing",
    )
    .await;

    // The second line shows once the video passes its time, not before.
    let probe = "const v = document.getElementById('player'); \
                 return [v.currentTime * 1000, [...document.querySelectorAll('#replay-chat .replay-text')].map((e) => e.textContent)];";
    let seen = poll(Duration::from_secs(30), || async {
        let v = page.js(probe).await;
        let t = v[0].as_f64().unwrap() as i64;
        let has = v[1].as_array().unwrap().iter().any(|l| l == "抢到了！");
        // timeupdate fires about every 250 ms: a line may show that late.
        assert!(
            !has || t >= second_at - 100,
            "the line posted at {second_at} ms showed at {t} ms"
        );
        assert!(
            has || t < second_at + 1500,
            "the line posted at {second_at} ms is missing at {t} ms"
        );
        (has && t >= second_at).then_some(v)
    })
    .await;
    let seen = seen.expect("the second chat line appears as the video passes it");
    assert!(
        seen[1]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "谷子真黄！"),
        "the earlier line is still there: {seen}"
    );

    // Tapping a chapter seeks to it; the chat and the product follow.
    let pinned_at = chapter(&replay, "pinned")["at_ms"].as_i64().unwrap();
    page.click(".chapter[data-kind='pinned']").await;
    page.wait(
        &format!(
            "(() => {{ const v = document.getElementById('player'); return !v.seeking && Math.abs(v.currentTime * 1000 - {pinned_at}) < 1000; }})()"
        ),
        Duration::from_secs(10),
        "the video at the pinned chapter",
    )
    .await;
    let after_seek = page.js(probe).await;
    if (after_seek[0].as_f64().unwrap() as i64) < second_at - 300 {
        assert!(
            !after_seek[1]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == "抢到了！"),
            "back before the second line, it is gone again: {after_seek}"
        );
    }
    page.visible("#replay-offer", "the pinned product").await;
    let card = page.text("#replay-offer").await;
    assert!(
        card.contains(PRODUCT) && card.contains("128"),
        "the product pinned at that moment, at its live price: {card}"
    );
    assert!(
        card.contains("499"),
        "still in the shop, with its stock: {card}"
    );
    page.screenshot("replay-360").await;
    page.assert_no_script_errors("replay page").await;
    page.close().await;
    app.shutdown().await;
}
