//! The `sale` scenario: a flash sale. B guest buyers, each on its own
//! connection, tap "buy" on one offer of S units at the same instant (and
//! again, up to T taps each, as people do when nothing seems to happen),
//! over HTTP (`POST /api/v1/offers/{id}/reservations` with an
//! `Idempotency-Key`) or the websocket `buy`. A reservation counts once its
//! acknowledgement (201, or the `reservation` message) arrived: the server
//! acknowledges only what is committed.
//!
//! Afterwards the database itself is asked (through the `store` crate):
//! the offer's counts must balance, no more units held than allotted, every
//! acknowledged reservation present and held by its buyer, nobody over the
//! per-buyer limit.

use crate::api::{self, Farmer, Guest};
use crate::error::{Error, Result};
use crate::fmt_opt;
use crate::hist::{Histogram, LatencySummary};
use crate::http1::{self, Conn};
use crate::report::{CpuWindow, Report, RssWatch, RunContext, Target};
use crate::server::Server;
use crate::ws::{self, Socket};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// How buyers tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `POST /api/v1/offers/{id}/reservations`.
    Http,
    /// `{"type": "buy"}` on the live channel.
    Ws,
}

/// Options of the `sale` scenario.
#[derive(Debug, Clone)]
pub struct SaleOptions {
    /// Buyers (guests, one connection each).
    pub buyers: usize,
    /// Taps per buyer (each a separate reservation of 1 unit).
    pub taps: u32,
    /// Units on offer; `None` = 80 % of the taps, so the offer sells out.
    pub stock: Option<u32>,
    /// Per-buyer limit; `None` = `taps` (every tap may succeed while stock lasts).
    pub per_buyer_limit: Option<u32>,
    /// HTTP or websocket.
    pub via: Via,
    /// Guest sign-ups and connections opened at once during setup.
    pub setup_concurrency: usize,
    /// Open loop at this many taps per second (over all buyers) instead of
    /// everyone at once.
    pub rate: Option<f64>,
}

impl Default for SaleOptions {
    fn default() -> Self {
        Self {
            buyers: 2000,
            taps: 5,
            stock: None,
            per_buyer_limit: None,
            via: Via::Http,
            setup_concurrency: 64,
            rate: None,
        }
    }
}

/// What one tap got.
#[derive(Debug, Clone)]
struct Tap {
    buyer: usize,
    started: Instant,
    answered: Instant,
    /// `accepted`, a refusal code, `http_<status>` or `error`.
    outcome: String,
    reservation: Option<String>,
}

/// What the database says afterwards.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    /// Units allotted to the offer.
    pub allotted: u32,
    /// Units held by reservations (counts).
    pub held: u32,
    /// Units sold.
    pub sold: u32,
    /// Units available.
    pub available: u32,
    /// Counts balance and agree with the rows (`Store::audit_offer`).
    pub consistent: bool,
    /// Units held or sold beyond the allotment.
    pub oversold: u64,
    /// Acknowledged reservations missing from the database (or not held).
    pub acknowledged_missing: u64,
    /// Held reservations nobody got an acknowledgement for (a tap that
    /// failed on the way back; not wrong, but counted).
    pub held_unacknowledged: u64,
    /// Buyers holding more than the per-buyer limit.
    pub buyers_over_limit: u64,
    /// Held reservations whose buyer is not who was acknowledged.
    pub wrong_buyer: u64,
}

impl Audit {
    /// Every check passed.
    pub fn ok(&self) -> bool {
        self.consistent
            && self.oversold == 0
            && self.acknowledged_missing == 0
            && self.buyers_over_limit == 0
            && self.wrong_buyer == 0
    }
}

/// Results of the `sale` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct SaleResults {
    /// HTTP or websocket.
    pub via: Via,
    /// Database engine.
    pub database: Option<String>,
    /// Buyers.
    pub buyers: usize,
    /// Taps per buyer.
    pub taps_per_buyer: u32,
    /// Units on offer.
    pub stock: u32,
    /// Per-buyer limit.
    pub per_buyer_limit: u32,
    /// Open-loop tap rate, if any (else all at once).
    pub rate: Option<f64>,
    /// Seconds to sign up the guests.
    pub setup_s: f64,
    /// Taps sent.
    pub taps: u64,
    /// Reservations acknowledged.
    pub accepted: u64,
    /// Answers by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// From the common start to the last acknowledgement, s.
    pub accept_phase_s: f64,
    /// Acknowledged reservations per second over that phase.
    pub accepted_per_s: f64,
    /// From the start to the last answer of any kind, s.
    pub burst_s: f64,
    /// Answers per second over the burst.
    pub answers_per_s: f64,
    /// Tap → acknowledgement, accepted taps.
    pub latency_accepted: LatencySummary,
    /// Tap → answer, all taps.
    pub latency_all: LatencySummary,
    /// The database check (None if the database was not reachable).
    pub audit: Option<Audit>,
    /// Server CPU per answered tap, µs.
    pub server_us_per_tap: Option<f64>,
    /// Generator CPU per answered tap, µs.
    pub generator_us_per_tap: f64,
}

