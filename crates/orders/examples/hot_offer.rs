//! A quick in-process load run: many concurrent "buy now" taps on one hot
//! offer, each answered only once durable, on a fresh SQLite file (WAL,
//! synchronous=FULL) or PostgreSQL database.
//!
//! ```text
//! cargo run --release -p orders --example hot_offer -- sqlite 200000 2000
//! cargo run --release -p orders --example hot_offer -- postgres 200000 2000
//! ```
//! Arguments: engine, total taps, concurrent tappers. Prints accepted
//! reservations per second and latency percentiles. With a fourth argument
//! `rate=N` the run is open-loop instead: N taps per second arrive on a
//! fixed schedule whatever the answers' latency (how viewers really tap),
//! and the tappers argument is ignored.

use domain::*;
use orders::*;
use std::time::{Duration, Instant};
use store::testing::TestDb;
use store::*;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_else(|| "sqlite".into());
    let taps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let tappers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let db = match engine.as_str() {
        "postgres" => TestDb::postgres().await.expect("PostgreSQL reachable"),
        _ => TestDb::sqlite(),
    };
    let store = db.store().await.unwrap();
    let owner = store
        .create_user(
            &Mobile::parse("13800138000").unwrap(),
            &DisplayName::parse("老王").unwrap(),
            "x",
            ms(1),
        )
        .await
        .unwrap();
    let shop = store
        .create_shop(
            NewShop {
                owner_id: owner.id.clone(),
                name: ShopName::parse("王家沟小米").unwrap(),
                place: Place::parse("山西 岢岚县").unwrap(),
                story: Story::parse("").unwrap(),
                payment_note: domain::PaymentNote::from_trusted(String::new()),
            },
            ms(1),
        )
        .await
        .unwrap();
    let product = store
        .create_product(
            NewProduct {
                shop_id: shop.id.clone(),
                title: ProductTitle::parse("小米").unwrap(),
                description: Description::parse("").unwrap(),
                unit: Unit::parse("20斤袋").unwrap(),
                price: Fen::price(9_900).unwrap(),
                stock: taps,
                ships_on: None,
            },
            ms(1),
        )
        .await
        .unwrap();
    let broadcast = store
        .create_broadcast(
            NewBroadcast {
                shop_id: shop.id.clone(),
                title: BroadcastTitle::parse("秋收").unwrap(),
                scheduled_at: None,
                stream_key: secret_token(),
            },
            ms(1),
        )
        .await
        .unwrap();
    let svc = OrderService::start(store.clone(), OrdersConfig::default())
        .await
        .unwrap();
    let offer = svc
        .create_offer(
            &owner.id,
            NewOffer {
                broadcast: broadcast.id.clone(),
                product: product.id.clone(),
                price: Fen::price(9_900).unwrap(),
                quantity: taps,
                per_buyer_limit: 1,
                buyers: domain::Buyers::Anyone,
                starts_at: None,
                ends_at: None,
                hold: None,
            },
        )
        .await
        .unwrap();

    let rate: Option<u32> = args
        .next()
        .and_then(|a| a.strip_prefix("rate=").and_then(|r| r.parse().ok()));
    let per_tapper = taps / tappers.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    if let Some(rate) = rate {
        // One tap every 1/rate s, spawned on schedule (catching up in bursts
        // if the spawner falls behind), each measuring its own latency.
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let per_ms = (rate / 1000).max(1);
        let mut sent = 0;
        while sent < taps {
            tick.tick().await;
            for _ in 0..per_ms.min(taps - sent) {
                let (svc, offer, i) = (svc.clone(), offer.offer_id.clone(), sent);
                tasks.push(tokio::spawn(async move {
                    let begin = Instant::now();
                    svc.reserve(ReserveRequest {
                        offer,
                        buyer: sub(&format!("gst_open{i}")),
                        quantity: 1,
                        idempotency_key: Some(format!("n{i}")),
                    })
                    .await
                    .expect("held");
                    vec![begin.elapsed()]
                }));
                sent += 1;
            }
        }
    }
    for t in 0..if rate.is_some() { 0 } else { tappers } {
        let (svc, offer) = (svc.clone(), offer.offer_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_tapper as usize);
            for i in 0..per_tapper {
                let begin = Instant::now();
                svc.reserve(ReserveRequest {
                    offer: offer.clone(),
                    buyer: sub(&format!("gst_{t}x{i}")),
                    quantity: 1,
                    idempotency_key: Some(format!("n{i}")),
                })
                .await
                .expect("held");
                latencies.push(begin.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let audit = store.audit_offer(&offer.offer_id).await.unwrap();
    assert!(audit.is_consistent(), "{audit:?}");
    println!(
        "{engine}: {} durable reservations in {:.2?} = {:.0}/s with {}; \
         latency p50 {:.1?} p99 {:.1?} max {:.1?}; held in db {}",
        latencies.len(),
        elapsed,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        match rate {
            Some(r) => format!("taps arriving at {r}/s"),
            None => format!("{tappers} concurrent tappers"),
        },
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
        audit.counts.held,
    );
    svc.shutdown().await;
    store.close().await;
}

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}

fn sub(raw: &str) -> domain::Subject {
    domain::Subject::from_trusted(raw)
}
