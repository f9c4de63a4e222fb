//! Short-lived read caches for the two lookups every buyer's HTTP request
//! makes before it reaches the stock ledger: its session and the shop's bans.
//!
//! In a flash sale these were two database round trips per tap, most of the
//! server's work per reservation over HTTP (BENCHMARKS.md). An entry is
//! served for at most [`FRESH`]; every write through this `Store` that could
//! change an answer (revoking a session, sliding its expiry, renaming a guest,
//! banning or unbanning) drops the affected entries first, so within one
//! process a revocation or a ban takes effect at once. A write by another
//! process (another node sharing the database) is seen within [`FRESH`], or
//! at once where the nodes pass each other their [`CacheChange`]s (the
//! cluster does, over NATS: see `Store::on_cache_change`).
//!
//! A read that raced such a write must not put its older answer back: every
//! invalidation bumps a generation, and a read stores its result only if the
//! generation it started under is still current.

use crate::accounts::SessionRecord;
use domain::UnixMillis;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a cached answer may be served.
pub(crate) const FRESH: Duration = Duration::from_secs(5);

/// Sessions cached at most; past it the cache starts over (a burst of new
/// sessions must not grow memory without bound).
const MAX_SESSIONS: usize = 200_000;

/// Shops whose ban lists are cached at most. A lookup for a shop id a
/// client made up caches an empty list, so this too must be bounded.
const MAX_SHOPS: usize = 50_000;

struct Entries<V> {
    map: HashMap<String, (V, Instant)>,
    generation: u64,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            generation: 0,
        }
    }
}

impl<V: Clone> Entries<V> {
    fn get(&self, key: &str, now: Instant) -> Option<V> {
        self.map
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < FRESH)
            .map(|(v, _)| v.clone())
    }

    fn put(&mut self, key: String, value: V, read_under: u64, max: usize) {
        if self.generation != read_under {
            return; // an invalidation happened while we read: our answer may be old
        }
        if self.map.len() >= max {
            self.map.clear();
        }
        self.map.insert(key, (value, Instant::now()));
    }

    fn remove_where(&mut self, mut stale: impl FnMut(&str, &V) -> bool) {
        self.generation += 1;
        self.map.retain(|k, (v, _)| !stale(k, v));
    }
}

/// What a write made stale: the same entries are dropped wherever this is
/// applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum CacheChange {
    /// A session revoked, signed out or slid: by session id.
    Session(String),
    /// A person renamed: every session of this user or guest id.
    Subject(String),
    /// A ban or unban: the shop's ban list.
    Bans(String),
}

type ChangeHook = Box<dyn Fn(&CacheChange) + Send + Sync>;

/// The caches of one [`Store`](crate::Store) (shared by its clones).
#[derive(Default)]
pub(crate) struct ReadCache {
    /// Active sessions by token hash.
    sessions: Mutex<Entries<SessionRecord>>,
    /// Banned subjects by shop id.
    bans: Mutex<Entries<Arc<HashSet<String>>>>,
    /// Told of every change this process makes.
    on_change: OnceLock<ChangeHook>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadCache")
    }
}

impl ReadCache {
    /// A cached session for `token_hash` still valid at `now_ms`, or the
    /// generation to store a fresh read under.
    pub(crate) fn session(
        &self,
        token_hash: &str,
        now_ms: UnixMillis,
    ) -> Result<SessionRecord, u64> {
        let s = self.sessions.lock().expect("session cache");
        s.get(token_hash, Instant::now())
            .filter(|r| r.expires_at > now_ms)
            .ok_or(s.generation)
    }

    pub(crate) fn put_session(&self, token_hash: &str, record: SessionRecord, read_under: u64) {
        self.sessions.lock().expect("session cache").put(
            token_hash.to_owned(),
            record,
            read_under,
            MAX_SESSIONS,
        );
    }