fn socket_addr(base: &str) -> Result<(SocketAddr, String)> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| Error::Invalid(format!("only http:// servers are supported, not {base}")))?
        .trim_end_matches('/');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?
        .next()
        .ok_or_else(|| Error::Invalid(format!("cannot resolve {host}")))?;
    Ok((addr, host.to_owned()))
}

enum Line {
    Http(Conn, Guest),
    Ws(Socket),
}

async fn open_line(via: Via, base: &str, addr: SocketAddr, host: &str, g: Guest) -> Result<Line> {
    match via {
        Via::Http => {
            let mut c = Conn::connect(addr).await?;
            // Warms the connection and proves the cookie works.
            let r = c
                .send(&http1::request(
                    "GET",
                    host,
                    "/api/v1/session",
                    &[("Cookie", &g.cookie)],
                    None,
                ))
                .await?;
            if r.status != 200 {
                return Err(Error::Http {
                    what: "GET /api/v1/session".into(),
                    status: r.status,
                    body: r.text().into_owned(),
                });
            }
            Ok(Line::Http(c, g))
        }
        Via::Ws => Err(Error::Invalid(format!(
            "websocket lines need a broadcast ({base})"
        ))),
    }
}

async fn open_ws(base: &str, broadcast: &str, g: Guest) -> Result<Line> {
    let mut s = ws::connect(base, broadcast, Some(&g.cookie)).await?;
    while let Some(m) = s.next().await {
        if let Message::Text(t) = m?
            && ws::Frame::parse(t.as_str()).is_some_and(|f| f.kind() == Some("hello"))
        {
            return Ok(Line::Ws(s));
        }
    }
    Err(Error::Invalid("closed before hello".into()))
}

/// One buyer: waits for the start, then taps `taps` times, one after the other.
/// When each tap goes out.
#[derive(Clone)]
struct Pace {
    /// Everyone starts together, released by this barrier.
    start: Arc<Barrier>,
    /// The common start instant, set just before the barrier opens.
    go: Arc<std::sync::OnceLock<Instant>>,
    /// Open loop: taps over all buyers at this rate, each timed from its
    /// scheduled moment (a late answer delays the buyer's next tap, and that
    /// wait counts in its latency). `None`: each buyer taps again as soon as
    /// it has its answer.
    rate: Option<f64>,
    buyers: usize,
}

impl Pace {
    /// Waits until tap `t` of buyer `idx` is due; returns when it was due.
    async fn due(&self, idx: usize, t: u32) -> Instant {
        let Some(rate) = self.rate else {
            return Instant::now();
        };
        let go = self.go.get().copied().unwrap_or_else(Instant::now);
        let n = idx as f64 + f64::from(t) * self.buyers as f64;
        let at = go + Duration::from_secs_f64(n / rate);
        tokio::time::sleep_until(at.into()).await;
        at
    }
}

