//! A lossy UDP relay between a viewer and the SFU: induced loss that happens on the
//! wire, before the viewer's WebRTC stack sees the packet.
//!
//! The SDP answer handed to the viewer is rewritten so that each of the server's UDP
//! candidates points at a relay socket (TCP candidates are removed, so the viewer
//! cannot bypass the relay). The relay forwards both directions unchanged, except
//! that server→viewer RTP of the chosen payload types whose sequence number is a
//! multiple of `drop_one_in` is dropped the *first* time it passes. SRTP leaves the
//! RTP header in clear, so the relay reads SSRC, payload type and sequence number
//! without keys; STUN, DTLS and SRTCP pass untouched. A packet with a dropped
//! `(ssrc, seq)` that passes later is a retransmission, and the time since the drop
//! is recorded.
//!
//! The downlink can also be made narrow ([`LossyRelay::set_downlink_bps`]): a
//! bottleneck that sends server→viewer datagrams no faster than the rate, queues
//! them for at most [`BOTTLENECK_QUEUE`] and drops what does not fit (a router's
//! tail drop). The viewer's congestion control sees what it would on a weak mobile
//! link: queueing delay first, then loss.
//!
//! The server sees the relay's address as a peer-reflexive candidate, as it would
//! see a viewer behind a NAT.

use super::{TkResult, s};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What a [`LossyRelay`] has seen so far.
#[derive(Debug, Clone, Default)]
pub struct RelayStats {
    /// RTP packets dropped on their first pass towards the viewer.
    pub dropped: u64,
    /// Dropped packets that passed again later (retransmissions): `(ssrc, seq, time
    /// from the drop to the retransmission passing the relay)`.
    pub recovered: Vec<(u32, u16, Duration)>,
    /// Dropped packets not retransmitted (yet): `(ssrc, seq, time since the drop)`.
    pub outstanding: Vec<(u32, u16, Duration)>,
    /// Datagrams forwarded towards the viewer.
    pub to_viewer: u64,
    /// Datagrams forwarded towards the server.
    pub to_server: u64,
    /// Datagrams towards the viewer dropped by the bottleneck (queue full).
    pub bottleneck_drops: u64,
}

/// Longest a datagram waits in the bottleneck's queue before it is dropped instead.
pub const BOTTLENECK_QUEUE: Duration = Duration::from_millis(250);

/// A link of limited rate with a bounded queue: when each datagram leaves, or
/// that it is dropped. Sans-I/O; the relay's sending task waits for the times.
#[derive(Debug, Clone, Default)]
struct Bottleneck {
    rate_bps: Option<u64>,
    /// When the link has sent everything admitted so far.
    busy_until: Option<Instant>,
}

impl Bottleneck {
    /// `Some(when it leaves)` or `None` (dropped: the queue is full).
    fn admit(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        let Some(rate) = self.rate_bps.filter(|r| *r > 0) else {
            return Some(now);
        };
        let start = self.busy_until.map_or(now, |b| b.max(now));
        if start.saturating_duration_since(now) > BOTTLENECK_QUEUE {
            return None;
        }
        // Count IP and UDP headers too: they use the link as well.
        let bits = (bytes as u64 + 28) * 8;
        let done = start + Duration::from_micros(bits * 1_000_000 / rate);
        self.busy_until = Some(done);
        Some(done)
    }
}

struct DropRecord {
    at: Instant,
    resent_after: Option<Duration>,
}

struct State {
    drop_one_in: u16,
    /// RTP payload types subject to loss (empty: every RTP packet).
    payload_types: Vec<u8>,
    drops: HashMap<(u32, u16), DropRecord>,
    order: Vec<(u32, u16)>,
    to_viewer: u64,
    to_server: u64,
    bottleneck: Bottleneck,
    bottleneck_drops: u64,
}

impl State {
    /// Returns whether a server→viewer datagram is forwarded.
    fn pass_to_viewer(&mut self, d: &[u8], now: Instant) -> bool {
        self.to_viewer += 1;
        let Some((pt, seq, ssrc)) = rtp_fields(d) else {
            return true;
        };
        if self.drop_one_in == 0
            || seq % self.drop_one_in != 0
            || (!self.payload_types.is_empty() && !self.payload_types.contains(&pt))
        {
            return true;
        }
        match self.drops.entry((ssrc, seq)) {
            Entry::Vacant(e) => {
                e.insert(DropRecord {
                    at: now,
                    resent_after: None,
                });
                self.order.push((ssrc, seq));
                false
            }
            Entry::Occupied(mut e) => {
                let r = e.get_mut();
                if r.resent_after.is_none() {
                    r.resent_after = Some(now.saturating_duration_since(r.at));
                }
                true
            }
        }
    }
}

