//! Leases: one holder per name in the whole cluster.
//!
//! A lease is an entry in a JetStream key-value bucket whose entries expire
//! `lease_ttl` after their last write. It is taken with create-if-absent and
//! kept by compare-and-swap on the entry's revision, so a holder that lost it
//! (the entry expired, someone else created it) finds out at its next renewal.
//!
//! Two guarantees, and who gives them:
//! * **The holder stops first.** [`LeaseTerm`] counts the lease's life from the
//!   moment the last confirmed renewal was *sent*: the server stamped it later,
//!   so the server's expiry comes later than the holder's. The holder treats
//!   the lease as gone a margin before that, whether or not NATS answers.
//! * **A paused holder cannot commit.** A holder that checked
//!   [`Lease::is_held`] and then stalled (a long GC-like pause, SIGSTOP) may
//!   wake after someone else took over. Against that, every write made under
//!   a lease carries [`Lease::token`], the entry's revision at acquisition: it
//!   only grows, and the system of record refuses a token older than the
//!   newest it has seen (e.g. PostgreSQL checks it in the same transaction).

use crate::{Cluster, ClusterError, check_name, lock, unix_millis};
use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// The holder's view of its lease, on its own monotonic clock. Sans-I/O: the
/// renewal task feeds it what was sent and what the server said.
#[derive(Clone, Debug)]
pub struct LeaseTerm {
    ttl: Duration,
    /// When the newest write the server confirmed was sent.
    confirmed_sent_at: Instant,
    refused: bool,
}

impl LeaseTerm {
    /// A term starting with the acquisition (or renewal) sent at `sent_at`.
    pub fn new(ttl: Duration, sent_at: Instant) -> Self {
        Self {
            ttl,
            confirmed_sent_at: sent_at,
            refused: false,
        }
    }

    /// Room left for clock-rate differences and for acting on the answer:
    /// a fifth of the TTL, at least 100 ms.
    fn margin(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_millis(100)).min(self.ttl)
    }

    /// Past this instant the holder must not act under the lease.
    pub fn valid_until(&self) -> Instant {
        self.confirmed_sent_at + (self.ttl - self.margin())
    }

    /// When to send the next renewal: a third of the way, so two attempts
    /// can fail before the term runs out.
    pub fn renew_at(&self) -> Instant {
        self.confirmed_sent_at + self.ttl / 3
    }

    /// The server confirmed a renewal that was sent at `sent_at`.
    pub fn confirmed(&mut self, sent_at: Instant) {
        if sent_at > self.confirmed_sent_at {
            self.confirmed_sent_at = sent_at;
        }
    }

    /// The server refused a renewal: someone else holds the name now.
    pub fn refused(&mut self) {
        self.refused = true;
    }

    pub fn is_held(&self, now: Instant) -> bool {
        !self.refused && now < self.valid_until()
    }
}

/// What a lease entry says about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    pub node: String,
    /// Unix milliseconds when this holder acquired it.
    pub since_ms: i64,
}

/// The leases of one cluster.
#[derive(Clone, Debug)]
pub struct Leases {
    store: kv::Store,
    node_id: String,
    ttl: Duration,
}

