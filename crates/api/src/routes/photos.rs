//! Photos of shops and products, uploaded from the farmer's phone.
//!
//! An upload is the picture itself as the request body (`image/jpeg`,
//! `image/png` or `image/webp`). It is decoded with the `image` crate under
//! size and memory limits, turned upright by its EXIF orientation, resized
//! to two sizes and written as fresh JPEGs: re-encoding keeps no EXIF, so
//! the phone's GPS position and camera details never reach buyers. Files
//! live under the data directory (`photos/<id>/<size>.jpg`) and are served
//! from `/photos/<id>/<size>.jpg` with a year of caching: a new photo gets a
//! new id, so a URL's content never changes.
//!
//! The same path serves every photo the server keeps (a shop, a product,
//! later a farm-journal entry on the trace page).

use super::products::owned_product;
use super::shops::owned_shop;
use crate::auth::SignedIn;
use crate::error::{ApiError, ApiResult, ProblemCode};
use crate::extract::{Json, Path, RawBody};
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::{ProductId, ShopId};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::Serialize;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::LazyLock;
use store::{NewPhoto, PhotoRecord, PhotoSubject};
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Largest upload accepted. Phones' photos are 2–8 MB; the pages shrink
/// them before sending, so this only bounds what other clients send.
pub const MAX_PHOTO_BYTES: usize = 15 * 1024 * 1024;
/// Most pixels decoded (a 48 MP phone camera; beyond is not a photo of a field).
const MAX_PIXELS: u64 = 50_000_000;
/// Longest side of each stored size.
const LARGE: u32 = 1280;
const SMALL: u32 = 400;
const JPEG_QUALITY: u8 = 82;

/// Decoding a big photo takes ~200 MB and a core for a second: two at a
/// time, the rest wait (the request simply takes longer).
static DECODERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// The `/api/v1` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_shop_photo, delete_shop_photo))
        .routes(routes!(put_product_photo, delete_product_photo))
        .layer(DefaultBodyLimit::max(MAX_PHOTO_BYTES))
}

/// The files, outside `/api/v1` (pages and link previews load them).
pub fn files() -> Router<AppState> {
    Router::new().route("/photos/{photo_id}/{file}", get(photo_file))
}

/// A photo as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct PhotoView {
    pub id: String,
    /// Up to 1280 px on its longest side.
    pub url: String,
    /// Up to 400 px, for lists and cards.
    pub small_url: String,
    pub width: u32,
    pub height: u32,
}

/// The large picture's URL for a record (what product and shop JSON carry).
pub fn photo_url(photo: &PhotoRecord) -> String {
    format!("/photos/{}/large.jpg", photo.id)
}

fn view(photo: &PhotoRecord) -> PhotoView {
    PhotoView {
        id: photo.id.clone(),
        url: photo_url(photo),
        small_url: format!("/photos/{}/small.jpg", photo.id),
        width: photo.width,
        height: photo.height,
    }
}

/// What an upload became: two JPEGs and the large one's size.
#[derive(Debug)]
pub struct Prepared {
    pub large: Vec<u8>,
    pub small: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Why an upload is not a photo we keep.
#[derive(Debug, PartialEq, Eq)]
pub enum PhotoProblem {
    TooLarge,
    UnsupportedType,
    TooManyPixels,
    Unreadable,
}

impl From<PhotoProblem> for ApiError {
    fn from(p: PhotoProblem) -> Self {
        let (status, code, detail) = match p {
            PhotoProblem::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::PhotoTooLarge,
                format!(
                    "a photo may be at most {} MB",
                    MAX_PHOTO_BYTES / 1024 / 1024
                ),
            ),
            PhotoProblem::UnsupportedType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ProblemCode::UnsupportedPhotoType,
                "send a JPEG, PNG or WebP picture".to_owned(),
            ),
            PhotoProblem::TooManyPixels => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::PhotoTooManyPixels,
                format!("a photo may have at most {MAX_PIXELS} pixels"),
            ),
            PhotoProblem::Unreadable => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::PhotoUnreadable,
                "the picture could not be read; it may be damaged".to_owned(),
            ),
        };
        ApiError::Other {
            status,
            code,
            detail,
        }
    }
}

