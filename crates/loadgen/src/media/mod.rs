//! The `viewers` scenario: one synthetic WHIP publisher, N light WHEP viewers
//! ramped in at a fixed rate, then a measurement window in steady state.
//!
//! Measured: per-viewer received bitrate and loss (from RTP sequence
//! numbers), join time (WHEP request → first keyframe), forwarding delay
//! (publisher send → viewer receive, from the send time inside sampled
//! payloads), and the server's CPU time per forwarded packet (utime + stime
//! of its process over the window ÷ media packets the viewers received in
//! it) and resident memory.

pub mod peer;
pub mod publisher;
pub mod rtp;
pub mod udp;
pub mod viewers;

use crate::api::Farmer;
use crate::error::{Error, Result};
use crate::hist::{Histogram, LatencySummary};
use crate::report::{CpuWindow, Report, RssWatch, RunContext, Target};
use crate::server::Server;
use crate::{fmt_opt, procfs};
use futures::StreamExt;
use publisher::{Publisher, PublisherOptions, PublisherReport};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use viewers::{AFTER, MEASURING, Swarm, ViewerConfig, ViewerResult};

/// Options of the `viewers` scenario.
#[derive(Debug, Clone)]
pub struct ViewersOptions {
    /// Viewers to connect.
    pub viewers: usize,
    /// New viewers per second during the ramp.
    pub ramp_per_s: f64,
    /// Pause between the end of the ramp and the window.
    pub settle: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// Tasks the viewers are spread over.
    pub shards: usize,
    /// Decrypt one media packet in this many (forwarding delay samples).
    pub sample_every: u64,
    /// What the publisher sends.
    pub publisher: PublisherOptions,
    /// Local address for the viewers' sockets.
    pub local_ip: IpAddr,
    /// REMB the viewers report.
    pub remb_bps: u64,
    /// How long a viewer may take to get its first keyframe.
    pub join_timeout: Duration,
}

impl Default for ViewersOptions {
    fn default() -> Self {
        Self {
            viewers: 200,
            ramp_per_s: 50.0,
            settle: Duration::from_secs(3),
            duration: Duration::from_secs(20),
            shards: 2,
            sample_every: 16,
            publisher: PublisherOptions::default(),
            local_ip: IpAddr::from([127, 0, 0, 1]),
            remb_bps: 10_000_000,
            join_timeout: Duration::from_secs(30),
        }
    }
}

/// A distribution over viewers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of these values (empty → zeros).
    pub fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Spread {
            min: v[0],
            p10: at(0.10),
            p50: at(0.50),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            max: v[v.len() - 1],
        }
    }
}

/// Results of the `viewers` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ViewersResults {
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that got their first keyframe.
    pub joined: usize,
    /// Viewers that failed, by reason.
    pub failures: BTreeMap<String, usize>,
    /// Ramp rate asked for, viewers/s.
    pub ramp_per_s: f64,
    /// How long the ramp took until every viewer joined or gave up, s.
    pub ramp_s: f64,
    /// Measurement window, s.
    pub window_s: f64,
    /// WHEP request → first keyframe.
    pub join: LatencySummary,
    /// WHEP request → HTTP answer.
    pub whep_answer: LatencySummary,
    /// WHEP request → ICE + DTLS connected.
    pub connect: LatencySummary,
    /// Viewers whose first video packet was not a keyframe start.
    pub first_video_not_keyframe: usize,
    /// Received video bitrate per viewer in the window, kbit/s (SRTP bytes).
    pub video_kbps: Spread,
    /// Received audio bitrate per viewer in the window, kbit/s.
    pub audio_kbps: Spread,
    /// Joined viewers that received no video in the window.
    pub viewers_without_video: usize,
    /// Loss over all viewers in the window, percent (no NACKs were sent).
    pub loss_pct: f64,
    /// Per-viewer loss in the window, percent.
    pub loss_pct_per_viewer: Spread,
    /// Viewers whose window loss was 0.5 % or more.
    pub viewers_over_half_percent_loss: usize,
    /// Publisher send → viewer receive, sampled video packets in the window.
    pub delay_video: LatencySummary,
    /// Same for audio.
    pub delay_audio: LatencySummary,
    /// Kernel arrival at a viewer's socket → read by the viewer (the
    /// generator's own lag, excluded from the delays).
    pub generator_lag: LatencySummary,
    /// Media packets the viewers received in the window.
    pub forwarded_packets: u64,
    /// Packets the SFU should have sent them (from sequence numbers).
    pub expected_packets: u64,
    /// Forwarded packets per second.
    pub forwarded_pps: f64,
    /// Forwarded media, Mbit/s (SRTP datagram bytes).
    pub forwarded_mbps: f64,
    /// Server CPU time per forwarded packet, µs.
    pub server_us_per_packet: Option<f64>,
    /// Viewers of this stream one core would carry at that cost.
    pub implied_viewers_per_core: Option<f64>,
    /// Generator CPU time per received packet, µs.
    pub generator_us_per_packet: f64,
    /// Server memory before the viewers joined, MiB.
    pub server_rss_before_mib: Option<f64>,
    /// Server memory per connected viewer, KiB.
    pub server_rss_per_viewer_kib: Option<f64>,
    /// What the publisher sent.
    pub publisher: PublisherReport,
    /// The SFU's own view (`GET /api/v1/broadcasts/{id}/stats`, up to 200 viewers).
    pub sfu_view: SfuView,
}

