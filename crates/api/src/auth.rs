//! Passwords, session cookies and the extractors that say who is calling.
//!
//! A session is a random token in an HttpOnly, SameSite=Lax cookie; the
//! database keeps only its SHA-256, so sessions can be listed and revoked
//! server-side and a copied database opens nothing. Lax (not Strict) so a
//! signed-in moderator who opens a shared broadcast link from a chat app
//! arrives signed in.
//!
//! Password hashing (argon2id, ~19 MiB and tens of milliseconds each) runs
//! only on a [`PasswordPool`]: a few dedicated threads and a short queue
//! with a deadline, so a sign-in flood costs a bounded amount of memory and
//! gets `503 busy` rather than the server. Whether an attempt may be hashed
//! at all is decided before, by the [`SignInThrottle`].

use crate::error::{ApiError, ProblemCode};
use crate::limits::{AddrKey, DEFAULT_MAX_KEYS, Gcra, Rate};
use crate::state::AppState;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use domain::{Identity, SessionId, UserId};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "fieldcast_session";

/// Hashes one password off the async runtime, outside any pool: for tools
/// and seeding (`--demo`). Requests hash through [`PasswordPool`].
pub async fn hash_password(password: domain::Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_now(password.expose()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
}

fn hash_now(password: &str) -> Result<String, ApiError> {
    let salt = rand::random::<[u8; 16]>();
    let salt_string = SaltString::encode_b64(&salt).map_err(argon_error)?;
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_blocks(params.block_count(), |blocks| {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
    })
    .map_err(argon_error)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(argon_error)?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(argon_error)?),
    };
    Ok(phc.to_string())
}

/// Verifies against `stored_hash`, or against a fixed dummy hash when the
/// account does not exist so both cases take the same time and an attacker
/// cannot probe which mobile numbers have accounts.
fn verify_now(password: &str, stored_hash: Option<&str>) -> Result<bool, ApiError> {
    let (hash, exists) = match stored_hash {
        Some(h) => (h, true),
        None => (dummy_hash(), false),
    };
    let parsed = PasswordHash::new(hash).map_err(argon_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(argon_error("stored hash has no salt or output"));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(argon_error)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(argon_error)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(argon_error)?;
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(argon_error)?;
    let mut out = vec![0u8; expected.len()];
    with_blocks(params.block_count(), |blocks| {
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            blocks,
        )
    })
    .map_err(argon_error)?;
    // `Output`'s equality is constant-time.
    let ok = Output::new(&out).map_err(argon_error)? == expected;
    Ok(ok && exists)
}

/// Runs `f` over `count` argon2 blocks of this thread's reused memory.
///
/// Each hash needs ~19 MiB of work memory. Allocating it per hash leaves the
/// allocator holding freed copies in arena after arena (measured: ~450 MB
/// after 90 hashes on two threads), so the hashing threads keep one buffer
/// each for good instead. An unusual stored hash asking for more memory
/// than the default gets a buffer of its own for that one run.
fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if count > Params::default().block_count() {
        return f(&mut vec![Block::default(); count]);
    }
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < count {
            *blocks = vec![Block::default(); count];
        }
        f(&mut blocks[..count])
    })
}

fn argon_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("argon2: {e}"))
}

/// Runs password hashes on a fixed number of dedicated threads.
///
/// Dedicated threads rather than `spawn_blocking`: each argon2 run allocates
/// ~19 MiB, and the allocator keeps freed memory per thread arena, so
/// hashing on whichever of the runtime's many blocking threads is free would
/// leave ~19 MiB behind on each. A few fixed threads keep it at a few times
/// 19 MiB for good. Jobs wait in a short queue; one that waited past the
/// deadline is dropped unrun and its caller told `503 busy`, as is anyone
/// who finds the queue full.
pub struct PasswordPool {
    jobs: mpsc::SyncSender<Job>,
    queue_wait: Duration,
    workers: usize,
}

struct Job {
    deadline: Instant,
    /// Runs the work and sends its result back; dropped unrun when late.
    run: Box<dyn FnOnce() + Send>,
}

