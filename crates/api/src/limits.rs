//! Who is calling from where, and how often they may.
//!
//! [`ClientAddr`] is the caller's address: the TCP peer, or, only when the
//! peer is a configured trusted proxy, the address that proxy put in its
//! forwarding header. IPv6 callers are keyed by their /64 (one household or
//! phone gets a whole /64, so single addresses would be free to rotate).
//!
//! [`KeyedLimiter`] is a per-key rate limit (GCRA: a burst, then one more
//! every interval) whose table is bounded: stale keys are swept when it
//! fills, and if a flood of live keys still fills it, the keys closest to
//! fresh are dropped first. We keep the few lines of GCRA here rather than
//! use `governor` because the sign-in throttle must take from several keyed
//! limits at once under one lock (all or none, before the hash), give an
//! attempt back when it succeeds, and stay within a hard size bound; none of
//! which `governor`'s keyed limiter offers.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::HeaderName;
use axum::http::request::Parts;
use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the client's address is found behind a reverse proxy.
#[derive(Clone, Debug)]
pub struct ClientIpSettings {
    /// Peers whose forwarding header is believed. Empty: the TCP peer is the
    /// client, whatever headers say.
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies append the client's address to.
    pub header: HeaderName,
}

impl Default for ClientIpSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header: HeaderName::from_static("x-forwarded-for"),
        }
    }
}

impl ClientIpSettings {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that reached us from `peer`.
    ///
    /// Only a trusted peer's header counts. Proxies append the address they
    /// saw, so the header is read from the right: the first address that is
    /// not itself a trusted proxy is the client (anything left of it was
    /// written by the client and may be forged).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut nearest = peer;
        let hops = headers
            .get_all(&self.header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage where a trusted proxy should have written an
                // address: the nearest address we can vouch for.
                return nearest;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest = ip;
        }
        nearest
    }
}

/// One entry of a forwarding header: an address, maybe with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The calling client's address, as found by [`ClientIpSettings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// What limits are keyed by: the address, or its /64 for IPv6.
    pub fn key(self) -> AddrKey {
        AddrKey::of(self.0)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The server is always run with connect info; without it (a router
        // driven in-process) every caller shares one key, which errs on the
        // strict side.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientAddr(
            state.settings.client_ip.client_ip(peer, &parts.headers),
        ))
    }
}

