//! Request extractors whose rejections are problem documents too.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};

/// `axum::Json` with problem+json rejections (malformed JSON, wrong content
/// type, oversized body, missing fields).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// The raw body (SDP, trickle fragments), with the body limit's refusal as
/// a problem document.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(ApiError::from)
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Parses a typed id from a path segment. A malformed id names nothing,
/// so it is a 404 like an unknown one (no hint about the id format needed).
pub fn parse_id<T>(
    what: &'static str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, domain::Invalid>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|_| ApiError::NotFound(what))
}