impl PasswordPool {
    /// Hashing threads for this machine: one per core, at most 4 (the
    /// memory bound is `workers × 19 MiB`).
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4)
    }

    /// `workers` threads; at most `queue` jobs waiting, each at most
    /// `queue_wait`. The threads end when the pool is dropped.
    pub fn new(workers: usize, queue: usize, queue_wait: Duration) -> Self {
        let workers = workers.max(1);
        let (jobs, inbox) = mpsc::sync_channel::<Job>(queue);
        let inbox = Arc::new(Mutex::new(inbox));
        for n in 0..workers {
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let inbox = inbox.lock().unwrap_or_else(|p| p.into_inner());
                            inbox.recv()
                        };
                        let Ok(job) = job else { return };
                        if Instant::now() > job.deadline {
                            metrics::counter!("fieldcast_password_hash_refused_total", "why" => "late")
                                .increment(1);
                            continue;
                        }
                        metrics::gauge!("fieldcast_password_hashes_running").increment(1.0);
                        (job.run)();
                        metrics::gauge!("fieldcast_password_hashes_running").decrement(1.0);
                    }
                })
                .expect("spawning a password thread");
        }
        Self {
            jobs,
            queue_wait,
            workers,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `work` on a pool thread, or refuses with `503 busy`.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            deadline: Instant::now() + self.queue_wait,
            run: Box::new(move || {
                let _ = tx.send(work());
            }),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                metrics::counter!("fieldcast_password_hash_refused_total", "why" => "full")
                    .increment(1);
                return Err(busy());
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!("password pool stopped")));
            }
        }
        // Dropped unrun (it waited past its deadline): busy.
        rx.await.map_err(|_| busy())
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: domain::Password) -> Result<String, ApiError> {
        self.run(move || hash_now(password.expose())).await?
    }

    /// Checks `password` against `stored_hash` (or a dummy, in the same
    /// time, when there is no account).
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, ApiError> {
        self.run(move || verify_now(&password, stored_hash.as_deref()))
            .await?
    }
}

fn busy() -> ApiError {
    ApiError::Busy {
        code: ProblemCode::Busy,
        detail: "the server is busy checking other passwords; try again in a moment".into(),
        retry_after_secs: 2,
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_now("not a real password").unwrap_or_default())
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
    let now = domain::UnixMillis::wall_now();
    let Some(session) = state.store.active_session(&token_hash(&token), now).await? else {
        return Ok(Caller(None));
    };
    // Slide the expiry forward, but write at most once an hour per session.
    if now.since(session.last_seen_at) > std::time::Duration::from_secs(3600) {
        let expires = now.saturating_add(state.settings.session_ttl);
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
        caller.map(Participant).ok_or(ApiError::NicknameRequired)
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
    let now = domain::UnixMillis::wall_now();
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
            expires_at: now.saturating_add(state.settings.session_ttl),
        })
        .await?;
    Ok((id, session_cookie(token, state)))
}

/// Remembers that this browser signed in to an account before: it holds
/// the token of a session it once had, sent only to the sign-in route.
/// Signing out keeps it (the session is dead, the device is still the
/// owner's); signing a lost phone out from another device forgets it.
pub const DEVICE_COOKIE: &str = "fieldcast_device";

/// The known-device cookie for the session whose cookie is `session`.
pub fn device_cookie(session: &Cookie<'_>, state: &AppState) -> Cookie<'static> {
    Cookie::build((DEVICE_COOKIE, session.value().to_owned()))
        .path("/api/v1/session")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.secure_cookies())
        .max_age(time::Duration::days(365))
        .build()
}

/// How much the sign-in throttle trusts where an attempt comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// A browser that signed in to this very account before (its device
    /// cookie, or a live session of the account); keyed by that proof.
    KnownDevice(String),
    /// Anyone else.
    Stranger,
}

/// Whether the caller has proved before that it is `account`'s device.
pub async fn standing(
    state: &AppState,
    jar: &CookieJar,
    caller: Option<&CallerSession>,
    account: Option<&UserId>,
) -> Result<Standing, ApiError> {
    let Some(account) = account else {
        return Ok(Standing::Stranger);
    };
    if let Some(caller) = caller
        && caller.identity.user() == Some(account)
    {
        return Ok(Standing::KnownDevice(caller.session_id.to_string()));
    }
    if let Some(device) = jar.get(DEVICE_COOKIE) {
        let hash = token_hash(device.value());
        if state.store.is_device_of(&hash, account).await? {
            return Ok(Standing::KnownDevice(hash));
        }
    }
    Ok(Standing::Stranger)
}

/// The sign-in throttle's rates. Each counts failed attempts (an attempt is
/// counted before its hash and given back if it succeeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRates {
    /// Strangers, per client address, whatever the number: one address
    /// spraying guesses over many numbers.
    pub per_address: Rate,
    /// Strangers, per number and client address: one attacker on one number.
    pub per_number_address: Rate,
    /// Strangers, per number from anywhere: many addresses on one number.
    /// This one can be spent by an attacker; the owner's known devices do
    /// not draw on it.
    pub per_number: Rate,
    /// A known device, per device: the owner mistyping.
    pub per_device: Rate,
}