/// A client address as a limit key: IPv4 as is, IPv6 cut to its /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                AddrKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl From<ClientAddr> for AddrKey {
    fn from(addr: ClientAddr) -> Self {
        addr.key()
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// A rate: `burst` at once, then one more every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

impl Rate {
    pub const fn new(burst: u32, every: Duration) -> Rate {
        Rate { burst, every }
    }

    pub const fn per_minute(burst: u32, per_minute: u32) -> Rate {
        Rate::new(burst, Duration::from_millis(60_000 / per_minute as u64))
    }

    /// How far ahead of now a key's schedule may run before it is refused.
    fn tolerance(self) -> Duration {
        self.every * self.burst.saturating_sub(1)
    }
}

/// How many keys one limit remembers at most (~50 bytes each).
pub const DEFAULT_MAX_KEYS: usize = 50_000;

/// A keyed GCRA table, sans-I/O: the caller passes `now` and holds the
/// lock. For each key it keeps the "theoretical arrival time" of the next
/// request; a key whose time has passed is back to a full burst and is
/// indistinguishable from one never seen, so it may be forgotten.
#[derive(Debug)]
pub struct Gcra<K> {
    rate: Rate,
    max_keys: usize,
    due: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Gcra<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        assert!(rate.burst >= 1, "a rate allows at least one at once");
        Self {
            rate,
            max_keys: max_keys.max(8),
            due: HashMap::new(),
        }
    }

    /// Whether `key` may go now; if not, how long until it may.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let due = self.due.get(key).copied().unwrap_or(now).max(now);
        let allowed_from = due.checked_sub(self.rate.tolerance()).unwrap_or(now);
        if allowed_from > now {
            Err(allowed_from - now)
        } else {
            Ok(())
        }
    }

    /// Takes one from `key`'s allowance (after a successful [`Gcra::peek`]).
    pub fn take(&mut self, key: &K, now: Instant) {
        let next = self.due.get(key).copied().unwrap_or(now).max(now) + self.rate.every;
        if !self.due.contains_key(key) {
            self.make_room(now);
        }
        self.due.insert(key.clone(), next);
    }

    /// Peek and take in one step.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.peek(key, now)?;
        self.take(key, now);
        Ok(())
    }

    /// Gives back one taken allowance (an attempt that turned out fine).
    pub fn give_back(&mut self, key: &K, now: Instant) {
        if let Some(due) = self.due.get_mut(key) {
            match due.checked_sub(self.rate.every) {
                Some(earlier) if earlier > now => *due = earlier,
                _ => {
                    self.due.remove(key);
                }
            }
        }
    }

    /// Forgets `key`: back to a full burst.
    pub fn forget(&mut self, key: &K) {
        self.due.remove(key);
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Before a new key goes in: drop every key back at a full burst, and if
    /// live keys still fill the table, drop the eighth closest to a full
    /// burst (the least restricted), so the table never outgrows its bound
    /// and the sweep's cost is spread over the next many inserts.
    fn make_room(&mut self, now: Instant) {
        if self.due.len() < self.max_keys {
            return;
        }
        self.due.retain(|_, due| *due > now);
        if self.due.len() < self.max_keys {
            return;
        }
        let mut by_due: Vec<(Instant, K)> = self.due.iter().map(|(k, d)| (*d, k.clone())).collect();
        let drop = (self.max_keys / 8).max(1);
        by_due.select_nth_unstable_by_key(drop - 1, |(due, _)| *due);
        for (_, key) in &by_due[..drop] {
            self.due.remove(key);
        }
        metrics::counter!("fieldcast_rate_limit_evictions_total").increment(drop as u64);
    }
}

/// A thread-safe [`Gcra`] answering with `429 rate_limited` and
/// `Retry-After`: `state.limits.guest.check(addr)?`.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    table: Mutex<Gcra<K>>,
    /// Finishes "… try again in N seconds", e.g. "too many new guests from
    /// your network".
    what: &'static str,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(rate: Rate, what: &'static str) -> Self {
        Self::bounded(rate, DEFAULT_MAX_KEYS, what)
    }

    pub fn bounded(rate: Rate, max_keys: usize, what: &'static str) -> Self {
        Self {
            table: Mutex::new(Gcra::new(rate, max_keys)),
            what,
        }
    }

    /// Counts one request for `key`; refuses when its allowance is spent.
    pub fn check(&self, key: impl Into<K>) -> Result<(), ApiError> {
        self.check_at(&key.into(), Instant::now())
            .map_err(|wait| too_many(self.what, wait))
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(key, now)
    }

    /// How many keys are remembered now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `429 rate_limited` with a `Retry-After` of `wait` rounded up.
pub fn too_many(what: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let when = if secs < 120 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", secs.div_ceil(60))
    };
    ApiError::TooManyRequests {
        detail: format!("{what}; try again in {when}"),
        retry_after_secs: secs,
    }
}

/// The per-address (and per-account) rates, all with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// New guest sessions per client address. A village often shares one
    /// carrier-NAT address, so a room's worth may arrive at once.
    pub guest: Rate,
    /// Sign-ups per client address. Strict: a sign-up answers whether a
    /// number has an account (`mobile_taken`), and each one is a hash.
    pub sign_up: Rate,
    /// Private order-link lookups per client address.
    pub order_lookup: Rate,
    /// Moderator appointments, per owner account and per client address:
    /// an appointment answers whether a number has an account.
    pub appointment: Rate,
    /// WHIP/WHEP session creations per client address.
    pub media_session: Rate,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            guest: Rate::per_minute(10, 5),
            sign_up: Rate::new(10, Duration::from_secs(180)),
            order_lookup: Rate::per_minute(30, 30),
            appointment: Rate::new(10, Duration::from_secs(360)),
            media_session: Rate::per_minute(20, 30),
        }
    }
}

