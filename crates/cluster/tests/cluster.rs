//! Against a real NATS server with JetStream (FIELDCAST_TEST_NATS, default
//! nats://127.0.0.1:4222). Each test uses its own bucket prefix. Without a
//! server the tests say SKIPPED, unless FIELDCAST_REQUIRE_NATS=1.

use cluster::{Cluster, ClusterConfig, ClusterError, NodeInfo, NodeLoad};
use std::time::Duration;
use tokio::time::{Instant, timeout};

fn nats_url() -> String {
    std::env::var("FIELDCAST_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn prefix() -> String {
    format!("fctest{}", rand::random::<u32>())
}

/// A node of a fresh test cluster, or `None` (skipped) without NATS.
async fn node(prefix: &str, id: &str, ttl: Duration) -> Option<Cluster> {
    let mut config = ClusterConfig::new(nats_url(), id);
    config.prefix = prefix.to_owned();
    config.node_ttl = ttl;
    config.lease_ttl = ttl;
    match Cluster::connect(config).await {
        Ok(c) => Some(c),
        Err(e) if std::env::var("FIELDCAST_REQUIRE_NATS").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: no NATS with JetStream ({e})");
            None
        }
        Err(e) => panic!("NATS required: {e}"),
    }
}

async fn drop_buckets(c: &Cluster, prefix: &str) {
    for b in ["nodes", "leases"] {
        let _ = c
            .jetstream()
            .delete_key_value(format!("{prefix}_{b}"))
            .await;
    }
}

fn info(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        instance: format!("{}", rand::random::<u64>()),
        http_url: format!("http://{id}.test"),
        media: vec!["192.0.2.1:8189".to_owned()],
        version: "test".to_owned(),
        started_at_ms: 0,
        heartbeat_at_ms: 0,
        load: NodeLoad::default(),
    }
}

/// Polls `check` until it is true or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + within;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn nodes_see_each_other_and_a_dead_node_disappears() {
    let p = prefix();
    let Some(a) = node(&p, "node-a", Duration::from_secs(2)).await else {
        return;
    };
    let b = node(&p, "node-b", Duration::from_secs(2)).await.unwrap();
    let registry_a = a.nodes().await.unwrap();
    let registry_b = b.nodes().await.unwrap();
    let _reg_a = registry_a
        .register(info("node-a"), || NodeLoad {
            viewers: 7,
            ..NodeLoad::default()
        })
        .await
        .unwrap();
    let reg_b = registry_b
        .register(info("node-b"), NodeLoad::default)
        .await
        .unwrap();

    let ids = |r: cluster::NodeRegistry| async move {
        r.list()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(registry_a.clone()).await, ["node-a", "node-b"]);
    // Load arrives with the heartbeats.
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = registry_b.clone();
            async move {
                r.list()
                    .await
                    .unwrap()
                    .iter()
                    .any(|n| n.id == "node-a" && n.load.viewers == 7)
            }
        })
        .await,
        "node-a's load never showed"
    );

    // node-b dies without leaving (its connection to NATS goes away): its
    // heartbeats stop, its entry expires.
    timeout(Duration::from_secs(10), b.client().drain())
        .await
        .expect("drain hung")
        .unwrap();
    let gone = eventually(Duration::from_secs(10), || {
        let r = registry_a.clone();
        async move { !r.list().await.unwrap().iter().any(|n| n.id == "node-b") }
    })
    .await;
    assert!(gone, "a dead node stayed in the registry");
    drop(reg_b);
    drop_buckets(&a, &p).await;
}

#[tokio::test]
async fn a_node_id_cannot_be_used_twice() {
    let p = prefix();
    let Some(a) = node(&p, "twin", Duration::from_secs(1)).await else {
        return;
    };
    let registry = a.nodes().await.unwrap();
    let _first = registry
        .register(info("twin"), NodeLoad::default)
        .await
        .unwrap();
    let second = registry.register(info("twin"), NodeLoad::default).await;
    assert!(
        matches!(second, Err(ClusterError::NodeIdInUse { .. })),
        "{second:?}"
    );
    drop_buckets(&a, &p).await;
}

