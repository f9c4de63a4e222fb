//! The server under test: a `fieldcast serve` process this generator starts
//! (temporary data directory, free HTTP port, ephemeral media port, fresh
//! SQLite file or PostgreSQL database), or one somebody else started
//! (`--url`, and `--pid` for CPU and memory).

use crate::error::{Error, Result};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use store::testing::TestDb;
use tokio::process::{Child, Command};

/// Which database a started server gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A fresh SQLite file in the temporary data directory.
    Sqlite,
    /// A fresh PostgreSQL database (created on `FIELDCAST_TEST_POSTGRES`,
    /// default `postgres://postgres@127.0.0.1:5432/postgres`, dropped afterwards).
    Postgres,
    /// This database URL, as is.
    Url(String),
}

impl Database {
    /// `sqlite`, `postgres`, or a `sqlite://`/`postgres://` URL.
    pub fn parse(s: &str) -> Result<Database> {
        match s {
            "sqlite" => Ok(Database::Sqlite),
            "postgres" | "postgresql" => Ok(Database::Postgres),
            url if url.starts_with("sqlite:") || url.starts_with("postgres") => {
                Ok(Database::Url(url.to_owned()))
            }
            other => Err(Error::Invalid(format!(
                "database must be sqlite, postgres or a URL, not {other:?}"
            ))),
        }
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `fieldcast` binary (a release build for benchmarks).
    pub binary: PathBuf,
    /// Its database.
    pub database: Database,
    /// `--media-max-viewers`.
    pub max_viewers: usize,
    /// `RUST_LOG` for the server (its log goes to a file in the data directory).
    pub rust_log: String,
}

impl ServerOptions {
    /// Defaults: the `fieldcast` next to this executable, SQLite, warnings only.
    pub fn new(binary: PathBuf) -> ServerOptions {
        ServerOptions {
            binary,
            database: Database::Sqlite,
            max_viewers: 1000,
            rust_log: "warn".into(),
        }
    }
}

/// The `fieldcast` binary next to the running executable
/// (`target/release/loadgen` → `target/release/fieldcast`).
pub fn sibling_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("fieldcast");
    candidate.is_file().then_some(candidate)
}

/// A server to drive.
pub struct Server {
    base: String,
    pid: Option<u32>,
    database_url: Option<String>,
    child: Option<Child>,
    log: Option<PathBuf>,
    binary: Option<PathBuf>,
    // Dropped after the process: the data directory and the database.
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Server {
    /// Starts `fieldcast serve` and waits until `/readyz` answers.
    pub async fn start(opts: &ServerOptions) -> Result<Server> {
        if !opts.binary.is_file() {
            return Err(Error::Server(format!(
                "no fieldcast binary at {} (build it: cargo build --release -p fieldcast)",
                opts.binary.display()
            )));
        }
        let dir = tempfile::Builder::new().prefix("loadgen-").tempdir()?;
        let (database_url, db) = match &opts.database {
            Database::Sqlite => (
                format!("sqlite://{}", dir.path().join("fieldcast.db").display()),
                None,
            ),
            Database::Postgres => {
                let db = TestDb::postgres().await.ok_or_else(|| {
                    Error::Server(
                        "PostgreSQL is not reachable (set FIELDCAST_TEST_POSTGRES to its admin URL)"
                            .into(),
                    )
                })?;
                (db.url.clone(), Some(db))
            }
            Database::Url(url) => (url.clone(), None),
        };
        // Media on loopback only: the generator's peers live on this machine.
        // The generator is trusted as a proxy so each simulated phone can
        // say which address it stands for (`api::simulated_client`).
        let config = dir.path().join("fieldcast.toml");
        std::fs::write(
            &config,
            "trusted_proxies = [\"127.0.0.1\", \"::1\"]\n\
             [media]\nbind_ips = [\"127.0.0.1\"]\ninclude_loopback = true\n",
        )?;
        let port = free_port()?;
        let log = dir.path().join("server.log");
        let child = Command::new(&opts.binary)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--media-udp-port", "0", "--media-tcp-port", "0"])
            .args(["--media-max-viewers", &opts.max_viewers.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--database-url", &database_url])
            .env("RUST_LOG", &opts.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Server(format!("starting {}: {e}", opts.binary.display())))?;
        let mut server = Server {
            base: format!("http://127.0.0.1:{port}"),
            pid: child.id(),
            database_url: Some(database_url),
            child: Some(child),
            log: Some(log.clone()),
            binary: Some(opts.binary.clone()),
            _dir: Some(dir),
            _db: db,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = http.get(server.url("/readyz")).send().await
                && res.status().is_success()
            {
                break;
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Server(format!(
                    "fieldcast exited ({status}) before it was ready:\n{}",
                    tail(&log, 20)
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Server(format!(
                    "fieldcast not ready after 60 s:\n{}",
                    tail(&log, 20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(base = %server.base, pid = ?server.pid, "server started");
        Ok(server)
    }

    /// A server somebody else runs. Without `pid` its CPU and memory are not
    /// reported; without `database_url` the flash sale cannot check for oversell.
    pub fn attach(url: &str, pid: Option<u32>, database_url: Option<String>) -> Server {
        Server {
            base: url.trim_end_matches('/').to_owned(),
            pid,
            database_url,
            child: None,
            log: None,
            binary: None,
            _dir: None,
            _db: None,
        }
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's process id, if known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Its database, if known.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// The binary that was started, if we started it.
    pub fn binary(&self) -> Option<&Path> {
        self.binary.as_deref()
    }

    /// Whether this generator started the server (and will stop it).
    pub fn owned(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process we started is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// The last lines of the server's log (only for servers we started).
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map(|p| tail(p, lines))
            .unwrap_or_default()
    }

    /// Stops a server we started (SIGTERM, then SIGKILL after 15 s) and
    /// removes its data. A server we attached to is left alone.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = signal(pid, Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    tracing::warn!(%status, "server exited uncleanly:\n{}", self.log_tail(10));
                }
            }
            Err(_) => {
                tracing::warn!("server did not stop within 15 s; killing it");
                child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Sends `signal` to a process we spawned (its id as `std`/`tokio` give it).
pub(crate) fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}
