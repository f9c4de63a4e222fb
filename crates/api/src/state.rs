use std::sync::Arc;

use crate::auth::SignInThrottle;

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
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            json_body_limit: 64 * 1024,
            session_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
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
    pub settings: Arc<ApiSettings>,
    pub(crate) throttle: Arc<SignInThrottle>,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl AppState {
    pub fn new(
        store: store::Store,
        sfu: sfu::Sfu,
        orders: orders::OrderService,
        live: live::LiveHub,
        settings: ApiSettings,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self {
            store,
            sfu,
            orders,
            live,
            settings: Arc::new(settings),
            throttle: Arc::new(SignInThrottle::default()),
            metrics,
        }
    }
}
