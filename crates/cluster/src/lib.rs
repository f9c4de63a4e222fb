//! Cluster coordination for fieldcast nodes, on NATS JetStream.
//!
//! Nothing here is a protocol of our own: nodes, leases and their fencing
//! tokens are JetStream key-value entries, and everything else travels on
//! core NATS subjects named by [`Subjects`].
//!
//! * [`nodes`]: each node heartbeats its address and load into a bucket whose
//!   entries expire, so a dead node disappears within the node TTL.
//! * [`lease`]: one holder per name (a room's leader, an offer's writer, a
//!   broadcast's origin), taken with create-if-absent and kept with
//!   compare-and-swap on the entry's revision. The revision at acquisition is
//!   the fencing token; a holder stops acting on its own clock before the
//!   server could let anyone else in.

pub mod lease;
pub mod nodes;

use async_nats::jetstream;
use bytes::Bytes;
use std::time::Duration;

pub use lease::{Lease, LeaseHolder, LeaseTerm, Leases};
pub use nodes::{HeartbeatRtt, NodeInfo, NodeLoad, NodeRegistry, Registration};

/// How a node joins the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `nats://host:4222` (several servers separated by commas).
    pub url: String,
    /// This node's id: unique in the cluster, stable across restarts.
    pub node_id: String,
    /// Prefix of every bucket and subject, so several clusters (or test runs)
    /// can share one NATS server.
    pub prefix: String,
    /// Entries of dead nodes vanish after this long.
    pub node_ttl: Duration,
    /// A lease not renewed for this long is free for others.
    pub lease_ttl: Duration,
}

impl ClusterConfig {
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_id: node_id.into(),
            prefix: "fieldcast".to_owned(),
            node_ttl: Duration::from_secs(6),
            lease_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("NATS at {url} has no JetStream (start nats-server with -js): {reason}")]
    NoJetStream { url: String, reason: String },
    #[error("{what} is not a valid cluster name: use letters, digits, '-' and '_'")]
    InvalidName { what: String },
    #[error("node id {node_id} is already in use by a running node")]
    NodeIdInUse { node_id: String },
    #[error("NATS request failed: {0}")]
    Nats(String),
}

/// Why [`Cluster::ask`] got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// Nobody serves the subject: the request reached no one.
    #[error("nobody serves this subject")]
    NoResponders,
    /// Nobody answered in time: the request may have been acted on.
    #[error("no answer in time")]
    TimedOut,
    #[error("request failed: {0}")]
    Failed(String),
}

impl ClusterError {
    fn nats(e: impl std::fmt::Display) -> Self {
        ClusterError::Nats(e.to_string())
    }
}

/// The keys of a bucket right now, read from the stream's subject counts in
/// one request. (async-nats' `Store::keys` runs a consumer that can wait
/// forever when an entry expires while it is being read.)
pub(crate) async fn live_keys(store: &jetstream::kv::Store) -> Result<Vec<String>, ClusterError> {
    use futures::TryStreamExt;
    let prefix = format!("$KV.{}.", store.name);
    let subjects: Vec<(String, usize)> = store
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(ClusterError::nats)?
        .try_collect()
        .await
        .map_err(ClusterError::nats)?;
    Ok(subjects
        .into_iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&prefix).map(str::to_owned))
        .collect())
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Names usable as one NATS subject token and in a bucket or key name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_name(name: &str) -> Result<(), ClusterError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ClusterError::InvalidName {
            what: name.to_owned(),
        })
    }
}

/// A connection to the cluster: the NATS client, its JetStream context and
/// the node's identity. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subjects: Subjects,
}