impl Default for SignInRates {
    fn default() -> Self {
        Self {
            per_address: Rate::new(20, Duration::from_secs(30)),
            per_number_address: Rate::new(5, Duration::from_secs(180)),
            per_number: Rate::new(10, Duration::from_secs(120)),
            per_device: Rate::new(5, Duration::from_secs(60)),
        }
    }
}

/// Slows password guessing without letting anyone lock the owner out.
///
/// A stranger's attempt draws on three allowances at once (per address,
/// per number and address, per number); a known device's only on its own.
/// All are taken together under one lock before the password is hashed, so
/// parallel attempts cannot all slip past, and given back when the password
/// was right (or never checked). An attacker can exhaust the per-number
/// allowance and so slow sign-ins from new devices, but the owner's phone
/// that signed in before, or any live session of theirs, still gets in.
pub struct SignInThrottle {
    tables: Mutex<SignInTables>,
}

struct SignInTables {
    per_address: Gcra<AddrKey>,
    per_number_address: Gcra<(String, AddrKey)>,
    per_number: Gcra<String>,
    per_device: Gcra<String>,
}

/// One reserved attempt; dropping it keeps it counted (a failure).
#[must_use = "report how the attempt went, or drop it to count it as a failure"]
#[derive(Debug)]
pub struct Attempt {
    mobile: String,
    addr: AddrKey,
    standing: Standing,
}

