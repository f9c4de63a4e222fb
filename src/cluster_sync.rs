//! Cluster: what a write on one node made stale elsewhere is published on
//! NATS, and every other node applies it.
//!
//! * Read caches: a revoked session, a renamed guest, a ban or unban drops
//!   the same entries on every node, so a sign-out or a ban holds there
//!   within a NATS hop instead of the caches' 5 s.
//! * Open rooms: a ban, unban, timeout or blocked-word change reaches the
//!   shop's rooms on other nodes, so a banned viewer's socket there closes
//!   too.
//! * Offers: what an offer's writer (on one node) committed (stock, a sale,
//!   a private "order placed" or "hold expired") reaches the rooms on every
//!   node.
//!
//! Core NATS, at most once: a cache change lost costs at most the 5 s
//! window; a room that missed a change has it when it next opens; an offer
//! event lost is corrected by the offer's next snapshot.

use anyhow::Context;
use cluster::Cluster;
use domain::ShopId;
use futures::StreamExt;
use live::{LiveEvent, LiveHub, ShopEvent};
use orders::{OfferEvent, OrderService};
use serde::{Deserialize, Serialize};
use store::{CacheChange, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// Changes waiting to be published; past it a change is dropped (logged).
const OUTBOX: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Notice {
    node: String,
    #[serde(flatten)]
    change: Change,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
enum Change {
    Cache { change: CacheChange },
    Shop { shop: ShopId, event: ShopEvent },
    Offer { event: OfferEvent },
}

/// Publishes this node's changes and applies other nodes' until stopped.
pub(crate) struct ClusterSync {
    tasks: [JoinHandle<()>; 4],
}

impl ClusterSync {
    pub(crate) async fn start(
        cluster: &Cluster,
        store: &Store,
        live: &LiveHub,
        orders: &OrderService,
    ) -> anyhow::Result<ClusterSync> {
        let subject = format!("{}.changes", cluster.config().prefix);
        let node = cluster.node_id().to_owned();
        let client = cluster.client().clone();
        let mut incoming = client
            .subscribe(subject.clone())
            .await
            .context("subscribing to other nodes' changes")?;
        // Subscribed at the server before any change of ours can race it.
        client
            .flush()
            .await
            .context("subscribing to other nodes' changes")?;

        let (tx, mut outbox) = tokio::sync::mpsc::channel::<Change>(OUTBOX);
        let cache_tx = tx.clone();
        if !store.on_cache_change(move |change| {
            let change = Change::Cache {
                change: change.clone(),
            };
            if cache_tx.try_send(change).is_err() {
                tracing::warn!("cache change not published: other nodes see it within 5 s");
            }
        }) {
            anyhow::bail!("this store's cache changes are already published");
        }
        let offers = match orders.outward_events() {
            Some(mut events) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    loop {
                        match events.recv().await {
                            Ok(event) => {
                                if tx.send(Change::Offer { event }).await.is_err() {
                                    return;
                                }
                            }
                            Err(RecvError::Lagged(n)) => tracing::warn!(
                                missed = n,
                                "offer events not published: other nodes' rooms catch up at the next snapshot"
                            ),
                            Err(RecvError::Closed) => return,
                        }
                    }
                })
            }
            None => anyhow::bail!("the order service was not started for a cluster"),
        };
        let mut events = live.events();
        let rooms = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(LiveEvent::ShopWide { shop, event }) => {
                        if tx.send(Change::Shop { shop, event }).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => tracing::warn!(
                        missed = n,
                        "shop-wide moderation changes not published: other nodes' open rooms miss them until they reopen"
                    ),
                    Err(RecvError::Closed) => return,
                }
            }
        });
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
                        tracing::warn!(error = %e, "a change was not published to the other nodes");
                    }
                }
            })
        };
        let store = store.clone();
        let live = live.clone();
        let orders = orders.clone();
        let listener = tokio::spawn(async move {
            while let Some(message) = incoming.next().await {
                match serde_json::from_slice::<Notice>(&message.payload) {
                    Ok(notice) if notice.node == node => {}
                    Ok(Notice {
                        change: Change::Cache { change },
                        ..
                    }) => store.apply_cache_change(&change),
                    Ok(Notice {
                        change: Change::Shop { shop, event },
                        ..
                    }) => live.apply_shop_event(&shop, event),
                    Ok(Notice {
                        change: Change::Offer { event },
                        ..
                    }) => orders.apply_remote_event(event),
                    Err(e) => tracing::warn!(error = %e, "unreadable change on NATS, ignored"),
                }
            }
        });
        Ok(ClusterSync {
            tasks: [rooms, offers, publisher, listener],
        })
    }

    pub(crate) fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
