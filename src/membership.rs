//! This node in the cluster (`--cluster`): it connects to NATS, enters the
//! node registry with its URL, media addresses and load, and leaves it on
//! shutdown; its cache and moderation changes reach the other nodes
//! (`cluster_sync`). The
//! registry itself (heartbeats, TTL, a dead node vanishing) is the `cluster`
//! crate's.

use crate::cluster_sync::ClusterSync;
use crate::config::ClusterSettings;
use anyhow::Context;
use cluster::{Cluster, ClusterConfig, NodeInfo, NodeLoad, Registration};
use std::time::Instant;

/// A node that joined; [`Membership::leave`] takes its entry out at once.
pub struct Membership {
    pub cluster: Cluster,
    registration: Registration,
    lag_gauge: tokio::task::JoinHandle<()>,
    cluster_sync: ClusterSync,
}

impl Membership {
    /// Connects to the cluster's NATS (before the services start: the order
    /// service places its writers through it).
    pub async fn connect(settings: &ClusterSettings) -> anyhow::Result<Cluster> {
        let mut config = ClusterConfig::new(settings.url.clone(), settings.node_id.clone());
        config.prefix = settings.prefix.clone();
        Cluster::connect(config)
            .await
            .context("joining the cluster")
    }

    pub async fn join(
        cluster: Cluster,
        settings: &ClusterSettings,
        sfu: &sfu::Sfu,
        live: &live::LiveHub,
        store: &store::Store,
        orders: &orders::OrderService,
    ) -> anyhow::Result<Membership> {
        let cluster_sync = ClusterSync::start(&cluster, store, live, orders).await?;
        let info = NodeInfo {
            id: settings.node_id.clone(),
            instance: domain::secret_token(),
            http_url: settings.node_url.clone(),
            media: sfu
                .udp_addresses()
                .iter()
                .map(|(_, advertised)| advertised.to_string())
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: domain::UnixMillis::wall_now().millis(),
            heartbeat_at_ms: 0,
            load: NodeLoad::default(),
        };
        let sampler = std::sync::Mutex::new(LoadSampler::new(sfu.clone(), live.clone()));
        let registration = cluster
            .nodes()
            .await?
            .register(info, move || {
                sampler
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .sample()
            })
            .await
            .with_context(|| format!("entering node {} in the registry", settings.node_id))?;
        tracing::info!(node = %settings.node_id, nats = %settings.url, "joined the cluster");
        // `/metrics`: the node's cluster lag, as its heartbeats measure it.
        let rtt = registration.heartbeat_rtt_reader();
        let every = cluster.config().node_ttl / 3;
        let lag_gauge = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Some(rtt) = rtt.get() {
                    metrics::gauge!("fieldcast_cluster_heartbeat_rtt_seconds")
                        .set(rtt.as_secs_f64());
                }
            }
        });
        Ok(Membership {
            cluster,
            registration,
            lag_gauge,
            cluster_sync,
        })
    }

    /// Leaves the registry now rather than after its TTL.
    pub async fn leave(self) {
        self.lag_gauge.abort();
        self.cluster_sync.stop();
        self.registration.leave().await;
    }
}

/// `fieldcast cluster status`: the nodes alive now, one line each, with
/// their load and the leases they hold.
pub async fn status(settings: &ClusterSettings) -> anyhow::Result<String> {
    // A separate id: the status command is not a node and must not take a
    // running node's place.
    let mut config = ClusterConfig::new(
        settings.url.clone(),
        format!("status-{}", domain::secret_token()),
    );
    config.prefix = settings.prefix.clone();
    let cluster = Cluster::connect(config).await?;
    let nodes = cluster.nodes().await?.list().await?;
    let leases = cluster.leases().await?.all().await?;
    let mut out = format!(
        "{} node(s) in cluster {:?} at {}\n",
        nodes.len(),
        settings.prefix,
        settings.url
    );
    out.push_str("NODE\tURL\tVIEWERS\tSOCKETS\tCPU%\tEGRESS\tRTT\tOWNS\n");
    for n in &nodes {
        let owns: Vec<String> = leases
            .iter()
            .filter(|(_, _, holder)| holder.node == n.id)
            .map(|(kind, id, _)| format!("{kind}:{id}"))
            .collect();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{:.0}\t{:.1} Mbit/s\t{:.1} ms\t{}\n",
            n.id,
            n.http_url,
            n.load.viewers,
            n.load.sockets,
            n.load.cpu_percent,
            n.load.egress_bps as f64 / 1e6,
            n.load.heartbeat_rtt_ms,
            if owns.is_empty() {
                "-".to_owned()
            } else {
                owns.join(",")
            }
        ));
    }
    Ok(out)
}

/// The node's load between two heartbeats.
struct LoadSampler {
    sfu: sfu::Sfu,
    live: live::LiveHub,
    last: Option<(Instant, u64, Option<u64>)>,
}

impl LoadSampler {
    fn new(sfu: sfu::Sfu, live: live::LiveHub) -> LoadSampler {
        LoadSampler {
            sfu,
            live,
            last: None,
        }
    }

    fn sample(&mut self) -> NodeLoad {
        let now = Instant::now();
        let media = self.sfu.media_metrics();
        let viewers = media.iter().map(|m| m.viewers as u64).sum();
        // Counters of rooms that ended leave the sum: a negative step is a
        // room gone, not negative traffic.
        let bytes: u64 = media.iter().map(|m| m.bytes_out).sum();
        let cpu = process_cpu_ticks();
        let (egress_bps, cpu_percent) = match self.last {
            Some((at, last_bytes, last_cpu)) => {
                let secs = now.saturating_duration_since(at).as_secs_f64().max(1e-3);
                let egress = bytes.saturating_sub(last_bytes) as f64 * 8.0 / secs;
                let cpu = match (cpu, last_cpu) {
                    (Some(c), Some(l)) => c.saturating_sub(l) as f64 / CLOCK_TICKS / secs * 100.0,
                    _ => 0.0,
                };
                (egress as u64, cpu as f32)
            }
            None => (0, 0.0),
        };
        self.last = Some((now, bytes, cpu));
        NodeLoad {
            viewers,
            sockets: self.live.open_sockets(),
            cpu_percent,
            egress_bps,
            heartbeat_rtt_ms: 0.0,
        }
    }
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux build that matters.
const CLOCK_TICKS: f64 = 100.0;

/// This process's user + system CPU time in clock ticks (Linux `/proc`;
/// elsewhere none, and the load says 0 %).
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the whole line: 12th and 13th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_cpu_time_is_read_and_grows() {
        let before = super::process_cpu_ticks().expect("/proc/self/stat on Linux");
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = super::process_cpu_ticks().unwrap();
        assert!(after > before, "{before} -> {after}");
    }
}
