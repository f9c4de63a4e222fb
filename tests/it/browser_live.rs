//! Browser end-to-end tests of the live features: chat, offers, buying,
//! moderation, on the real pages in headless Chromium (the helpers of
//! `browser.rs`), against the real server.
//!
//! Each test drives several browser sessions at once (a farmer, viewers, a
//! moderator), each with its own cookies, the way several phones would,
//! and asserts what those people would see. Screenshots at 360x740 go to
//! `$FIELDCAST_ARTIFACTS` (default `artifacts/`).

use crate::browser::{Browser, Driver, tools};
use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) const SOON: Duration = Duration::from_secs(15);
const PASSWORD: &str = "correct horse battery";

/// A JS string literal for `text` (JSON is valid JS).
pub(crate) fn js_str(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// A JS expression: is `text` a message in the chat under `slot`?
pub(crate) fn chat_shows(slot: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#{slot} .msg-text')].some((e) => e.textContent === {})",
        js_str(text)
    )
}

/// A JS expression: the text of the offer card's "left" line.
pub(crate) fn offer_left(slot: &str) -> String {
    format!("(document.querySelector('#{slot} .stock-left') || {{}}).textContent")
}

/// Signs in on the studio's sign-in form, as a person would.
pub(crate) async fn studio_sign_in(b: &Browser, app: &TestApp, mobile: &str) {
    b.goto(&app.url("/studio")).await;
    b.visible("#form-signin", "the sign-in form").await;
    b.fill("#form-signin [name=mobile]", mobile).await;
    b.fill("#form-signin [name=password]", PASSWORD).await;
    b.click("#form-signin [type=submit]").await;
}

/// Picks a chat nickname on the viewer page and waits until the composer
/// (not the nickname form) shows.
pub(crate) async fn join_chat(b: &Browser, nickname: &str) {
    b.visible("#chat-slot .chat-join", "the nickname form")
        .await;
    b.fill("#chat-slot .chat-join input", nickname).await;
    b.click("#chat-slot .chat-join [type=submit]").await;
    b.visible("#chat-slot .chat-compose", "the chat composer")
        .await;
}

/// Taps the chat message with exactly `text` (as a moderator would, to
/// get its actions).
pub(crate) async fn tap_message(b: &Browser, slot: &str, text: &str) {
    let found = b
        .js(&format!(
            "document.querySelectorAll('[data-tapped]').forEach((e) => e.removeAttribute('data-tapped')); \
             const m = [...document.querySelectorAll('#{slot} .msg[data-id]')].filter((e) => e.querySelector('.msg-text').textContent === {}).pop(); \
             if (m) m.setAttribute('data-tapped', ''); return Boolean(m);",
            js_str(text)
        ))
        .await;
    assert_eq!(found, json!(true), "no message {text:?} in #{slot}");
    b.click(&format!("#{slot} .msg[data-tapped]")).await;
}

pub(crate) async fn say(b: &Browser, slot: &str, text: &str) {
    b.fill(&format!("#{slot} .chat-compose input"), text).await;
    b.click(&format!("#{slot} .chat-compose [type=submit]"))
        .await;
}

/// Scrolls so `css` is at the top of the screen (under the top bar), for a
/// screenshot that shows what a person scrolled to.
pub(crate) async fn scroll_to(b: &Browser, css: &str) {
    b.js(&format!(
        "const e = document.querySelector({}); window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 64); return true;",
        js_str(css)
    ))
    .await;
}

/// A screenshot once sheets and tickers have finished moving in.
pub(crate) async fn shot(b: &Browser, name: &str) {
    b.wait(
        "document.getAnimations().every((a) => a.playState !== 'running' || a.effect.getTiming().iterations === Infinity)",
        SOON,
        "animations to settle",
    )
    .await;
    b.screenshot(name).await;
}

async fn no_alert_open(b: &Browser) -> bool {
    b.client
        .get_alert_text()
        .await
        .is_err_and(|e| e.is_no_such_alert())
}

async fn created(res: reqwest::Response) -> Value {
    expect(res, StatusCode::CREATED).await
}

