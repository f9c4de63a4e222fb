//! Logs (tracing) and metrics (Prometheus) setup.

use crate::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber. `RUST_LOG` overrides the default
/// filter. Safe to call more than once (later calls do nothing), so tests
/// that start several servers in one process are fine.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,webrtc=warn,rtc=warn,tower_http=info"));
    // Logs go to stdout. Colour codes only for a person at a terminal who
    // did not ask for none (NO_COLOR): in a file or the journal they are
    // noise that breaks grep.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal() && !no_color);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// For tests: logs only when `RUST_LOG` is set, through the test harness's
/// capture so passing tests stay quiet.
pub fn init_test_logging() {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Bucket bounds (seconds) for every `*_seconds` histogram, 1-2.5-5 steps
/// from 50 µs (a health check or cached read answers in about 0.1 ms, which
/// a 0.5 ms first bucket lumped with everything fast) to half a minute (a
/// stuck request), so both ends of a real latency distribution land in
/// distinct buckets.
const LATENCY_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder: installed once, shared by every
/// server started in this process. Latencies are exported as histograms
/// with fixed buckets (aggregatable over nodes and time windows), not as
/// per-process summaries.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS);
            let builder = match builder {
                Ok(builder) => builder,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}