/// Every keyed limit the HTTP layer applies (the sign-in throttle, which
/// needs more than one key per attempt, lives in `auth`).
#[derive(Debug)]
pub struct Limits {
    pub guest: KeyedLimiter<AddrKey>,
    pub sign_up: KeyedLimiter<AddrKey>,
    pub order_lookup: KeyedLimiter<AddrKey>,
    pub appointment_by_address: KeyedLimiter<AddrKey>,
    /// Keyed by the appointing owner's user id.
    pub appointment_by_owner: KeyedLimiter<String>,
    pub media_session: KeyedLimiter<AddrKey>,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            guest: KeyedLimiter::new(settings.guest, "too many new guests from your network"),
            sign_up: KeyedLimiter::new(settings.sign_up, "too many sign-ups from your network"),
            order_lookup: KeyedLimiter::new(
                settings.order_lookup,
                "too many order lookups from your network",
            ),
            appointment_by_address: KeyedLimiter::new(
                settings.appointment,
                "too many moderator appointments from your network",
            ),
            appointment_by_owner: KeyedLimiter::new(
                settings.appointment,
                "too many moderator appointments",
            ),
            media_session: KeyedLimiter::new(
                settings.media_session,
                "too many new media sessions from your network",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn behind(proxies: &[&str]) -> ClientIpSettings {
        ClientIpSettings {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
            ..ClientIpSettings::default()
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let settings = behind(&["10.0.0.1/32"]);
        let forged = xff(&["203.0.113.9"]);
        assert_eq!(
            settings.client_ip(ip("198.51.100.7"), &forged),
            ip("198.51.100.7")
        );
        assert_eq!(
            ClientIpSettings::default().client_ip(ip("127.0.0.1"), &forged),
            ip("127.0.0.1"),
            "no trusted proxy configured: headers never count"
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let settings = behind(&["10.0.0.0/8"]);
        // The client forged the left part; the proxy appended what it saw.
        let headers = xff(&["1.1.1.1, 203.0.113.9"]);
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        // Two proxies of ours in a row, and the header split over two lines.
        let headers = xff(&["6.6.6.6, 203.0.113.9", "10.1.2.3"]);
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        // Ports, spaces and IPv6 in brackets as some proxies write them.
        let headers = xff(&[" [2001:db8::7]:443 ", "203.0.113.9:5000"]);
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        let headers = xff(&["[2001:db8::7]:443"]);
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &headers),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn missing_or_garbled_headers_fall_back_to_the_nearest_known_hop() {
        let settings = behind(&["10.0.0.0/8"]);
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        assert_eq!(
            settings.client_ip(ip("10.0.0.1"), &xff(&["203.0.113.9, nonsense, 10.0.0.2"])),
            ip("10.0.0.2")
        );
        // Another header name, when configured.
        let mut real_ip = behind(&["10.0.0.0/8"]);
        real_ip.header = HeaderName::from_static("x-real-ip");
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", HeaderValue::from_static("203.0.113.5"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        assert_eq!(
            real_ip.client_ip(ip("10.0.0.1"), &headers),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_proxies() {
        let settings = behind(&["127.0.0.1/32"]);
        assert_eq!(
            settings.client_ip(ip("::ffff:127.0.0.1"), &xff(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = AddrKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = AddrKey::of(ip("2001:db8:1:2:ffff:1:2:3"));
        let other = AddrKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            AddrKey::of(ip("::ffff:192.0.2.1")),
            AddrKey::of(ip("192.0.2.1"))
        );
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let rate = Rate::new(3, Duration::from_secs(10));
        let mut table = Gcra::new(rate, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(table.check(&"a", t0), Ok(()));
        }
        let wait = table.check(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert_eq!(table.check(&"b", t0), Ok(()), "keys are independent");
        // Refused requests do not push the schedule back.
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(table.check(&"a", t1), Err(Duration::from_secs(1)));
        let t2 = t0 + Duration::from_secs(10);
        assert_eq!(table.check(&"a", t2), Ok(()));
        assert!(table.check(&"a", t2).is_err());
        // After a long quiet spell the full burst is back.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(table.check(&"a", later), Ok(()));
        }
    }

    #[test]
    fn a_given_back_attempt_does_not_count() {
        let mut table = Gcra::new(Rate::new(2, Duration::from_secs(60)), 100);
        let t0 = Instant::now();
        table.check(&"a", t0).unwrap();
        table.check(&"a", t0).unwrap();
        assert!(table.peek(&"a", t0).is_err());
        table.give_back(&"a", t0);
        assert_eq!(table.check(&"a", t0), Ok(()));
        table.give_back(&"a", t0);
        table.give_back(&"a", t0);
        table.give_back(&"a", t0);
        assert!(table.is_empty(), "never below a fresh key");
    }

    #[test]
    fn the_table_stays_within_its_bound_under_a_flood_of_keys() {
        let rate = Rate::new(2, Duration::from_secs(60));
        let mut table = Gcra::new(rate, 1000);
        let t0 = Instant::now();
        // A pest limited hard, then a flood of fresh keys.
        table.check(&u32::MAX, t0).unwrap();
        table.check(&u32::MAX, t0).unwrap();
        for n in 0..100_000u32 {
            table
                .check(&n, t0 + Duration::from_millis(u64::from(n)))
                .unwrap();
            assert!(table.len() <= 1000);
        }
        // Stale keys are swept first: once time has moved past every
        // schedule, a new key makes room without dropping live ones.
        let mut table = Gcra::new(rate, 10);
        for n in 0..10u32 {
            table.check(&n, t0).unwrap();
        }
        table.check(&0, t0).unwrap();
        let later = t0 + Duration::from_secs(61);
        table.check(&99, later).unwrap();
        assert_eq!(table.len(), 2, "only the still-limited key and the new one");
        assert!(table.peek(&0, later).is_ok());
    }

    #[test]
    fn the_keys_dropped_from_a_full_table_are_the_least_limited() {
        let mut table: Gcra<String> = Gcra::new(Rate::new(1, Duration::from_secs(60)), 8);
        let t0 = Instant::now();
        let pest = "pest".to_owned();
        table.check(&pest, t0).unwrap();
        table.take(&pest, t0);
        table.take(&pest, t0);
        for n in 0..7 {
            table
                .check(&format!("k{n}"), t0 + Duration::from_secs(1))
                .unwrap();
        }
        assert_eq!(table.len(), 8, "full");
        table
            .check(&"new".to_owned(), t0 + Duration::from_secs(2))
            .unwrap();
        assert!(table.len() <= 8);
        assert!(
            table.peek(&pest, t0 + Duration::from_secs(2)).is_err(),
            "the most limited key is kept"
        );
    }

    #[test]
    fn refusals_say_when_to_come_back() {
        let limiter: KeyedLimiter<AddrKey> =
            KeyedLimiter::new(Rate::new(1, Duration::from_secs(30)), "too many");
        let key = AddrKey::of(ip("192.0.2.1"));
        limiter.check(key).unwrap();
        match limiter.check(key) {
            Err(ApiError::TooManyRequests {
                retry_after_secs,
                detail,
            }) => {
                assert!((29..=30).contains(&retry_after_secs), "{retry_after_secs}");
                assert!(detail.starts_with("too many; try again in"), "{detail}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        limiter
            .check(AddrKey::of(ip("192.0.2.2")))
            .expect("another address is not affected");
        assert_eq!(limiter.len(), 2);
    }
}
