//! The `chat` scenario: N websocket connections in one room (a few guest
//! senders, the rest anonymous listeners, as most viewers only read), M chat
//! messages per second spread over enough senders that nobody exceeds the
//! per-person limit (burst 5, then 20 a minute). Each message carries its
//! send time; every connection that receives it records the latency.
//!
//! Counted: deliveries of messages sent in the window (receivers keep
//! counting during a short drain after it), their send → receive latency,
//! and what the server dropped for slow connections (`snapshot` with
//! `reason: "lagged"` and its `missed`, and 4002 `too_slow` closes).

use crate::api::{self, Farmer};
use crate::clock;
use crate::error::{Error, Result};
use crate::hist::{Histogram, LatencySummary};
use crate::report::{CpuWindow, Report, RssWatch, RunContext, Target};
use crate::server::Server;
use crate::ws::{self, Socket};
use crate::{fmt_opt, procfs};
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Options of the `chat` scenario.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Connections in the room (senders included).
    pub viewers: usize,
    /// Chat messages per second, over all senders.
    pub rate: f64,
    /// Senders; `None` = as few as the rate limit allows, plus a margin.
    pub senders: Option<usize>,
    /// Sending window.
    pub duration: Duration,
    /// New connections per second while filling the room.
    pub connect_rate: f64,
    /// Connections opened at the same time at most.
    pub connect_concurrency: usize,
    /// Tasks the connections are spread over.
    pub shards: usize,
    /// The server's per-person burst (default 5).
    pub burst: u32,
    /// The server's per-person sustained rate, per minute (default 20).
    pub per_minute: u32,
    /// Receivers keep counting this long after the window.
    pub drain: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            viewers: 1000,
            rate: 20.0,
            senders: None,
            duration: Duration::from_secs(20),
            connect_rate: 1000.0,
            connect_concurrency: 256,
            shards: 2,
            burst: 5,
            per_minute: 20,
            drain: Duration::from_secs(3),
        }
    }
}

/// How many senders `rate` messages/s for `duration` need when each may
/// send `burst` at once and `per_minute` a minute after that, with a 25 %
/// margin (the server's clock and ours do not tick together).
pub fn senders_needed(rate: f64, duration: Duration, burst: u32, per_minute: u32) -> usize {
    let secs = duration.as_secs_f64().max(1.0);
    let per_sender = f64::from(burst) + f64::from(per_minute) * secs / 60.0;
    ((rate * secs / per_sender) * 1.25).ceil().max(1.0) as usize
}

/// The server's chat limit as a sender sees it: `burst` messages at once,
/// then one every `60 s / per_minute` (a GCRA: the theoretical arrival time
/// of the next message may run ahead of now by `burst − 1` intervals).
#[derive(Debug, Clone)]
pub struct SenderBudget {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl SenderBudget {
    /// A full budget.
    pub fn new(burst: u32, per_minute: u32) -> SenderBudget {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        SenderBudget {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            tat: None,
        }
    }

    /// Spends one message at `now` if the budget allows it.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let tat = self.tat.unwrap_or(now);
        if now + self.tolerance >= tat {
            self.tat = Some(tat.max(now) + self.interval);
            true
        } else {
            false
        }
    }
}

/// Counters every connection adds to.
#[derive(Default)]
struct Shared {
    connected: AtomicUsize,
    connect_failed: AtomicUsize,
    /// Window in generator-clock µs; messages sent in it are counted.
    window_start_us: AtomicU64,
    window_end_us: AtomicU64,
    stop: AtomicBool,
    lagged_snapshots: AtomicU64,
    missed: AtomicU64,
    too_slow_closes: AtomicU64,
    other_closes: AtomicU64,
    sent: AtomicU64,
    sent_in_window: AtomicU64,
    accepted: AtomicU64,
    skipped_by_budget: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn in_window(&self, send_us: u64) -> bool {
        send_us >= self.window_start_us.load(Ordering::Relaxed)
            && send_us < self.window_end_us.load(Ordering::Relaxed)
    }
}

/// Deliveries counted by the connections of one shard. Each shard is one
/// task, so its lock is never contended; counting per message means nothing
/// is lost when the connections are dropped at the end.
#[derive(Default)]
struct Counts {
    deliveries: u64,
    outside: u64,
    latency: Histogram,
}