/// `(payload type, sequence number, SSRC)` of an RTP (or SRTP) datagram; `None` for
/// STUN, DTLS and RTCP (RFC 7983 demultiplexing, RFC 5761 RTP/RTCP distinction).
fn rtp_fields(d: &[u8]) -> Option<(u8, u16, u32)> {
    if d.len() < 12 || !(128..=191).contains(&d[0]) || (192..=223).contains(&d[1]) {
        return None;
    }
    Some((
        d[1] & 0x7f,
        u16::from_be_bytes([d[2], d[3]]),
        u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
    ))
}

/// Payload types of the answer's `m=video` sections.
fn video_payload_types(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("m=video "))
        .flat_map(|rest| rest.split_whitespace().skip(2))
        .filter_map(|pt| pt.parse().ok())
        .collect()
}

/// A running lossy relay; its sockets close when it is dropped.
pub struct LossyRelay {
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LossyRelay {
    /// Start a relay for the server candidates in `answer` and return it with the
    /// answer rewritten to point at it. Video RTP (by the answer's video payload
    /// types) whose sequence number is a multiple of `drop_one_in` is dropped once.
    pub async fn start(answer: &str, drop_one_in: u16) -> TkResult<(LossyRelay, String)> {
        let state = Arc::new(Mutex::new(State {
            drop_one_in,
            payload_types: video_payload_types(answer),
            drops: HashMap::new(),
            order: Vec::new(),
            to_viewer: 0,
            to_server: 0,
            bottleneck: Bottleneck::default(),
            bottleneck_drops: 0,
        }));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let relay = LossyRelay {
            state: state.clone(),
            tasks: tasks.clone(),
        };
        let mut fronts: HashMap<SocketAddr, SocketAddr> = HashMap::new();
        let mut out = String::with_capacity(answer.len());
        for line in answer.split_inclusive('\n') {
            let body = line.trim_end_matches(['\r', '\n']);
            let Some(cand) = body.strip_prefix("a=candidate:") else {
                out.push_str(line);
                continue;
            };
            let mut f: Vec<&str> = cand.split(' ').collect();
            if f.len() < 8 {
                out.push_str(line);
                continue;
            }
            if !f[2].eq_ignore_ascii_case("udp") {
                continue; // a TCP path would bypass the loss
            }
            let server: SocketAddr = format!("{}:{}", f[4], f[5]).parse().map_err(s)?;
            let front_addr = match fronts.get(&server) {
                Some(a) => *a,
                None => {
                    let front = Arc::new(
                        UdpSocket::bind(SocketAddr::new(server.ip(), 0))
                            .await
                            .map_err(s)?,
                    );
                    let a = front.local_addr().map_err(s)?;
                    let task =
                        tokio::spawn(front_loop(front, server, state.clone(), tasks.clone()));
                    lock(&tasks).push(task);
                    fronts.insert(server, a);
                    a
                }
            };
            let (ip, port) = (front_addr.ip().to_string(), front_addr.port().to_string());
            f[4] = &ip;
            f[5] = &port;
            out.push_str("a=candidate:");
            out.push_str(&f.join(" "));
            out.push_str(&line[body.len()..]);
        }
        if fronts.is_empty() {
            return Err("the answer has no UDP candidate to relay".into());
        }
        Ok((relay, out))
    }

    /// What the relay has seen so far.
    pub fn stats(&self) -> RelayStats {
        let st = lock(&self.state);
        let now = Instant::now();
        let mut out = RelayStats {
            dropped: st.order.len() as u64,
            to_viewer: st.to_viewer,
            to_server: st.to_server,
            bottleneck_drops: st.bottleneck_drops,
            ..Default::default()
        };
        for key in &st.order {
            let Some(r) = st.drops.get(key) else { continue };
            match r.resent_after {
                Some(d) => out.recovered.push((key.0, key.1, d)),
                None => out
                    .outstanding
                    .push((key.0, key.1, now.saturating_duration_since(r.at))),
            }
        }
        out
    }

    /// Narrow the viewer's downlink to `bps` (IP payload rate), or open it (`None`).
    pub fn set_downlink_bps(&self, bps: Option<u64>) {
        lock(&self.state).bottleneck.rate_bps = bps;
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

/// Viewer-facing socket: what the viewer believes is the server.
async fn front_loop(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    // One server-facing socket per viewer address, so each viewer 5-tuple stays distinct.
    let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, viewer)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let back = match backs.get(&viewer) {
            Some(b) => b.clone(),
            None => {
                let Ok(b) = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await else {
                    continue;
                };
                let b = Arc::new(b);
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let task = tokio::spawn(back_loop(b.clone(), tx, state.clone()));
                lock(&tasks).push(task);
                let task = tokio::spawn(downlink(rx, front.clone(), viewer));
                lock(&tasks).push(task);
                backs.insert(viewer, b.clone());
                b
            }
        };
        lock(&state).to_server += 1;
        let _ = back.send_to(&buf[..n], server).await;
    }
}

/// Server-facing socket for one viewer address: applies the loss and the
/// bottleneck, and hands what passes to [`downlink`] with the time it leaves.
async fn back_loop(
    back: Arc<UdpSocket>,
    out: tokio::sync::mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    state: Arc<Mutex<State>>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, _)) = back.recv_from(&mut buf).await else {
            continue;
        };
        let now = Instant::now();
        let release = {
            let mut st = lock(&state);
            if !st.pass_to_viewer(&buf[..n], now) {
                continue;
            }
            let at = st.bottleneck.admit(n, now);
            if at.is_none() {
                st.bottleneck_drops += 1;
            }
            at
        };
        if let Some(at) = release
            && out.send((at, buf[..n].to_vec())).is_err()
        {
            return;
        }
    }
}