/// A summary of the owner's media statistics at the end of the window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SfuView {
    /// Viewers the SFU counts.
    pub viewer_count: u64,
    /// Of the listed ones, on audio only (no video forwarded).
    pub audio_only: u64,
    /// Of the listed ones, the median bandwidth estimate, kbit/s.
    pub estimate_kbps_p50: f64,
    /// The publisher's measured video bitrate, kbit/s.
    pub publisher_video_kbps: f64,
}

fn sfu_view(stats: &serde_json::Value) -> SfuView {
    let viewers = stats["viewers"].as_array().cloned().unwrap_or_default();
    let mut est: Vec<f64> = viewers
        .iter()
        .filter_map(|v| v["estimate_bps"].as_f64())
        .map(|b| b / 1000.0)
        .collect();
    est.sort_by(f64::total_cmp);
    SfuView {
        viewer_count: stats["viewer_count"].as_u64().unwrap_or(0),
        audio_only: viewers
            .iter()
            .filter(|v| v["audio_only"].as_bool() == Some(true))
            .count() as u64,
        estimate_kbps_p50: est.get(est.len() / 2).copied().unwrap_or(0.0),
        publisher_video_kbps: stats["publisher"]["layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["bitrate_bps"].as_f64())
                    .sum::<f64>()
                    / 1000.0
            })
            .unwrap_or(0.0),
    }
}

fn summary_ms(d: impl Iterator<Item = Duration>) -> LatencySummary {
    let mut h = Histogram::new();
    for x in d {
        h.record(x.as_micros() as u64);
    }
    h.summary_ms()
}