// ── selling: the farmer starts an offer, two viewers buy ─────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farmer_sells_live_and_two_viewers_buy_while_chatting() {
    let Some(tools) = tools("farmer_sells_live_and_two_viewers_buy_while_chatting") else {
        return;
    };
    let started = Instant::now();
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    created(
        app.post(
            &owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": "羊粪小米 20斤装", "unit": "袋", "price_fen": 16800, "stock": 200,
                   "description": "坡上的谷子，只上羊粪。", "ships_on": "2030-10-08"}),
        )
        .await,
    )
    .await;
    let broadcast = app.broadcast(&owner, &shop, "谷子收割第一天").await;
    let watch = app.url(&format!("/live/{broadcast}"));
    let driver = Driver::start(tools).await;

    // The farmer signs in and opens the broadcast in the studio.
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer
        .click(&format!("a[href='/studio/broadcasts/{broadcast}']"))
        .await;
    farmer.visible("#view-live", "the go-live view").await;
    farmer
        .visible("#studio-chat-slot .chat-compose", "the studio's chat")
        .await;
    // Selling is the cockpit's second tab, next to the chat.
    farmer.click("#tab-sell").await;
    farmer
        .visible("#studio-offers-slot .btn-live", "the sell button")
        .await;
    farmer.click("#tab-chat").await;

    // Two viewers open the shared link; neither has a nickname yet.
    let li = driver.browser().await;
    li.goto(&watch).await;
    let zhang = driver.browser().await;
    zhang.goto(&watch).await;
    for (who, b) in [("小李", &li), ("老张", &zhang)] {
        b.visible("#chat-slot .chat-join", &format!("{who}'s nickname form"))
            .await;
    }
    // The farmer's viewer count follows them in (the farmer is not one).
    farmer
        .wait(
            "document.getElementById('studio-viewer-count').textContent === '2 人在看'",
            SOON,
            "two people watching",
        )
        .await;

    // 1. A viewer's chat message reaches the studio (and the other viewer).
    join_chat(&li, "太原小李").await;
    say(&li, "chat-slot", "今年的小米真黄！").await;
    farmer
        .wait(
            &chat_shows("studio-chat-slot", "今年的小米真黄！"),
            SOON,
            "the viewer's message in the studio",
        )
        .await;
    zhang
        .wait(
            &chat_shows("chat-slot", "今年的小米真黄！"),
            SOON,
            "the message on the other viewer's page",
        )
        .await;
    assert_eq!(
        farmer
            .text("#studio-chat-slot .msg:last-child .msg-name")
            .await,
        "太原小李"
    );
    say(&farmer, "studio-chat-slot", "欢迎！今天的新米马上开卖").await;
    li.wait(
        &chat_shows("chat-slot", "欢迎！今天的新米马上开卖"),
        SOON,
        "the farmer's answer",
    )
    .await;
    assert_eq!(
        li.text("#chat-slot .msg[data-role=owner] .role-tag").await,
        "店主",
        "the farmer's messages are marked"
    );

    // 2. The farmer starts an offer from the studio; it shows on both phones.
    farmer.click("#tab-sell").await;
    farmer.click("#studio-offers-slot .btn-live").await;
    farmer
        .visible("#studio-offers-slot form", "the offer form")
        .await;
    assert_eq!(
        farmer
            .js("return document.querySelector('#studio-offers-slot [name=price]').value")
            .await,
        json!("168"),
        "the product's price is the starting point"
    );
    farmer.fill("#studio-offers-slot [name=price]", "abc").await;
    farmer.click("#studio-offers-slot form [type=submit]").await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot [data-error-for=price]').textContent.length > 0",
            SOON,
            "the price error next to the price",
        )
        .await;
    farmer.fill("#studio-offers-slot [name=price]", "128").await;
    farmer
        .fill("#studio-offers-slot [name=quantity]", "20")
        .await;
    farmer
        .fill("#studio-offers-slot [name=per_buyer_limit]", "5")
        .await;
    farmer.click("#studio-offers-slot form [type=submit]").await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-offer.on-screen') !== null",
            SOON,
            "the offer on screens, as the studio sees it",
        )
        .await;
    for (who, b) in [("小李", &li), ("老张", &zhang)] {
        b.wait(
            &format!("{} === '还剩 20 袋'", offer_left("offer-slot")),
            SOON,
            &format!("the offer card on {who}'s page"),
        )
        .await;
    }
    assert_eq!(li.text("#offer-slot .offer-price strong").await, "¥128");
    assert!(
        li.text("#offer-slot .offer-tags").await.contains("预售"),
        "the presale ship date shows"
    );
    assert!(
        li.text("#offer-slot .offer-tags")
            .await
            .contains("每人限 5 袋")
    );

    // A viewer's phone: the stage (the farmer is not on air in this test:
    // video costs CPU the other browser tests need), the offer under it;
    // then the offer with the chat, as they scroll.
    li.js("window.scrollTo(0, 0); return true;").await;
    shot(&li, "live-viewer").await;
    scroll_to(&li, "#offer-slot").await;
    shot(&li, "live-viewer-offer-chat").await;

    // Both viewers buy; both pages show the stock falling.
    li.click("#offer-slot .qty-stepper .stepper-btn:last-child")
        .await;
    assert!(li.text("#offer-slot .btn-buy").await.contains("买 2 袋"));
    li.click("#offer-slot .btn-buy").await;
    li.visible("#co-form", "the checkout form").await;
    for (who, b) in [("小李", &li), ("老张", &zhang)] {
        b.wait(
            &format!("{} === '还剩 18 袋'", offer_left("offer-slot")),
            SOON,
            &format!("18 left on {who}'s page"),
        )
        .await;
    }
    // 老张 has no nickname yet: buying asks for one first.
    zhang.click("#offer-slot .btn-buy").await;
    zhang
        .visible(".sheet [name=nickname]", "the nickname sheet")
        .await;
    zhang.fill(".sheet [name=nickname]", "老张").await;
    zhang
        .click(".sheet-backdrop:not([hidden]) [type=submit]")
        .await;
    zhang.visible("#co-form", "老张's checkout form").await;
    for (who, b) in [("小李", &li), ("老张", &zhang)] {
        b.wait(
            &format!("{} === '还剩 17 袋'", offer_left("offer-slot")),
            SOON,
            &format!("17 left on {who}'s page"),
        )
        .await;
    }
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-counts').textContent.includes('还剩 17')",
            SOON,
            "the studio's stock falling",
        )
        .await;

    // 小李 checks out; a wrong mobile number is flagged by its field.
    assert!(
        li.text("#co-hold-text").await.contains("内提交"),
        "the hold counts down"
    );
    li.fill("#co-form [name=name]", "李华").await;
    li.fill("#co-form [name=mobile]", "12345").await;
    li.fill(
        "#co-form [name=address]",
        "山西省太原市小店区坞城路 92 号 3 单元",
    )
    .await;
    li.click("#co-form [value=wechat_transfer]").await;
    shot(&li, "live-checkout").await;
    li.click("#co-submit").await;
    li.wait(
        "document.querySelector('#co-form [data-error-for=mobile]').textContent.length > 0",
        SOON,
        "the mobile number error",
    )
    .await;
    assert!(
        li.text("#co-form [data-error-for=mobile]")
            .await
            .contains("手机号"),
        "the error says what is wrong"
    );
    li.fill("#co-form [name=mobile]", "139 1234 5678").await;
    li.click("#co-submit").await;
    li.visible("#co-done-view", "the order confirmation").await;
    let private_url = li.text("#co-link").await;
    assert!(
        private_url.starts_with(&app.url("/o/")),
        "a private link: {private_url}"
    );
    assert_eq!(
        li.js("return document.getElementById('co-open').getAttribute('href')")
            .await,
        json!(private_url)
    );
    assert!(li.text("#co-pay-note").await.contains("¥256"));
    shot(&li, "live-order-confirmation").await;

    // The sale reaches everyone: the ticker on 老张's page, the studio's
    // order count.
    zhang
        .wait(
            "document.querySelector('#offer-slot .sale-ticker').textContent.includes('太原市的买家刚买了 2 袋')",
            SOON,
            "the sale ticker",
        )
        .await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-orders').textContent.includes('1 单')",
            SOON,
            "the order in the studio",
        )
        .await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-counts').textContent.includes('已卖 2')",
            SOON,
            "2 sold in the studio",
        )
        .await;

    // 老张 changes his mind: his bag goes back on sale for everyone.
    zhang.click("#co-release").await;
    li.click("#co-done-close").await;
    for (who, b) in [("小李", &li), ("老张", &zhang)] {
        b.wait(
            &format!("{} === '还剩 18 袋'", offer_left("offer-slot")),
            SOON,
            &format!("the released bag back on {who}'s page"),
        )
        .await;
    }
    // 小李's order stays reachable from the page.
    li.visible("#offer-slot .my-order", "the link to my order")
        .await;

    // A second offer with a countdown: buying opens in a minute, for 15
    // minutes. Viewers see the countdown and cannot buy yet.
    scroll_to(&farmer, "#studio-offers-slot").await;
    farmer.click("#tab-sell").await;
    farmer.click("#studio-offers-slot .btn-live").await;
    farmer
        .visible("#studio-offers-slot form", "the offer form again")
        .await;
    farmer
        .click("#studio-offers-slot [aria-label='什么时候开抢'] .chip:nth-child(2)")
        .await;
    farmer
        .click("#studio-offers-slot [aria-label='卖多久'] .chip:nth-child(2)")
        .await;
    farmer
        .fill("#studio-offers-slot [name=quantity]", "30")
        .await;
    farmer.click("#studio-offers-slot form [type=submit]").await;
    li.wait(
        "(() => { const c = document.querySelector('#offer-slot .offer[data-state=upcoming]'); \
          return Boolean(c && /^0:[0-5][0-9] 后开抢$/.test(c.querySelector('.offer-timer').textContent) \
            && c.querySelector('.btn-buy').disabled && c.querySelector('.stock-left').textContent === '还剩 30 袋'); })()",
        SOON,
        "the upcoming offer's countdown on the viewer's page",
    )
    .await;
    farmer
        .wait(
            "[...document.querySelectorAll('#studio-offers-slot .desk-offer')].some((e) => e.textContent.includes('等开抢'))",
            SOON,
            "the upcoming offer in the studio",
        )
        .await;

    scroll_to(&farmer, "#studio-offers-slot").await;
    shot(&farmer, "live-studio-selling").await;
    // Stopping it takes it off every screen.
    farmer
        .click("#studio-offers-slot .desk-offer[data-state=upcoming] .btn-danger-quiet")
        .await;
    farmer
        .visible("#confirm", "the stop-selling question")
        .await;
    farmer.click("#confirm-yes").await;
    li.wait(
        "document.querySelectorAll('#offer-slot .offer').length === 1",
        SOON,
        "the stopped offer gone from the viewer's page",
    )
    .await;
    farmer
        .wait(
            "document.querySelector('#studio-offers-slot .desk-offer[data-state=ended]') !== null",
            SOON,
            "the stopped offer marked ended in the studio",
        )
        .await;
    farmer.click("#tab-chat").await;
    shot(&farmer, "live-studio-chat").await;
    // The orders tab lists this broadcast's order, with its actions.
    farmer.click("#tab-orders").await;
    farmer
        .wait(
            "document.querySelectorAll('#studio-orders-slot .order-card').length === 1",
            SOON,
            "the order in the cockpit's orders tab",
        )
        .await;
    shot(&farmer, "live-studio-orders-tab").await;

    // The private page is private: not stored, not indexed; a wrong token
    // is a friendly 404.
    let page = app
        .get(&app.client(), private_url.trim_start_matches(&app.url("")))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store, private");
    assert!(page.text().await.unwrap().contains("noindex"));
    let missing = app
        .get(&app.client(), "/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("找不到这个订单"));

    // The private page shows the order.
    li.goto(&private_url).await;
    li.visible("#order-body", "the private order page").await;
    assert_eq!(li.text("#status-title").await, "已下单");
    assert_eq!(li.text("#order-item").await, "羊粪小米 20斤装 × 2 袋");
    assert_eq!(li.text("#order-total").await, "¥256");
    assert_eq!(li.text("#order-name").await, "李华");
    assert!(li.text("#order-address").await.contains("坞城路 92 号"));
    assert!(li.text("#status-text").await.contains("转账 ¥256"));
    shot(&li, "live-private-order").await;

    // The farmer's orders page: money received, then shipped.
    farmer
        .click("#studio-orders-slot a[href='/studio/orders']")
        .await;
    farmer.visible("#view-orders", "the orders page").await;
    farmer
        .wait(
            "document.querySelectorAll('#order-list .order-card').length === 1",
            SOON,
            "the order in the list",
        )
        .await;
    assert!(farmer.text("#order-list").await.contains("李华"));
    assert!(farmer.text("#order-list").await.contains("13912345678"));
    farmer
        .click("#order-list .order-actions .btn-primary")
        .await;
    farmer
        .wait(
            "document.querySelector('#order-list .order-card').dataset.state === 'paid'",
            SOON,
            "the order marked paid",
        )
        .await;
    farmer
        .click("#order-list .order-actions .btn-primary")
        .await;
    farmer
        .visible(".sheet [name=carrier]", "the shipping sheet")
        .await;
    farmer.fill(".sheet [name=carrier]", "中国邮政").await;
    farmer
        .fill(".sheet [name=tracking_number]", "9876543210123")
        .await;
    farmer
        .click(".sheet-backdrop:not([hidden]) [type=submit]")
        .await;
    farmer
        .wait(
            "document.querySelector('#order-list .order-card').dataset.state === 'shipped'",
            SOON,
            "the order shipped",
        )
        .await;
    assert!(
        farmer
            .text("#order-list .order-tracking")
            .await
            .contains("中国邮政 9876543210123")
    );
    // The filters count by state; the export follows the filter (and
    // says the page's language and the phone's time zone).
    farmer.click("#order-filters [data-state=shipped]").await;
    let csv_link = farmer
        .js("return document.getElementById('orders-csv').getAttribute('href')")
        .await;
    let csv_link = csv_link.as_str().unwrap();
    assert!(
        csv_link.contains("/orders.csv?")
            && csv_link.contains("state=shipped")
            && csv_link.contains("lang=zh-CN")
            && csv_link.contains("tz_offset_minutes="),
        "{csv_link}"
    );
    let csv = app
        .get(
            &owner,
            &format!("/api/v1/shops/{shop}/orders.csv?state=shipped"),
        )
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.text().await.unwrap().contains("9876543210123"));
    shot(&farmer, "live-studio-orders").await;

    // The dashboard sums the orders up.
    farmer.click("#view-orders .back").await;
    farmer.visible("#orders-slot", "the orders card").await;
    // The card shows what it had at once and refreshes behind it.
    farmer
        .wait(
            "document.getElementById('orders-slot').textContent.includes('羊粪小米 20斤装 × 2')",
            SOON,
            "the dashboard's orders card lists the order",
        )
        .await;
    scroll_to(&farmer, "#orders-slot").await;
    shot(&farmer, "live-studio-dashboard").await;

    // The buyer sees the tracking number.
    li.click("#order-refresh").await;
    li.wait(
        "document.getElementById('tracking-number').textContent === '9876543210123'",
        SOON,
        "the tracking number on the private page",
    )
    .await;
    assert_eq!(li.text("#status-title").await, "农户已发货");

    // 老张 reads English: the live parts switch with the rest of the page.
    zhang.click("#lang-switch").await;
    zhang
        .wait(
            "document.querySelector('#offer-slot .btn-buy').textContent === 'Buy now'",
            SOON,
            "the buy button in English",
        )
        .await;
    assert_eq!(zhang.text("#offer-slot .stock-left").await, "18 袋 left");
    assert_eq!(zhang.text("#chat-slot .section-title").await, "Chat");
    scroll_to(&zhang, "#offer-slot").await;
    shot(&zhang, "live-viewer-en").await;

    for (who, b) in [("the farmer", &farmer), ("小李", &li), ("老张", &zhang)] {
        b.assert_no_script_errors(who).await;
    }
    for b in [farmer, li, zhang] {
        b.close().await;
    }
    drop(driver);
    app.shutdown().await;
    eprintln!("selling test took {:.1} s", started.elapsed().as_secs_f64());
}

