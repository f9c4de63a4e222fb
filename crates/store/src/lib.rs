//! Storage: every SQL statement, the migrations runner and the mapping
//! between rows and domain values.
//!
//! One code path serves both engines through sqlx's `Any` driver: the SQL is
//! written once in the common dialect (`$1` placeholders, TEXT ids, BIGINT
//! money and Unix-millisecond times), and the engine is picked from the
//! database URL at run time. Nothing of sqlx leaks out of this crate: callers
//! see domain values and [`StoreError`].

mod accounts;
mod broadcasts;
mod cache;
mod chat;
mod error;
mod orders;
mod photos;
mod products;
mod replays;
mod shops;
#[cfg(feature = "testing")]
pub mod testing;

pub use accounts::{NewSession, SessionRecord, SessionSubject, UserRecord};
pub use broadcasts::{BroadcastRecord, BroadcastUpdate, NewBroadcast};
pub use cache::CacheChange;
#[allow(unused_imports)] // filled by the live-channel work
pub use chat::*;
pub use error::StoreError;
#[allow(unused_imports)] // filled by the order-service work
pub use orders::*;
pub use photos::{NewPhoto, PhotoRecord, PhotoSubject, is_photo_id, new_photo_id};
pub use products::{NewProduct, ProductRecord, ProductUpdate};
pub use replays::{OfferMoments, PinMoment};
pub use shops::{ModeratorRecord, NewShop, ShopRecord, ShopUpdate};

use cache::ReadCache;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Migrations in the repository's `migrations/` folder, compiled in so the
/// binary migrates its own database on start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A handle on the database: cheap to clone, safe to share.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    cache: Arc<ReadCache>,
}

impl Store {
    /// Connects to `url`: `sqlite://path/to/file.db` (created if missing) or
    /// `postgres://…`. Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme in {:?}: use sqlite:// or postgres://",
                redact(url)
            )));
        };
        let pool = match engine {
            Engine::Sqlite => {
                let url = sqlite_url_with_create(url);
                if let Some(parent) = sqlite_path(&url)
                    .and_then(|path| Path::new(path).parent())
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Config(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                AnyPoolOptions::new()
                    // SQLite has one writer at a time; a few connections let
                    // readers proceed alongside it (WAL), more only contend.
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL: readers never block the writer. FULL: a
                            // commit is on disk before we acknowledge it (group
                            // commit keeps that affordable). busy_timeout:
                            // wait for the write lock instead of failing.
                            // wal_autocheckpoint: checkpoint every ~80 MB of
                            // WAL instead of every 4 MB, so a hot flash sale is
                            // not stalled by a checkpoint every few hundred
                            // commits (measured: p99 177 ms -> ~60 ms at
                            // 20k reservations/s).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA wal_autocheckpoint = 20000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
            }
            Engine::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
            }
        }
        .map_err(|e| StoreError::Config(format!("cannot open database {}: {e}", redact(url))))?;
        Ok(Store {
            pool,
            engine,
            cache: Arc::default(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Config(format!("migration failed: {e}")))
    }

    /// Cheap round trip for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn cache(&self) -> &ReadCache {
        &self.cache
    }

    /// Tells `hook` of every cache entry a write through this store made
    /// stale, so other nodes can drop theirs too. One hook per store (and
    /// its clones); false if one was set already.
    pub fn on_cache_change(&self, hook: impl Fn(&CacheChange) + Send + Sync + 'static) -> bool {
        self.cache.set_hook(Box::new(hook))
    }

    /// Drops what a write elsewhere (another node) made stale.
    pub fn apply_cache_change(&self, change: &CacheChange) {
        self.cache.apply(change);
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Times are stored as BIGINT Unix milliseconds; a column read back becomes
/// a [`domain::UnixMillis`] here, at the sqlx boundary (binds go the other
/// way with [`domain::UnixMillis::millis`]).
pub(crate) trait StoredMillis {
    type Millis;
    fn into_millis(self) -> Self::Millis;
}

impl StoredMillis for i64 {
    type Millis = domain::UnixMillis;
    fn into_millis(self) -> domain::UnixMillis {
        domain::UnixMillis::from_millis(self)
    }
}

impl StoredMillis for Option<i64> {
    type Millis = Option<domain::UnixMillis>;
    fn into_millis(self) -> Option<domain::UnixMillis> {
        self.map(domain::UnixMillis::from_millis)
    }
}

pub(crate) fn millis<T: StoredMillis>(column: T) -> T::Millis {
    column.into_millis()
}

/// `sqlite://file.db` → `sqlite://file.db?mode=rwc` so a first start creates
/// the file instead of failing.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Database URLs may carry a password; never print it.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode_and_a_path() {
        assert_eq!(
            sqlite_url_with_create("sqlite://data/f.db"),
            "sqlite://data/f.db?mode=rwc"
        );
        assert_eq!(
            sqlite_path("sqlite://data/f.db?mode=rwc"),
            Some("data/f.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(redact("sqlite://data/f.db"), "sqlite://data/f.db");
    }
}