/// Sends datagrams to the viewer in order, each no earlier than its time.
async fn downlink(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    front: Arc<UdpSocket>,
    viewer: SocketAddr,
) {
    while let Some((at, d)) = rx.recv().await {
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let _ = front.send_to(&d, viewer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn drops_every_nth_video_packet_once_and_times_the_resend() {
        let mut st = State {
            drop_one_in: 10,
            payload_types: vec![96],
            drops: HashMap::new(),
            order: Vec::new(),
            to_viewer: 0,
            to_server: 0,
            bottleneck: Bottleneck::default(),
            bottleneck_drops: 0,
        };
        let t0 = Instant::now();
        let passed: Vec<u16> = (1..=30)
            .filter(|&q| st.pass_to_viewer(&rtp(96, q, 7), t0))
            .collect();
        assert_eq!(passed.len(), 27);
        assert!(!passed.contains(&10) && !passed.contains(&20) && !passed.contains(&30));
        // audio (other payload type), RTCP, STUN and DTLS pass untouched
        assert!(st.pass_to_viewer(&rtp(111, 40, 8), t0));
        assert!(st.pass_to_viewer(&[0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0], t0));
        assert!(st.pass_to_viewer(&[0x00, 0x01, 0x00, 0x00], t0));
        assert!(st.pass_to_viewer(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], t0));
        // the retransmission of seq 20 passes and is timed
        assert!(st.pass_to_viewer(&rtp(96, 20, 7), t0 + Duration::from_millis(35)));
        let resent: Vec<_> = st
            .order
            .iter()
            .filter_map(|k| st.drops[k].resent_after.map(|d| (k.1, d)))
            .collect();
        assert_eq!(resent, vec![(20, Duration::from_millis(35))]);
    }

    #[test]
    fn bottleneck_paces_queues_and_tail_drops() {
        let t0 = Instant::now();
        let mut b = Bottleneck::default();
        // Open: everything leaves at once.
        assert_eq!(b.admit(1200, t0), Some(t0));
        b.rate_bps = Some(1_000_000);
        // 1000 + 28 bytes at 1 Mbit/s take 8.224 ms each.
        let each = Duration::from_micros(8224);
        assert_eq!(b.admit(1000, t0), Some(t0 + each));
        assert_eq!(b.admit(1000, t0), Some(t0 + each * 2));
        // A burst fills the queue; what would wait more than 250 ms is dropped.
        let admitted = (0..100).filter(|_| b.admit(1000, t0).is_some()).count();
        assert_eq!(admitted, 29);
        assert_eq!(b.admit(1000, t0), None);
        // Once the queue drained the link takes packets again.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.admit(1000, later), Some(later + each));
    }

    #[test]
    fn video_payload_types_from_the_answer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n";
        assert_eq!(video_payload_types(sdp), vec![96, 97]);
    }
}
