use std::sync::Arc;

use crate::auth::{PasswordPool, SignInRates, SignInThrottle};
use crate::limits::{ClientIpSettings, LimitSettings, Limits};

/// Settings the HTTP layer needs, derived from the server's configuration.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Where people reach this server, e.g. `https://live.example.cn`. Used
    /// for links we hand out (WHIP URLs, share links) and to decide whether
    /// cookies are `Secure`.
    pub public_url: String,
    /// Largest JSON body accepted, in bytes.
    pub json_body_limit: usize,
    /// How long a sign-in lasts without activity.
    pub session_ttl: std::time::Duration,
    /// How the client's address is found (trusted proxies and their header).
    pub client_ip: ClientIpSettings,
    /// Per-address rates: guests, sign-ups, order links, appointments, media.
    pub limits: LimitSettings,
    /// The sign-in throttle's rates.
    pub sign_in: SignInRates,
    /// Password hashes run at once (each takes ~19 MiB while it runs).
    pub password_workers: usize,
    /// Password checks that may wait for a free worker, and for how long.
    pub password_queue: usize,
    pub password_queue_wait: std::time::Duration,
    /// Where uploaded photos are kept (`<data dir>/photos`); `None` refuses
    /// uploads.
    pub photo_dir: Option<std::path::PathBuf>,
    /// Bearer token of the operator API (`/api/v1/cluster`); `None` turns it
    /// off.
    pub operator_token: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            json_body_limit: 64 * 1024,
            session_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
            client_ip: ClientIpSettings::default(),
            limits: LimitSettings::default(),
            sign_in: SignInRates::default(),
            password_workers: PasswordPool::default_workers(),
            password_queue: 64,
            password_queue_wait: std::time::Duration::from_secs(5),
            photo_dir: None,
            operator_token: None,
        }
    }
}

impl ApiSettings {
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }
}

/// Everything a handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: store::Store,
    pub sfu: sfu::Sfu,
    pub orders: orders::OrderService,
    pub live: live::LiveHub,
    /// Shops, products, broadcasts, moderators, bans: who may do what.
    pub shops: shops::ShopService,
    pub settings: Arc<ApiSettings>,
    /// Per-address rate limits: `state.limits.guest.check(addr)?`.
    pub limits: Arc<Limits>,
    pub(crate) throttle: Arc<SignInThrottle>,
    pub(crate) passwords: Arc<PasswordPool>,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Broadcast recordings, when this server records.
    pub recordings: Option<recorder::Recordings>,
    /// The cluster this node belongs to, in cluster mode.
    pub cluster: Option<cluster::Cluster>,
}

impl AppState {
    pub fn new(
        store: store::Store,
        sfu: sfu::Sfu,
        orders: orders::OrderService,
        live: live::LiveHub,
        shops: shops::ShopService,
        settings: ApiSettings,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self {
            store,
            sfu,
            orders,
            live,
            shops,
            limits: Arc::new(Limits::new(&settings.limits)),
            throttle: Arc::new(SignInThrottle::new(&settings.sign_in)),
            passwords: Arc::new(PasswordPool::new(
                settings.password_workers,
                settings.password_queue,
                settings.password_queue_wait,
            )),
            settings: Arc::new(settings),
            metrics,
            recordings: None,
            cluster: None,
        }
    }

    /// The same state, in cluster mode.
    pub fn with_cluster(mut self, cluster: Option<cluster::Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The same state, with the server's recordings.
    pub fn with_recordings(mut self, recordings: recorder::Recordings) -> Self {
        self.recordings = Some(recordings);
        self
    }
}
