//! One error type for every HTTP route, rendered as RFC 9457 problem details
//! (`application/problem+json`) with a stable `code` clients can switch on.
//! Internal details are logged, never sent.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{FieldCode, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

domain::wire_codes! {
    /// Every `code` a problem document can carry: the one list. The OpenAPI
    /// document's `Problem.code` enum is this, and the pages have words for
    /// each as `e.<code>` in both languages (`tests/it/i18n.rs`). A code never
    /// changes meaning once sent.
    #[derive(ToSchema)]
    pub enum ProblemCode {
        // --- requests the server could not read ---
        /// One or more fields are invalid; `errors` names each with its own code.
        ValidationFailed = "validation_failed",
        /// The JSON body has the wrong shape (a missing or mistyped field).
        InvalidBody = "invalid_body",
        /// The body is not JSON at all.
        MalformedJson = "malformed_json",
        /// A path segment does not parse (e.g. a malformed id).
        InvalidPath = "invalid_path",
        /// The query string does not parse.
        InvalidQuery = "invalid_query",
        /// A chat page's `after` cursor is not one the server handed out.
        BadCursor = "bad_cursor",
        /// The body is over the route's size limit.
        PayloadTooLarge = "payload_too_large",
        /// The body is not of the content type the route takes.
        UnsupportedMediaType = "unsupported_media_type",
        /// A plain HTTP request reached the live channel's websocket route.
        WebsocketRequired = "websocket_required",
        // --- who is asking ---
        /// Sign in first (or send the stream key, for WHIP).
        Unauthenticated = "unauthenticated",
        /// A guest nickname is enough for this (chatting, buying); no account needed.
        NicknameRequired = "nickname_required",
        /// The caller may not do this (not the owner, not a moderator…).
        Forbidden = "forbidden",
        /// A request with the session cookie carried neither `Origin` nor `Referer`.
        OriginRequired = "origin_required",
        /// A request with the session cookie came from another site.
        CrossSiteRequest = "cross_site_request",
        /// Sign-in with a wrong mobile number or password (the same for both).
        WrongCredentials = "wrong_credentials",
        /// WHIP with a stream key that is not (or no longer) the broadcast's.
        WrongStreamKey = "wrong_stream_key",
        /// A nickname asked for by someone signed in with an account.
        AlreadySignedIn = "already_signed_in",
        // --- what the request names ---
        /// Nothing by this id (that the caller may see).
        NotFound = "not_found",
        /// Something with this unique name or number exists already.
        AlreadyExists = "already_exists",
        /// Sign-up with a mobile number that has an account.
        MobileTaken = "mobile_taken",
        /// The person is already a moderator of this shop.
        AlreadyModerator = "already_moderator",
        /// The broadcast has ended: it cannot be published, watched or sold in again.
        BroadcastEnded = "broadcast_ended",
        // --- photos ---
        /// A photo over the size limit.
        PhotoTooLarge = "photo_too_large",
        /// A photo that is not JPEG, PNG or WebP.
        UnsupportedPhotoType = "unsupported_photo_type",
        /// A photo with more pixels than a phone camera takes.
        PhotoTooManyPixels = "photo_too_many_pixels",
        /// A photo that cannot be decoded (damaged, or not a picture).
        PhotoUnreadable = "photo_unreadable",
        // --- buying and orders (the order service's codes) ---
        /// Every unit is taken; held units come back if buyers do not confirm.
        SoldOut = "sold_out",
        /// Fewer units left than asked for: `params.available`.
        InsufficientStock = "insufficient_stock",
        /// Over the per-buyer limit: `params.limit`, `params.already`.
        LimitReached = "limit_reached",
        /// The offer is for buyers signed in with a mobile account.
        AccountRequired = "account_required",
        /// The shop banned this buyer from its broadcasts, and so from buying there.
        Banned = "banned",
        /// The offer is not on sale yet: `params.starts_at`.
        NotStarted = "not_started",
        /// The offer has ended.
        OfferEnded = "offer_ended",
        /// An `Idempotency-Key` used before for a different request.
        IdempotencyKeyReused = "idempotency_key_reused",
        /// The reservation expired before it became an order.
        ReservationExpired = "reservation_expired",
        /// The reservation was cancelled.
        ReservationCancelled = "reservation_cancelled",
        /// The reservation is already an order.
        ReservationConfirmed = "reservation_confirmed",
        /// The order cannot move to that state from where it is (e.g. ship a cancelled order).
        InvalidOrderTransition = "invalid_order_transition",
        // --- media (WHIP/WHEP, docs/media.md) ---
        /// The SDP offer is malformed, too large or has nothing usable.
        BadSdp = "bad_sdp",
        /// The SDP offer is over a limit no real client reaches.
        SdpTooComplex = "sdp_too_complex",
        /// No codec in common between the player and the broadcast.
        UnsupportedCodecs = "unsupported_codecs",
        /// Every viewer slot of the broadcast is taken (`Retry-After`).
        RoomFull = "room_full",
        /// This address has too many sessions still connecting (`Retry-After`).
        TooManyPending = "too_many_pending",
        /// Too many viewers of the broadcast are still connecting (`Retry-After`).
        RoomBusy = "room_busy",
        /// Nobody is live in this broadcast yet; players retry.
        NoPublisher = "no_publisher",
        /// PATCH or DELETE on a media session that has ended.
        UnknownSession = "unknown_session",
        /// The server has as many media sessions as it takes (`Retry-After`).
        TooManySessions = "too_many_sessions",
        /// The PATCH body is not a trickle fragment the server can apply.
        BadTrickle = "bad_trickle",
        /// PATCH with an `If-Match` that is not the session's `ETag`.
        EtagMismatch = "etag_mismatch",
        /// PATCH asking for an ICE restart; POST a new offer instead.
        IceRestartUnsupported = "ice_restart_unsupported",
        /// The server is shutting down (`Retry-After`).
        ShuttingDown = "shutting_down",
        // --- load ---
        /// This client is over a rate limit (`Retry-After`).
        RateLimited = "rate_limited",
        /// The server is busy (e.g. checking other passwords) (`Retry-After`).
        Busy = "busy",
        /// A service is busy or restarting, or at a hard limit; try again (`Retry-After` when it passes).
        Unavailable = "unavailable",
        /// Something failed on the server; the details are in its log.
        Internal = "internal",
    }
}

