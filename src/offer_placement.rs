//! Cluster mode: each live offer's one writer, placed with a NATS lease.
//!
//! The node that takes the lease `offer.<id>` writes the offer; its fencing
//! token goes into every commit (the order service checks it in
//! PostgreSQL). While it holds the lease it answers the offer's subject,
//! where other nodes send their taps, confirms and cancels by request/reply.
//! When the lease is lost, the subscription ends with it, so a node that no
//! longer writes the offer never answers for it.

use async_trait::async_trait;
use cluster::{Cluster, Lease, Leases, Unanswered};
use domain::OfferId;
use futures::StreamExt;
use orders::{ForwardedCalls, OfferClaim, OrdersError, Placement, Unreachable};
use std::sync::Arc;
use std::time::Duration;

/// How long a forwarded call waits for the writer's answer. Longer than a
/// commit under load; a call past it may have been done, so it is not
/// repeated.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

const LEASE_KIND: &str = "offer";

pub(crate) struct NatsPlacement {
    cluster: Cluster,
    leases: Leases,
}

impl NatsPlacement {
    pub(crate) async fn new(cluster: &Cluster) -> anyhow::Result<NatsPlacement> {
        Ok(NatsPlacement {
            leases: cluster.leases().await?,
            cluster: cluster.clone(),
        })
    }
}

#[async_trait]
impl Placement for NatsPlacement {
    async fn claim(
        &self,
        offer: &OfferId,
        calls: ForwardedCalls,
    ) -> Result<Option<Arc<dyn OfferClaim>>, OrdersError> {
        let unavailable = |what: &str, error: &dyn std::fmt::Display| {
            tracing::warn!(%offer, %error, "{what}");
            OrdersError::Unavailable
        };
        let lease = match self.leases.try_acquire(LEASE_KIND, offer.as_str()).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return Ok(None),
            Err(e) => return Err(unavailable("claiming the offer failed", &e)),
        };
        let subscribed = async {
            let subject = self.cluster.subjects().offer_taps(offer.as_str())?;
            let subscriber = self.cluster.client().subscribe(subject).await?;
            // At the server before anyone is told this node writes it.
            self.cluster.client().flush().await?;
            anyhow::Ok(subscriber)
        };
        let mut subscriber = match subscribed.await {
            Ok(subscriber) => subscriber,
            Err(e) => {
                lease.release().await;
                return Err(unavailable("serving the offer's calls failed", &e));
            }
        };
        let client = self.cluster.client().clone();
        let lost = lease.on_lost();
        let server = tokio::spawn(async move {
            tokio::pin!(lost);
            loop {
                let message = tokio::select! {
                    () = &mut lost => break,
                    message = subscriber.next() => message,
                };
                let Some(message) = message else { break };
                let Some(reply) = message.reply else { continue };
                let (calls, client) = (calls.clone(), client.clone());
                // Concurrently: the writer batches what arrives together
                // into one commit.
                tokio::spawn(async move {
                    let answer = calls.answer(&message.payload).await;
                    if let Err(e) = client.publish(reply, answer.into()).await {
                        tracing::warn!(error = %e, "a forwarded call's answer was not sent");
                    }
                });
            }
            let _ = subscriber.unsubscribe().await;
        });
        Ok(Some(Arc::new(NatsClaim {
            token: lease.token(),
            lease: tokio::sync::Mutex::new(Some(lease)),
            server,
        })))
    }

    async fn forward(&self, offer: &OfferId, call: Vec<u8>) -> Result<Vec<u8>, Unreachable> {
        let subject = self
            .cluster
            .subjects()
            .offer_taps(offer.as_str())
            .map_err(|_| Unreachable::NoWriter)?;
        match self.cluster.ask(subject, call, ANSWER_WITHIN).await {
            Ok(answer) => Ok(answer.to_vec()),
            Err(Unanswered::NoResponders) => Err(Unreachable::NoWriter),
            Err(e) => {
                tracing::warn!(%offer, error = %e, "a forwarded call got no answer");
                Err(Unreachable::Unknown)
            }
        }
    }
}

struct NatsClaim {
    token: u64,
    /// `None` once released.
    lease: tokio::sync::Mutex<Option<Lease>>,
    server: tokio::task::JoinHandle<()>,
}

#[async_trait]
impl OfferClaim for NatsClaim {
    fn token(&self) -> u64 {
        self.token
    }

    async fn lost(&self) {
        let lost = match &*self.lease.lock().await {
            Some(lease) => lease.on_lost(),
            None => return,
        };
        lost.await;
    }

    async fn release(&self) {
        if let Some(lease) = self.lease.lock().await.take() {
            lease.release().await;
        }
        self.server.abort();
    }
}

impl Drop for NatsClaim {
    fn drop(&mut self) {
        self.server.abort();
    }
}
