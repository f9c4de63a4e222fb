//! Orders across the nodes of a cluster: one writer per offer in the whole
//! cluster, taps on every node reaching it, and another node taking over
//! when the writer's node is killed mid-sale. PostgreSQL and NATS
//! (FIELDCAST_TEST_NATS); skipped without them unless required.

use crate::cluster::{drop_buckets, nats_available, nats_url, settings};
use crate::crash::{farmer_with_offer, guest_at, phone, post, start_server_with};
use crate::harness::*;
use crate::live::{Phone, next_of, send};
use crate::orders::{guest, sale};
use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::testing::TestDb;

/// Who holds the lease on an offer's writer, if anyone.
async fn writer_of(prefix: &str, offer: &str) -> Option<String> {
    let mut config = cluster::ClusterConfig::new(nats_url(), "test-probe");
    config.prefix = prefix.to_owned();
    let c = cluster::Cluster::connect(config).await.unwrap();
    let leases = c.leases().await.unwrap();
    leases
        .holder("offer", offer)
        .await
        .unwrap()
        .map(|(holder, _)| holder.node)
}

async fn tap(
    buyer: &Client,
    base: &str,
    offer: &str,
    key: &str,
) -> reqwest::Result<(StatusCode, Value)> {
    let res = buyer
        .post(format!("{base}/api/v1/offers/{offer}/reservations"))
        .header("origin", base)
        .header("idempotency-key", key)
        .json(&json!({"quantity": 1}))
        .send()
        .await?;
    let status = res.status();
    Ok((status, res.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_on_three_nodes_sell_the_stock_exactly_once_through_one_writer() {
    const UNITS: u32 = 100;
    const BUYERS: usize = 200;
    const TAPS_EACH: usize = 10;
    if !nats_available().await {
        return;
    }
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let prefix = format!("it{}", domain::secret_token().to_lowercase());
    let url = db.url.clone();
    let a = TestApp::spawn_with(db, |c| {
        c.cluster = Some(settings(c, &prefix, "node-a"));
        c.limits.guest = api::limits::Rate::per_minute(1000, 1000);
    })
    .await;
    let mut others = Vec::new();
    for node in ["node-b", "node-c"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = a.config.clone();
        config.database_url = url.clone();
        config.data_dir = dir.path().to_owned();
        config.cluster = Some(settings(&config, &prefix, node));
        others.push((fieldcast::start(config).await.expect("node starts"), dir));
    }
    let bases = [a.url(""), others[0].0.url(""), others[1].0.url("")];

    // One bag each for the first hundred of two hundred buyers.
    let s = sale(&a, UNITS, 1).await;
    assert_eq!(
        writer_of(&prefix, &s.offer).await.as_deref(),
        Some("node-a"),
        "the node that opened the offer writes it"
    );
    // The farmer pins it in the room on node c, where a viewer watches.
    let owner = Phone::signed_in(&a, "13800138000").await;
    let mut owner_on_c = owner.connect_at(&bases[2], &s.broadcast).await;
    next_of(&mut owner_on_c, "hello").await;
    send(
        &mut owner_on_c,
        json!({"type": "pin_offer", "offer": s.offer}),
    )
    .await;
    assert_eq!(
        next_of(&mut owner_on_c, "offer_pinned").await["offer"]["available"],
        UNITS
    );
    let watcher = Phone::guest(&a, "看热闹").await;
    let mut watcher_on_c = watcher.connect_at(&bases[2], &s.broadcast).await;
    next_of(&mut watcher_on_c, "hello").await;

    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        buyers.push(guest(&a, &format!("买家{i}")).await);
    }
    let taps = (0..BUYERS).flat_map(|b| (0..TAPS_EACH).map(move |t| (b, t)));
    let answers: Vec<(usize, usize, StatusCode, Value)> = futures::stream::iter(taps)
        .map(|(b, t)| {
            let (buyer, base, offer) = (&buyers[b], &bases[(b + t) % 3], &s.offer);
            async move {
                let (status, body) = tap(buyer, base, offer, &format!("{b}-{t}")).await.unwrap();
                (b, t, status, body)
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;

    let mut held: HashMap<String, usize> = HashMap::new();
    let mut sold_to = HashSet::new();
    let mut one = None;
    for (b, t, status, body) in &answers {
        match *status {
            StatusCode::CREATED => {
                *held
                    .entry(body["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                assert!(sold_to.insert(*b), "buyer {b} got a second bag");
                one.get_or_insert((*b, *t, body["id"].clone()));
            }
            StatusCode::CONFLICT => assert!(
                ["sold_out", "limit_reached"].contains(&body["code"].as_str().unwrap()),
                "{body}"
            ),
            other => panic!("tap {b}-{t}: {other} {body}"),
        }
    }
    assert_eq!(held.len(), UNITS as usize, "exactly the stock was sold");
    assert!(
        held.values().all(|n| *n == 1),
        "no reservation answered twice"
    );

    // The database agrees, and no node sells more.
    let store = a.db.store().await.unwrap();
    let offer = domain::OfferId::parse(&s.offer).unwrap();
    let audit = store.audit_offer(&offer).await.unwrap();
    assert!(audit.is_consistent(), "{audit:?}");
    assert_eq!(audit.counts.held, UNITS);
    for base in &bases {
        let late = guest_at(base, "晚到的").await;
        let (status, body) = tap(&late, base, &s.offer, "late").await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "sold_out");
    }
    // A tap retried on another node is the same reservation.
    let (b, t, id) = one.unwrap();
    let (status, body) = tap(
        &buyers[b],
        &bases[(b + t + 1) % 3],
        &s.offer,
        &format!("{b}-{t}"),
    )
    .await
    .unwrap();
    assert_eq!((status, &body["id"]), (StatusCode::CREATED, &id), "{body}");

    // Node c's room saw the stock run out, written on node a.
    loop {
        let update = next_of(&mut watcher_on_c, "offer_updated").await;
        if update["offer"]["available"] == 0 {
            break;
        }
    }
    store.close().await;
    for (node, _dir) in others {
        node.shutdown().await.unwrap();
    }
    a.shutdown().await;
    drop_buckets(&prefix).await;
}

/// A reservation a node acknowledged: its id, the buyer's subject, the
/// tap's idempotency key and the node (index) that answered.
#[derive(Clone)]
struct Acked {
    id: String,
    buyer: String,
    key: String,
    node: usize,
}

/// Kill the writer's node mid-burst; the others take over and go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_node_killed_mid_sale_another_takes_over_and_loses_nothing() {
    // Fewer than the buyers may take (100 × 3): the sale runs out.
    const ALLOTTED: u32 = 250;
    const PER_BUYER: u32 = 3;
    const BUYERS: usize = 100;
    const TAPS_EACH: usize = 10;
    const KILL_AFTER_ACKS: usize = 40;
    if !nats_available().await {
        return;
    }
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let prefix = format!("it{}", domain::secret_token().to_lowercase());
    let nats = nats_url();
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "--cluster",
            &nats,
            "--node-id",
            node,
            "--cluster-prefix",
            &prefix,
        ];
        nodes.push(start_server_with(&db.url, dir.path(), &args).await);
        dirs.push(dir);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // The farmer opens 250 bags on node 1, which writes the offer.
    let offer_id = farmer_with_offer(&bases[0], ALLOTTED, PER_BUYER).await;
    assert_eq!(writer_of(&prefix, &offer_id).await.as_deref(), Some("n1"));

    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let client = phone(&bases[1]);
        let me = post(
            &client,
            format!("{}/api/v1/guest", bases[1]),
            json!({"nickname": format!("买家{i}")}),
        )
        .await;
        buyers.push((client, me["id"].as_str().unwrap().to_owned()));
    }
    // Every tap on a node; what each node acknowledged.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut taps = Vec::new();
    for (b, (client, subject)) in buyers.iter().enumerate() {
        for t in 0..TAPS_EACH {
            let node = (b + t) % 3;
            let (client, subject, base) = (client.clone(), subject.clone(), bases[node].clone());
            let (acked, acks, offer) = (acked.clone(), acks.clone(), offer_id.clone());
            let (unavailable, refused) = (unavailable.clone(), refused.clone());
            taps.push(tokio::spawn(async move {
                let key = format!("{b}-{t}");
                match tap(&client, &base, &offer, &key).await {
                    Ok((StatusCode::CREATED, body)) => {
                        let id = body["id"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push(Acked {
                            id,
                            buyer: subject,
                            key,
                            node,
                        });
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((StatusCode::CONFLICT, _)) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    // In flight at the writer when it died: maybe done,
                    // maybe not, and said so.
                    Ok((StatusCode::SERVICE_UNAVAILABLE, body)) => {
                        assert_eq!(body["code"], "unavailable", "{body}");
                        unavailable.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, body)) => panic!("tap {key} on node {node}: {status} {body}"),
                    // Node 1's own connections die with it.
                    Err(e) => assert_eq!(node, 0, "tap {key} on node {node}: {e}"),
                }
            }));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        assert!(Instant::now() < deadline, "the burst never got going");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    nodes[0].child.start_kill().expect("SIGKILL");
    let killed_at = Instant::now();
    nodes[0].child.wait().await.unwrap();
    // Half the holds the dead writer left are overdue by the time another
    // node takes over (the lease outlives the kill by seconds): the new
    // writer must expire them.
    let store = db.store().await.unwrap();
    let offer = domain::OfferId::parse(&offer_id).unwrap();
    let overdue: HashSet<String> = store
        .held_reservations(&offer)
        .await
        .unwrap()
        .iter()
        .step_by(2)
        .map(|r| r.id.as_str().to_owned())
        .collect();
    assert!(!overdue.is_empty());
    let ids = overdue
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    db.execute(&format!(
        "UPDATE reservations SET expires_at = expires_at - 3600000 WHERE id IN ({ids})"
    ))
    .await
    .unwrap();
    for tap in taps {
        tap.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let after_kill = acked.iter().filter(|a| a.node != 0).count();

    // Another node writes the offer now, within seconds: a tap gets the
    // ledger's answer (a bag, or "sold out").
    let late = guest_at(&bases[2], "晚到的买家").await;
    loop {
        let (status, body) = tap(&late, &bases[2], &offer_id, "late").await.unwrap();
        if status == StatusCode::CREATED || body["code"] == "sold_out" {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no node took the offer over"
        );
    }
    let took_over = killed_at.elapsed();
    let writer = writer_of(&prefix, &offer_id).await;
    assert!(matches!(writer.as_deref(), Some("n2" | "n3")), "{writer:?}");
    eprintln!(
        "cluster crash test: {} acknowledged ({after_kill} by the surviving nodes), {} refused, \
         {} unavailable; {writer:?} answering taps again within {took_over:?} of the kill",
        acked.len(),
        refused.load(Ordering::SeqCst),
        unavailable.load(Ordering::SeqCst),
    );

    // The overdue holds expired on the new writer.
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in &overdue {
        let id = domain::ReservationId::parse(id).unwrap();
        while store.reservation(&id).await.unwrap().state != domain::ReservationState::Expired {
            assert!(Instant::now() < deadline, "overdue hold {id} never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Every acknowledged reservation is in the database, once.
    let ids: HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        acked.len(),
        "two taps answered with one reservation"
    );
    for Acked {
        id,
        buyer,
        key,
        node,
    } in &acked
    {
        let r = store
            .reservation(&domain::ReservationId::parse(id).unwrap())
            .await
            .unwrap_or_else(|e| {
                panic!("acknowledged reservation {id} (tap {key} on node {node}) lost: {e}")
            });
        assert_eq!((r.buyer.as_str(), r.quantity), (buyer.as_str(), 1));
        let expected = if overdue.contains(id) {
            domain::ReservationState::Expired
        } else {
            domain::ReservationState::Held
        };
        assert_eq!(r.state, expected, "{id}");
    }
    let audit = store.audit_offer(&offer).await.unwrap();
    assert!(audit.is_consistent(), "{audit:?}");
    assert!(audit.counts.held <= ALLOTTED, "never oversold");
    let mut per_buyer: HashMap<String, u32> = HashMap::new();
    for r in store.held_reservations(&offer).await.unwrap() {
        *per_buyer.entry(r.buyer.as_str().to_owned()).or_default() += r.quantity;
    }
    assert!(
        per_buyer.values().all(|n| *n <= PER_BUYER),
        "per-buyer limit held across the takeover: {per_buyer:?}"
    );
    // The new writer knows the old one's keys: a retry is the same hold.
    if let Some(Acked {
        id,
        buyer: subject,
        key,
        ..
    }) = acked.iter().find(|a| !overdue.contains(&a.id))
    {
        let b = buyers.iter().position(|(_, s)| s == subject).unwrap();
        let (status, body) = tap(&buyers[b].0, &bases[1], &offer_id, key).await.unwrap();
        assert_eq!(
            (status, body["id"].as_str()),
            (StatusCode::CREATED, Some(id.as_str())),
            "{body}"
        );
    }
    store.close().await;
    drop(nodes);
    drop_buckets(&prefix).await;
}
