//! Photos of shops and products over HTTP: the owner uploads the picture
//! as the body, buyers get a resized JPEG cached for a year, and what is
//! not a photo (or too big, or someone else's shop) gets a clear problem.
//! (Orientation and EXIF removal are unit-tested in `api::routes::photos`.)

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::ImageBuffer::from_fn(w, h, |x, y| {
        image::Rgb([(x % 250) as u8, (y % 250) as u8, 60])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 90,
        ))
        .unwrap();
    out
}

async fn put(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client
        .put(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_owner_uploads_photos_and_everyone_sees_them_cached() {
    uploads_and_serves(TestApp::spawn().await).await;
}

#[tokio::test]
async fn photos_are_kept_on_postgres_too() {
    if let Some(app) = TestApp::spawn_postgres().await {
        uploads_and_serves(app).await;
    }
}

async fn uploads_and_serves(app: TestApp) {
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let product = expect(
        app.post(
            &owner,
            &format!("/api/v1/shops/{shop}/products"),
            json!({"title": "羊粪小米", "unit": "袋", "price_fen": 16800, "stock": 10}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let product = product["id"].as_str().unwrap().to_owned();
    let public = app.client();
    let listed = expect(
        app.get(&public, &format!("/api/v1/shops/{shop}/products"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(listed[0].get("photo").is_none(), "no photo yet: {listed}");

    // A 3000 x 2000 phone photo becomes 1280 x 853 (and a small one).
    let photo = expect(
        put(
            &app,
            &owner,
            &format!("/api/v1/products/{product}/photo"),
            "image/jpeg",
            jpeg(3000, 2000),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (photo["width"].as_u64(), photo["height"].as_u64()),
        (Some(1280), Some(853))
    );
    let url = photo["url"].as_str().unwrap().to_owned();
    let res = app.get(&public, &url).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let large = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((large.width(), large.height()), (1280, 853));
    let small = app
        .get(&public, photo["small_url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap();
    let small = image::load_from_memory(&small).unwrap();
    assert_eq!((small.width(), small.height()), (400, 267));

    // Product JSON (list and one) and, for the shop, the link preview.
    let listed = expect(
        app.get(&public, &format!("/api/v1/shops/{shop}/products"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["photo"], url.as_str());
    let one = expect(
        app.get(&public, &format!("/api/v1/products/{product}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["photo"], url.as_str());
    let shop_photo = expect(
        put(
            &app,
            &owner,
            &format!("/api/v1/shops/{shop}/photo"),
            "image/png",
            {
                let mut png = Vec::new();
                image::DynamicImage::ImageRgb8(image::ImageBuffer::from_pixel(
                    800,
                    600,
                    image::Rgb([200u8, 150, 60]),
                ))
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
                png
            },
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let shop_view: Value = expect(
        app.get(&public, &format!("/api/v1/shops/{shop}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shop_view["photo"], shop_photo["url"]);
    let broadcast = app.broadcast(&owner, &shop, "秋收").await;
    let html = app
        .get(&public, &format!("/live/{broadcast}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            r#"<meta property="og:image" content="{}">"#,
            app.url(shop_photo["url"].as_str().unwrap())
        )),
        "the link preview shows the shop's photo"
    );

    // A new photo replaces the old one, whose files go.
    let newer = expect(
        put(
            &app,
            &owner,
            &format!("/api/v1/products/{product}/photo"),
            "image/jpeg",
            jpeg(800, 800),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(newer["url"], url.as_str());
    assert_eq!(app.get(&public, &url).await.status(), StatusCode::NOT_FOUND);
    expect(
        app.delete(&owner, &format!("/api/v1/products/{product}/photo"))
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    let one = expect(
        app.get(&public, &format!("/api/v1/products/{product}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(one.get("photo").is_none(), "{one}");
    app.shutdown().await;
}

#[tokio::test]
async fn what_is_not_a_photo_or_not_yours_is_refused_clearly() {
    let app = TestApp::spawn().await;
    let (owner, shop) = app.farmer_with_shop("13800138000").await;
    let path = format!("/api/v1/shops/{shop}/photo");
    expect_problem(
        put(&app, &owner, &path, "image/gif", b"GIF89a".to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_photo_type",
    )
    .await;
    // Declared as a JPEG, but a PDF inside.
    expect_problem(
        put(
            &app,
            &owner,
            &path,
            "image/jpeg",
            b"%PDF-1.7 not a photo".to_vec(),
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_photo_type",
    )
    .await;
    // A JPEG's first bytes, then nothing a decoder can read.
    let mut broken = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x04];
    broken.extend(b"not a picture at all ".repeat(20));
    expect_problem(
        put(&app, &owner, &path, "image/jpeg", broken).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "photo_unreadable",
    )
    .await;
    let res = put(
        &app,
        &owner,
        &path,
        "image/jpeg",
        vec![0xFF; 16 * 1024 * 1024],
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Someone else's shop, and nobody at all.
    let other = app.client();
    app.sign_up(&other, "13900139000", "李四").await;
    expect_problem(
        put(&app, &other, &path, "image/jpeg", jpeg(100, 100)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        put(&app, &app.client(), &path, "image/jpeg", jpeg(100, 100)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // Photo URLs name exactly one file, or nothing.
    let public = app.client();
    for bad in [
        "/photos/pho_aaaaaaaaaaaaaaaa/large.jpg",
        "/photos/pho_aaaaaaaaaaaaaaaa/original.jpg",
        "/photos/..%2F..%2Fetc/large.jpg",
        "/photos/pho_aaaaaaaaaaaaaaaa/..%2F..%2Ffieldcast.db",
    ] {
        assert_eq!(
            app.get(&public, bad).await.status(),
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    app.shutdown().await;
}