impl SignInThrottle {
    pub fn new(rates: &SignInRates) -> Self {
        Self {
            tables: Mutex::new(SignInTables {
                per_address: Gcra::new(rates.per_address, DEFAULT_MAX_KEYS),
                per_number_address: Gcra::new(rates.per_number_address, DEFAULT_MAX_KEYS),
                per_number: Gcra::new(rates.per_number, DEFAULT_MAX_KEYS),
                per_device: Gcra::new(rates.per_device, DEFAULT_MAX_KEYS),
            }),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, SignInTables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves one attempt for `mobile` from `addr`, or says how long to
    /// wait. Nothing is taken when refused.
    pub fn reserve(
        &self,
        mobile: &str,
        addr: AddrKey,
        standing: Standing,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let mut t = self.tables();
        let number_addr = (mobile.to_owned(), addr);
        let number = mobile.to_owned();
        match &standing {
            Standing::KnownDevice(device) => t.per_device.check(device, now)?,
            Standing::Stranger => {
                let refusals = [
                    t.per_address.peek(&addr, now),
                    t.per_number_address.peek(&number_addr, now),
                    t.per_number.peek(&number, now),
                ];
                if let Some(wait) = refusals.iter().filter_map(|r| r.err()).max() {
                    return Err(wait);
                }
                t.per_address.take(&addr, now);
                t.per_number_address.take(&number_addr, now);
                t.per_number.take(&number, now);
            }
        }
        Ok(Attempt {
            mobile: number,
            addr,
            standing,
        })
    }

    /// The password was right: the attempt does not count, and the owner's
    /// own mistakes from this place or device are forgiven.
    pub fn succeeded(&self, attempt: Attempt, now: Instant) {
        let mut t = self.tables();
        match &attempt.standing {
            Standing::KnownDevice(device) => t.per_device.forget(device),
            Standing::Stranger => {
                t.per_address.give_back(&attempt.addr, now);
                t.per_number_address
                    .forget(&(attempt.mobile.clone(), attempt.addr));
                t.per_number.give_back(&attempt.mobile, now);
            }
        }
    }

    /// The password was never checked (the pool was busy): give it back.
    pub fn abandoned(&self, attempt: Attempt, now: Instant) {
        let mut t = self.tables();
        match &attempt.standing {
            Standing::KnownDevice(device) => t.per_device.give_back(device, now),
            Standing::Stranger => {
                t.per_address.give_back(&attempt.addr, now);
                t.per_number_address
                    .give_back(&(attempt.mobile.clone(), attempt.addr), now);
                t.per_number.give_back(&attempt.mobile, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn addr(s: &str) -> AddrKey {
        AddrKey::of(s.parse().unwrap())
    }

    #[test]
    fn parallel_attempts_are_reserved_before_any_is_checked() {
        let throttle = SignInThrottle::new(&SignInRates::default());
        let now = Instant::now();
        let reserved: Vec<_> = (0..30)
            .map(|_| throttle.reserve("13800138000", addr("192.0.2.1"), Standing::Stranger, now))
            .collect();
        let passed = reserved.iter().filter(|r| r.is_ok()).count();
        assert_eq!(passed, 5, "the per-number-and-address burst");
    }

    #[test]
    fn many_addresses_spend_the_number_but_not_the_owners_device() {
        let rates = SignInRates::default();
        let throttle = SignInThrottle::new(&rates);
        let now = Instant::now();
        let mut passed = 0;
        for n in 0..50 {
            let from = addr(&format!("198.51.100.{n}"));
            if throttle
                .reserve("13800138000", from, Standing::Stranger, now)
                .is_ok()
            {
                passed += 1;
            }
        }
        assert_eq!(passed, rates.per_number.burst as usize);
        assert!(
            throttle
                .reserve("13800138000", addr("203.0.113.1"), Standing::Stranger, now)
                .is_err(),
            "a new device waits while the number is under attack"
        );
        let owner = Standing::KnownDevice("device-hash".into());
        let attempt = throttle
            .reserve("13800138000", addr("198.51.100.1"), owner, now)
            .expect("the owner's phone is not locked out");
        throttle.succeeded(attempt, now);
    }

    #[test]
    fn one_address_spraying_numbers_is_slowed() {
        let throttle = SignInThrottle::new(&SignInRates::default());
        let now = Instant::now();
        let passed = (0..100)
            .filter(|n| {
                throttle
                    .reserve(
                        &format!("1380013{n:04}"),
                        addr("192.0.2.1"),
                        Standing::Stranger,
                        now,
                    )
                    .is_ok()
            })
            .count();
        assert_eq!(passed, 20);
        assert!(
            throttle
                .reserve("13800138000", addr("192.0.2.2"), Standing::Stranger, now)
                .is_ok(),
            "other addresses are not affected"
        );
    }

    #[test]
    fn a_success_is_not_a_failure_and_an_unchecked_attempt_is_given_back() {
        let throttle = SignInThrottle::new(&SignInRates::default());
        let now = Instant::now();
        let home = addr("192.0.2.1");
        for _ in 0..4 {
            drop(
                throttle
                    .reserve("13800138000", home, Standing::Stranger, now)
                    .unwrap(),
            );
        }
        let right = throttle
            .reserve("13800138000", home, Standing::Stranger, now)
            .unwrap();
        throttle.succeeded(right, now);
        for _ in 0..5 {
            let unchecked = throttle
                .reserve("13800138000", home, Standing::Stranger, now)
                .expect("the owner's earlier typos are forgiven");
            throttle.abandoned(unchecked, now);
        }
    }

    #[tokio::test]
    async fn the_pool_runs_at_most_its_workers_at_once_and_sheds_the_rest() {
        let pool = Arc::new(PasswordPool::new(2, 4, Duration::from_secs(30)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (pool, running, peak, release_rx) = (
                pool.clone(),
                running.clone(),
                peak.clone(),
                release_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = release_rx.lock().unwrap().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // Let every task reach the pool, then release the work one by one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..20 {
            let _ = release_tx.send(());
        }
        let mut done = 0;
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => done += 1,
                Err(ApiError::Busy {
                    code,
                    retry_after_secs,
                    ..
                }) => {
                    assert_eq!(code, ProblemCode::Busy);
                    assert!(retry_after_secs >= 1);
                    refused += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "never more than the workers at once"
        );
        assert!(
            (2..=6).contains(&done),
            "2 running + 4 queued at most: {done}"
        );
        assert_eq!(done + refused, 20);
    }

    #[tokio::test]
    async fn a_job_that_waited_past_its_deadline_is_dropped_unrun() {
        let pool = PasswordPool::new(1, 8, Duration::from_millis(50));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = pool.run(move || {
            let _ = release_rx.recv();
        });
        let ran = Arc::new(AtomicUsize::new(0));
        let late = {
            let ran = ran.clone();
            pool.run(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            release_tx.send(()).unwrap();
        };
        let (blocked, late, ()) = tokio::join!(blocker, late, release);
        blocked.unwrap();
        assert!(matches!(late, Err(ApiError::Busy { .. })), "{late:?}");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn hashes_are_standard_argon2id_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Ours verify with the crate's own verifier…
        let ours = hash_now("correct horse battery").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        // …and hashes stored before (made by the crate) verify with ours.
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify_now("correct horse battery", Some(&theirs)).unwrap());
        assert!(!verify_now("correct horse batterx", Some(&theirs)).unwrap());
        assert!(
            !verify_now("not a real password", None).unwrap(),
            "the dummy opens nothing"
        );
    }

    #[tokio::test]
    async fn hashes_verify_through_the_pool() {
        let pool = PasswordPool::new(1, 4, Duration::from_secs(30));
        let hash = pool
            .hash(domain::Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(
            pool.verify("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("correct horse battery".into(), None)
                .await
                .unwrap()
        );
    }
}