/// One held lease. Renewed in the background until released, dropped or
/// lost; [`Lease::lost`] resolves when it is gone.
#[derive(Debug)]
pub struct Lease {
    kind: String,
    id: String,
    token: u64,
    term: Arc<Mutex<LeaseTerm>>,
    lost: watch::Receiver<bool>,
    release: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

fn key(kind: &str, id: &str) -> Result<String, ClusterError> {
    check_name(kind)?;
    check_name(id)?;
    Ok(format!("{kind}.{id}"))
}

impl Leases {
    pub(crate) async fn open(cluster: &Cluster) -> Result<Leases, ClusterError> {
        let ttl = cluster.config().lease_ttl;
        Ok(Leases {
            store: cluster.bucket("leases", ttl).await?,
            node_id: cluster.node_id().to_owned(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease `kind.id` if nobody holds it. `Ok(None)`: someone does.
    pub async fn try_acquire(&self, kind: &str, id: &str) -> Result<Option<Lease>, ClusterError> {
        let key = key(kind, id)?;
        let value = Bytes::from(
            serde_json::to_vec(&LeaseHolder {
                node: self.node_id.clone(),
                since_ms: unix_millis(),
            })
            .expect("a lease holder serializes"),
        );
        let sent_at = Instant::now();
        let revision = match self.store.create(&key, value.clone()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(ClusterError::nats(e)),
        };
        let term = Arc::new(Mutex::new(LeaseTerm::new(self.ttl, sent_at)));
        let (lost_tx, lost) = watch::channel(false);
        let (release_tx, release_rx) = oneshot::channel();
        tokio::spawn(renew(
            self.store.clone(),
            key,
            value,
            revision,
            term.clone(),
            lost_tx,
            release_rx,
        ));
        Ok(Some(Lease {
            kind: kind.to_owned(),
            id: id.to_owned(),
            token: revision,
            term,
            lost,
            release: Some(release_tx),
        }))
    }

    /// Waits until the lease `kind.id` is free and takes it, trying a few
    /// times per TTL. Returns when taken or when `stop` resolves (`Ok(None)`).
    pub async fn acquire_when_free(
        &self,
        kind: &str,
        id: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Option<Lease>, ClusterError> {
        tokio::pin!(stop);
        loop {
            if let Some(lease) = self.try_acquire(kind, id).await? {
                return Ok(Some(lease));
            }
            tokio::select! {
                _ = &mut stop => return Ok(None),
                _ = tokio::time::sleep(self.ttl / 8) => {}
            }
        }
    }

    /// Who holds `kind.id`, if anyone, with the current fencing token.
    pub async fn holder(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(LeaseHolder, u64)>, ClusterError> {
        let key = key(kind, id)?;
        let entry = self.store.entry(key).await.map_err(ClusterError::nats)?;
        Ok(entry.and_then(|e| {
            (e.operation == kv::Operation::Put)
                .then(|| {
                    serde_json::from_slice(&e.value)
                        .ok()
                        .map(|h| (h, e.revision))
                })
                .flatten()
        }))
    }

    /// Every held lease: `(kind, id, holder)`.
    pub async fn all(&self) -> Result<Vec<(String, String, LeaseHolder)>, ClusterError> {
        let keys = crate::live_keys(&self.store).await?;
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            let Some((kind, id)) = key.split_once('.') else {
                continue;
            };
            if let Some((holder, _)) = self.holder(kind, id).await? {
                held.push((kind.to_owned(), id.to_owned(), holder));
            }
        }
        Ok(held)
    }
}

/// Keeps the lease alive until it is released, dropped, or refused.
async fn renew(
    store: kv::Store,
    key: String,
    value: Bytes,
    mut revision: u64,
    term: Arc<Mutex<LeaseTerm>>,
    lost: watch::Sender<bool>,
    mut release: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let snapshot = |term: &Arc<Mutex<LeaseTerm>>| lock(term).clone();
    let mut retry_at: Option<Instant> = None;
    loop {
        let current = snapshot(&term);
        let wake = retry_at
            .unwrap_or_else(|| current.renew_at())
            .min(current.valid_until());
        tokio::select! {
            asked = &mut release => {
                // Give the name back at once, but only if it is still ours.
                let _ = store.delete_expect_revision(&key, Some(revision)).await;
                let _ = lost.send(true);
                if let Ok(done) = asked {
                    let _ = done.send(());
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        if !snapshot(&term).is_held(Instant::now()) {
            tracing::warn!(lease = %key, "lease ran out before a renewal was confirmed");
            let _ = lost.send(true);
            return;
        }
        let sent_at = Instant::now();
        let budget = snapshot(&term)
            .valid_until()
            .saturating_duration_since(sent_at);
        match tokio::time::timeout(budget, store.update(&key, value.clone(), revision)).await {
            Ok(Ok(next)) => {
                revision = next;
                lock(&term).confirmed(sent_at);
                retry_at = None;
            }
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(lease = %key, "lease taken over or expired");
                lock(&term).refused();
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %key, error = %e, "lease renewal failed; retrying");
                retry_at = Some(Instant::now() + (term_ttl(&term) / 10));
            }
            Err(_) => retry_at = Some(Instant::now()),
        }
    }
}

fn term_ttl(term: &Arc<Mutex<LeaseTerm>>) -> Duration {
    lock(term).ttl
}

impl Lease {
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fencing token: carry it with every write made under this lease.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Whether the holder may act under the lease right now.
    pub fn is_held(&self) -> bool {
        !*self.lost.borrow() && lock(&self.term).is_held(Instant::now())
    }

    /// Resolves once the lease is gone (refused, ran out or released).
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|l| *l).await;
    }

    /// [`Lease::lost`] as a future that owns what it needs, for a task that
    /// outlives this borrow.
    pub fn on_lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            let _ = lost.wait_for(|l| *l).await;
        }
    }

    /// Gives the lease back so another node can take it without waiting for
    /// the TTL.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if release.send(done_tx).is_ok() {
                let _ = done_rx.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_stops_before_the_server_would_let_anyone_in() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        let term = LeaseTerm::new(ttl, t0);
        // The server expires the entry no earlier than t0 + ttl.
        assert!(term.valid_until() < t0 + ttl);
        assert!(term.is_held(t0 + Duration::from_secs(3)));
        assert!(!term.is_held(t0 + Duration::from_millis(4_000)));
        assert!(term.renew_at() < term.valid_until());
    }

    #[test]
    fn a_confirmed_renewal_extends_from_when_it_was_sent() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        let mut term = LeaseTerm::new(ttl, t0);
        // Confirmed late, but sent at 1 s: the term counts from 1 s.
        term.confirmed(t0 + Duration::from_secs(1));
        assert_eq!(
            term.valid_until(),
            t0 + Duration::from_secs(1) + ttl - ttl / 5
        );
        // An older confirmation arriving late never shortens or lengthens it.
        term.confirmed(t0 + Duration::from_millis(500));
        assert_eq!(
            term.valid_until(),
            t0 + Duration::from_secs(1) + ttl - ttl / 5
        );
    }

    #[test]
    fn a_refused_renewal_ends_the_term_at_once() {
        let t0 = Instant::now();
        let mut term = LeaseTerm::new(Duration::from_secs(5), t0);
        term.refused();
        assert!(!term.is_held(t0));
    }

    #[test]
    fn tiny_ttls_keep_a_margin_without_underflow() {
        let t0 = Instant::now();
        let term = LeaseTerm::new(Duration::from_millis(50), t0);
        assert!(!term.is_held(t0 + Duration::from_millis(1)) || term.valid_until() > t0);
        assert!(term.valid_until() >= t0);
    }
}
