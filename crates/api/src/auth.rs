//! Passwords, session cookies and the extractors that say who is calling.
//!
//! A session is a random token in an HttpOnly, SameSite=Lax cookie; the
//! database keeps only its SHA-256, so sessions can be listed and revoked
//! server-side and a copied database opens nothing. Lax (not Strict) so a
//! signed-in moderator who opens a shared broadcast link from a chat app
//! arrives signed in.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use domain::{Identity, SessionId, UserId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "fieldcast_session";

/// Hashes off the async runtime: argon2id is deliberately slow.
pub async fn hash_password(password: domain::Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = new_salt()?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("argon2: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
}

/// Verifies against `stored_hash`, or against a fixed dummy hash when the
/// account does not exist so both cases take the same time and an attacker
/// cannot probe which mobile numbers have accounts.
pub async fn verify_password(
    password: String,
    stored_hash: Option<String>,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let (hash, exists) = match stored_hash {
            Some(h) => (h, true),
            None => (dummy_hash().to_owned(), false),
        };
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored hash: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && exists)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = new_salt().expect("16 random bytes encode as a salt");
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn new_salt() -> Result<SaltString, ApiError> {
    SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("salt: {e}")))
}

pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signed-in (or guest) caller of a request, once resolved.
#[derive(Clone, Debug)]
pub struct CallerSession {
    pub session_id: SessionId,
    pub identity: Identity,
}

/// Who is calling, if anyone: resolves the session cookie once per request.
/// Never rejects; use [`SignedIn`] or [`Participant`] to require one.
#[derive(Clone, Debug)]
pub struct Caller(pub Option<CallerSession>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(cached) = parts.extensions.get::<Caller>() {
            return Ok(cached.clone());
        }
        let caller = resolve(&parts.headers, state).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn resolve(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let jar = CookieJar::from_headers(headers);
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(Caller(None));
    };
    let now = store::now_millis();
    let Some(session) = state.store.active_session(&token_hash(&token), now).await? else {
        return Ok(Caller(None));
    };
    // Slide the expiry forward, but write at most once an hour per session.
    if now - session.last_seen_at > 3_600_000 {
        let expires = now + state.settings.session_ttl.as_millis() as i64;
        state.store.touch_session(&session.id, now, expires).await?;
    }
    Ok(Caller(Some(CallerSession {
        session_id: session.id,
        identity: session.identity,
    })))
}

/// The person behind the session cookie a request carries, whether that
/// session is live, signed out or expired: a browser asking for a new guest
/// with an earlier session's cookie is the same person, and per-buyer
/// limits count per person.
pub async fn person_behind_cookie(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<String>, ApiError> {
    let jar = CookieJar::from_headers(headers);
    match jar.get(SESSION_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => Ok(state
            .store
            .person_behind_session(&token_hash(cookie.value()))
            .await?),
        _ => Ok(None),
    }
}

/// A caller with an account. Rejects with 401 otherwise.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub session_id: SessionId,
    pub user: UserId,
    pub identity: Identity,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        match caller {
            Some(CallerSession {
                session_id,
                identity: identity @ Identity::Account { .. },
            }) => Ok(SignedIn {
                session_id,
                user: identity
                    .user()
                    .cloned()
                    .expect("account identity has a user"),
                identity,
            }),
            _ => Err(ApiError::Unauthenticated),
        }
    }
}

/// A caller with an account or a guest nickname (anyone who may chat or buy).
#[derive(Clone, Debug)]
pub struct Participant(pub CallerSession);

impl FromRequestParts<AppState> for Participant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        caller.map(Participant).ok_or(ApiError::Unauthenticated)
    }
}

/// Builds the cookie for a new session.
pub fn session_cookie(token: String, state: &AppState) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies())
        .max_age(time::Duration::seconds(
            state.settings.session_ttl.as_secs() as i64,
        ))
        .build()
}

pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(String::new(), state);
    cookie.make_removal();
    cookie
}

/// Creates a server-side session for `subject` and returns the cookie that
/// carries it.
pub async fn start_session(
    state: &AppState,
    subject: store::SessionSubject,
    headers: &HeaderMap,
) -> Result<(SessionId, Cookie<'static>), ApiError> {
    let token = domain::secret_token();
    let now = store::now_millis();
    let user_agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let id = SessionId::generate();
    state
        .store
        .create_session(store::NewSession {
            id: id.clone(),
            token_hash: &token_hash(&token),
            subject,
            user_agent: &user_agent,
            now,
            expires_at: now + state.settings.session_ttl.as_millis() as i64,
        })
        .await?;
    Ok((id, session_cookie(token, state)))
}

/// Slows down password guessing: after a few failures for one mobile number,
/// further attempts for it are refused for a while, whatever the password.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl SignInThrottle {
    const MAX_FAILURES: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(15 * 60);

    pub fn check(&self, mobile: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((count, since)) = failures.get(mobile)
            && *count >= Self::MAX_FAILURES
            && since.elapsed() < Self::WINDOW
        {
            let wait = Self::WINDOW
                .saturating_sub(since.elapsed())
                .as_secs()
                .max(1);
            return Err(ApiError::TooManyRequests {
                detail: format!(
                    "too many wrong passwords; try again in {} minutes",
                    wait.div_ceil(60)
                ),
                retry_after_secs: wait,
            });
        }
        Ok(())
    }

    pub fn failed(&self, mobile: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget stale entries so the map cannot grow without bound.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = failures
            .entry(mobile.to_owned())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, mobile: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(mobile);
    }
}
