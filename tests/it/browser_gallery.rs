//! Screenshots of every page, on a 360 px phone and a 1280 px desktop, in
//! Chinese and in English, into `$FIELDCAST_ARTIFACTS` (`gallery-<page>-
//! <width>-<lang>.png`; the README's gallery shows some). Each page must
//! also load without script errors and, on the phone, fit its width.

use crate::browser::{Browser, Driver, tools};
use crate::browser_live::{SOON, shot, studio_sign_in};
use crate::browser_pages::{guest_order, pin_offer};
use crate::harness::*;
use crate::live::send;
use crate::orders::sale;
use reqwest::StatusCode;
use serde_json::json;

/// A small photo (a warm millet-coloured gradient) for the shop and product.
fn photo() -> Vec<u8> {
    let img = image::ImageBuffer::from_fn(900, 600, |x, y| {
        image::Rgb([200 + (x % 40) as u8, 150 + (y % 60) as u8, 60])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 85,
        ))
        .unwrap();
    out
}

async fn set_language(b: &Browser, app: &TestApp, lang: &str) {
    b.goto(&app.url("/")).await;
    b.js(&format!(
        "localStorage.setItem('fieldcast.lang', '{lang}'); return true;"
    ))
    .await;
}

/// Opens `path`, waits for `ready` (a JS condition), and takes the picture.
async fn page(b: &Browser, app: &TestApp, path: &str, ready: &str, name: &str, phone: bool) {
    b.goto(&app.url(path)).await;
    b.wait(ready, SOON, name).await;
    if phone {
        let wide = b
            .js("return document.documentElement.scrollWidth > window.innerWidth")
            .await;
        assert_eq!(wide, json!(false), "{name} is wider than the phone");
    }
    shot(b, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_at_phone_and_desktop_width_in_both_languages() {
    let Some(tools) = tools("every_page_at_phone_and_desktop_width_in_both_languages") else {
        return;
    };
    let app = TestApp::spawn().await;
    let s = sale(&app, 20, 5).await;
    for path in [
        format!("/api/v1/shops/{}/photo", s.shop),
        format!("/api/v1/products/{}/photo", s.product),
    ] {
        let res = s
            .owner
            .put(app.url(&path))
            .header("content-type", "image/jpeg")
            .body(photo())
            .send()
            .await
            .unwrap();
        expect(res, StatusCode::CREATED).await;
    }
    let mut owner_ws = pin_offer(&app, &s.broadcast, &s.offer).await;
    send(
        &mut owner_ws,
        json!({"type": "chat", "text": "欢迎来地里看看，今年的小米特别黄", "nonce": "g1"}),
    )
    .await;
    let order = guest_order(&app, &s.offer, "太原小李", 2).await;
    let private = order["private_url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.url(""))
        .to_owned();

    let driver = Driver::start(tools).await;
    for (width, height, phone) in [(360, 740, true), (1280, 800, false)] {
        let visitor = driver.browser_sized(width, height, phone).await;
        let farmer = driver.browser_sized(width, height, phone).await;
        studio_sign_in(&farmer, &app, "13800138000").await;
        farmer.visible("#view-home", "the dashboard").await;
        for lang in ["zh", "en"] {
            let name = |page: &str| format!("gallery-{page}-{width}-{lang}");
            set_language(&visitor, &app, lang).await;
            set_language(&farmer, &app, lang).await;
            page(
                &visitor,
                &app,
                "/",
                "document.getElementById('live-list').getAttribute('aria-busy') === null",
                &name("home"),
                phone,
            )
            .await;
            page(
                &visitor,
                &app,
                &format!("/live/{}", s.broadcast),
                "document.querySelector('#offer-slot .offer img') !== null",
                &name("viewer"),
                phone,
            )
            .await;
            page(
                &visitor,
                &app,
                &private,
                "!document.getElementById('order-body').hidden",
                &name("order"),
                phone,
            )
            .await;
            page(
                &visitor,
                &app,
                "/no/such/page",
                "document.querySelector('.message-page') !== null",
                &name("not-found"),
                phone,
            )
            .await;
            page(
                &visitor,
                &app,
                "/studio",
                "!document.getElementById('view-auth').hidden",
                &name("studio-sign-in"),
                phone,
            )
            .await;
            page(&farmer, &app, "/studio", "document.getElementById('product-rows').children.length > 0 && !document.getElementById('orders-slot').hidden", &name("studio-dashboard"), phone).await;
            page(
                &farmer,
                &app,
                &format!("/studio/products/{}", s.product),
                "document.querySelector('#form-product .photo-preview img') !== null",
                &name("studio-product"),
                phone,
            )
            .await;
            page(
                &farmer,
                &app,
                "/studio/shop",
                "document.querySelector('#form-shop .photo-preview img') !== null",
                &name("studio-shop"),
                phone,
            )
            .await;
            page(
                &farmer,
                &app,
                &format!("/studio/broadcasts/{}", s.broadcast),
                "document.querySelectorAll('#studio-chat-slot .msg').length > 0",
                &name("studio-cockpit"),
                phone,
            )
            .await;
            farmer.click("#tab-sell").await;
            farmer
                .wait(
                    "document.querySelectorAll('#studio-offers-slot .desk-offer').length > 0",
                    SOON,
                    "the desk",
                )
                .await;
            shot(&farmer, &name("studio-cockpit-sell")).await;
            farmer.click("#tab-orders").await;
            farmer
                .wait(
                    "document.querySelectorAll('#studio-orders-slot .order-card').length > 0",
                    SOON,
                    "the orders tab",
                )
                .await;
            shot(&farmer, &name("studio-cockpit-orders")).await;
            page(
                &farmer,
                &app,
                "/studio/orders",
                "document.querySelectorAll('#order-list .order-card').length > 0",
                &name("studio-orders"),
                phone,
            )
            .await;
            page(
                &farmer,
                &app,
                "/studio/moderators",
                "!document.getElementById('view-moderators').hidden",
                &name("studio-moderators"),
                phone,
            )
            .await;
        }
        visitor.assert_no_script_errors("the visitor").await;
        farmer.assert_no_script_errors("the farmer").await;
        visitor.close().await;
        farmer.close().await;
    }
    drop(driver);
    app.shutdown().await;
}