/// Decodes, turns upright, resizes and re-encodes an uploaded picture.
/// CPU-heavy: call it off the async threads.
pub fn prepare(bytes: &[u8]) -> Result<Prepared, PhotoProblem> {
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(PhotoProblem::TooLarge);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| PhotoProblem::Unreadable)?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {}
        _ => return Err(PhotoProblem::UnsupportedType),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(MAX_PIXELS * 4 + 16 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => PhotoProblem::TooManyPixels,
        _ => PhotoProblem::Unreadable,
    })?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PhotoProblem::TooManyPixels);
    }
    // The camera's "which way is up", read before the pixels (re-encoding
    // drops EXIF, orientation with the rest).
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => PhotoProblem::TooManyPixels,
        _ => PhotoProblem::Unreadable,
    })?;
    picture.apply_orientation(orientation);
    let large = fit(&picture, LARGE);
    let small = fit(&large, SMALL);
    Ok(Prepared {
        width: large.width(),
        height: large.height(),
        large: jpeg(&large)?,
        small: jpeg(&small)?,
    })
}

/// At most `side` px on the longest side, never enlarged.
fn fit(picture: &DynamicImage, side: u32) -> DynamicImage {
    if picture.width() <= side && picture.height() <= side {
        picture.clone()
    } else {
        picture.resize(side, side, image::imageops::FilterType::Lanczos3)
    }
}

fn jpeg(picture: &DynamicImage) -> Result<Vec<u8>, PhotoProblem> {
    let mut out = Vec::new();
    let rgb = DynamicImage::ImageRgb8(picture.to_rgb8());
    rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out,
        JPEG_QUALITY,
    ))
    .map_err(|_| PhotoProblem::Unreadable)?;
    Ok(out)
}

fn photo_dir(state: &AppState) -> ApiResult<PathBuf> {
    state
        .settings
        .photo_dir
        .clone()
        .ok_or(ApiError::Unavailable(
            "photos are not stored on this server",
        ))
}

/// Checks the upload's declared type before reading it any further.
fn require_image(headers: &HeaderMap) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = declared.split(';').next().unwrap_or("").trim();
    if ["image/jpeg", "image/png", "image/webp"].contains(&kind) {
        Ok(())
    } else {
        Err(PhotoProblem::UnsupportedType.into())
    }
}

/// Prepares and stores a subject's new photo; retires its old files.
async fn save(
    state: &AppState,
    shop: ShopId,
    subject: PhotoSubject,
    body: bytes::Bytes,
) -> ApiResult<PhotoView> {
    let dir = photo_dir(state)?;
    let prepared = {
        let _turn = DECODERS
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("shutting down"))?;
        tokio::task::spawn_blocking(move || prepare(&body))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??
    };
    let id = store::new_photo_id();
    let folder = dir.join(&id);
    tokio::fs::create_dir_all(&folder)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    for (name, data) in [
        ("large.jpg", &prepared.large),
        ("small.jpg", &prepared.small),
    ] {
        tokio::fs::write(folder.join(name), data)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let record = PhotoRecord {
        id: id.clone(),
        shop_id: shop.clone(),
        subject: subject.key(),
        width: prepared.width,
        height: prepared.height,
        bytes: prepared.large.len() as u64,
        created_at: domain::UnixMillis::wall_now(),
    };
    let retired = state
        .store
        .add_photo(
            NewPhoto {
                id,
                shop_id: shop,
                subject,
                width: prepared.width,
                height: prepared.height,
                bytes: prepared.large.len() as u64,
            },
            record.created_at,
        )
        .await?;
    forget_files(&dir, &retired).await;
    Ok(view(&record))
}

/// Deletes retired photos' files (their URLs then answer 404).
async fn forget_files(dir: &std::path::Path, ids: &[String]) {
    for id in ids.iter().filter(|id| store::is_photo_id(id)) {
        if let Err(e) = tokio::fs::remove_dir_all(dir.join(id)).await {
            tracing::warn!(photo = %id, error = %e, "could not remove a retired photo");
        }
    }
}