#[tokio::test]
async fn one_holder_and_a_larger_token_for_the_next() {
    let p = prefix();
    let ttl = Duration::from_secs(2);
    let Some(a) = node(&p, "a", ttl).await else {
        return;
    };
    let b = node(&p, "b", ttl).await.unwrap();
    let (la, lb) = (a.leases().await.unwrap(), b.leases().await.unwrap());

    let held = la
        .try_acquire("offer", "ofr_1")
        .await
        .unwrap()
        .expect("free lease");
    assert!(held.is_held());
    assert!(lb.try_acquire("offer", "ofr_1").await.unwrap().is_none());
    let (holder, _) = lb.holder("offer", "ofr_1").await.unwrap().unwrap();
    assert_eq!(holder.node, "a");

    // Renewals keep it past several TTLs.
    tokio::time::sleep(ttl * 3).await;
    assert!(held.is_held(), "a renewed lease was lost");
    assert!(lb.try_acquire("offer", "ofr_1").await.unwrap().is_none());

    // Released: the other node gets it at once, with a larger token.
    let old_token = held.token();
    held.release().await;
    let next = lb
        .try_acquire("offer", "ofr_1")
        .await
        .unwrap()
        .expect("released lease");
    assert!(next.token() > old_token);
    let all = la.all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].0.as_str(), all[0].1.as_str(), all[0].2.node.as_str()),
        ("offer", "ofr_1", "b")
    );
    drop_buckets(&a, &p).await;
}

#[tokio::test]
async fn a_holder_cut_off_from_nats_stops_before_anyone_else_starts() {
    let p = prefix();
    let ttl = Duration::from_secs(2);
    let Some(a) = node(&p, "a", ttl).await else {
        return;
    };
    let b = node(&p, "b", ttl).await.unwrap();
    let (la, lb) = (a.leases().await.unwrap(), b.leases().await.unwrap());
    let held = la.try_acquire("room", "brd_1").await.unwrap().unwrap();

    // Cut node a off: its renewals can no longer reach the server.
    timeout(Duration::from_secs(10), a.client().drain())
        .await
        .expect("drain hung")
        .unwrap();
    let cut_at = Instant::now();
    timeout(ttl * 2, held.lost())
        .await
        .expect("the holder never noticed");
    let stopped_at = Instant::now();
    assert!(!held.is_held());

    // Node b gets the lease only once it expired on the server, which is
    // after node a had stopped acting.
    let taken = timeout(
        ttl * 4,
        lb.acquire_when_free("room", "brd_1", std::future::pending()),
    )
    .await
    .expect("the lease never became free")
    .unwrap()
    .unwrap();
    let taken_at = Instant::now();
    assert!(
        stopped_at < taken_at,
        "a new holder started while the old one still acted"
    );
    assert!(taken_at - cut_at < ttl * 3, "took {:?}", taken_at - cut_at);
    assert!(taken.token() > held.token());
    drop_buckets(&b, &p).await;
}

#[tokio::test]
async fn a_holder_whose_lease_was_taken_hears_it_at_the_next_renewal() {
    let p = prefix();
    let ttl = Duration::from_secs(3);
    let Some(a) = node(&p, "a", ttl).await else {
        return;
    };
    let b = node(&p, "b", ttl).await.unwrap();
    let (la, lb) = (a.leases().await.unwrap(), b.leases().await.unwrap());
    let held = la.try_acquire("offer", "ofr_2").await.unwrap().unwrap();

    // An operator (or a bug) purges the entry and b takes the name: a must
    // not go on believing it holds it.
    let bucket = b
        .jetstream()
        .get_key_value(format!("{p}_leases"))
        .await
        .unwrap();
    bucket.purge("offer.ofr_2").await.unwrap();
    let taken = lb
        .try_acquire("offer", "ofr_2")
        .await
        .unwrap()
        .expect("purged lease is free");
    timeout(ttl, held.lost())
        .await
        .expect("the old holder never noticed");
    assert!(!held.is_held());
    assert!(taken.is_held());
    // The old holder's renewal task must not have deleted the new holder's entry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (holder, _) = la.holder("offer", "ofr_2").await.unwrap().unwrap();
    assert_eq!(holder.node, "b");
    drop_buckets(&a, &p).await;
}