// ── a refusal in the page's language ──────────────────────────────────────

/// The server refuses with a code and its numbers (`limit_reached`,
/// `params.limit`); the page says it in its own language, never in the
/// server's English `detail`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_buy_is_told_in_the_pages_language() {
    let Some(tools) = tools("a_refused_buy_is_told_in_the_pages_language") else {
        return;
    };
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let product = created(
        app.post(
            &owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": "羊粪小米", "unit": "袋", "price_fen": 16800, "stock": 10}),
        )
        .await,
    )
    .await;
    let broadcast = app.broadcast(&owner, &shop, "秋收直播").await;
    let offer = created(
        app.post(
            &owner,
            &format!("/api/v1/broadcasts/{broadcast}/offers"),
            json!({"product_id": product["id"], "price_fen": 12800, "quantity": 10, "per_buyer_limit": 1}),
        )
        .await,
    )
    .await;
    let offer = offer["id"].as_str().unwrap().to_owned();
    let _owner_ws = crate::browser_pages::pin_offer(&app, &broadcast, &offer).await;
    let watch = app.url(&format!("/live/{broadcast}"));
    let driver = Driver::start(tools).await;
    for (lang, nickname, left, refused) in [
        ("zh", "小李", "还剩 10 袋", "每人最多买 1 份，您已经买够了"),
        (
            "en",
            "Li",
            "9 袋 left",
            "At most 1 per buyer, and you have reached it",
        ),
    ] {
        let b = driver.browser().await;
        b.goto(&watch).await;
        if lang == "en" {
            b.click("#lang-switch").await;
        }
        join_chat(&b, nickname).await;
        b.wait(
            &format!("{} === {}", offer_left("offer-slot"), js_str(left)),
            SOON,
            &format!("the offer card in {lang}"),
        )
        .await;
        // This person already holds their one unit, reserved from this
        // phone behind the page's back: the card still offers to buy.
        let held = b
            .js(&format!(
                "return fetch('/api/v1/offers/{offer}/reservations', {{method: 'POST', \
                 credentials: 'same-origin', headers: {{'content-type': 'application/json', \
                 'idempotency-key': 'behind-{lang}'}}, body: JSON.stringify({{quantity: 1}})}})\
                 .then((r) => r.status)"
            ))
            .await;
        assert_eq!(held, json!(201), "the first unit is held");
        b.click("#offer-slot .btn-buy").await;
        b.wait(
            &format!(
                "document.querySelector('#offer-slot .offer-note').textContent === {}",
                js_str(refused)
            ),
            SOON,
            &format!("the refusal in {lang}"),
        )
        .await;
        let note = b.text("#offer-slot .offer-note").await;
        assert!(
            !note.contains("per buyer;"),
            "not the server's detail: {note}"
        );
        b.assert_no_script_errors(lang).await;
        b.close().await;
    }
    drop(driver);
    app.shutdown().await;
}

