//! The fan-out step, benchmarked two ways:
//!
//! * `deliver/N`: the room task's cost to hand one serialized chat frame to N
//!   connection queues (criterion);
//! * `load`: 10,000 connection tasks on a 2-worker runtime draining their
//!   queues while the room publishes at a target rate; prints deliveries per
//!   second and the delivery latency percentiles (publish -> dequeued by the
//!   connection task). Sockets are left out: this is the hub's share of the
//!   200,000 deliveries/s budget. Run with `cargo bench -p live --bench fanout`.

use criterion::{BenchmarkId, Criterion, Throughput};
use domain::{ChatMessageId, ChatText, DisplayName, Role};
use live::{ConnId, Fanout, Frame, FrameKind, Outgoing, Participant, outbox};
use protocol::{Author, ChatMessage, ServerEvent, Timestamp};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn viewer(i: usize) -> Arc<Participant> {
    Arc::new(Participant {
        subject: format!("gst_bench{i}"),
        name: DisplayName::parse("观众").unwrap(),
        role: Role::Viewer,
        signed_in: false,
        anonymous: false,
    })
}

fn chat_frame(seq: u64) -> Frame {
    let event = ServerEvent::Chat(ChatMessage {
        id: ChatMessageId::generate(),
        author: Author {
            subject: "gst_8d3k5m2p9x4q7r6t".into(),
            name: DisplayName::parse("小李").unwrap(),
            role: Role::Viewer,
        },
        text: ChatText::parse("今年的小米真黄！什么时候发货？").unwrap(),
        at: Timestamp(ms(1_780_300_800_000)),
    });
    Frame::encode(seq, FrameKind::Chat, &event)
}

fn deliver(c: &mut Criterion) {
    let mut group = c.benchmark_group("deliver");
    for n in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut fanout = Fanout::new();
            let mut receivers = Vec::with_capacity(n);
            for i in 0..n {
                let (tx, rx) = outbox(512);
                fanout.attach(ConnId(i as u64), viewer(i), tx);
                receivers.push(rx);
            }
            let frame = chat_frame(1);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let d = fanout.deliver(&frame, ms(0));
                    total += start.elapsed();
                    assert_eq!(d.delivered, n);
                    for rx in &mut receivers {
                        while rx.queue.try_recv().is_ok() {}
                    }
                }
                total
            });
        });
    }
    group.finish();
}

/// 10,000 connection tasks, `rate` events per second for `seconds`.
fn load(viewers: usize, rate: u64, seconds: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut fanout = Fanout::new();
        let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u32>>();
        let epoch = Instant::now();
        for i in 0..viewers {
            let (tx, mut rx) = outbox(512);
            fanout.attach(ConnId(i as u64), viewer(i), tx);
            let lat_tx = lat_tx.clone();
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(64);
                let mut latencies = Vec::new();
                while rx.queue.recv_many(&mut batch, 64).await > 0 {
                    let now = epoch.elapsed().as_micros() as u64;
                    for item in batch.drain(..) {
                        if let Outgoing::Frame(f) = item {
                            // The frame's seq carries its publish time (µs).
                            latencies.push((now - f.seq) as u32);
                        }
                    }
                }
                let _ = lat_tx.send(latencies);
            });
        }
        drop(lat_tx);
        let template = chat_frame(0);
        let interval = Duration::from_micros(1_000_000 / rate);
        let mut next = tokio::time::Instant::now();
        let total = rate * seconds;
        let start = Instant::now();
        let mut lagging = 0;
        for _ in 0..total {
            next += interval;
            tokio::time::sleep_until(next).await;
            let frame = Frame { seq: epoch.elapsed().as_micros() as u64, ..template.clone() };
            lagging += fanout.deliver(&frame, ms(0)).newly_lagging;
        }
        let elapsed = start.elapsed();
        fanout.close_all(protocol::CloseReason::GOING_AWAY);
        drop(fanout);
        let mut all = Vec::new();
        while let Some(mut l) = lat_rx.recv().await {
            all.append(&mut l);
        }
        all.sort_unstable();
        let pct = |p: f64| Duration::from_micros(u64::from(all[((all.len() as f64 - 1.0) * p) as usize]));
        println!(
            "load: {viewers} connections, {rate} events/s for {seconds} s: {} deliveries in {elapsed:.2?} \
             = {:.0}/s; latency p50 {:?} p99 {:?} max {:?}; connections that fell behind: {lagging}",
            all.len(),
            all.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    });
}

struct NoShop;

#[async_trait::async_trait]
impl live::Commerce for NoShop {
    async fn buy(
        &self,
        _: &domain::BroadcastId,
        _: &Participant,
        _: &domain::OfferId,
        _: u32,
        _: &str,
    ) -> Result<protocol::ReservationInfo, protocol::BuyRefusal> {
        Err(protocol::BuyRefusal::new(
            protocol::BuyRefusalCode::NotOnSale,
            "benchmark",
        ))
    }