async fn buyer(
    idx: usize,
    line: Line,
    offer: Arc<str>,
    host: Arc<str>,
    taps: u32,
    pace: Pace,
) -> Vec<Tap> {
    let mut out = Vec::with_capacity(taps as usize);
    let body = r#"{"quantity":1}"#;
    let path = format!("/api/v1/offers/{offer}/reservations");
    match line {
        Line::Http(mut conn, g) => {
            // As the viewer page would: writes with a cookie name their origin.
            let origin = format!("http://{host}");
            let requests: Vec<Vec<u8>> = (0..taps)
                .map(|t| {
                    let key = format!("lg-{idx}-{t}");
                    http1::request(
                        "POST",
                        &host,
                        &path,
                        &[
                            ("Cookie", &g.cookie),
                            ("Idempotency-Key", &key),
                            ("Origin", &origin),
                        ],
                        Some(body),
                    )
                })
                .collect();
            pace.start.wait().await;
            for (t, req) in requests.iter().enumerate() {
                let started = pace.due(idx, t as u32).await;
                let (outcome, reservation) = match conn.send(req).await {
                    Ok(r) if r.status == 201 => {
                        let text = r.text();
                        let id = ws::Frame::parse(&text).and_then(|f| f.id.map(String::from));
                        ("accepted".to_owned(), id)
                    }
                    Ok(r) => {
                        let text = r.text();
                        let code = ws::Frame::parse(&text)
                            .and_then(|f| f.code().map(str::to_owned))
                            .unwrap_or_else(|| format!("http_{}", r.status));
                        (code, None)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "tap failed");
                        ("error".to_owned(), None)
                    }
                };
                out.push(Tap {
                    buyer: idx,
                    started,
                    answered: Instant::now(),
                    outcome,
                    reservation,
                });
            }
        }
        Line::Ws(mut socket) => {
            pace.start.wait().await;
            for t in 0..taps {
                let nonce = format!("b-{idx}-{t}");
                let frame =
                    format!(r#"{{"type":"buy","offer":"{offer}","quantity":1,"nonce":"{nonce}"}}"#);
                let started = pace.due(idx, t).await;
                let mut outcome = "error".to_owned();
                let mut reservation = None;
                if socket.send(Message::text(frame)).await.is_ok() {
                    loop {
                        let Some(Ok(m)) = socket.next().await else {
                            break;
                        };
                        let Message::Text(text) = m else { continue };
                        let text = text.as_str();
                        let Some(f) = ws::Frame::parse(text) else {
                            continue;
                        };
                        match f.kind() {
                            Some("reservation") if f.nonce() == Some(nonce.as_str()) => {
                                outcome = "accepted".into();
                                reservation = f.reservation().map(str::to_owned);
                                break;
                            }
                            Some("buy_refused") | Some("refused")
                                if f.nonce() == Some(nonce.as_str()) =>
                            {
                                outcome = f.code().unwrap_or("refused").to_owned();
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                out.push(Tap {
                    buyer: idx,
                    started,
                    answered: Instant::now(),
                    outcome,
                    reservation,
                });
            }
            let _ = socket.close(None).await;
        }
    }
    out
}

async fn audit(
    database_url: &str,
    offer: &str,
    limit: u32,
    acked: &[(String, String)],
) -> Result<Audit> {
    let store = store::Store::connect(database_url).await?;
    let offer_id = domain::OfferId::parse(offer)
        .map_err(|e| Error::Invalid(format!("offer id {offer}: {e:?}")))?;
    let a = store.audit_offer(&offer_id).await?;
    let held = store.held_reservations(&offer_id).await?;
    store.close().await;
    let by_id: HashMap<&str, &store::ReservationRecord> =
        held.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut missing = 0;
    let mut wrong_buyer = 0;
    let mut acked_ids = HashSet::new();
    for (id, buyer) in acked {
        acked_ids.insert(id.as_str());
        match by_id.get(id.as_str()) {
            None => missing += 1,
            Some(r) if r.buyer.as_str() != buyer.as_str() => wrong_buyer += 1,
            Some(_) => {}
        }
    }
    let mut per_buyer: HashMap<&str, u64> = HashMap::new();
    for r in &held {
        *per_buyer.entry(r.buyer.as_str()).or_default() += u64::from(r.quantity);
    }
    let c = a.counts;
    Ok(Audit {
        allotted: c.allotted,
        held: c.held,
        sold: c.sold,
        available: c.available,
        consistent: a.is_consistent(),
        // By the counters and by the rows: either exceeding the allotment is oversell.
        oversold: (u64::from(c.held) + u64::from(c.sold))
            .max(a.held_in_reservations + a.sold_in_orders)
            .saturating_sub(u64::from(c.allotted)),
        acknowledged_missing: missing,
        held_unacknowledged: held
            .iter()
            .filter(|r| !acked_ids.contains(r.id.as_str()))
            .count() as u64,
        buyers_over_limit: per_buyer
            .values()
            .filter(|n| **n > u64::from(limit))
            .count() as u64,
        wrong_buyer,
    })
}

/// Runs the scenario against `server`.
pub async fn run(server: &mut Server, opts: &SaleOptions, ctx: RunContext) -> Result<Report> {
    if opts.buyers == 0 || opts.taps == 0 {
        return Err(Error::Invalid("buyers and taps must be positive".into()));
    }
    let demand = opts.buyers as u64 * u64::from(opts.taps);
    let stock = opts
        .stock
        .unwrap_or(((demand * 4) / 5).clamp(1, u64::from(u32::MAX)) as u32);
    let limit = opts.per_buyer_limit.unwrap_or(opts.taps);
    let farmer = Farmer::sign_up(server.base()).await?;
    let broadcast = farmer.broadcast("压测 flash sale").await?;
    let offer = farmer.offer(&broadcast.id, stock, limit).await?;
    let (addr, host) = socket_addr(server.base())?;

    tracing::info!(buyers = opts.buyers, stock, "signing up buyers");
    let setup = Instant::now();
    let guests = api::guests(server.base(), opts.buyers, opts.setup_concurrency, "买家").await?;
    let subjects: Vec<String> = guests.iter().map(|g| g.subject.clone()).collect();
    let permits = Arc::new(Semaphore::new(opts.setup_concurrency.max(1)));
    let mut opening = Vec::with_capacity(guests.len());
    for g in guests {
        let (permits, base, host, b) = (
            permits.clone(),
            server.base().to_owned(),
            host.clone(),
            broadcast.id.clone(),
        );
        let via = opts.via;
        opening.push(tokio::spawn(async move {
            let _p = permits.acquire().await;
            match via {
                Via::Http => open_line(via, &base, addr, &host, g).await,
                Via::Ws => open_ws(&base, &b, g).await,
            }
        }));
    }
    let mut lines = Vec::with_capacity(opening.len());
    for h in opening {
        lines.push(h.await.map_err(|e| Error::Invalid(e.to_string()))??);
    }
    let setup_s = setup.elapsed().as_secs_f64();
    tracing::info!(setup_s, "buyers connected; tapping");

    let rss = RssWatch::start(server.pid());
    let pace = Pace {
        start: Arc::new(Barrier::new(lines.len() + 1)),
        go: Arc::default(),
        rate: opts.rate,
        buyers: lines.len(),
    };
    let (offer_arc, host_arc): (Arc<str>, Arc<str>) = (offer.as_str().into(), host.as_str().into());
    let tasks: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            tokio::spawn(buyer(
                i,
                line,
                offer_arc.clone(),
                host_arc.clone(),
                opts.taps,
                pace.clone(),
            ))
        })
        .collect();
    let window = CpuWindow::start(server.pid(), ctx.profile.as_deref());
    let go = Instant::now();
    let _ = pace.go.set(go);
    pace.start.wait().await;
    let mut taps: Vec<Tap> = Vec::with_capacity(demand as usize);
    for t in tasks {
        taps.extend(t.await.map_err(|e| Error::Invalid(e.to_string()))?);
    }
    let cpu = window.finish(rss.max_kb());

    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut lat_ok = Histogram::new();
    let mut lat_all = Histogram::new();
    let mut last_accept = go;
    let mut last_answer = go;
    let mut acked = Vec::new();
    for t in &taps {
        *outcomes.entry(t.outcome.clone()).or_default() += 1;
        let us = t.answered.saturating_duration_since(t.started).as_micros() as u64;
        lat_all.record(us);
        last_answer = last_answer.max(t.answered);
        if t.outcome == "accepted" {
            lat_ok.record(us);
            last_accept = last_accept.max(t.answered);
            if let Some(id) = &t.reservation {
                acked.push((id.clone(), subjects[t.buyer].clone()));
            }
        }
    }
    let accepted = lat_ok.count();
    let accept_phase_s = last_accept.saturating_duration_since(go).as_secs_f64();
    let burst_s = last_answer.saturating_duration_since(go).as_secs_f64();
    let engine = server.database_url().map(|u| {
        if u.starts_with("postgres") {
            "postgres".to_owned()
        } else {
            "sqlite".to_owned()
        }
    });
    let audit = match server.database_url() {
        Some(url) => Some(audit(url, &offer, limit, &acked).await?),
        None => None,
    };
    let answered = taps.len() as f64;
    let res = SaleResults {
        via: opts.via,
        database: engine.clone(),
        buyers: opts.buyers,
        taps_per_buyer: opts.taps,
        stock,
        per_buyer_limit: limit,
        rate: opts.rate,
        setup_s,
        taps: taps.len() as u64,
        accepted,
        outcomes,
        accept_phase_s,
        accepted_per_s: if accept_phase_s > 0.0 {
            accepted as f64 / accept_phase_s
        } else {
            0.0
        },
        burst_s,
        answers_per_s: if burst_s > 0.0 {
            answered / burst_s
        } else {
            0.0
        },
        latency_accepted: lat_ok.summary_ms(),
        latency_all: lat_all.summary_ms(),
        audit,
        server_us_per_tap: cpu
            .server
            .map(|s| s.cpu_s * 1e6 / answered.max(1.0))
            .filter(|_| answered > 0.0),
        generator_us_per_tap: cpu.generator.cpu_s * 1e6 / answered.max(1.0),
    };
    let audit_row = match &res.audit {
        Some(a) => format!(
            "{}: allotted {}, held {}, sold {}, available {}; oversold {}, acknowledged but missing {}, over the limit {}, held unacknowledged {}",
            if a.ok() { "OK" } else { "FAILED" },
            a.allotted,
            a.held,
            a.sold,
            a.available,
            a.oversold,
            a.acknowledged_missing,
            a.buyers_over_limit,
            a.held_unacknowledged
        ),
        None => "not checked (no database URL)".into(),
    };
    let rows = vec![
        (
            "setup".into(),
            format!(
                "{} guests on their own connections in {:.1} s ({:?}, {})",
                res.buyers,
                res.setup_s,
                res.via,
                engine.as_deref().unwrap_or("?")
            ),
        ),
        (
            "taps".into(),
            format!(
                "{} ({} per buyer) on {} units, limit {} per buyer",
                res.taps, res.taps_per_buyer, res.stock, res.per_buyer_limit
            ),
        ),
        ("outcomes".into(), format!("{:?}", res.outcomes)),
        (
            "accepted (durable)".into(),
            format!(
                "{:.0}/s: {} in {:.2} s",
                res.accepted_per_s, res.accepted, res.accept_phase_s
            ),
        ),
        (
            "all answers".into(),
            format!(
                "{:.0}/s: {} in {:.2} s",
                res.answers_per_s, res.taps, res.burst_s
            ),
        ),
        (
            "latency to 201".into(),
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.0} ms",
                res.latency_accepted.p50_ms,
                res.latency_accepted.p90_ms,
                res.latency_accepted.p99_ms,
                res.latency_accepted.max_ms
            ),
        ),
        (
            "latency, any answer".into(),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                res.latency_all.p50_ms, res.latency_all.p99_ms
            ),
        ),
        ("database check".into(), audit_row),
        (
            "server CPU per tap".into(),
            format!("{} µs", fmt_opt(res.server_us_per_tap, 1)),
        ),
        (
            "generator CPU per tap".into(),
            format!("{:.1} µs", res.generator_us_per_tap),
        ),
    ];
    let targets = vec![
        Target::check(
            "durable reservations/s on one offer",
            "20,000/s",
            format!("{:.0}/s", res.accepted_per_s),
            Some(res.accepted_per_s >= 20_000.0),
        ),
        Target::check(
            "reservation latency p99",
            "< 50 ms",
            format!("{:.1} ms", res.latency_accepted.p99_ms),
            Some(res.accepted > 0 && res.latency_accepted.p99_ms < 50.0),
        ),
        Target::check(
            "oversell",
            "0",
            res.audit
                .as_ref()
                .map(|a| a.oversold.to_string())
                .unwrap_or_else(|| "n/a".into()),
            res.audit.as_ref().map(|a| a.ok()),
        ),
    ];
    let notes = vec![match opts.rate {
        None => format!(
            "all {} buyers start at one barrier; each taps {} times in a row, waiting for each answer",
            res.buyers, res.taps_per_buyer
        ),
        Some(r) => format!(
            "open loop: taps due at {r:.0}/s over {} buyers; latency counts from when a tap was due",
            res.buyers
        ),
    }];
    Report::assemble("sale", ctx, server, engine, cpu, rows, &res, targets, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_out_of_small_documents() {
        let body = r#"{"id":"rsv_4t7k2m9p3x8q5r6w","offer_id":"ofr_1","quantity":1}"#;
        let f = ws::Frame::parse(body).unwrap();
        assert_eq!(f.id.as_deref(), Some("rsv_4t7k2m9p3x8q5r6w"));
        assert_eq!(f.code(), None);
    }

    #[test]
    fn audit_passes_only_when_every_check_does() {
        let good = Audit {
            consistent: true,
            ..Default::default()
        };
        assert!(good.ok());
        assert!(
            !Audit {
                oversold: 1,
                ..good.clone()
            }
            .ok()
        );
        assert!(
            !Audit {
                acknowledged_missing: 1,
                ..good.clone()
            }
            .ok()
        );
        assert!(!Audit::default().ok(), "inconsistent counts fail");
    }
}
