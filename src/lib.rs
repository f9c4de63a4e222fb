//! The `fieldcast` server: configuration, wiring of the subsystems, and a
//! graceful life cycle. Everything with a rule in it lives in the crates
//! under `crates/`; this package only puts them together.

pub mod config;
mod demo;
pub mod telemetry;

pub use config::Config;
pub use demo::{DemoAccount, seed_demo};

use anyhow::Context;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server that is listening. Dropping it does not stop it; call
/// [`Running::shutdown`] (tests) or let [`serve_until`] wait for a signal.
pub struct Running {
    pub addr: SocketAddr,
    pub store: store::Store,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, flushes state.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("server task")?
    }
}

/// Opens and migrates the database named in `config`.
pub async fn open_store(config: &Config) -> anyhow::Result<store::Store> {
    let store = store::Store::connect(&config.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Binds, wires everything and starts serving in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let store = open_store(&config).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    // Port 0 (tests) means the public URL must follow the real port.
    let public_url = if config.bind.port() == 0 {
        format!("http://{addr}")
    } else {
        config.public_url.clone()
    };
    let settings = api::ApiSettings {
        public_url,
        ..api::ApiSettings::default()
    };
    let sfu = sfu::Sfu::start(config.media.sfu_config())
        .await
        .context("starting the media server (check the UDP/TCP media ports are free)")?;
    let events = tokio::spawn(broadcast_lifecycle(sfu.clone(), store.clone()));
    let state = api::AppState::new(
        store.clone(),
        sfu.clone(),
        settings,
        telemetry::metrics_handle(),
    );
    let app = api::app(state);

    let stop = CancellationToken::new();
    let grace = config.shutdown_grace;
    let task_store = store.clone();
    let (server_stop, drain_deadline) = (stop.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(server_stop.cancelled_owned());
        // In-flight requests get `grace` to finish once shutdown starts; a
        // stuck client cannot hold the process forever.
        tokio::select! {
            result = server => result.context("HTTP server")?,
            () = async {
                drain_deadline.cancelled().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("in-flight requests did not finish within {grace:?}; closing anyway"),
        }
        sfu.shutdown().await;
        events.abort();
        task_store.close().await;
        Ok(())
    });
    Ok(Running {
        addr,
        store,
        stop,
        task,
    })
}

/// Follows the SFU's room events into broadcast state: a publisher that
/// connects makes the broadcast live; one gone past the grace period ends it.
async fn broadcast_lifecycle(sfu: sfu::Sfu, store: store::Store) {
    use domain::{BroadcastId, BroadcastState};
    let mut events = sfu.events();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "broadcast lifecycle fell behind the SFU's events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let (room, to) = match &event {
            sfu::SfuEvent::RoomLive { room } | sfu::SfuEvent::PublisherReconnected { room } => {
                (room, BroadcastState::Live)
            }
            sfu::SfuEvent::RoomEnded { room, reason } if *reason != sfu::EndReason::Shutdown => {
                (room, BroadcastState::Ended)
            }
            _ => continue,
        };
        let Ok(id) = BroadcastId::parse(room) else {
            continue;
        };
        match store
            .set_broadcast_state(&id, to, store::now_millis())
            .await
        {
            Ok(Some(b)) => {
                tracing::info!(broadcast = %id, state = b.state.as_str(), "broadcast state changed")
            }
            Ok(None) => {
                tracing::debug!(broadcast = %id, to = to.as_str(), "broadcast state unchanged")
            }
            Err(e) => {
                tracing::error!(broadcast = %id, error = %e, "could not record broadcast state")
            }
        }
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
