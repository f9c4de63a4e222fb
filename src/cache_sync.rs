//! Cluster: what a write on one node made stale in its read caches (a
//! revoked session, a renamed guest, a ban or unban) is published on NATS,
//! and every other node drops the same entries. A sign-out or a ban then
//! holds on every node within a NATS hop instead of the caches' 5 s. Core
//! NATS, at most once: a message lost costs at most that 5 s window.

use anyhow::Context;
use cluster::Cluster;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use store::{CacheChange, Store};
use tokio::task::JoinHandle;

/// Changes waiting to be published; past it a change is dropped (logged)
/// and other nodes fall back to the 5 s window for it.
const OUTBOX: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Notice {
    node: String,
    change: CacheChange,
}

/// The subject every node of one cluster shares.
fn subject(cluster: &Cluster) -> String {
    format!("{}.cache", cluster.config().prefix)
}

/// Publishes this store's changes and applies other nodes' until aborted.
pub(crate) struct CacheSync {
    tasks: [JoinHandle<()>; 2],
}

impl CacheSync {
    pub(crate) async fn start(cluster: &Cluster, store: &Store) -> anyhow::Result<CacheSync> {
        let subject = subject(cluster);
        let node = cluster.node_id().to_owned();
        let client = cluster.client().clone();
        let mut incoming = client
            .subscribe(subject.clone())
            .await
            .context("subscribing to other nodes' cache changes")?;
        // Subscribed at the server before any change of ours can race it.
        client
            .flush()
            .await
            .context("subscribing to cache changes")?;

        let (tx, mut outbox) = tokio::sync::mpsc::channel::<CacheChange>(OUTBOX);
        if !store.on_cache_change(move |change| {
            if tx.try_send(change.clone()).is_err() {
                tracing::warn!(
                    ?change,
                    "cache change not published: other nodes see it within 5 s"
                );
            }
        }) {
            anyhow::bail!("this store's cache changes are already published");
        }
        let publisher = {
            let node = node.clone();
            tokio::spawn(async move {
                while let Some(change) = outbox.recv().await {
                    let notice = Notice {
                        node: node.clone(),
                        change,
                    };
                    let body = serde_json::to_vec(&notice).expect("a notice serializes");
                    if let Err(e) = client.publish(subject.clone(), body.into()).await {
                        tracing::warn!(error = %e, "cache change not published: other nodes see it within 5 s");
                    }
                }
            })
        };
        let store = store.clone();
        let listener = tokio::spawn(async move {
            while let Some(message) = incoming.next().await {
                match serde_json::from_slice::<Notice>(&message.payload) {
                    Ok(notice) if notice.node == node => {}
                    Ok(notice) => store.apply_cache_change(&notice.change),
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable cache change on NATS, ignored")
                    }
                }
            }
        });
        Ok(CacheSync {
            tasks: [publisher, listener],
        })
    }

    pub(crate) fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