async fn product_shop(
    state: &AppState,
    raw_id: &str,
    me: &SignedIn,
) -> ApiResult<(ProductId, ShopId)> {
    let owned = owned_product(state, raw_id, &me.user).await?;
    Ok((owned.product.id.clone(), owned.shop.id.clone()))
}

/// Set the shop's photo (owner only): the picture is the body.
#[utoipa::path(put, path = "/shops/{shop_id}/photo", tag = "shops", params(("shop_id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "a JPEG, PNG or WebP picture, at most 15 MB"),
    responses((status = 201, body = PhotoView), (status = 403, body = crate::error::Problem),
              (status = 413, body = crate::error::Problem, description = "`photo_too_large`"),
              (status = 415, body = crate::error::Problem, description = "`unsupported_photo_type`"),
              (status = 422, body = crate::error::Problem, description = "`photo_unreadable`, `photo_too_many_pixels`")))]
async fn put_shop_photo(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<PhotoView>)> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    require_image(&headers)?;
    let subject = PhotoSubject::Shop(shop.id.clone());
    Ok((
        StatusCode::CREATED,
        Json(save(&state, shop.id.clone(), subject, body).await?),
    ))
}

/// Remove the shop's photo (owner only).
#[utoipa::path(delete, path = "/shops/{shop_id}/photo", tag = "shops", params(("shop_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem)))]
async fn delete_shop_photo(
    State(state): State<AppState>,
    me: SignedIn,
    Path(shop_id): Path<String>,
) -> ApiResult<StatusCode> {
    let shop = owned_shop(&state, &shop_id, &me.user).await?;
    let retired = state
        .store
        .remove_photo(
            &PhotoSubject::Shop(shop.id.clone()),
            domain::UnixMillis::wall_now(),
        )
        .await?;
    forget_files(&photo_dir(&state)?, &retired).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a product's photo (owner only): the picture is the body.
#[utoipa::path(put, path = "/products/{product_id}/photo", tag = "products", params(("product_id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "a JPEG, PNG or WebP picture, at most 15 MB"),
    responses((status = 201, body = PhotoView), (status = 403, body = crate::error::Problem),
              (status = 413, body = crate::error::Problem, description = "`photo_too_large`"),
              (status = 415, body = crate::error::Problem, description = "`unsupported_photo_type`"),
              (status = 422, body = crate::error::Problem, description = "`photo_unreadable`, `photo_too_many_pixels`")))]
