//! The `fieldcast` server: configuration, wiring of the subsystems, and a
//! graceful life cycle. Everything with a rule in it lives in the crates
//! under `crates/`; this package only puts them together.

mod bridge;
mod cluster_sync;
mod commerce;
pub mod config;
mod demo;
mod membership;
mod offer_placement;
mod recording;
pub mod telemetry;

pub use config::Config;
pub use demo::{DemoAccount, seed_demo};
pub use membership::status as cluster_status;

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use tokio::task::JoinHandle;

/// A server that is listening. Dropping it does not stop it; call
/// [`Running::shutdown`] (tests) or let [`serve_until`] wait for a signal.
pub struct Running {
    pub addr: SocketAddr,
    /// The base URL the server hands out (follows the real port in tests).
    pub public_url: String,
    pub store: store::Store,
    /// The media server (tests look at its rooms and end sessions with it).
    pub sfu: sfu::Sfu,
    handle: axum_server::Handle,
    grace: std::time::Duration,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// URL of `path` on this server as reached locally.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.public_url.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (at most the grace
    /// period), then flushes and closes the subsystems.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(self.grace));
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
    let listener = std::net::TcpListener::bind(config.bind)
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_config(cert, key).await?),
        None => None,
    };
    // Port 0 (tests) means the public URL must follow the real port.
    let public_url = if config.bind.port() == 0 {
        let scheme = if tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    } else {
        config.public_url.clone()
    };
    let settings = api::ApiSettings {
        public_url: public_url.clone(),
        client_ip: config.client_ip.clone(),
        limits: config.limits.clone(),
        photo_dir: Some(config.data_dir.join("photos")),
        operator_token: config.operator_token.clone(),
        ..api::ApiSettings::default()
    };
    let sfu = sfu::Sfu::start(config.media.sfu_config())
        .await
        .context("starting the media server (check the UDP/TCP media ports are free)")?;
    let media = sfu.clone();
    let cluster = match &config.cluster {
        Some(settings) => Some(membership::Membership::connect(settings).await?),
        None => None,
    };
    let orders = match &cluster {
        None => orders::OrderService::start(store.clone(), config.orders.clone()).await,
        Some(cluster) => {
            let placement = offer_placement::NatsPlacement::new(cluster).await?;
            orders::OrderService::start_in_cluster(
                store.clone(),
                config.orders.clone(),
                std::sync::Arc::new(placement),
            )
            .await
        }
    }
    .context("starting the order service")?;
    let live = live::LiveHub::new(
        store.clone(),
        std::sync::Arc::new(commerce::OrderCommerce::new(orders.clone())),
        config.live.clone(),
    );
    let membership = match (&config.cluster, cluster) {
        (Some(settings), Some(cluster)) => {
            let mut settings = settings.clone();
            // The node's URL defaults to the public URL, which follows the
            // real port in tests.
            if settings.node_url == config.public_url {
                settings.node_url = public_url.clone();
            }
            Some(
                membership::Membership::join(cluster, &settings, &sfu, &live, &store, &orders)
                    .await?,
            )
        }
        _ => None,
    };
    let recordings = recording_store(&config);
    let bridge = bridge::Bridge::new(store.clone(), sfu.clone(), orders.clone(), live.clone());
    let shops = shops::ShopService::new(store.clone(), std::sync::Arc::new(bridge.clone()));
    let mut bridges = bridge.start();
    bridges.push(tokio::spawn(recording::record_live_rooms(
        sfu.clone(),
        recordings.clone(),
    )));
    let state = api::AppState::new(
        store.clone(),
        sfu.clone(),
        orders.clone(),
        live.clone(),
        shops,
        settings,
        telemetry::metrics_handle(),
    )
    .with_recordings(recordings)
    .with_cluster(membership.as_ref().map(|m| m.cluster.clone()));
    let app = api::app(state);

    let handle = axum_server::Handle::new();
    let grace = config.shutdown_grace;
    let task_store = store.clone();
    let server_handle = handle.clone();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = match tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(listener, tls)
                    .handle(server_handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(listener)
                    .handle(server_handle)
                    .serve(service)
                    .await
            }
        };
        // Requests have drained (or the grace period ran out): now the
        // subsystems, so nothing they flush is lost.
        // Websockets were handed off by the HTTP server: close them (clients
        // are told to reconnect) and flush chat before the rest stops.
        // Other nodes stop counting on this one at once, not after its TTL.
        if let Some(membership) = membership {
            membership.leave().await;
        }
        live.shutdown().await;
        sfu.shutdown().await;
        for bridge in bridges {
            bridge.abort();
        }
        // Commits every reservation already decided before the pool closes.
        orders.shutdown().await;
        task_store.close().await;
        served.context("HTTP server")
    });
    Ok(Running {
        addr,
        public_url,
        store,
        sfu: media,
        handle,
        grace,
        task,
    })
}

/// Recordings live under `<data dir>/recordings`.
pub fn recording_store(config: &Config) -> recorder::Recordings {
    recorder::Recordings::new(
        config.data_dir.join("recordings"),
        config.recording_quota_bytes,
    )
}

/// Loads a PEM certificate chain and key for HTTPS.
async fn tls_config(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    // One process-wide crypto provider (ring); installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| {
            format!(
                "loading TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })
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