impl From<&orders::OrdersError> for ProblemCode {
    /// The order service's own code, as a problem code (the same string:
    /// the test below holds them together).
    fn from(e: &orders::OrdersError) -> Self {
        use orders::{OrdersError as E, StateConflict as S};
        match e {
            E::SoldOut { available: 0 } => ProblemCode::SoldOut,
            E::SoldOut { .. } => ProblemCode::InsufficientStock,
            E::OverLimit { .. } => ProblemCode::LimitReached,
            E::AccountRequired => ProblemCode::AccountRequired,
            E::Banned => ProblemCode::Banned,
            E::NotStarted { .. } => ProblemCode::NotStarted,
            E::Ended => ProblemCode::OfferEnded,
            E::IdempotencyMismatch => ProblemCode::IdempotencyKeyReused,
            E::NotFound => ProblemCode::NotFound,
            E::Forbidden => ProblemCode::Forbidden,
            E::InvalidState(S::ReservationExpired) => ProblemCode::ReservationExpired,
            E::InvalidState(S::ReservationCancelled) => ProblemCode::ReservationCancelled,
            E::InvalidState(S::ReservationConfirmed) => ProblemCode::ReservationConfirmed,
            E::InvalidState(S::BroadcastEnded) => ProblemCode::BroadcastEnded,
            E::InvalidState(S::Order(_)) => ProblemCode::InvalidOrderTransition,
            E::Validation(_) => ProblemCode::ValidationFailed,
            E::Unavailable => ProblemCode::Unavailable,
            E::Store(_) => ProblemCode::Internal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more request fields are invalid; each is named.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: ProblemCode, detail: String },
    #[error("sign in first")]
    Unauthenticated,
    /// A guest nickname is enough for this (chatting, buying); no account
    /// needed.
    #[error("pick a nickname (no account needed) or sign in first")]
    NicknameRequired,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: ProblemCode, detail: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    /// This client is over a limit of its own, with a specific code: 429 with
    /// `Retry-After`.
    #[error("{detail}")]
    Throttled {
        code: ProblemCode,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(&'static str),
    /// At capacity for now: 503 with `Retry-After`.
    #[error("{detail}")]
    Busy {
        code: ProblemCode,
        detail: String,
        retry_after_secs: u64,
    },
    /// A refusal with the numbers a page needs to explain it (`params`),
    /// such as how many are left.
    #[error("{detail}")]
    Refused {
        status: StatusCode,
        code: ProblemCode,
        detail: String,
        params: Params,
    },
    /// Anything else a subsystem reports with its own status and code.
    #[error("{detail}")]
    Other {
        status: StatusCode,
        code: ProblemCode,
        detail: String,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Named numbers and values a problem's words take, e.g. `available`.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:fieldcast:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    // Stable machine-readable reason, e.g. `validation_failed`, `sold_out`:
    // one of [`ProblemCode`], inlined so `Problem.code` itself is the enum
    // (a doc comment here would wrap it in `oneOf`).
    #[schema(inline)]
    pub code: ProblemCode,
    /// What the code's words need, e.g. `available` for
    /// `insufficient_stock`, `limit` and `already` for `limit_reached`.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: Params,
    /// Present for `validation_failed`: one entry per invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ProblemField>)]
    pub errors: Vec<FieldError>,
}

/// Documentation twin of [`domain::FieldError`].
#[derive(Serialize, ToSchema)]
pub struct ProblemField {
    pub field: String,
    #[schema(inline, value_type = FieldCodeSchema)]
    pub code: FieldCode,
    /// For developers and logs; pages show their own words for `code`.
    pub message: String,
    /// The numbers the code's words take, e.g. `max` for `too_long`.
    #[schema(value_type = Object)]
    pub params: domain::FieldParams,
}

/// [`domain::FieldCode`] as an OpenAPI enum, made from its list (domain
/// knows nothing of utoipa).
struct FieldCodeSchema;

impl utoipa::PartialSchema for FieldCodeSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(FieldCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(
                "Why the field was refused: one of `domain::FieldCode`, the one list of field codes.",
            ))
            .into()
    }
}

impl ToSchema for FieldCodeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "FieldCode".into()
    }
}

