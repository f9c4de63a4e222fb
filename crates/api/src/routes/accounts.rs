//! Sign-up, sign-in, sign-out, guest nicknames and session management.

use crate::auth::{self, Caller, SignedIn, clear_session_cookie, device_cookie, start_session};
use crate::error::{ApiError, ApiResult, ProblemCode};
use crate::extract::{FromRaw, Json, Path, Valid, parse_id};
use crate::limits::{ClientAddr, too_many};
use crate::state::AppState;
use crate::views::{Timestamp, ts};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use domain::{DisplayName, FieldError, Fields, Identity, Mobile, Password, Role, SessionId, field};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_up))
        .routes(routes!(sign_in, sign_out, me))
        .routes(routes!(become_guest))
        .routes(routes!(my_sessions))
        .routes(routes!(revoke_session))
}

#[derive(Deserialize, ToSchema)]
pub struct SignUp {
    /// Mainland mobile (11 digits) or `+` country code and number.
    #[schema(example = "13800138000")]
    pub mobile: String,
    /// 8 to 128 characters.
    pub password: String,
    /// What buyers and chat see, 1–24 characters.
    #[schema(example = "王大姐")]
    pub display_name: String,
}

/// A sign-up, parsed.
pub struct NewAccount {
    mobile: Mobile,
    password: Password,
    name: DisplayName,
}

impl TryFrom<SignUp> for NewAccount {
    type Error = Vec<FieldError>;

    fn try_from(body: SignUp) -> Result<Self, Self::Error> {
        let (mobile, password, name) = (
            field("mobile", Mobile::parse(&body.mobile)),
            field("password", Password::parse(&body.password)),
            field("display_name", DisplayName::parse(&body.display_name)),
        )
            .all()?;
        Ok(NewAccount {
            mobile,
            password,
            name,
        })
    }
}

impl FromRaw for NewAccount {
    type Raw = SignUp;
}

#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    pub mobile: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct GuestRequest {
    /// The nickname to chat with, 1–24 characters.
    #[schema(example = "小米爱好者")]
    pub nickname: String,
}

/// A guest nickname, parsed.
pub struct Nickname(DisplayName);

impl TryFrom<GuestRequest> for Nickname {
    type Error = Vec<FieldError>;

    fn try_from(body: GuestRequest) -> Result<Self, Self::Error> {
        let (name,) = (field("nickname", DisplayName::parse(&body.nickname)),).all()?;
        Ok(Nickname(name))
    }
}

impl FromRaw for Nickname {
    type Raw = GuestRequest;
}

/// The caller as they see themselves.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// `account` or `guest`.
    pub kind: &'static str,
    pub id: String,
    pub display_name: String,
    /// Only for accounts: their own mobile number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Shops this account owns or moderates.
    pub shops: Vec<MyShop>,
}

#[derive(Serialize, ToSchema)]
pub struct MyShop {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "owner")]
    /// `owner` or `moderator`.
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub user_agent: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// True for the session making this request.
    pub current: bool,
}

async fn me_view(state: &AppState, identity: &Identity) -> ApiResult<Me> {
    Ok(match identity {
        Identity::Account { user, name } => {
            let record = state.store.user(user).await?;
            let mut shops: Vec<MyShop> = state
                .store
                .shops_of_owner(user)
                .await?
                .into_iter()
                .map(|s| MyShop {
                    id: s.id.into_string(),
                    name: s.name.into_string(),
                    role: Role::Owner,
                })
                .collect();
            shops.extend(
                state
                    .store
                    .shops_moderated_by(user)
                    .await?
                    .into_iter()
                    .map(|s| MyShop {
                        id: s.id.into_string(),
                        name: s.name.into_string(),
                        role: Role::Moderator,
                    }),
            );
            Me {
                kind: "account",
                id: user.to_string(),
                display_name: name.to_string(),
                mobile: Some(record.mobile.as_str().to_owned()),
                shops,
            }
        }
        Identity::Guest { guest, name } => Me {
            kind: "guest",
            id: guest.to_string(),
            display_name: name.to_string(),
            mobile: None,
            shops: Vec::new(),
        },
    })
}