type SharedCounts = Arc<Mutex<Counts>>;

fn lock(c: &SharedCounts) -> std::sync::MutexGuard<'_, Counts> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handles one server frame; returns its type for the caller's own use.
fn on_text<'a>(text: &'a str, shared: &Shared, counts: &SharedCounts) -> Option<ws::Frame<'a>> {
    let frame = ws::Frame::parse(text)?;
    match frame.kind()? {
        "chat" => {
            if let Some(sent) = frame.chat_send_time() {
                let mut c = lock(counts);
                if shared.in_window(sent) {
                    c.deliveries += 1;
                    c.latency.record(clock::now_us().saturating_sub(sent));
                } else {
                    c.outside += 1;
                }
            }
        }
        "snapshot" => {
            if let Some(missed) = frame.lagged_missed() {
                shared.lagged_snapshots.fetch_add(1, Ordering::Relaxed);
                shared.missed.fetch_add(missed, Ordering::Relaxed);
            }
        }
        _ => {}
    }
    Some(frame)
}

fn on_close(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>, shared: &Shared) {
    if frame.is_some_and(|f| f.code == CloseCode::Library(4002)) {
        shared.too_slow_closes.fetch_add(1, Ordering::Relaxed);
    } else if !shared.stop.load(Ordering::Relaxed) {
        shared.other_closes.fetch_add(1, Ordering::Relaxed);
    }
}

