//! The pages as farmers and buyers use them, on a 360 px phone in headless
//! Chromium (the helpers of `browser.rs` and `browser_live.rs`): nothing
//! gets wider than the phone, counts read as counts, order numbers are the
//! short ones people quote, the studio says what happened when the camera
//! is taken or another device takes over, and recovers with one tap.

use crate::browser::{Browser, Driver, poll, tools};
use crate::browser_live::{SOON, js_str, shot, studio_sign_in};
use crate::harness::*;
use crate::live::{Phone, next_of, send};
use crate::orders::sale;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Fails unless the page is no wider than the phone's screen.
async fn fits_the_phone(b: &Browser, what: &str) {
    let widths = b
        .js("return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth];")
        .await;
    let (doc, body, screen) = (
        widths[0].as_u64().unwrap(),
        widths[1].as_u64().unwrap(),
        widths[2].as_u64().unwrap(),
    );
    if doc > screen || body > screen {
        // Name the widest elements, to say what broke the layout.
        let culprits = b
            .js("return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && e.getClientRects().length).slice(-6).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ': ' + (e.textContent || '').slice(0, 40));")
            .await;
        panic!(
            "{what}: the page is {doc}/{body} px wide on a {screen} px screen; widest: {culprits:#}"
        );
    }
}

/// The owner's live channel with `offer` pinned on every screen (kept
/// open: the room holds the pin while the test runs).
pub(crate) async fn pin_offer(app: &TestApp, broadcast: &str, offer: &str) -> OwnerSocket {
    let owner = Phone::signed_in(app, "13800138000").await;
    let mut socket = owner.connect(app, broadcast).await;
    next_of(&mut socket, "hello").await;
    send(&mut socket, json!({"type": "pin_offer", "offer": offer})).await;
    next_of(&mut socket, "offer_pinned").await;
    socket
}

