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

/// A request whose wire shape `Raw` (what serde reads) converts into an
/// already-valid value with `TryFrom`, reporting every refused field at once.
pub trait FromRaw: TryFrom<Self::Raw, Error = Vec<domain::FieldError>> {
    type Raw: serde::de::DeserializeOwned;
}

/// A JSON body handed to the handler already valid: malformed JSON is the
/// usual problem document, refused fields are 422 `validation_failed` with
/// one entry per field in `errors`.
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T: FromRaw> FromRequest<S> for Valid<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(raw) = Json::<T::Raw>::from_request(req, state).await?;
        T::try_from(raw).map(Valid).map_err(ApiError::Validation)
    }
}

/// [`Valid`] for a query string.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: FromRaw> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let Query(raw) = Query::<T::Raw>::from_request_parts(parts, state).await?;
        T::try_from(raw)
            .map(ValidQuery)
            .map_err(ApiError::Validation)
    }
}