/// Create an account and sign in.
///
/// Limited per client address (a burst, then a few an hour): without a text
/// message to the number, `mobile_taken` cannot be hidden from whoever asks,
/// so asking is what is kept scarce.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = SignUp,
    responses((status = 201, body = Me, description = "Signed up and signed in; sets the session cookie"),
              (status = 409, body = crate::error::Problem, description = "`mobile_taken`"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem, description = "`rate_limited`: too many sign-ups from this address"),
              (status = 503, body = crate::error::Problem, description = "`busy`: too many passwords being checked")))]
async fn sign_up(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Valid(NewAccount {
        mobile,
        password,
        name,
    }): Valid<NewAccount>,
) -> ApiResult<impl IntoResponse> {
    state.limits.sign_up.check(client)?;
    let hash = state.passwords.hash(password).await?;
    let user = state
        .store
        .create_user(&mobile, &name, &hash, domain::UnixMillis::wall_now())
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(_) => ApiError::Conflict {
                code: ProblemCode::MobileTaken,
                detail: "an account with this mobile number exists; sign in instead".into(),
            },
            other => other.into(),
        })?;
    let (_, cookie) = start_session(
        &state,
        store::SessionSubject::User(user.id.clone()),
        &headers,
    )
    .await?;
    let identity = Identity::Account {
        user: user.id,
        name: user.display_name,
    };
    let me = me_view(&state, &identity).await?;
    tracing::info!(user = %me.id, "account created");
    let device = device_cookie(&cookie, &state);
    Ok((StatusCode::CREATED, jar.add(cookie).add(device), Json(me)))
}

/// Sign in with mobile number and password.
///
/// Wrong passwords are limited per client address, per number and address,
/// and per number; a browser that signed in to the account before is
/// limited only on its own, so an attacker cannot lock the owner out.
#[utoipa::path(post, path = "/session", tag = "accounts", request_body = SignIn,
    responses((status = 200, body = Me, description = "Signed in; sets the session cookie (and the known-device cookie)"),
              (status = 401, body = crate::error::Problem, description = "`wrong_credentials`"),
              (status = 429, body = crate::error::Problem, description = "`rate_limited`: too many wrong passwords"),
              (status = 503, body = crate::error::Problem, description = "`busy`: too many passwords being checked")))]
async fn sign_in(
    State(state): State<AppState>,
    client: ClientAddr,
    Caller(caller): Caller,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<SignIn>,
) -> ApiResult<impl IntoResponse> {
    let wrong = || ApiError::Other {
        status: StatusCode::UNAUTHORIZED,
        code: ProblemCode::WrongCredentials,
        detail: "mobile number or password is wrong".into(),
    };
    // A malformed number cannot have an account; same answer as a wrong
    // password so the form does not reveal which numbers are registered.
    let Ok(mobile) = Mobile::parse(&body.mobile) else {
        return Err(wrong());
    };
    let user = state.store.user_by_mobile(&mobile).await?;
    let standing =
        auth::standing(&state, &jar, caller.as_ref(), user.as_ref().map(|u| &u.id)).await?;
    // Decided (and counted) before the hash, so parallel guesses cannot all
    // get through.
    let attempt = state
        .throttle
        .reserve(mobile.as_str(), client.key(), standing, Instant::now())
        .map_err(|wait| too_many("too many wrong passwords", wait))?;
    let ok = match state
        .passwords
        .verify(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            state.throttle.abandoned(attempt, Instant::now());
            return Err(e);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        // The attempt stays counted.
        drop(attempt);
        return Err(wrong());
    };
    state.throttle.succeeded(attempt, Instant::now());
    let (_, cookie) = start_session(
        &state,
        store::SessionSubject::User(user.id.clone()),
        &headers,
    )
    .await?;
    let identity = Identity::Account {
        user: user.id,
        name: user.display_name,
    };
    let device = device_cookie(&cookie, &state);
    Ok((
        jar.add(cookie).add(device),
        Json(me_view(&state, &identity).await?),
    ))
}