pub(crate) type OwnerSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A guest named `nickname` holds `quantity` of `offer`; the reservation
/// and the guest's client.
pub(crate) async fn guest_hold(
    app: &TestApp,
    offer: &str,
    nickname: &str,
    quantity: u32,
) -> (Value, reqwest::Client) {
    let buyer = crate::orders::guest(app, nickname).await;
    let held = expect(
        app.post(
            &buyer,
            &format!("/api/v1/offers/{offer}/reservations"),
            json!({ "quantity": quantity }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    (held, buyer)
}

/// A guest orders `quantity` of `offer` (paying by WeChat transfer); the order.
pub(crate) async fn guest_order(
    app: &TestApp,
    offer: &str,
    nickname: &str,
    quantity: u32,
) -> Value {
    let (held, buyer) = guest_hold(app, offer, nickname, quantity).await;
    expect(
        app.post(
            &buyer,
            &format!("/api/v1/reservations/{}/order", held["id"].as_str().unwrap()),
            json!({"name": "李华", "mobile": "13912345678", "address": "山西省太原市小店区坞城路 92 号", "payment_method": "wechat_transfer"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

/// A JS expression: the visible text of `css` (empty when missing).
fn text_of(css: &str) -> String {
    format!(
        "((document.querySelector({}) || {{}}).textContent || '')",
        js_str(css)
    )
}

// ── 3, 4, 6, 7, 12, 14: widths, the home card, counts, order numbers, the log

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_and_say_counts_and_order_numbers_plainly() {
    let Some(tools) = tools("pages_fit_a_phone_and_say_counts_and_order_numbers_plainly") else {
        return;
    };
    let app = TestApp::spawn().await;
    // The issue's case: unit "20斤袋", a per-buyer limit, a long title.
    let s = sale(&app, 3, 2).await;
    let _owner_ws = pin_offer(&app, &s.broadcast, &s.offer).await;
    let driver = Driver::start(tools).await;
    let b = driver.browser().await;

    // 4. The home page's "how to go live" card: five numbered steps, in
    // both languages, as wide as the phone and no wider.
    b.goto(&app.url("/")).await;
    b.visible(".how-to .step-list", "the how-to card").await;
    let numbered = b
        .js("return [...document.querySelectorAll('.how-to .step-list li')].map((li) => getComputedStyle(li, '::before').content);")
        .await;
    let numbered: Vec<&str> = numbered
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(numbered.len(), 5);
    assert!(
        numbered.iter().all(|c| c.contains("counter")),
        "every step is numbered: {numbered:?}"
    );
    let heading = b
        .js("const h = document.querySelector('.how-to .section-title').getBoundingClientRect(); const c = document.querySelector('.how-to').getBoundingClientRect(); return h.left - c.left;")
        .await;
    assert!(
        heading.as_f64().unwrap() >= 8.0,
        "the heading sits inside the card's padding: {heading}"
    );
    fits_the_phone(&b, "home").await;
    b.click("#lang-switch").await;
    b.wait(
        &format!("{} === 'How to go live'", text_of(".how-to .section-title")),
        SOON,
        "the English home page",
    )
    .await;
    fits_the_phone(&b, "home in English").await;
    b.click("#lang-switch").await;

    // 6. The viewer's card: counts read as counts, not "3 20斤袋".
    b.goto(&app.url(&format!("/live/{}", s.broadcast))).await;
    b.wait(
        &format!("{} === '还剩 3 份'", text_of("#offer-slot .stock-left")),
        SOON,
        "the stock left on the card",
    )
    .await;
    assert_eq!(
        b.js(&format!("return {};", text_of("#offer-slot .offer-tags")))
            .await,
        json!("每人限 2 份")
    );
    assert_eq!(
        b.js(&format!("return {};", text_of("#offer-slot .stock-sold")))
            .await,
        json!("已卖 0 份")
    );
    // The live price beside the list price, struck through.
    b.wait(
        &format!(
            "{} === '¥168'",
            text_of("#offer-slot .offer-price .list-price")
        ),
        SOON,
        "the list price beside the live price",
    )
    .await;
    // 12. The farmer's own connection (the pin above) is not an audience.
    b.wait(
        &format!("{} === '1 人在看'", text_of("#viewer-count")),
        SOON,
        "one person watching: the buyer, not the farmer",
    )
    .await;
    fits_the_phone(&b, "the live room").await;

    // 3. Buying two: the page stays as wide as the phone at every step.
    b.click("#offer-slot .qty-stepper .stepper-btn:last-child")
        .await;
    assert!(b.text("#offer-slot .btn-buy").await.contains("买 2 份"));
    b.click("#offer-slot .btn-buy").await;
    b.visible(".sheet [name=nickname]", "the nickname sheet")
        .await;
    fits_the_phone(&b, "the nickname sheet").await;
    b.fill(".sheet [name=nickname]", "太原的小李一家人都爱吃小米")
        .await;
    b.click(".sheet-backdrop:not([hidden]) [type=submit]").await;
    b.visible("#co-form", "the checkout form").await;
    fits_the_phone(&b, "checkout").await;
    // Empty fields are missing, not wrong.
    b.click("#co-submit").await;
    b.wait(
        "document.querySelector('#co-form [data-error-for=mobile]').textContent.length > 0",
        SOON,
        "the empty mobile number flagged",
    )
    .await;
    assert_eq!(
        b.text("#co-form [data-error-for=mobile]").await,
        "这一项要填"
    );
    // The hold ends elsewhere (another tab of this phone lets it go): the
    // sheet says so when the buyer sends the form, as wide as the phone,
    // and buying again starts over.
    b.js(
        "window.fcLetGo = null; fetch('/api/v1/reservations/mine').then((r) => r.json())          .then((list) => Promise.all(list.filter((r) => r.state === 'held')            .map((r) => fetch('/api/v1/reservations/' + r.id, {method: 'DELETE'}))))          .then((done) => { window.fcLetGo = done.map((r) => r.status); }); return true;",
    )
    .await;
    b.wait(
        "JSON.stringify(window.fcLetGo) === '[204]'",
        SOON,
        "the hold let go in another tab",
    )
    .await;
    b.fill("#co-form [name=name]", "李华").await;
    b.fill("#co-form [name=mobile]", "13912345678").await;
    b.fill("#co-form [name=address]", "山西省太原市小店区坞城路 92 号")
        .await;
    b.click("#co-submit").await;
    b.visible("#co-expired-view", "the hold-expired sheet")
        .await;
    fits_the_phone(&b, "the hold-expired sheet").await;
    b.click("#co-expired-close").await;
    if !b.text("#offer-slot .btn-buy").await.contains("买 2 份") {
        b.click("#offer-slot .qty-stepper .stepper-btn:last-child")
            .await;
    }
    b.click("#offer-slot .btn-buy").await;
    b.visible("#co-form", "the checkout form again").await;
    b.fill("#co-form [name=name]", "李华").await;
    b.fill("#co-form [name=mobile]", "13912345678").await;
    b.fill("#co-form [name=address]", "山西省太原市小店区坞城路 92 号")
        .await;
    b.click("#co-form [value=wechat_transfer]").await;
    b.click("#co-submit").await;
    b.visible("#co-done-view", "the order confirmation").await;
    fits_the_phone(&b, "the order confirmation").await;
    // 7. The number to quote is the short one, and the same on every page.
    let note = b.text("#co-pay-note").await;
    let number = note
        .split("备注订单号 ")
        .nth(1)
        .and_then(|rest| rest.split('。').next())
        .unwrap_or_else(|| panic!("the order number in {note:?}"))
        .to_owned();
    assert_eq!(number.len(), 6, "{note}");
    let private_url = b.text("#co-link").await;
    b.click("#co-done-close").await;
    b.visible("#offer-slot .my-order", "the link to my order")
        .await;
    fits_the_phone(&b, "the room after buying").await;
    shot(&b, "pages-room-after-buying").await;

    // The private order page: the short number, never the internal id.
    b.goto(&private_url).await;
    b.visible("#order-body", "the order page").await;
    assert_eq!(b.text("#order-id").await, number);
    assert!(!b.text("#order-body").await.contains("ord_"));
    assert_eq!(b.text("#order-item").await, "羊粪小米 20斤 × 2 份");
    fits_the_phone(&b, "the order page").await;

    // The farmer sees the same number, and the ban confirmation fits too.
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer.goto(&app.url("/studio/orders")).await;
    farmer
        .wait(
            &format!("{}.includes({})", text_of("#order-list"), js_str(&number)),
            SOON,
            "the order number on the farmer's orders page",
        )
        .await;
    assert!(!farmer.text("#order-list").await.contains("ord_"));
    fits_the_phone(&farmer, "the farmer's orders").await;
    let csv = farmer
        .js("return document.getElementById('orders-csv').getAttribute('href');")
        .await;
    let csv = csv.as_str().unwrap();
    assert!(
        csv.contains("lang=zh-CN") && csv.contains("tz_offset_minutes="),
        "the export says the page's language and the phone's zone: {csv}"
    );
    // 7, 11. The sheet behind that link: the same number, nothing private.
    let sheet = app.get(&s.owner, csv).await;
    assert_eq!(sheet.status(), StatusCode::OK);
    let sheet = sheet.text().await.unwrap();
    assert!(
        sheet.starts_with("\u{feff}订单号,下单时间(UTC")
            && sheet.contains(&format!("\r\n{number},")),
        "{sheet}"
    );
    let token = private_url.rsplit('/').next().unwrap();
    for private in [token, "ord_", "gst_"] {
        assert!(!sheet.contains(private), "{private} in the sheet: {sheet}");
    }

    farmer
        .goto(&app.url(&format!("/live/{}", s.broadcast)))
        .await;
    b.goto(&app.url(&format!("/live/{}", s.broadcast))).await;
    b.visible("#chat-slot .chat-compose", "the buyer's composer")
        .await;
    b.fill("#chat-slot .chat-compose input", "好吃").await;
    b.click("#chat-slot .chat-compose [type=submit]").await;
    farmer
        .wait(
            "[...document.querySelectorAll('#chat-slot .msg[data-id]')].length > 0",
            SOON,
            "the buyer's message at the farmer",
        )
        .await;
    farmer.click("#chat-slot .msg[data-id]").await;
    farmer
        .visible(".sheet-actions .btn-danger-quiet", "the ban button")
        .await;
    farmer.click(".sheet-actions .btn-danger-quiet").await;
    farmer
        .visible(".sheet-ask .btn-stop", "the ban confirmation")
        .await;
    fits_the_phone(&farmer, "the ban confirmation").await;
    farmer.click(".sheet-ask .btn-stop").await;
    b.visible("#chat-slot .chat-banned", "the banned notice")
        .await;

    // 14. The moderation log, read back from the server after a reload,
    // says what happened in one language: names and titles, never ids.
    farmer.click("#chat-slot .mod-toggle").await;
    farmer
        .visible("#chat-slot .mod-panel", "the tools panel")
        .await;
    farmer
        .click("#chat-slot .mod-panel .chips .chip:nth-child(3)")
        .await;
    farmer
        .wait(
            &format!("{}.includes('10 秒')", text_of("#chat-slot .chat-slow")),
            SOON,
            "slow mode on",
        )
        .await;
    for (lang, words, other) in [
        (
            "zh-CN",
            [
                "挂出商品 · 「羊粪小米 20斤」",
                "把慢速模式设为 10秒",
                "封禁 太原的小李一家人都爱吃小米",
            ],
            ["pinned", "slow mode", "banned"],
        ),
        (
            "en",
            [
                "pinned a product · 「羊粪小米 20斤」",
                "set slow mode to 10 s",
                "banned 太原的小李一家人都爱吃小米",
            ],
            ["挂出", "慢速", "封禁"],
        ),
    ] {
        farmer.client.refresh().await.expect("reload");
        if lang == "en" {
            farmer.click("#lang-switch").await;
        }
        farmer
            .visible("#chat-slot .mod-toggle", "the tools button")
            .await;
        farmer.click("#chat-slot .mod-toggle").await;
        farmer.click("#chat-slot .mod-log-box summary").await;
        farmer
            .wait(
                "document.querySelector('#chat-slot .mod-log[data-loaded]') !== null",
                SOON,
                "the moderation log",
            )
            .await;
        let log = farmer.text("#chat-slot .mod-log").await;
        for w in words {
            assert!(log.contains(w), "{lang} log says {w:?}: {log}");
        }
        for w in other.into_iter().chain(["ofr_", "gst_", "usr_", "null"]) {
            assert!(!log.contains(w), "{lang} log without {w:?}: {log}");
        }
        fits_the_phone(&farmer, "the moderation log").await;
    }

    b.assert_no_script_errors("the buyer").await;
    farmer.assert_no_script_errors("the farmer").await;
    b.close().await;
    farmer.close().await;
    drop(driver);
    app.shutdown().await;
}

// ── 5, 9, 10, 12, 15: the studio's count, the offer form, and after the offer and the broadcast end ─────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studio_results_add_up_after_the_offer_and_the_broadcast_end() {
    let Some(tools) = tools("studio_results_add_up_after_the_offer_and_the_broadcast_end") else {
        return;
    };
    let app = TestApp::spawn().await;
    let s = sale(&app, 3, 3).await;
    let driver = Driver::start(tools).await;
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer
        .goto(&app.url(&format!("/studio/broadcasts/{}", s.broadcast)))
        .await;
    farmer.visible("#view-live", "the cockpit").await;

    // 12. "X 人在看" counts viewers, not the farmer, and hides when nobody
    // is watching.
    let neighbour = Phone::guest(&app, "隔壁老王").await;
    let mut watching = neighbour.connect(&app, &s.broadcast).await;
    next_of(&mut watching, "hello").await;
    farmer
        .wait(
            &format!(
                "!document.getElementById('studio-viewers').hidden && {} === '1 人在看'",
                text_of("#studio-viewer-count")
            ),
            SOON,
            "one viewer in the studio's count",
        )
        .await;
    drop(watching);
    farmer
        .wait(
            "document.getElementById('studio-viewers').hidden",
            SOON,
            "no count once nobody watches",
        )
        .await;

    farmer.click("#tab-sell").await;
    farmer
        .wait(
            "document.querySelectorAll('#studio-offers-slot .desk-offer').length === 1",
            SOON,
            "the offer on the desk",
        )
        .await;

    // 9. The new-offer form's steppers fit: a number box wide enough for
    // "1000", the "+" inside the form; the "+" counts up.
    farmer.click("#studio-offers-slot > .btn-live").await;
    farmer
        .visible(
            "#studio-offers-slot [name=per_buyer_limit]",
            "the offer form",
        )
        .await;
    let fit = farmer
        .js("const f = document.querySelector('#studio-offers-slot .desk-form form').getBoundingClientRect();              return [...document.querySelectorAll('#studio-offers-slot .stepper')].map((s) => {                const i = s.querySelector('input').getBoundingClientRect();                const plus = s.lastElementChild.getBoundingClientRect();                return [Math.round(i.width), plus.right <= f.right + 0.5]; });")
        .await;
    for stepper in fit.as_array().unwrap() {
        assert!(
            stepper[0].as_u64().unwrap() >= 64 && stepper[1] == json!(true),
            "a stepper that fits: {fit}"
        );
    }
    fits_the_phone(&farmer, "the new-offer form").await;
    farmer
        .click("#studio-offers-slot [name=per_buyer_limit] + .stepper-btn")
        .await;
    assert_eq!(
        farmer
            .js("return document.querySelector('#studio-offers-slot [name=per_buyer_limit]').value")
            .await,
        json!("6")
    );
    farmer
        .click("#studio-offers-slot .desk-form .btn-quiet.btn-block")
        .await;

    farmer
        .click("#studio-offers-slot .desk-offer .btn-primary")
        .await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-offer.on-screen') !== null",
            SOON,
            "the offer on screens",
        )
        .await;

    // A buyer orders two; another holds the third.
    guest_order(&app, &s.offer, "李华", 2).await;
    guest_hold(&app, &s.offer, "老张", 1).await;
    farmer
        .wait(
            &format!(
                "{}.includes('已卖 2 · 留着 1')",
                text_of("#studio-offers-slot .desk-counts")
            ),
            SOON,
            "the studio's counts while selling",
        )
        .await;
    // The new order rang in the orders tab.
    farmer
        .wait(
            &format!("{} === '1'", text_of("#orders-badge")),
            SOON,
            "the new-order badge",
        )
        .await;

    // 10. The farmer stops selling: the desk says what the API says.
    farmer
        .click("#studio-offers-slot .desk-offer .btn-danger-quiet")
        .await;
    farmer
        .visible("#confirm", "the stop-selling question")
        .await;
    farmer.click("#confirm-yes").await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-offer[data-state=ended]') !== null",
            SOON,
            "the ended offer",
        )
        .await;
    let api = expect(
        app.get(&s.owner, &format!("/api/v1/offers/{}", s.offer))
            .await,
        StatusCode::OK,
    )
    .await;
    let expected = format!(
        "已卖 {} · 留着 {} · 还剩 {} / 共 {}",
        api["sold"], api["held"], api["available"], api["allotted"]
    );
    farmer
        .wait(
            &format!(
                "{} === {}",
                text_of("#studio-offers-slot .desk-counts"),
                js_str(&expected)
            ),
            SOON,
            "the desk's counts matching the API after the end",
        )
        .await;

    // 5, 15. The broadcast ends: results, no "null", nothing to share.
    expect(
        app.post(
            &s.owner,
            &format!("/api/v1/broadcasts/{}/end", s.broadcast),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    farmer
        .wait(
            "document.getElementById('live-state-chip').dataset.state === 'ended'",
            SOON,
            "the ended broadcast in the cockpit",
        )
        .await;
    for reload in [false, true] {
        if reload {
            farmer.client.refresh().await.expect("reload");
            farmer.visible("#view-live", "the cockpit again").await;
        }
        farmer
            .wait(
                "document.querySelectorAll('#studio-offers-slot .desk-offer').length === 1",
                SOON,
                "the results",
            )
            .await;
        let text = farmer.js("return document.body.innerText").await;
        let text = text.as_str().unwrap();
        assert!(
            !text.contains("null") && !text.contains("undefined") && !text.contains("NaN"),
            "no programming words on the page: {text}"
        );
        for hidden in ["share-card", "apps", "studio-viewers"] {
            assert_eq!(
                farmer
                    .js(&format!(
                        "return document.getElementById('{hidden}').hidden"
                    ))
                    .await,
                json!(true),
                "#{hidden} is gone once the broadcast ended"
            );
        }
        fits_the_phone(&farmer, "the ended cockpit").await;
    }
    shot(&farmer, "pages-studio-ended").await;
    farmer.assert_no_script_errors("the farmer").await;
    farmer.close().await;
    drop(driver);
    app.shutdown().await;
}

// ── 1, 2: the camera taken by another app; another device taking over ───

/// Makes the studio's camera something a test can take away, as another
/// app would: the track ends (`readyState` "ended" and an `ended` event),
/// and asking for the camera again fails with NotReadableError until
/// `fcGiveBack()`.
const TAKEABLE_CAMERA_JS: &str = r#"
const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
window.fcTaken = false;
window.fcStreams = [];
navigator.mediaDevices.getUserMedia = async (c) => {
  if (window.fcTaken && c.video) throw new DOMException('Could not start video source', 'NotReadableError');
  const s = await real(c);
  window.fcStreams.push(s);
  return s;
};
window.fcTake = () => {
  window.fcTaken = true;
  for (const s of window.fcStreams) for (const tr of s.getVideoTracks()) {
    if (tr.readyState === 'live') { tr.stop(); tr.dispatchEvent(new Event('ended')); }
  }
  return true;
};
window.fcGiveBack = () => { window.fcTaken = false; return true; };
return true;
"#;

/// The average colour of the viewer's video, as [r, g, b].
async fn picture_colour(viewer: &Browser) -> Option<[f64; 3]> {
    let v = viewer
        .js(
            "const v = document.getElementById('player'); if (!v.videoWidth) return null; \
             const c = document.createElement('canvas'); c.width = 32; c.height = 18; \
             const g = c.getContext('2d'); g.drawImage(v, 0, 0, 32, 18); \
             const d = g.getImageData(0, 0, 32, 18).data; let r = 0, gr = 0, b = 0; \
             for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; } \
             const n = d.length / 4; return [r / n, gr / n, b / n];",
        )
        .await;
    let a = v.as_array()?;
    Some([a[0].as_f64()?, a[1].as_f64()?, a[2].as_f64()?])
}

/// Close to the "camera paused" card's earth brown (#3a2613).
fn looks_paused(c: [f64; 3]) -> bool {
    (c[0] - 58.0).abs() < 30.0 && (c[1] - 38.0).abs() < 30.0 && (c[2] - 19.0).abs() < 30.0
}

async fn go_live_in_studio(farmer: &Browser, app: &TestApp, broadcast: &str) {
    farmer
        .goto(&app.url(&format!("/studio/broadcasts/{broadcast}")))
        .await;
    farmer.visible("#camera-on", "the open-camera button").await;
    farmer.js(TAKEABLE_CAMERA_JS).await;
    farmer.click("#camera-on").await;
    farmer
        .wait(
            "document.getElementById('camera').dataset.status === 'preview' && document.getElementById('preview').videoWidth > 0",
            SOON,
            "the camera preview",
        )
        .await;
    farmer.click("#go-live").await;
    farmer
        .wait(
            "document.getElementById('camera').dataset.status === 'live'",
            Duration::from_secs(30),
            "the farmer on air",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_camera_is_explained_to_farmer_and_viewers_and_one_tap_brings_it_back() {
    let Some(tools) =
        tools("a_taken_camera_is_explained_to_farmer_and_viewers_and_one_tap_brings_it_back")
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let broadcast = app.broadcast(&owner, &shop, "谷子地直播").await;
    let driver = Driver::start(tools).await;
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    go_live_in_studio(&farmer, &app, &broadcast).await;

    let viewer = driver.browser().await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    let camera = poll(Duration::from_secs(30), || async {
        picture_colour(&viewer).await.filter(|c| !looks_paused(*c))
    })
    .await
    .expect("the viewer sees the camera");
    eprintln!("camera picture colour {camera:?}");

    // Another app takes the camera.
    farmer.js("return window.fcTake();").await;
    farmer
        .visible("#camera-alert #camera-retry", "the reopen-camera button")
        .await;
    let told = farmer.text("#camera-alert-text").await;
    assert!(
        told.contains("相机停了") && told.contains("直播没有断"),
        "the farmer is told what happened: {told}"
    );
    // Viewers see the "camera paused" card instead of a frozen or
    // reconnecting player.
    let paused = poll(Duration::from_secs(20), || async {
        picture_colour(&viewer).await.filter(|c| looks_paused(*c))
    })
    .await;
    assert!(
        paused.is_some(),
        "the viewer sees the paused card; colour now {:?}",
        picture_colour(&viewer).await
    );
    assert_eq!(
        viewer
            .js("return document.getElementById('stage').dataset.status")
            .await,
        json!("playing"),
        "the viewer's player keeps playing"
    );
    shot(&farmer, "pages-camera-lost").await;
    // While the other app holds it, a tap says so and changes nothing.
    farmer.click("#camera-retry").await;
    farmer
        .wait(
            &format!("{}.includes('别的应用')", text_of("#live-error")),
            SOON,
            "the camera-busy words",
        )
        .await;

    // The other app lets go; one tap brings the camera back for everyone.
    farmer.js("return window.fcGiveBack();").await;
    farmer.click("#camera-retry").await;
    farmer
        .wait(
            "document.getElementById('camera-alert').hidden && document.getElementById('camera').dataset.status === 'live'",
            SOON,
            "the camera back on air",
        )
        .await;
    let back = poll(Duration::from_secs(20), || async {
        picture_colour(&viewer).await.filter(|c| !looks_paused(*c))
    })
    .await;
    assert!(back.is_some(), "the viewer sees the camera again");
    farmer.assert_no_script_errors("the farmer").await;
    viewer.assert_no_script_errors("the viewer").await;
    viewer.close().await;
    farmer.close().await;
    drop(driver);
    app.shutdown().await;
}

/// Whether the broadcast has a publisher and the two pages' camera states.
async fn takeover_state(first: &Browser, second: &Browser) -> (Value, Value) {
    (
        first
            .js("return document.getElementById('camera').dataset.status")
            .await,
        second
            .js("return document.getElementById('camera').dataset.status")
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_studio_takes_over_once_and_the_first_is_told_not_to_fight() {
    let Some(tools) = tools("a_second_studio_takes_over_once_and_the_first_is_told_not_to_fight")
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let broadcast = app.broadcast(&owner, &shop, "谷子地直播").await;
    let driver = Driver::start(tools).await;
    let first = driver.browser().await;
    studio_sign_in(&first, &app, "13800138000").await;
    first
        .visible("#view-home", "the first phone's dashboard")
        .await;
    go_live_in_studio(&first, &app, &broadcast).await;

    let second = driver.browser().await;
    studio_sign_in(&second, &app, "13800138000").await;
    second
        .visible("#view-home", "the second phone's dashboard")
        .await;
    go_live_in_studio(&second, &app, &broadcast).await;

    // The first phone learns it was replaced, says so, and stops.
    first
        .visible("#camera-alert #take-over", "the take-over button")
        .await;
    assert!(
        first
            .text("#camera-alert-text")
            .await
            .contains("另一台设备接管"),
        "the first phone says another device took over"
    );
    assert!(
        !first.text("#live-error").await.contains("重新连接"),
        "not a network problem"
    );
    shot(&first, "pages-taken-over").await;
    // No fight: for a while, the second phone stays on air.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (a, b) = takeover_state(&first, &second).await;
        assert_eq!(
            (a.as_str(), b.as_str()),
            (Some("replaced"), Some("live")),
            "the first phone stays off the stream"
        );
    }

    // One tap takes it back; now the second phone is told.
    first.click("#take-over").await;
    first
        .wait(
            "document.getElementById('camera').dataset.status === 'live'",
            Duration::from_secs(30),
            "the first phone on air again",
        )
        .await;
    second
        .visible(
            "#camera-alert #take-over",
            "the second phone's take-over button",
        )
        .await;
    let stats = expect(
        app.get(&owner, &format!("/api/v1/broadcasts/{broadcast}/stats"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stats["live"], true, "the broadcast stayed live: {stats}");
    first.assert_no_script_errors("the first phone").await;
    second.assert_no_script_errors("the second phone").await;
    first.close().await;
    second.close().await;
    drop(driver);
    app.shutdown().await;
}

// ── 13: the picture and the chat on one phone screen ──────────────────────

/// The on-screen rectangle of `css` as [top, bottom, left, right, height]
/// and how many chat messages it holds; `null` when it has no box.
async fn rect_of(b: &Browser, css: &str) -> Value {
    b.js(&format!(
        "const e = document.querySelector({}); if (!e || !e.getClientRects().length) return null; \
         const r = e.getBoundingClientRect(); \
         return {{top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height, \
                  messages: e.querySelectorAll('.msg-text').length}};",
        js_str(css)
    ))
    .await
}

/// Item 13: unscrolled, both `video` and `chat` intersect the phone's screen,
/// the chat with real height and the messages in it. `chat` is the message
/// list: in the room the chat's slot is `display: contents` (its parts are
/// laid out by the panel over the video), so the slot itself has no box and
/// measures 0 px, which is what an earlier version of this check measured.
async fn video_and_chat_together(b: &Browser, video: &str, chat: &str, what: &str) {
    b.js("window.scrollTo(0, 0); return true;").await;
    let screen = b
        .js("return [window.innerWidth, window.innerHeight];")
        .await;
    let (w, h) = (screen[0].as_f64().unwrap(), screen[1].as_f64().unwrap());
    let (v, c) = (rect_of(b, video).await, rect_of(b, chat).await);
    eprintln!("{what}: screen {w}x{h}, video {v}, chat {c}");
    let on_screen = |r: &Value| {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        (f("bottom").min(h) - f("top").max(0.0)).max(0.0)
            * (f("right").min(w) - f("left").max(0.0)).max(0.0).signum()
    };
    assert!(!v.is_null() && !c.is_null(), "{what}: video {v}, chat {c}");
    assert!(
        on_screen(&v) >= 200.0,
        "{what}: the video is on screen: {v} on {w}x{h}"
    );
    assert!(
        on_screen(&c) >= 60.0 && c["height"].as_f64().unwrap() >= 60.0,
        "{what}: the chat is on screen with real height: {c} on {w}x{h}"
    );
    assert!(
        c["messages"].as_u64().unwrap() >= 3,
        "{what}: the messages are in the chat: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_picture_and_the_chat_share_the_screen() {
    let Some(tools) = tools("on_a_phone_the_picture_and_the_chat_share_the_screen") else {
        return;
    };
    let app = TestApp::spawn().await;
    // The busiest moment: a product pinned over the picture while people talk.
    let s = sale(&app, 3, 2).await;
    let broadcast = s.broadcast.clone();
    let driver = Driver::start(tools).await;
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    go_live_in_studio(&farmer, &app, &broadcast).await;
    let _owner_ws = pin_offer(&app, &broadcast, &s.offer).await;
    let viewer = driver.browser().await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    viewer
        .wait(
            "document.getElementById('stage').dataset.status === 'playing' && document.getElementById('player').videoWidth > 0",
            Duration::from_secs(30),
            "the viewer's picture",
        )
        .await;
    viewer
        .visible(".offer .btn-buy", "the pinned product")
        .await;

    // A buyer says a few things in the room.
    let li = Phone::guest(&app, "小李").await;
    let mut li_ws = li.connect(&app, &broadcast).await;
    next_of(&mut li_ws, "hello").await;
    for (i, text) in ["小米今年黄不黄？", "多少钱一袋", "能寄到太原吗"]
        .iter()
        .enumerate()
    {
        send(
            &mut li_ws,
            json!({"type": "chat", "text": text, "nonce": format!("n{i}")}),
        )
        .await;
        next_of(&mut li_ws, "accepted").await;
    }
    for (b, who) in [(&viewer, "the viewer"), (&farmer, "the studio")] {
        b.wait(
            &format!("{}.includes('能寄到太原吗')", text_of(".chat-list")),
            SOON,
            &format!("{who}'s chat"),
        )
        .await;
    }
    video_and_chat_together(&viewer, "#player", "#chat-slot .chat-list", "the viewer").await;
    // Nothing floats over the chat: the tap-for-sound button sits under
    // the title, and "直播中" is said once.
    let (unmute, list) = (
        rect_of(&viewer, "#unmute").await,
        rect_of(&viewer, "#chat-slot .chat-list").await,
    );
    assert!(!unmute.is_null(), "a muted player offers sound");
    assert!(
        unmute["bottom"].as_f64() <= list["top"].as_f64(),
        "the sound button stays above the chat: {unmute} / {list}"
    );
    let live_words = viewer
        .js("return [...document.querySelectorAll('.room-head *')].filter((e) => e.getClientRects().length && e.children.length === 0 && e.textContent.trim() === '直播中').length;")
        .await;
    assert_eq!(live_words, json!(1), "one 直播中 over the picture");
    shot(&viewer, "pages-room-video-and-chat").await;
    video_and_chat_together(
        &farmer,
        "#preview",
        "#studio-chat-slot .chat-list",
        "the studio",
    )
    .await;
    shot(&farmer, "pages-studio-camera-and-chat").await;
    fits_the_phone(&viewer, "the room").await;
    fits_the_phone(&farmer, "the cockpit").await;
    farmer.assert_no_script_errors("the farmer").await;
    viewer.assert_no_script_errors("the viewer").await;
    viewer.close().await;
    farmer.close().await;
    drop(driver);
    app.shutdown().await;
}