/// A listener: reads until the socket ends (the shard drops it at the end).
async fn listen(mut socket: Socket, shared: Arc<Shared>, counts: SharedCounts) {
    while let Some(msg) = socket.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                on_text(t.as_str(), &shared, &counts);
            }
            Ok(Message::Close(f)) => {
                on_close(f.as_ref(), &shared);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Opens one listener connection (anonymous) and waits for its `hello`.
async fn open(
    base: String,
    broadcast: String,
    cookie: Option<String>,
    shared: &Shared,
) -> Option<Socket> {
    let res = tokio::time::timeout(Duration::from_secs(30), async {
        let mut s = ws::connect(&base, &broadcast, cookie.as_deref()).await?;
        while let Some(m) = s.next().await {
            if let Message::Text(t) = m?
                && ws::Frame::parse(t.as_str()).is_some_and(|f| f.kind() == Some("hello"))
            {
                return Ok::<_, Error>(s);
            }
        }
        Err(Error::Invalid("closed before hello".into()))
    })
    .await;
    match res {
        Ok(Ok(s)) => {
            shared.connected.fetch_add(1, Ordering::Relaxed);
            Some(s)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection failed");
            shared.connect_failed.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(_) => {
            shared.connect_failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A sender: sends when told, reads like everyone else, and tracks its own
/// answers (`accepted`, `refused`).
async fn send_loop(
    mut socket: Socket,
    idx: usize,
    mut orders: tokio::sync::mpsc::UnboundedReceiver<()>,
    shared: Arc<Shared>,
    counts: SharedCounts,
) {
    let mut n = 0u64;
    loop {
        tokio::select! {
            order = orders.recv() => {
                let Some(()) = order else { break };
                n += 1;
                let send_us = clock::now_us();
                let text = ws::chat_text(send_us, idx, n);
                let frame = serde_json::json!({"type": "chat", "text": text, "nonce": format!("n{idx}-{n}")});
                if socket.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
                if shared.in_window(send_us) {
                    shared.sent_in_window.fetch_add(1, Ordering::Relaxed);
                }
            }
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(t))) => match on_text(t.as_str(), &shared, &counts) {
                    Some(f) if f.kind() == Some("accepted") => {
                        shared.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(f) if f.kind() == Some("refused") => {
                        let code = f.code().unwrap_or("?").to_owned();
                        *shared.refused.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(f))) => {
                    on_close(f.as_ref(), &shared);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    }
}

/// Results of the `chat` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ChatResults {
    /// Connections asked for.
    pub viewers: usize,
    /// Connections that got their `hello`.
    pub connected: usize,
    /// Connections that failed to open.
    pub connect_failed: usize,
    /// Seconds to fill the room.
    pub connect_s: f64,
    /// Guest senders.
    pub senders: usize,
    /// Target messages per second.
    pub rate: f64,
    /// Messages sent in the window.
    pub sent_in_window: u64,
    /// Messages the server accepted (whole run).
    pub accepted: u64,
    /// Refusals by code (whole run).
    pub refused: BTreeMap<String, u64>,
    /// Sends skipped because every sender was out of budget.
    pub skipped_by_budget: u64,
    /// Window, s.
    pub window_s: f64,
    /// Deliveries of window messages (counted until the drain ended).
    pub deliveries: u64,
    /// Deliveries per second of window.
    pub deliveries_per_s: f64,
    /// Deliveries ÷ (messages sent in window × connections).
    pub delivery_ratio: f64,
    /// Send → receive latency of those deliveries.
    pub latency: LatencySummary,
    /// `snapshot`s with `reason: "lagged"` (slow connections resynced).
    pub lagged_snapshots: u64,
    /// Chat messages those snapshots said were skipped.
    pub missed: u64,
    /// Connections closed with 4002 `too_slow`.
    pub too_slow_closes: u64,
    /// Other closes and errors before the end.
    pub other_closes: u64,
    /// Server CPU per delivery, µs.
    pub server_us_per_delivery: Option<f64>,
    /// Generator CPU per delivery, µs.
    pub generator_us_per_delivery: f64,
    /// Server memory per connection, KiB.
    pub server_rss_per_connection_kib: Option<f64>,
}

/// Runs the scenario against `server`.
pub async fn run(server: &mut Server, opts: &ChatOptions, ctx: RunContext) -> Result<Report> {
    if opts.viewers == 0 || opts.rate <= 0.0 {
        return Err(Error::Invalid("viewers and rate must be positive".into()));
    }
    let senders = opts
        .senders
        .unwrap_or_else(|| senders_needed(opts.rate, opts.duration, opts.burst, opts.per_minute))
        .clamp(1, opts.viewers);
    let farmer = Farmer::sign_up(server.base()).await?;
    let broadcast = farmer.broadcast("压测 chat").await?;
    let guests = api::guests(server.base(), senders, 16, "chat").await?;
    let shared = Arc::new(Shared {
        window_start_us: AtomicU64::new(u64::MAX),
        window_end_us: AtomicU64::new(u64::MAX),
        ..Default::default()
    });
    let rss_before = server.pid().and_then(procfs::sample).map(|s| s.rss_kb);
    let rss = RssWatch::start(server.pid());

    // Fill the room: listeners into shards (a task each, futures inside).
    tracing::info!(viewers = opts.viewers, senders, "connecting");
    let started = Instant::now();
    let listeners = opts.viewers - senders;
    let shards = opts.shards.max(1);
    let mut shard_tx = Vec::new();
    let mut shard_handles = Vec::new();
    let mut all_counts: Vec<SharedCounts> = Vec::new();
    for _ in 0..shards {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Socket>();
        let sh = shared.clone();
        let counts = SharedCounts::default();
        all_counts.push(counts.clone());
        shard_tx.push(tx);
        shard_handles.push(tokio::spawn(async move {
            let mut running = FuturesUnordered::new();
            let mut open = true;
            loop {
                tokio::select! {
                    s = rx.recv(), if open => match s {
                        Some(s) => running.push(listen(s, sh.clone(), counts.clone())),
                        None => open = false,
                    },
                    Some(()) = running.next(), if !running.is_empty() => {}
                    else => break,
                }
                if sh.stop.load(Ordering::Relaxed) && !open {
                    break; // drops the remaining connections
                }
            }
        }));
    }
    let base = server.base().to_owned();
    let mut opened = 0usize;
    let mut connecting = FuturesUnordered::new();
    let mut i = 0usize;
    while i < listeners || !connecting.is_empty() {
        while i < listeners && connecting.len() < opts.connect_concurrency {
            let at = started + Duration::from_secs_f64(i as f64 / opts.connect_rate.max(1.0));
            if Instant::now() < at {
                break;
            }
            let (b, id, sh) = (base.clone(), broadcast.id.clone(), shared.clone());
            connecting.push(async move { open(b, id, None, &sh).await });
            i += 1;
        }
        let next_at = started + Duration::from_secs_f64(i as f64 / opts.connect_rate.max(1.0));
        tokio::select! {
            Some(s) = connecting.next(), if !connecting.is_empty() => {
                if let Some(s) = s {
                    let _ = shard_tx[opened % shards].send(s);
                    opened += 1;
                }
            }
            _ = tokio::time::sleep_until(next_at.into()), if i < listeners => {}
        }
    }
    let mut sender_tx = Vec::new();
    let mut sender_tasks = Vec::new();
    let sender_counts = SharedCounts::default();
    all_counts.push(sender_counts.clone());
    for (idx, g) in guests.iter().enumerate() {
        let Some(s) = open(
            base.clone(),
            broadcast.id.clone(),
            Some(g.cookie.clone()),
            &shared,
        )
        .await
        else {
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        sender_tx.push(tx);
        sender_tasks.push(tokio::spawn(send_loop(
            s,
            idx,
            rx,
            shared.clone(),
            sender_counts.clone(),
        )));
    }
    if sender_tx.is_empty() {
        return Err(Error::Server("no chat sender could connect".into()));
    }
    let connect_s = started.elapsed().as_secs_f64();
    let connected = shared.connected.load(Ordering::Relaxed);
    tracing::info!(connected, connect_s, "room filled; chatting");
    // Let the join snapshots and viewer-count updates settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_filled = server.pid().and_then(procfs::sample).map(|s| s.rss_kb);

    // The window: messages at `rate`, round-robin over senders with budget.
    let window = CpuWindow::start(server.pid(), ctx.profile.as_deref());
    shared
        .window_start_us
        .store(clock::now_us(), Ordering::Relaxed);
    let mut budgets: Vec<SenderBudget> = (0..sender_tx.len())
        .map(|_| SenderBudget::new(opts.burst, opts.per_minute))
        .collect();
    let t0 = Instant::now();
    let mut k = 0u64;
    let mut next = 0usize;
    while t0.elapsed() < opts.duration {
        let at = t0 + Duration::from_secs_f64(k as f64 / opts.rate);
        tokio::time::sleep_until(at.into()).await;
        k += 1;
        let now = Instant::now();
        let mut sent = false;
        for _ in 0..budgets.len() {
            let s = next % budgets.len();
            next += 1;
            if budgets[s].try_take(now) {
                let _ = sender_tx[s].send(());
                sent = true;
                break;
            }
        }
        if !sent {
            shared.skipped_by_budget.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared
        .window_end_us
        .store(clock::now_us(), Ordering::Relaxed);
    let cpu_window_end = Instant::now();
    tokio::time::sleep(opts.drain).await;
    // CPU over window + drain: the drain's deliveries are the window's too.
    let cpu = window.finish(rss.max_kb());
    let _ = cpu_window_end;

    shared.stop.store(true, Ordering::Relaxed);
    drop(sender_tx);
    for t in sender_tasks {
        t.abort();
    }
    drop(shard_tx);
    for h in shard_handles {
        let _ = h.await;
    }

    let mut latency_hist = Histogram::new();
    let mut deliveries = 0;
    for c in &all_counts {
        let c = lock(c);
        deliveries += c.deliveries;
        latency_hist.merge(&c.latency);
    }
    let sent_in_window = shared.sent_in_window.load(Ordering::Relaxed);
    let window_s = (shared.window_end_us.load(Ordering::Relaxed)
        - shared.window_start_us.load(Ordering::Relaxed)) as f64
        / 1e6;
    let latency = latency_hist.summary_ms();
    let per = |cpu_s: f64| {
        if deliveries > 0 {
            cpu_s * 1e6 / deliveries as f64
        } else {
            0.0
        }
    };
    let res = ChatResults {
        viewers: opts.viewers,
        connected,
        connect_failed: shared.connect_failed.load(Ordering::Relaxed),
        connect_s,
        senders: budgets.len(),
        rate: opts.rate,
        sent_in_window,
        accepted: shared.accepted.load(Ordering::Relaxed),
        refused: shared
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        skipped_by_budget: shared.skipped_by_budget.load(Ordering::Relaxed),
        window_s,
        deliveries,
        deliveries_per_s: deliveries as f64 / window_s.max(1e-9),
        delivery_ratio: if sent_in_window > 0 && connected > 0 {
            deliveries as f64 / (sent_in_window as f64 * connected as f64)
        } else {
            0.0
        },
        latency,
        lagged_snapshots: shared.lagged_snapshots.load(Ordering::Relaxed),
        missed: shared.missed.load(Ordering::Relaxed),
        too_slow_closes: shared.too_slow_closes.load(Ordering::Relaxed),
        other_closes: shared.other_closes.load(Ordering::Relaxed),
        server_us_per_delivery: cpu.server.map(|s| per(s.cpu_s)).filter(|_| deliveries > 0),
        generator_us_per_delivery: per(cpu.generator.cpu_s),
        server_rss_per_connection_kib: match (rss_before, rss_filled) {
            (Some(a), Some(b)) if connected > 0 => {
                Some(b.saturating_sub(a) as f64 / connected as f64)
            }
            _ => None,
        },
    };
    let rows = vec![
        (
            "connections".into(),
            format!(
                "{} of {} in {:.1} s ({} failed), {} senders",
                res.connected, res.viewers, res.connect_s, res.connect_failed, res.senders
            ),
        ),
        (
            "messages".into(),
            format!(
                "{} sent in {:.1} s window (target {:.0}/s), {} accepted, refused {:?}, {} skipped (no sender budget)",
                res.sent_in_window,
                res.window_s,
                res.rate,
                res.accepted,
                res.refused,
                res.skipped_by_budget
            ),
        ),
        (
            "deliveries".into(),
            format!(
                "{:.0}/s ({} in all, {:.2} % of sent × connections)",
                res.deliveries_per_s,
                res.deliveries,
                res.delivery_ratio * 100.0
            ),
        ),
        (
            "latency send → receive".into(),
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.0} ms",
                res.latency.p50_ms, res.latency.p90_ms, res.latency.p99_ms, res.latency.max_ms
            ),
        ),
        (
            "dropped for slowness".into(),
            format!(
                "{} lagged snapshots ({} messages missed), {} closed too_slow, {} other closes",
                res.lagged_snapshots, res.missed, res.too_slow_closes, res.other_closes
            ),
        ),
        (
            "server CPU per delivery".into(),
            format!("{} µs", fmt_opt(res.server_us_per_delivery, 2)),
        ),
        (
            "generator CPU per delivery".into(),
            format!("{:.2} µs", res.generator_us_per_delivery),
        ),
        (
            "server memory per connection".into(),
            format!("{} KiB", fmt_opt(res.server_rss_per_connection_kib, 1)),
        ),
    ];
    let targets = vec![
        Target::check(
            "chat deliveries/s (10,000 viewers, one room)",
            "200,000/s",
            format!("{:.0}/s ({} conns)", res.deliveries_per_s, res.connected),
            // The sender's clock and the window's edges cost a message or
            // two: 0.5 % tolerance, but every offered delivery must arrive.
            Some(
                res.deliveries_per_s >= 199_000.0
                    && res.connected >= 10_000
                    && res.delivery_ratio >= 0.999,
            ),
        ),
        Target::check(
            "chat latency p99",
            "< 150 ms",
            format!("{:.1} ms", res.latency.p99_ms),
            Some(res.latency.count > 0 && res.latency.p99_ms < 150.0),
        ),
    ];
    let notes = vec![format!(
        "deliveries count messages sent in the {:.1} s window, received until {} s after it; CPU covers window + drain",
        res.window_s,
        opts.drain.as_secs()
    )];
    Report::assemble("chat", ctx, server, None, cpu, rows, &res, targets, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_senders_for_the_rate_limit() {
        // 20 msg/s for 20 s = 400 messages; a sender may send 5 + 20·20/60 ≈ 11.7.
        let n = senders_needed(20.0, Duration::from_secs(20), 5, 20);
        assert_eq!(n, 43);
        assert!(senders_needed(1.0, Duration::from_secs(1), 5, 20) >= 1);
    }

    #[test]
    fn budget_mirrors_burst_then_refill() {
        let t = Instant::now();
        let mut b = SenderBudget::new(5, 20);
        for _ in 0..5 {
            assert!(b.try_take(t));
        }
        assert!(!b.try_take(t), "burst used up");
        assert!(!b.try_take(t + Duration::from_millis(2_900)));
        assert!(
            b.try_take(t + Duration::from_millis(3_000)),
            "one back after 3 s"
        );
        assert!(!b.try_take(t + Duration::from_millis(3_100)));
        // A long pause refills the burst, not more.
        let later = t + Duration::from_secs(600);
        for _ in 0..5 {
            assert!(b.try_take(later));
        }
        assert!(!b.try_take(later));
    }
}
