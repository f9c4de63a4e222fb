//! Fresh databases for tests: a SQLite file in a temporary directory, or a
//! new PostgreSQL database created on the server named by
//! `FIELDCAST_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and dropped again afterwards.
//!
//! PostgreSQL tests skip (loudly) when no server answers, so a laptop without
//! one can still run the suite, unless `FIELDCAST_REQUIRE_POSTGRES=1` is set
//! (CI sets it), in which case an unreachable server fails the test.

use crate::{Store, StoreError};
use sqlx::{Connection, Executor};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test. Keep it alive as long as the test
/// uses the URL; dropping it deletes the data.
pub struct TestDb {
    pub url: String,
    pub engine: crate::Engine,
    _dir: Option<tempfile::TempDir>,
    pg_cleanup: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fieldcast.db").display());
        TestDb {
            url,
            engine: crate::Engine::Sqlite,
            _dir: Some(dir),
            pg_cleanup: None,
        }
    }

    /// `None` when PostgreSQL is unreachable and not required.
    pub async fn postgres() -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let admin = std::env::var("FIELDCAST_TEST_POSTGRES")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let required = std::env::var("FIELDCAST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let mut conn = match sqlx::AnyConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) if !required => {
                eprintln!(
                    "SKIPPED: PostgreSQL test, no server at {} ({e}); set FIELDCAST_REQUIRE_POSTGRES=1 to make this an error",
                    crate::redact(&admin)
                );
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL required but unreachable at {}: {e}",
                crate::redact(&admin)
            ),
        };
        let name = format!("fieldcast_test_{}", domain::secret_token().to_lowercase());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        Some(TestDb {
            url,
            engine: crate::Engine::Postgres,
            _dir: None,
            pg_cleanup: Some((admin, name)),
        })
    }

    /// Runs one statement directly (tests that simulate what happens while
    /// the server is down, e.g. time passing).
    pub async fn execute(&self, sql: &str) -> Result<u64, StoreError> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        let done = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
        let _ = conn.close().await;
        Ok(done.rows_affected())
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Result<Store, StoreError> {
        let store = Store::connect(&self.url).await?;
        store.migrate().await?;
        Ok(store)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_cleanup.take() {
            // Drop runs outside async context; a short-lived thread with its
            // own runtime removes the database without blocking the test's.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                            let _ = conn
                                .execute(sqlx::AssertSqlSafe(format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                )))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// `postgres://host:5432/postgres?x` → `postgres://host:5432/<name>?x`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Defines `mod $name { async fn sqlite(); async fn postgres() }`: the same
/// async test body, given a migrated [`Store`](crate::Store), on a fresh
/// SQLite file and on a fresh PostgreSQL database (skipped only where
/// `TestDb::postgres` allows it). Needs tokio's test macro in the caller.
#[macro_export]
macro_rules! on_both_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let db = $crate::testing::TestDb::sqlite();
                let store = db.store().await.expect("sqlite store");
                ($body)(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = $crate::testing::TestDb::postgres().await else {
                    return;
                };
                let store = db.store().await.expect("postgres store");
                ($body)(store.clone()).await;
                store.close().await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::replace_database("postgres://127.0.0.1:5432/postgres", "x"),
            "postgres://127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