/// Sign out: ends this session on the server and clears the cookie.
#[utoipa::path(delete, path = "/session", tag = "accounts",
    responses((status = 204, description = "Signed out (also when there was no session)")))]
async fn sign_out(
    State(state): State<AppState>,
    Caller(caller): Caller,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    if let Some(caller) = caller {
        state
            .store
            .revoke_session(&caller.session_id, domain::UnixMillis::wall_now())
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        jar.add(clear_session_cookie(&state)),
    ))
}

/// Who am I? Works for accounts and guests.
#[utoipa::path(get, path = "/session", tag = "accounts",
    responses((status = 200, body = Me), (status = 401, body = crate::error::Problem)))]
async fn me(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult<Json<Me>> {
    let caller = caller.ok_or(ApiError::Unauthenticated)?;
    Ok(Json(me_view(&state, &caller.identity).await?))
}

/// Watch and chat as a guest with a nickname, no sign-up. A guest who asks
/// again just changes nickname; a signed-in account is refused (it already
/// has a name). New guests are limited per client address: a room's worth
/// at once (a village shares one carrier address), then a few a minute.
#[utoipa::path(post, path = "/guest", tag = "accounts", request_body = GuestRequest,
    responses((status = 201, body = Me, description = "Guest session started; sets the session cookie"),
              (status = 200, body = Me, description = "Nickname changed"),
              (status = 409, body = crate::error::Problem, description = "`already_signed_in`"),
              (status = 429, body = crate::error::Problem, description = "`rate_limited`: too many new guests from this address")))]
async fn become_guest(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    Caller(caller): Caller,
    jar: CookieJar,
    Valid(Nickname(name)): Valid<Nickname>,
) -> ApiResult<impl IntoResponse> {
    match caller.map(|c| c.identity) {
        Some(Identity::Account { .. }) => Err(ApiError::conflict(
            ProblemCode::AlreadySignedIn,
            "you are signed in; your account name is used in chat",
        )),
        Some(Identity::Guest { guest, .. }) => {
            state.store.rename_guest(&guest, &name).await?;
            let me = me_view(&state, &Identity::Guest { guest, name }).await?;
            Ok((StatusCode::OK, jar, Json(me)))
        }
        None => {
            state.limits.guest.check(client)?;
            let person = auth::person_behind_cookie(&headers, &state).await?;
            let guest = state
                .store
                .create_guest_of(&name, person.as_deref(), domain::UnixMillis::wall_now())
                .await?;
            let (_, cookie) = start_session(
                &state,
                store::SessionSubject::Guest(guest.clone()),
                &headers,
            )
            .await?;
            let me = me_view(&state, &Identity::Guest { guest, name }).await?;
            Ok((StatusCode::CREATED, jar.add(cookie), Json(me)))
        }
    }
}

/// This account's active sign-ins (phones, computers).
#[utoipa::path(get, path = "/session/all", tag = "accounts",
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = crate::error::Problem)))]
async fn my_sessions(
    State(state): State<AppState>,
    me: SignedIn,
) -> ApiResult<Json<Vec<SessionView>>> {
    let sessions = state
        .store
        .sessions_of_user(&me.user, domain::UnixMillis::wall_now())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.id == me.session_id,
                id: s.id.into_string(),
                user_agent: s.user_agent,
                created_at: ts(s.created_at),
                last_seen_at: ts(s.last_seen_at),
            })
            .collect(),
    ))
}

/// Sign out one of this account's sessions, e.g. a lost phone.
#[utoipa::path(delete, path = "/session/all/{session_id}", tag = "accounts",
    params(("session_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn revoke_session(
    State(state): State<AppState>,
    me: SignedIn,
    Path(session_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id("session", &session_id, SessionId::parse)?;
    state
        .store
        .revoke_user_session(&me.user, &id, domain::UnixMillis::wall_now())
        .await
        .map_err(crate::error::not_found("session"))?;
    Ok(StatusCode::NO_CONTENT)
}
