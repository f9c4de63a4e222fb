//! The node registry: who is in the cluster, where to reach them, how loaded
//! they are. Each node rewrites its own entry every heartbeat; the bucket's
//! entries expire after the node TTL, so a node that died (or lost NATS)
//! disappears by itself.

use crate::{Cluster, ClusterError, lock, unix_millis};
use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a node tells the others about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Changes at every start, so a restarted node is told apart from the
    /// process it replaces, and two processes with one id are caught.
    pub instance: String,
    /// The node's public HTTP(S) URL.
    pub http_url: String,
    /// The media addresses it advertises to WebRTC peers (`ip:port`).
    pub media: Vec<String>,
    pub version: String,
    /// Unix milliseconds.
    pub started_at_ms: i64,
    /// Unix milliseconds of this heartbeat, by the node's clock.
    pub heartbeat_at_ms: i64,
    pub load: NodeLoad,
}

/// A node's load, as placement and operators read it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Connected media viewers.
    pub viewers: u64,
    /// Open live-channel websockets.
    pub sockets: u64,
    /// Process CPU use over the last heartbeat, percent of one core.
    pub cpu_percent: f32,
    /// Media egress, bits per second.
    pub egress_bps: u64,
    /// How long the last heartbeat took to be stored (NATS round trip).
    pub heartbeat_rtt_ms: f32,
}

#[derive(Clone, Debug)]
pub struct NodeRegistry {
    store: kv::Store,
    ttl: Duration,
}

/// This node's place in the registry, kept fresh in the background. Dropping
/// it (or [`Registration::leave`]) takes the entry out at once.
#[derive(Debug)]
pub struct Registration {
    leave: Option<oneshot::Sender<oneshot::Sender<()>>>,
    last_rtt: Arc<Mutex<Option<Duration>>>,
}

impl NodeRegistry {
    pub(crate) async fn open(cluster: &Cluster) -> Result<NodeRegistry, ClusterError> {
        let ttl = cluster.config().node_ttl;
        Ok(NodeRegistry {
            store: cluster.bucket("nodes", ttl).await?,
            ttl,
        })
    }

    /// Enters `info` and keeps it fresh, asking `load` for the current load
    /// at every heartbeat (a third of the TTL). Fails with
    /// [`ClusterError::NodeIdInUse`] if another live process holds the id:
    /// a node restarted right after a crash waits for its old entry to
    /// expire first.
    pub async fn register(
        &self,
        mut info: NodeInfo,
        load: impl Fn() -> NodeLoad + Send + 'static,
    ) -> Result<Registration, ClusterError> {
        let key = info.id.clone();
        crate::check_name(&key)?;
        let give_up = Instant::now() + self.ttl + Duration::from_secs(1);
        let mut revision = loop {
            info.heartbeat_at_ms = unix_millis();
            let value = encode(&info);
            match self.store.create(&key, value).await {
                Ok(revision) => break revision,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if Instant::now() > give_up {
                        return Err(ClusterError::NodeIdInUse { node_id: key });
                    }
                    tokio::time::sleep(self.ttl / 6).await;
                }
                Err(e) => return Err(ClusterError::nats(e)),
            }
        };
        let (leave_tx, mut leave_rx) = oneshot::channel::<oneshot::Sender<()>>();
        let last_rtt: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
        let rtt = last_rtt.clone();
        let store = self.store.clone();
        let every = self.ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    asked = &mut leave_rx => {
                        let _ = store.delete_expect_revision(&key, Some(revision)).await;
                        if let Ok(done) = asked {
                            let _ = done.send(());
                        }
                        return;
                    }
                    _ = tokio::time::sleep(every) => {}
                }
                info.load = load();
                info.load.heartbeat_rtt_ms =
                    lock(&rtt).map(|d| d.as_secs_f32() * 1e3).unwrap_or(0.0);
                info.heartbeat_at_ms = unix_millis();
                let sent = Instant::now();
                // Compare-and-swap: if the entry expired during a NATS outage
                // and another process took the id, this one must not fight it.
                match store.update(&key, encode(&info), revision).await {
                    Ok(next) => {
                        revision = next;
                        *lock(&rtt) = Some(sent.elapsed());
                    }
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // Expired while NATS was unreachable: enter again.
                        match store.create(&key, encode(&info)).await {
                            Ok(next) => revision = next,
                            Err(e) => {
                                tracing::error!(node = %key, error = %e, "node id taken by another process")
                            }
                        }
                    }
                    Err(e) => tracing::warn!(node = %key, error = %e, "heartbeat failed"),
                }
            }
        });
        Ok(Registration {
            leave: Some(leave_tx),
            last_rtt,
        })
    }

    /// The nodes alive now, ordered by id.
    pub async fn list(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let keys = crate::live_keys(&self.store).await?;
        let mut nodes = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = self.store.get(&key).await.map_err(ClusterError::nats)?
                && let Ok(info) = serde_json::from_slice::<NodeInfo>(&value)
            {
                nodes.push(info);
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}

/// Reads a [`Registration`]'s last heartbeat round trip from elsewhere (a
/// metrics task), without holding the registration.
#[derive(Clone, Debug)]
pub struct HeartbeatRtt(Arc<Mutex<Option<Duration>>>);

impl HeartbeatRtt {
    pub fn get(&self) -> Option<Duration> {
        *lock(&self.0)
    }
}

impl Registration {
    /// The last heartbeat's NATS round trip: the node's cluster lag.
    pub fn heartbeat_rtt(&self) -> Option<Duration> {
        *lock(&self.last_rtt)
    }

    /// A reader of [`Registration::heartbeat_rtt`] that outlives a borrow.
    pub fn heartbeat_rtt_reader(&self) -> HeartbeatRtt {
        HeartbeatRtt(self.last_rtt.clone())
    }

    /// Leaves the registry now instead of after the TTL.
    pub async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if leave.send(done_tx).is_ok() {
                let _ = done_rx.await;
            }
        }
    }
}

fn encode(info: &NodeInfo) -> Bytes {
    Bytes::from(serde_json::to_vec(info).expect("node info serializes"))
}