impl ApiError {
    pub fn bad_request(code: ProblemCode, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: ProblemCode, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn field(field: &str, code: FieldCode, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::NicknameRequired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } | ApiError::Throttled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Other { status, .. } | ApiError::Refused { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ProblemCode {
        match self {
            ApiError::Validation(_) => ProblemCode::ValidationFailed,
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Other { code, .. }
            | ApiError::Refused { code, .. }
            | ApiError::Busy { code, .. }
            | ApiError::Throttled { code, .. } => *code,
            ApiError::Unauthenticated => ProblemCode::Unauthenticated,
            ApiError::NicknameRequired => ProblemCode::NicknameRequired,
            ApiError::Forbidden(_) => ProblemCode::Forbidden,
            ApiError::NotFound(_) => ProblemCode::NotFound,
            ApiError::PayloadTooLarge => ProblemCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ProblemCode::UnsupportedMediaType,
            ApiError::TooManyRequests { .. } => ProblemCode::RateLimited,
            ApiError::Unavailable(_) => ProblemCode::Unavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let detail = match &self {
            ApiError::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                many => format!("{} fields are invalid", many.len()),
            },
            ApiError::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                "something went wrong on our side; please try again".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            }
            | ApiError::Busy {
                retry_after_secs, ..
            }
            | ApiError::Throttled {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let (errors, params) = match self {
            ApiError::Validation(errors) => (errors, Params::new()),
            ApiError::Refused { params, .. } => (Vec::new(), params),
            _ => (Vec::new(), Params::new()),
        };
        let problem = Problem {
            kind: format!("urn:fieldcast:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
            params,
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            // Cookie sessions for pages; bearer stream keys for WHIP apps.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fieldcast\""),
            );
        }
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::NotFound => ApiError::NotFound("resource"),
            store::StoreError::Conflict(what) => {
                ApiError::conflict(ProblemCode::AlreadyExists, format!("{what} already exists"))
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::PayloadTooLarge
            }
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field ("missing field `mobile`",
                // "invalid type … at line 1 column 12"): it is the most
                // useful thing we can say.
                ApiError::bad_request(ProblemCode::InvalidBody, e.body_text())
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request(ProblemCode::MalformedJson, e.body_text())
            }
            other => ApiError::bad_request(ProblemCode::InvalidBody, other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request(ProblemCode::InvalidBody, rejection.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(ProblemCode::InvalidPath, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(ProblemCode::InvalidQuery, rejection.body_text())
    }
}

/// Shorthand for "this id in the path names nothing (that you may see)".
pub fn not_found(what: &'static str) -> impl FnOnce(store::StoreError) -> ApiError {
    move |e| match e {
        store::StoreError::NotFound => ApiError::NotFound(what),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orders::{OrdersError, StateConflict};
    use std::sync::Arc;

    #[test]
    fn problem_codes_are_sent_as_their_snake_case_names() {
        let mut seen = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }

    #[test]
    fn order_service_codes_keep_their_wire_names() {
        // The arms that pick among several codes; the rest are one to one
        // (and the HTTP tests read every code off the wire).
        let conflicts = [
            StateConflict::ReservationExpired,
            StateConflict::ReservationCancelled,
            StateConflict::ReservationConfirmed,
            StateConflict::BroadcastEnded,
            StateConflict::Order(domain::OrderTransitionError {
                from: domain::OrderState::Cancelled,
                action: domain::OrderAction::Ship,
            }),
        ];
        let picked = [0, 3].map(|available| OrdersError::SoldOut { available });
        for e in picked
            .into_iter()
            .chain(conflicts.map(OrdersError::InvalidState))
            .chain([OrdersError::Store(Arc::new(store::StoreError::Corrupt(
                "x".into(),
            )))])
        {
            assert_eq!(ProblemCode::from(&e).as_str(), e.code(), "{e:?}");
        }
    }

    #[tokio::test]
    async fn a_problem_document_carries_the_code_as_sent_before() {
        let response = ApiError::conflict(ProblemCode::MobileTaken, "taken").into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "mobile_taken");
        assert_eq!(json["type"], "urn:fieldcast:problem:mobile_taken");
        let field = ApiError::field("mobile", FieldCode::TooLong, "x").into_response();
        let body = axum::body::to_bytes(field.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["errors"][0]["code"], "too_long");
    }
}