    async fn offer_card(
        &self,
        _: &domain::BroadcastId,
        _: &domain::OfferId,
    ) -> Option<protocol::OfferCard> {
        None
    }
}

/// The whole path over loopback: owner's chat -> hub -> `clients` real
/// websocket clients in this same process (so the clients' parsing competes
/// with the server for the same 2 cores: a pessimistic number).
fn socket_load(clients: usize, rate: u64, seconds: u64) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let db = store::testing::TestDb::sqlite();
        let store = db.store().await.unwrap();
        let owner = store
            .create_user(
                &domain::Mobile::parse("13800138000").unwrap(),
                &DisplayName::parse("老王").unwrap(),
                "x",
                ms(1),
            )
            .await
            .unwrap();
        let shop = store
            .create_shop(
                store::NewShop {
                    owner_id: owner.id.clone(),
                    name: domain::ShopName::parse("王家沟").unwrap(),
                    place: domain::Place::parse("岢岚").unwrap(),
                    story: domain::Story::parse("").unwrap(),
                    payment_note: domain::PaymentNote::from_trusted(String::new()),
                },
                ms(1),
            )
            .await
            .unwrap();
        let broadcast = store
            .create_broadcast(
                store::NewBroadcast {
                    shop_id: shop.id.clone(),
                    title: domain::BroadcastTitle::parse("bench").unwrap(),
                    scheduled_at: None,
                    stream_key: domain::secret_token(),
                },
                ms(1),
            )
            .await
            .unwrap();
        let config = live::LiveConfig { chat_burst: 1_000_000, chat_per_minute: 60_000_000, ..Default::default() };
        let hub = live::LiveHub::new(store.clone(), Arc::new(NoShop), config);
        let info = live::RoomInfo { broadcast: broadcast.id.clone(), shop: shop.id.clone(), state: domain::BroadcastState::Live };
        let owner_p = Participant {
            subject: owner.id.to_string(),
            name: owner.display_name.clone(),
            role: Role::Owner,
            signed_in: true,
            anonymous: false,
        };
        let app = {
            let hub = hub.clone();
            axum::Router::new().route(
                "/live/{who}",
                axum::routing::get(move |axum::extract::Path(who): axum::extract::Path<String>, ws: axum::extract::WebSocketUpgrade| {
                    let hub = hub.clone();
                    let info = info.clone();
                    let p = if who == "owner" { owner_p.clone() } else { Participant::anonymous() };
                    async move { hub.configure_upgrade(ws).on_upgrade(move |s| async move { hub.serve(info, p, s, None).await }) }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let epoch = Instant::now();
        let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u32>>();
        for _ in 0..clients {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/live/anon")).await.unwrap();
            let lat_tx = lat_tx.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg
                        && let Some(rest) = t.as_str().split("\"text\":\"").nth(1)
                        && let Some(sent) = rest.split('"').next().and_then(|n| n.parse::<u64>().ok())
                    {
                        latencies.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent) as u32);
                    }
                }
                let _ = lat_tx.send(latencies);
            });
        }
        drop(lat_tx);
        let (mut owner_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/live/owner")).await.unwrap();
        tokio::spawn(async move { while owner_ws.next().await.is_some() {} });
        let (mut sender, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/live/owner")).await.unwrap();
        let interval = Duration::from_micros(1_000_000 / rate);
        let mut next = tokio::time::Instant::now();
        let start = Instant::now();
        for i in 0..rate * seconds {
            next += interval;
            tokio::time::sleep_until(next).await;
            let text = epoch.elapsed().as_micros().to_string();
            let msg = format!(r#"{{"type":"chat","text":"{text}","nonce":"b{i}"}}"#);
            sender.send(Message::Text(msg.into())).await.unwrap();
        }
        let elapsed = start.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await; // let the last frames land
        hub.shutdown().await;
        let mut all = Vec::new();
        while let Some(mut l) = lat_rx.recv().await {
            all.append(&mut l);
        }
        all.sort_unstable();
        let pct = |p: f64| Duration::from_micros(u64::from(all[((all.len() as f64 - 1.0) * p) as usize]));
        println!(
            "sockets: {clients} websocket clients, {rate} chats/s for {seconds} s: {} deliveries ({:.0}/s of {} expected); \
             latency p50 {:?} p99 {:?} max {:?}",
            all.len(),
            all.len() as f64 / elapsed.as_secs_f64(),
            clients as u64 * rate * seconds,
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    deliver(&mut c);
    c.final_summary();
    // 20 events/s to 10,000 viewers = 200,000 deliveries/s.
    load(10_000, 20, 10);
    load(10_000, 40, 5);
    socket_load(2_000, 20, 10);
    socket_load(5_000, 20, 10);
}

/// A test time: Unix milliseconds.
fn ms(millis: i64) -> domain::UnixMillis {
    domain::UnixMillis::from_millis(millis)
}