/// Runs the scenario against `server`.
pub async fn run(server: &mut Server, opts: &ViewersOptions, ctx: RunContext) -> Result<Report> {
    if opts.viewers == 0 || opts.ramp_per_s <= 0.0 || opts.sample_every == 0 {
        return Err(Error::Invalid(
            "viewers, ramp and sample-every must be positive".into(),
        ));
    }
    let farmer = Farmer::sign_up(server.base()).await?;
    let broadcast = farmer.broadcast("压测 viewers").await?;
    let whip = server.url(&format!("/api/v1/broadcasts/{}/whip", broadcast.id));
    let publisher =
        Publisher::start(whip, broadcast.stream_key.clone(), opts.publisher.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while farmer.broadcast_state(&broadcast.id).await? != "live" {
        if Instant::now() > deadline {
            return Err(Error::Server("the broadcast never went live".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the SFU measure the publisher's bitrate before viewers pick layers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = RssWatch::start(server.pid());
    let rss_before = server.pid().and_then(procfs::sample).map(|s| s.rss_kb);

    let swarm = Swarm::new(ViewerConfig {
        whep_url: server.url(&format!("/api/v1/broadcasts/{}/whep", broadcast.id)),
        local_ip: opts.local_ip,
        sample_every: opts.sample_every,
        remb_bps: opts.remb_bps,
        join_timeout: opts.join_timeout,
    })?;
    let shards: Vec<_> = (0..opts.shards.max(1))
        .map(|_| viewers::spawn_shard(swarm.clone()))
        .collect();
    tracing::info!(
        viewers = opts.viewers,
        ramp = opts.ramp_per_s,
        "ramping viewers"
    );
    let ramp_start = Instant::now();
    for i in 0..opts.viewers {
        let at = ramp_start + Duration::from_secs_f64(i as f64 / opts.ramp_per_s);
        tokio::time::sleep_until(at.into()).await;
        let _ = shards[i % shards.len()].0.send(i);
    }
    let limit = Instant::now() + opts.join_timeout + Duration::from_secs(5);
    loop {
        let done = swarm.joined.load(std::sync::atomic::Ordering::Relaxed)
            + swarm.failed.load(std::sync::atomic::Ordering::Relaxed);
        if done >= opts.viewers || Instant::now() > limit {
            break;
        }
        if !server.running() {
            return Err(Error::Server(format!(
                "the server died during the ramp:\n{}",
                server.log_tail(20)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();
    tracing::info!(
        joined = swarm.joined.load(std::sync::atomic::Ordering::Relaxed),
        failed = swarm.failed.load(std::sync::atomic::Ordering::Relaxed),
        ramp_s,
        "ramp done; settling"
    );
    tokio::time::sleep(opts.settle).await;

    swarm
        .phase
        .store(MEASURING, std::sync::atomic::Ordering::Relaxed);
    let rss_at_start = server.pid().and_then(procfs::sample).map(|s| s.rss_kb);
    let window = CpuWindow::start(server.pid(), ctx.profile.as_deref());
    let before = swarm.totals();
    tokio::time::sleep(opts.duration).await;
    let after = swarm.totals();
    let cpu = window.finish(rss.max_kb());
    swarm
        .phase
        .store(AFTER, std::sync::atomic::Ordering::Relaxed);
    let stats = farmer.media_stats(&broadcast.id).await.unwrap_or_default();
    tracing::info!("window closed; stopping viewers");

    swarm.stop();
    let mut results: Vec<ViewerResult> = Vec::with_capacity(opts.viewers);
    for (tx, handle) in shards {
        drop(tx);
        results.extend(handle.await.map_err(|e| Error::Invalid(e.to_string()))?);
    }
    let publisher_location = publisher.location.clone();
    let publisher_report = publisher.stop();
    if !server.owned() {
        // Someone else's server: end our sessions instead of leaving them to
        // time out (WHIP/WHEP `DELETE`).
        let http = reqwest::Client::new();
        let locations: Vec<String> = results
            .iter()
            .filter_map(|r| r.location.clone())
            .chain(publisher_location)
            .collect();
        futures::stream::iter(locations)
            .for_each_concurrent(32, |l| {
                let (http, url) = (http.clone(), server.url(&l));
                async move {
                    let _ = http.delete(url).send().await;
                }
            })
            .await;
    }

    // Per-viewer numbers over each viewer's own view of the window.
    let window_s = cpu.window_s;
    let mut video_kbps = Vec::new();
    let mut audio_kbps = Vec::new();
    let mut loss = Vec::new();
    let mut without_video = 0;
    let mut vdelay = Histogram::new();
    let mut adelay = Histogram::new();
    let mut lag = Histogram::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        if let Some(e) = &r.error {
            // Group by the start of the message (ids differ per viewer).
            let key: String = e.chars().take(80).collect();
            *failures.entry(key).or_default() += 1;
        }
        for d in &r.video_delays_us {
            vdelay.record(u64::from(*d));
        }
        for d in &r.audio_delays_us {
            adelay.record(u64::from(*d));
        }
        for d in &r.lag_us {
            lag.record(u64::from(*d));
        }
        let (m0, m1) = (&r.window.0, &r.window.1);
        let (Some(t0), Some(t1)) = (m0.at, m1.at) else {
            continue;
        };
        let secs = t1.saturating_duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            continue;
        }
        let dv = (
            m1.video.0 - m0.video.0,
            m1.video.1 - m0.video.1,
            m1.video.2 - m0.video.2,
        );
        let da = (
            m1.audio.0 - m0.audio.0,
            m1.audio.1 - m0.audio.1,
            m1.audio.2 - m0.audio.2,
        );
        if r.join_time.is_some() && dv.0 == 0 {
            without_video += 1;
        }
        video_kbps.push(dv.2 as f64 * 8.0 / secs / 1000.0);
        audio_kbps.push(da.2 as f64 * 8.0 / secs / 1000.0);
        let expected = dv.1 + da.1;
        let received = dv.0 + da.0;
        if expected > 0 {
            loss.push(expected.saturating_sub(received) as f64 * 100.0 / expected as f64);
        }
    }
    let joins: Vec<Duration> = results.iter().filter_map(|r| r.join_time).collect();
    let forwarded = after.0 - before.0;
    let expected = after.1 - before.1;
    let per_packet = |cpu_s: f64| {
        if forwarded > 0 {
            cpu_s * 1e6 / forwarded as f64
        } else {
            0.0
        }
    };
    let server_us = cpu
        .server
        .map(|s| per_packet(s.cpu_s))
        .filter(|_| forwarded > 0);
    let pps_per_viewer = {
        let joined = joins.len().max(1) as f64;
        forwarded as f64 / window_s.max(1e-9) / joined
    };
    let res = ViewersResults {
        viewers: opts.viewers,
        joined: joins.len(),
        failures,
        ramp_per_s: opts.ramp_per_s,
        ramp_s,
        window_s,
        join: summary_ms(joins.iter().copied()),
        whep_answer: summary_ms(results.iter().filter_map(|r| r.answer_time)),
        connect: summary_ms(results.iter().filter_map(|r| r.connect_time)),
        first_video_not_keyframe: results
            .iter()
            .filter(|r| r.first_video_not_keyframe)
            .count(),
        video_kbps: Spread::of(video_kbps),
        audio_kbps: Spread::of(audio_kbps),
        viewers_without_video: without_video,
        loss_pct: if expected > 0 {
            expected.saturating_sub(forwarded) as f64 * 100.0 / expected as f64
        } else {
            0.0
        },
        viewers_over_half_percent_loss: loss.iter().filter(|l| **l >= 0.5).count(),
        loss_pct_per_viewer: Spread::of(loss),
        delay_video: vdelay.summary_ms(),
        delay_audio: adelay.summary_ms(),
        generator_lag: lag.summary_ms(),
        forwarded_packets: forwarded,
        expected_packets: expected,
        forwarded_pps: forwarded as f64 / window_s.max(1e-9),
        forwarded_mbps: (after.2 - before.2) as f64 * 8.0 / window_s.max(1e-9) / 1e6,
        server_us_per_packet: server_us,
        implied_viewers_per_core: server_us
            .filter(|us| *us > 0.0)
            .map(|us| 1e6 / (us * pps_per_viewer)),
        generator_us_per_packet: per_packet(cpu.generator.cpu_s),
        server_rss_before_mib: rss_before.map(|kb| kb as f64 / 1024.0),
        server_rss_per_viewer_kib: match (rss_before, rss_at_start) {
            (Some(a), Some(b)) if !joins.is_empty() => {
                Some(b.saturating_sub(a) as f64 / joins.len() as f64)
            }
            _ => None,
        },
        publisher: publisher_report,
        sfu_view: sfu_view(&stats),
    };

    let rows = vec![
        (
            "viewers joined".into(),
            format!(
                "{} of {} (ramp {:.0}/s took {:.1} s)",
                res.joined, res.viewers, res.ramp_per_s, res.ramp_s
            ),
        ),
        (
            "join (WHEP → keyframe)".into(),
            format!(
                "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                res.join.p50_ms, res.join.p99_ms, res.join.max_ms
            ),
        ),
        (
            "  of which".into(),
            format!(
                "WHEP answer p50 {:.1} ms, ICE+DTLS connected p50 {:.0} ms (p99 {:.0} ms)",
                res.whep_answer.p50_ms, res.connect.p50_ms, res.connect.p99_ms
            ),
        ),
        (
            "video per viewer".into(),
            format!(
                "p50 {:.0} kbit/s (min {:.0}, p10 {:.0}); {} joined viewers got no video",
                res.video_kbps.p50,
                res.video_kbps.min,
                res.video_kbps.p10,
                res.viewers_without_video
            ),
        ),
        (
            "audio per viewer".into(),
            format!("p50 {:.0} kbit/s", res.audio_kbps.p50),
        ),
        (
            "loss (no NACKs)".into(),
            format!(
                "{:.3} % overall, worst viewer {:.2} %, {} viewers ≥ 0.5 %",
                res.loss_pct, res.loss_pct_per_viewer.max, res.viewers_over_half_percent_loss
            ),
        ),
        (
            "forwarding delay video".into(),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} samples)",
                res.delay_video.p50_ms,
                res.delay_video.p99_ms,
                res.delay_video.max_ms,
                res.delay_video.count
            ),
        ),
        (
            "forwarding delay audio".into(),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms",
                res.delay_audio.p50_ms, res.delay_audio.p99_ms
            ),
        ),
        (
            "generator lag (excluded)".into(),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms after the kernel queued a packet",
                res.generator_lag.p50_ms, res.generator_lag.p99_ms
            ),
        ),
        (
            "forwarded".into(),
            format!(
                "{:.0} packets/s, {:.1} Mbit/s",
                res.forwarded_pps, res.forwarded_mbps
            ),
        ),
        (
            "server CPU per packet".into(),
            format!(
                "{} µs → {} viewers/core",
                fmt_opt(res.server_us_per_packet, 2),
                fmt_opt(res.implied_viewers_per_core, 0)
            ),
        ),
        (
            "generator CPU per packet".into(),
            format!("{:.2} µs", res.generator_us_per_packet),
        ),
        (
            "server memory".into(),
            format!(
                "{} MiB before viewers, {} KiB per viewer",
                fmt_opt(res.server_rss_before_mib, 1),
                fmt_opt(res.server_rss_per_viewer_kib, 0)
            ),
        ),
        (
            "publisher".into(),
            format!(
                "{:.0} kbit/s video, {} keyframes ({} requested), {} late frames",
                res.publisher.video_kbps,
                res.publisher.keyframes,
                res.publisher.keyframe_requests,
                res.publisher.late_frames
            ),
        ),
        (
            "SFU view".into(),
            format!(
                "{} viewers, {} of the listed on audio only, estimate p50 {:.0} kbit/s",
                res.sfu_view.viewer_count, res.sfu_view.audio_only, res.sfu_view.estimate_kbps_p50
            ),
        ),
    ];
    let targets = vec![
        Target::check(
            "SFU server CPU per forwarded packet",
            "≤ 2.5 µs",
            format!("{} µs", fmt_opt(res.server_us_per_packet, 2)),
            res.server_us_per_packet.map(|u| u <= 2.5),
        ),
        Target::check(
            "loss",
            "< 0.5 %",
            format!("{:.3} %", res.loss_pct),
            Some(res.loss_pct < 0.5 && res.forwarded_packets > 0),
        ),
        Target::check(
            "join p99 (loopback)",
            "< 500 ms",
            format!("{:.0} ms", res.join.p99_ms),
            Some(res.join.count > 0 && res.join.p99_ms < 500.0),
        ),
        Target::check(
            "forwarding delay p99",
            "< 10 ms",
            format!("{:.2} ms", res.delay_video.p99_ms),
            Some(res.delay_video.count > 0 && res.delay_video.p99_ms < 10.0),
        ),
    ];
    let mut notes = vec![format!(
        "delay = publisher send → kernel arrival at the viewer's socket (SO_TIMESTAMPNS), sampled from 1 in {} media packets; viewers send receiver reports and REMB ({} kbit/s) but no NACKs",
        opts.sample_every,
        opts.remb_bps / 1000
    )];
    if res.sfu_view.audio_only > 0 {
        notes.push(format!(
            "the SFU kept {} of the (up to 200) viewers it lists on audio only: its bandwidth estimate (p50 {:.0} kbit/s) is below what the {:.0} kbit/s stream needs",
            res.sfu_view.audio_only, res.sfu_view.estimate_kbps_p50, res.publisher.video_kbps
        ));
    }
    if res.publisher.late_frames > 0 {
        notes.push(format!(
            "{} publisher frames left more than one frame interval late: the machine was overloaded",
            res.publisher.late_frames
        ));
    }
    Report::assemble(
        "viewers", ctx, server, None, cpu, rows, &res, targets, notes,
    )
}