// ── moderation, and chat text that looks like code ──────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderator_keeps_the_chat_clean_and_html_stays_text() {
    let Some(tools) = tools("moderator_keeps_the_chat_clean_and_html_stays_text") else {
        return;
    };
    let started = Instant::now();
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let broadcast = app.broadcast(&owner, &shop, "谷子地直播").await;
    // The future moderator has an account of their own.
    app.sign_up(&app.client(), "13900139000", "管理员小王")
        .await;
    let watch = app.url(&format!("/live/{broadcast}"));
    let driver = Driver::start(tools).await;

    // The owner appoints the moderator by mobile number in the studio.
    let farmer = driver.browser().await;
    studio_sign_in(&farmer, &app, "13800138000").await;
    farmer.visible("#view-home", "the dashboard").await;
    farmer.click("a[href='/studio/moderators']").await;
    farmer
        .visible("#form-moderator", "the moderators page")
        .await;
    farmer
        .fill("#form-moderator [name=mobile]", "13700000000")
        .await;
    farmer.click("#form-moderator [type=submit]").await;
    farmer
        .wait(
            "document.querySelector('#form-moderator [data-error-for=mobile]').textContent.includes('还没注册')",
            SOON,
            "the unknown-number error",
        )
        .await;
    farmer
        .fill("#form-moderator [name=mobile]", "13900139000")
        .await;
    farmer.click("#form-moderator [type=submit]").await;
    farmer
        .wait(
            "document.getElementById('moderator-list').textContent.includes('管理员小王')",
            SOON,
            "the new moderator in the list",
        )
        .await;
    shot(&farmer, "live-studio-moderators").await;
    farmer.click("#view-moderators .back").await;
    farmer.visible("#view-home", "the dashboard again").await;
    farmer
        .click(&format!("a[href='/studio/broadcasts/{broadcast}']"))
        .await;
    farmer
        .visible("#studio-chat-slot .chat-compose", "the studio's chat")
        .await;

    // The moderator signs in and finds the broadcast from the studio.
    let moderator = driver.browser().await;
    studio_sign_in(&moderator, &app, "13900139000").await;
    moderator
        .visible("#view-modhome", "the moderator's start page")
        .await;
    assert!(
        moderator
            .text("#modhome-shops")
            .await
            .contains("谷子地直播")
    );
    moderator.click("#modhome-shops a.row").await;
    moderator
        .visible("#chat-slot .mod-toggle", "the moderator tools")
        .await;

    // A viewer posts markup and script: everyone sees it as plain text.
    let viewer = driver.browser().await;
    viewer.goto(&watch).await;
    join_chat(&viewer, "捣乱的人").await;
    let hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    say(&viewer, "chat-slot", hostile).await;
    for (who, b, slot) in [
        ("the viewer", &viewer, "chat-slot"),
        ("the moderator", &moderator, "chat-slot"),
        ("the farmer", &farmer, "studio-chat-slot"),
    ] {
        b.wait(
            &chat_shows(slot, hostile),
            SOON,
            &format!("the markup as text on {who}'s page"),
        )
        .await;
        assert_eq!(
            b.js(&format!(
                "return document.querySelectorAll('#{slot} img, #{slot} script, #{slot} .msg-text *').length"
            ))
            .await,
            json!(0),
            "no element was made from the message on {who}'s page"
        );
        assert!(no_alert_open(b).await, "no script ran on {who}'s page");
        b.assert_no_script_errors(who).await;
    }

    // The moderator deletes a spam message; it disappears for everyone.
    say(&viewer, "chat-slot", "加我微信 spam123 便宜卖").await;
    moderator
        .wait(
            &chat_shows("chat-slot", "加我微信 spam123 便宜卖"),
            SOON,
            "the spam at the moderator",
        )
        .await;
    farmer
        .wait(
            &chat_shows("studio-chat-slot", "加我微信 spam123 便宜卖"),
            SOON,
            "the spam in the studio",
        )
        .await;
    tap_message(&moderator, "chat-slot", "加我微信 spam123 便宜卖").await;
    moderator
        .visible(".sheet-actions", "the message's moderation sheet")
        .await;
    assert!(
        moderator
            .text(".sheet-actions .act-quote")
            .await
            .contains("加我微信"),
        "the sheet quotes the message"
    );
    shot(&moderator, "live-moderator-tools").await;
    moderator.click(".sheet-actions .act-row .act").await;
    for (who, b, slot) in [
        ("the viewer", &viewer, "chat-slot"),
        ("the moderator", &moderator, "chat-slot"),
        ("the farmer", &farmer, "studio-chat-slot"),
    ] {
        b.wait(
            &format!("!{}", chat_shows(slot, "加我微信 spam123 便宜卖")),
            SOON,
            &format!("the deleted message gone from {who}'s page"),
        )
        .await;
    }
    assert!(
        viewer
            .js(&format!("return {}", chat_shows("chat-slot", hostile)))
            .await
            .as_bool()
            .unwrap(),
        "only the deleted message went"
    );

    // Blocked words: the sender alone is told; nobody else sees the message.
    moderator.click("#chat-slot .mod-toggle").await;
    moderator
        .visible("#chat-slot .mod-panel textarea", "the blocked words box")
        .await;
    moderator
        .fill("#chat-slot .mod-panel textarea", "加微信，spam")
        .await;
    moderator
        .click("#chat-slot .mod-panel .btn-secondary")
        .await;
    moderator
        .wait(
            "document.getElementById('toast').textContent === '屏蔽词已保存'",
            SOON,
            "the blocked words saved",
        )
        .await;
    moderator.click("#chat-slot .mod-close").await;
    say(&viewer, "chat-slot", "要的加微信聊").await;
    viewer
        .wait(
            "document.querySelector('#chat-slot .chat-notice').textContent.includes('屏蔽的词')",
            SOON,
            "the blocked-word refusal for the sender",
        )
        .await;
    assert_eq!(
        viewer
            .js("return document.querySelector('#chat-slot .chat-compose input').value")
            .await,
        json!("要的加微信聊"),
        "the refused text is given back to edit"
    );
    viewer.fill("#chat-slot .chat-compose input", "").await;

    // Moderators cannot act on the owner: the refusal is shown.
    say(&farmer, "studio-chat-slot", "欢迎大家来地里看看").await;
    moderator
        .wait(
            &chat_shows("chat-slot", "欢迎大家来地里看看"),
            SOON,
            "the farmer's message",
        )
        .await;
    tap_message(&moderator, "chat-slot", "欢迎大家来地里看看").await;
    moderator
        .visible(".sheet-actions .chips", "the mute choices")
        .await;
    moderator.click(".sheet-actions .chips .chip").await;
    moderator
        .wait(
            "document.querySelector('#chat-slot .chat-notice').textContent.includes('不能对店主')",
            SOON,
            "the target_protected refusal",
        )
        .await;

    // A timeout mutes the viewer, who is told privately.
    tap_message(&moderator, "chat-slot", hostile).await;
    moderator
        .visible(".sheet-actions .chips", "the mute choices")
        .await;
    moderator
        .click(".sheet-actions .chips .chip:nth-child(2)")
        .await;
    viewer
        .wait(
            "!document.querySelector('#chat-slot .chat-notice').hidden && document.querySelector('#chat-slot .chat-notice').textContent.includes('禁言')",
            SOON,
            "the viewer's muted notice",
        )
        .await;
    say(&viewer, "chat-slot", "我还能说话吗").await;
    viewer
        .wait(
            "document.querySelector('#chat-slot .chat-notice').textContent.includes('禁言')",
            SOON,
            "the refusal while muted",
        )
        .await;

    // The tools panel: slow mode, blocked words, the log with what happened.
    moderator.click("#chat-slot .mod-toggle").await;
    moderator
        .visible("#chat-slot .mod-panel", "the tools panel")
        .await;
    moderator
        .click("#chat-slot .mod-panel .chips .chip:nth-child(3)")
        .await;
    for (who, b) in [("the viewer", &viewer), ("the moderator", &moderator)] {
        b.wait(
            "document.querySelector('#chat-slot .chat-slow').textContent.includes('10 秒')",
            SOON,
            &format!("slow mode on {who}'s page"),
        )
        .await;
    }
    moderator.click("#chat-slot .mod-log-box summary").await;
    moderator
        .wait(
            "document.querySelector('#chat-slot .mod-log').textContent.includes('删除了一条消息')",
            SOON,
            "the deletion in the moderation log",
        )
        .await;
    assert!(
        moderator
            .text("#chat-slot .mod-log")
            .await
            .contains("禁言 捣乱的人"),
        "the log names whom it was about"
    );
    scroll_to(&moderator, "#chat-slot").await;
    shot(&moderator, "live-moderator-panel").await;

    // A ban: the viewer is told and their messages leave everyone's chat.
    moderator.click("#chat-slot .mod-close").await;
    tap_message(&moderator, "chat-slot", hostile).await;
    moderator
        .visible(".sheet-actions .btn-danger-quiet", "the ban button")
        .await;
    moderator.click(".sheet-actions .btn-danger-quiet").await;
    moderator
        .visible(".sheet-ask .btn-stop", "the ban confirmation")
        .await;
    moderator.click(".sheet-ask .btn-stop").await;
    viewer
        .visible("#chat-slot .chat-banned", "the banned notice")
        .await;
    assert!(
        viewer
            .js("return document.querySelector('#chat-slot .chat-compose').hidden")
            .await
            .as_bool()
            .unwrap(),
        "a banned viewer has no composer"
    );
    farmer
        .wait(
            &format!("!{}", chat_shows("studio-chat-slot", hostile)),
            SOON,
            "the banned viewer's messages hidden in the studio",
        )
        .await;
    shot(&viewer, "live-viewer-banned").await;

    // The owner lifts the ban from the log in the studio.
    farmer.click("#studio-chat-slot .mod-toggle").await;
    farmer.click("#studio-chat-slot .mod-log-box summary").await;
    farmer
        .wait(
            "document.querySelector('#studio-chat-slot .mod-log[data-loaded]') && [...document.querySelectorAll('#studio-chat-slot .mod-entry button')].some((b) => b.textContent === '解封')",
            SOON,
            "the unban button on the ban entry",
        )
        .await;
    farmer.click("#studio-chat-slot .mod-entry button").await;
    farmer
        .wait(
            "[...document.querySelectorAll('#studio-chat-slot .mod-what')].some((e) => e.textContent.includes('解封'))",
            SOON,
            "the unban in the log",
        )
        .await;

    // The owner pins a message and then clears the chat for everyone.
    tap_message(&farmer, "studio-chat-slot", "欢迎大家来地里看看").await;
    farmer
        .visible(".sheet-actions", "the owner's message actions")
        .await;
    farmer
        .click(".sheet-actions .act-row .act:nth-child(2)")
        .await;
    moderator
        .wait(
            "!document.querySelector('#chat-slot .chat-pinned').hidden && document.querySelector('#chat-slot .pin-text').textContent === '欢迎大家来地里看看'",
            SOON,
            "the pinned message at the moderator",
        )
        .await;
    farmer
        .click("#studio-chat-slot .mod-panel .btn-danger-quiet")
        .await;
    farmer
        .visible(".sheet-ask .btn-stop", "the clear-chat question")
        .await;
    farmer.click(".sheet-ask .btn-stop").await;
    moderator
        .wait(
            "document.querySelectorAll('#chat-slot .msg[data-id]').length === 0 && document.querySelector('#chat-slot .msg-system').textContent === '聊天已被清空'",
            SOON,
            "the cleared chat at the moderator",
        )
        .await;

    for (who, b) in [
        ("the farmer", &farmer),
        ("the moderator", &moderator),
        ("the viewer", &viewer),
    ] {
        assert!(no_alert_open(b).await, "no script ran on {who}'s page");
        b.assert_no_script_errors(who).await;
    }
    for b in [farmer, moderator, viewer] {
        b.close().await;
    }
    drop(driver);
    app.shutdown().await;
    eprintln!(
        "moderation test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ── the live channel rides out a server restart ─────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_page_reconnects_after_a_server_restart() {
    let Some(tools) = tools("viewer_page_reconnects_after_a_server_restart") else {
        return;
    };
    // A fixed port, so the page can find the server again after the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut app = TestApp::spawn_with(store::testing::TestDb::sqlite(), |config| {
        config.bind = format!("127.0.0.1:{port}").parse().unwrap();
        config.public_url = format!("http://127.0.0.1:{port}");
    })
    .await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let broadcast = app.broadcast(&owner, &shop, "谷子地直播").await;
    let driver = Driver::start(tools).await;
    let viewer = driver.browser().await;
    viewer.goto(&app.url(&format!("/live/{broadcast}"))).await;
    join_chat(&viewer, "小李").await;
    say(&viewer, "chat-slot", "重启前的一句").await;
    viewer
        .wait(
            &chat_shows("chat-slot", "重启前的一句"),
            SOON,
            "the first message",
        )
        .await;

    // The server goes away: the page says it is reconnecting.
    let running = app.server.take().expect("running");
    running.shutdown().await.expect("clean shutdown");
    viewer
        .wait(
            "!document.querySelector('#chat-slot .chat-status').hidden",
            SOON,
            "the reconnecting notice",
        )
        .await;
    assert!(
        viewer
            .text("#chat-slot .chat-status")
            .await
            .contains("重新连接")
    );

    // It comes back on the same address; the page reconnects by itself and
    // the chat works again, for the same guest.
    app.server = Some(fieldcast::start(app.config.clone()).await.expect("restart"));
    viewer
        .wait(
            "document.querySelector('#chat-slot .chat-status').hidden",
            Duration::from_secs(45),
            "the page to reconnect",
        )
        .await;
    say(&viewer, "chat-slot", "重启后的一句").await;
    viewer
        .wait(
            &chat_shows("chat-slot", "重启后的一句"),
            SOON,
            "a message after the restart",
        )
        .await;
    assert_eq!(
        viewer.text("#chat-slot .msg:last-child .msg-name").await,
        "小李"
    );
    viewer.assert_no_script_errors("the viewer").await;
    viewer.close().await;
    drop(driver);
    app.shutdown().await;
}