    /// Drops every cached session with this id.
    pub(crate) fn forget_session(&self, id: &str) {
        self.changed(CacheChange::Session(id.to_owned()));
    }

    /// Drops every cached session of this subject (user or guest id).
    pub(crate) fn forget_subject(&self, subject: &str) {
        self.changed(CacheChange::Subject(subject.to_owned()));
    }

    pub(crate) fn forget_bans(&self, shop: &str) {
        self.changed(CacheChange::Bans(shop.to_owned()));
    }

    /// A change made here: applied, then told to the hook.
    fn changed(&self, change: CacheChange) {
        self.apply(&change);
        if let Some(hook) = self.on_change.get() {
            hook(&change);
        }
    }

    /// Sets the one hook told of this process's changes; false if one is set.
    pub(crate) fn set_hook(&self, hook: ChangeHook) -> bool {
        self.on_change.set(hook).is_ok()
    }

    /// Drops what `change` made stale (made here or by another node).
    pub(crate) fn apply(&self, change: &CacheChange) {
        match change {
            CacheChange::Session(id) => self
                .sessions
                .lock()
                .expect("session cache")
                .remove_where(|_, s| s.id.as_str() == id),
            CacheChange::Subject(subject) => self
                .sessions
                .lock()
                .expect("session cache")
                .remove_where(|_, s| s.identity.subject().as_str() == subject),
            CacheChange::Bans(shop) => self
                .bans
                .lock()
                .expect("ban cache")
                .remove_where(|k, _| k == shop),
        }
    }

    /// The cached ban list of `shop`, or the generation to store one under.
    pub(crate) fn bans(&self, shop: &str) -> Result<Arc<HashSet<String>>, u64> {
        let b = self.bans.lock().expect("ban cache");
        b.get(shop, Instant::now()).ok_or(b.generation)
    }

    pub(crate) fn put_bans(&self, shop: &str, banned: Arc<HashSet<String>>, read_under: u64) {
        self.bans
            .lock()
            .expect("ban cache")
            .put(shop.to_owned(), banned, read_under, MAX_SHOPS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let cache = ReadCache::default();
        let generation = cache.bans("shp_1").unwrap_err();
        // A ban commits and invalidates while the read was in flight.
        cache.forget_bans("shp_1");
        cache.put_bans("shp_1", Arc::new(HashSet::new()), generation);
        assert!(cache.bans("shp_1").is_err(), "the older answer was dropped");

        let generation = cache.bans("shp_1").unwrap_err();
        let banned: HashSet<String> = ["gst_troll".to_owned()].into();
        cache.put_bans("shp_1", Arc::new(banned), generation);
        assert!(cache.bans("shp_1").unwrap().contains("gst_troll"));
    }

    #[test]
    fn changes_made_here_are_told_and_changes_from_elsewhere_are_not() {
        let cache = ReadCache::default();
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        assert!(cache.set_hook(Box::new(move |c| sink.lock().unwrap().push(c.clone()))));
        assert!(!cache.set_hook(Box::new(|_| {})), "one hook");

        let generation = cache.bans("shp_1").unwrap_err();
        cache.put_bans("shp_1", Arc::new(HashSet::new()), generation);
        cache.forget_bans("shp_1");
        assert!(cache.bans("shp_1").is_err());
        assert_eq!(*told.lock().unwrap(), [CacheChange::Bans("shp_1".into())]);

        // Another node's ban: dropped here, not told back.
        let generation = cache.bans("shp_2").unwrap_err();
        cache.put_bans("shp_2", Arc::new(HashSet::new()), generation);
        cache.apply(&CacheChange::Bans("shp_2".into()));
        assert!(cache.bans("shp_2").is_err());
        assert_eq!(told.lock().unwrap().len(), 1);

        let wire = serde_json::to_string(&CacheChange::Session("ses_1".into())).unwrap();
        assert_eq!(wire, r#"{"kind":"session","id":"ses_1"}"#);
    }
}