impl Cluster {
    /// Connects and checks that JetStream answers, so a misconfigured server
    /// is reported at start rather than at the first lease.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        check_name(&config.node_id)?;
        check_name(&config.prefix)?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("fieldcast {}", config.node_id))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(config.url.as_str())
            .await
            .map_err(|e| ClusterError::Connect {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        // `retry_on_initial_connect` returns at once; wait for the first
        // connection, bounded, so a wrong URL fails clearly.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::Connect {
                    url: config.url.clone(),
                    reason: "no answer within 5 s".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let jetstream = jetstream::new(client.clone());
        // Asked raw: async-nats' `query_account` wants fields a 2.9 server
        // (Debian's) does not send.
        let no_jetstream = |reason: String| ClusterError::NoJetStream {
            url: config.url.clone(),
            reason,
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            client.request("$JS.API.INFO", Bytes::new()),
        )
        .await
        .map_err(|_| no_jetstream("no answer within 5 s".to_owned()))?
        .map_err(|e| no_jetstream(e.to_string()))?;
        let info: serde_json::Value =
            serde_json::from_slice(&answer.payload).map_err(|e| no_jetstream(e.to_string()))?;
        if let Some(error) = info.get("error") {
            return Err(no_jetstream(error.to_string()));
        }
        let subjects = Subjects {
            prefix: config.prefix.clone(),
        };
        Ok(Cluster {
            config,
            client,
            jetstream,
            subjects,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The core NATS client, for the subjects in [`Cluster::subjects`].
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Whether the NATS connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends a request to whoever serves `subject` and waits up to `timeout`
    /// for the first answer.
    pub async fn ask(
        &self,
        subject: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, Unanswered> {
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));
        match self.client.send_request(subject, request).await {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => Unanswered::NoResponders,
                async_nats::RequestErrorKind::TimedOut => Unanswered::TimedOut,
                _ => Unanswered::Failed(e.to_string()),
            }),
        }
    }

    /// The node registry of this cluster (creates its bucket if needed).
    pub async fn nodes(&self) -> Result<NodeRegistry, ClusterError> {
        NodeRegistry::open(self).await
    }

    /// The leases of this cluster (creates their bucket if needed).
    pub async fn leases(&self) -> Result<Leases, ClusterError> {
        Leases::open(self).await
    }

    /// A key-value bucket named `<prefix>_<name>`, created if absent, whose
    /// entries expire `max_age` after their last write.
    pub(crate) async fn bucket(
        &self,
        name: &str,
        max_age: Duration,
    ) -> Result<jetstream::kv::Store, ClusterError> {
        let bucket = format!("{}_{name}", self.config.prefix);
        // The bucket's stream is made here rather than by async-nats'
        // `create_key_value`, which first asks for account details in a shape
        // a 2.9 server does not answer. Same layout: `KV_<bucket>` over
        // `$KV.<bucket>.>`, one message per key, rollups and direct gets.
        let stream = jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(format!("fieldcast {name}")),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: jetstream::stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        if let Err(e) = self.jetstream.get_or_create_stream(stream).await {
            tracing::debug!(bucket, error = %e, "bucket stream not created; opening it");
        }
        self.jetstream
            .get_key_value(&bucket)
            .await
            .map_err(ClusterError::nats)
    }
}

/// Subject names, one place for all of them. Every id in a subject is checked
/// to be one token, so a client-chosen string can never widen a subscription.
#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    fn token<'a>(&self, id: &'a str) -> Result<&'a str, ClusterError> {
        check_name(id)?;
        Ok(id)
    }

    /// Events a room's leader publishes (one message per event, every node).
    pub fn room_events(&self, room: &str) -> Result<String, ClusterError> {
        Ok(format!("{}.room.{}.events", self.prefix, self.token(room)?))
    }

    /// Commands other nodes send to a room's leader (request/reply).
    pub fn room_commands(&self, room: &str) -> Result<String, ClusterError> {
        Ok(format!(
            "{}.room.{}.commands",
            self.prefix,
            self.token(room)?
        ))
    }

    /// Buy taps other nodes send to an offer's writer (request/reply).
    pub fn offer_taps(&self, offer: &str) -> Result<String, ClusterError> {
        Ok(format!("{}.offer.{}.taps", self.prefix, self.token(offer)?))
    }

    /// Cache invalidations (sessions, bans, renames) every node applies.
    pub fn invalidations(&self) -> String {
        format!("{}.invalidate", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_tokens() {
        assert!(is_valid_name("brd_3k9x"));
        assert!(is_valid_name("node-a"));
        for bad in ["", "a.b", "a b", "*", ">", "brd_\u{4e00}", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        let s = Subjects {
            prefix: "fc".into(),
        };
        assert_eq!(s.room_events("brd_1").unwrap(), "fc.room.brd_1.events");
        assert!(s.room_commands("brd_1.>").is_err());
    }
}