async fn put_product_photo(
    State(state): State<AppState>,
    me: SignedIn,
    Path(product_id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<PhotoView>)> {
    let (product, shop) = product_shop(&state, &product_id, &me).await?;
    require_image(&headers)?;
    let photo = save(&state, shop, PhotoSubject::Product(product), body).await?;
    Ok((StatusCode::CREATED, Json(photo)))
}

/// Remove a product's photo (owner only).
#[utoipa::path(delete, path = "/products/{product_id}/photo", tag = "products", params(("product_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem)))]
async fn delete_product_photo(
    State(state): State<AppState>,
    me: SignedIn,
    Path(product_id): Path<String>,
) -> ApiResult<StatusCode> {
    let (product, _) = product_shop(&state, &product_id, &me).await?;
    let retired = state
        .store
        .remove_photo(
            &PhotoSubject::Product(product),
            domain::UnixMillis::wall_now(),
        )
        .await?;
    forget_files(&photo_dir(&state)?, &retired).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `/photos/{id}/{large|small}.jpg`: cached for a year (an id's picture
/// never changes). Anything else is a plain 404.
async fn photo_file(
    State(state): State<AppState>,
    axum::extract::Path((photo_id, file)): axum::extract::Path<(String, String)>,
) -> Response {
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-cache")],
            "not found",
        )
            .into_response()
    };
    // Both parts are checked before they come near the file system.
    if !store::is_photo_id(&photo_id) || !matches!(file.as_str(), "large.jpg" | "small.jpg") {
        return missing();
    }
    let Some(dir) = state.settings.photo_dir.clone() else {
        return missing();
    };
    match tokio::fs::read(dir.join(&photo_id).join(&file)).await {
        Ok(data) => {
            let mut response = data.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            response
        }
        Err(_) => missing(),
    }
}

/// The subject's current photo URL, if it has a photo.
pub async fn current_photo_url(
    state: &AppState,
    subject: &PhotoSubject,
) -> ApiResult<Option<String>> {
    Ok(state
        .store
        .current_photo(subject)
        .await?
        .map(|p| photo_url(&p)))
}

/// The large photo URL of each subject that has one, for views of a shop's
/// products (one query for the whole list).
pub async fn product_photos(
    state: &AppState,
    shop: &ShopId,
) -> ApiResult<std::collections::HashMap<String, String>> {
    Ok(state
        .store
        .current_photos_of_shop(shop)
        .await?
        .into_iter()
        .map(|(subject, photo)| (subject, photo_url(&photo)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn sample_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_fn(w, h, |x, _| Rgb([(x % 256) as u8, 120, 40]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut out, 90,
            ))
            .unwrap();
        out
    }

    /// Inserts an APP1 EXIF segment (orientation and a GPS IFD pointer)
    /// right after the JPEG's start marker, as phone cameras write it.
    fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        // TIFF header (little endian), IFD0 with two entries: Orientation
        // (0x0112) and GPSInfo (0x8825) pointing at a GPS IFD holding a
        // latitude reference "N".
        let mut tiff = vec![b'I', b'I', 42, 0, 8, 0, 0, 0];
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0x8825u16.to_le_bytes());
        tiff.extend_from_slice(&4u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&38u32.to_le_bytes()); // GPS IFD offset
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        // GPS IFD at 38: one entry, GPSLatitudeRef = "N".
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0001u16.to_le_bytes());
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&2u32.to_le_bytes());
        tiff.extend_from_slice(b"N\0\0\0");
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn photos_are_turned_upright_resized_and_lose_their_exif() {
        let original = with_exif(&sample_jpeg(2000, 1000), 6);
        assert!(original.windows(4).any(|w| w == b"Exif"));
        let p = prepare(&original).unwrap();
        // Orientation 6 (rotate 90°): the wide picture stands upright.
        assert_eq!((p.width, p.height), (640, 1280));
        assert!(!p.large.windows(4).any(|w| w == b"Exif"), "no EXIF left");
        let small = image::load_from_memory(&p.small).unwrap();
        assert_eq!((small.width(), small.height()), (200, 400));
        // Small pictures are not enlarged.
        let tiny = prepare(&sample_jpeg(300, 200)).unwrap();
        assert_eq!((tiny.width, tiny.height), (300, 200));
    }

    #[test]
    fn what_is_not_a_photo_is_refused_with_a_reason() {
        assert_eq!(
            prepare(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap_err(),
            PhotoProblem::UnsupportedType
        );
        assert_eq!(
            prepare(b"hello, not a picture").unwrap_err(),
            PhotoProblem::UnsupportedType
        );
        // A JPEG's first bytes, then nothing a decoder can read.
        let mut broken = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x04];
        broken.extend(b"not a picture at all ".repeat(20));
        assert_eq!(prepare(&broken).unwrap_err(), PhotoProblem::Unreadable);
        assert_eq!(
            prepare(&vec![0u8; MAX_PHOTO_BYTES + 1]).unwrap_err(),
            PhotoProblem::TooLarge
        );
    }

    #[test]
    fn a_huge_picture_is_refused_before_its_pixels_are_decoded() {
        // A PNG header claiming 20000 x 20000 pixels, and nothing behind it.
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, Rgb([0u8, 0, 0])))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        // IHDR width/height sit at bytes 16..24; the CRC no longer matches,
        // which the decoder only checks when it reads the chunk fully.
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let problem = prepare(&png).unwrap_err();
        assert!(
            matches!(
                problem,
                PhotoProblem::TooManyPixels | PhotoProblem::Unreadable
            ),
            "{problem:?}"
        );
    }
}
