//! A UDP relay that puts a weak network between WebRTC peers and the SFU: delay,
//! jitter (which reorders), random loss and a rate cap with a bounded queue, per
//! direction, in user space (this machine's kernel has no `netem`).
//!
//! Two ways in:
//!
//! * [`Relay::start`] sits in front of a *viewer*: the SDP answer handed to the
//!   viewer is rewritten so that each of the server's UDP candidates points at a
//!   relay socket (TCP candidates are removed, so the viewer cannot bypass it). It
//!   can also drop every n-th video RTP packet towards the viewer the first time it
//!   passes and time its retransmission: SRTP leaves the RTP header in clear, so the
//!   relay reads SSRC, payload type and sequence number without keys; STUN, DTLS and
//!   SRTCP pass untouched by that rule.
//! * [`Relay::in_front_of`] listens on an address the SFU *advertises* (its 1:1 NAT
//!   setting) and forwards to the address the SFU is bound to: a client that gathers
//!   its own candidates and signals over HTTP itself (GStreamer's `whip-client`)
//!   reaches the SFU only through the relay. Each client address gets its own
//!   [`LinkProfile`] ([`Relay::set_profile`]), so a publisher can sit behind a bad
//!   link while viewers on the same relay have a clean one.
//!
//! The server sees the relay's address as a peer-reflexive candidate, as it would
//! see a peer behind a NAT.
//!
//! What a datagram goes through, in order: random loss, then the bottleneck (sent
//! no faster than the rate, queued for at most [`Impairment::queue`], tail-dropped
//! beyond: a router's queue), then the one-way delay plus a uniform random jitter
//! drawn per datagram. Jitter larger than the spacing of a burst reorders it, as
//! phone networks do. Randomness is seeded ([`LinkProfile::seed`]): a run can be
//! repeated.

use super::{TkResult, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a [`Relay`] has seen so far.
#[derive(Debug, Clone, Default)]
pub struct RelayStats {
    /// RTP packets dropped on their first pass towards the client (`drop_one_in`).
    pub dropped: u64,
    /// Those dropped packets that passed again later (retransmissions): `(ssrc, seq,
    /// time from the drop to the retransmission passing the relay)`.
    pub recovered: Vec<(u32, u16, Duration)>,
    /// Dropped packets not retransmitted (yet): `(ssrc, seq, time since the drop)`.
    pub outstanding: Vec<(u32, u16, Duration)>,
    /// Datagrams forwarded towards the clients.
    pub to_client: u64,
    /// Datagrams forwarded towards the server.
    pub to_server: u64,
    /// Datagrams towards the clients dropped by a full bottleneck queue.
    pub bottleneck_drops: u64,
    /// Datagrams lost at random, towards the server and towards the clients.
    pub random_drops: (u64, u64),
}

/// Longest a datagram waits in a bottleneck's queue, unless set otherwise.
pub const BOTTLENECK_QUEUE: Duration = Duration::from_millis(250);

/// What one direction of a link does to datagrams. `Default` is a perfect link.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for each datagram.
    pub jitter: Duration,
    /// Probability (0..1) that a datagram is lost.
    pub loss: f64,
    /// Rate cap in bit/s (IP payload plus IP and UDP headers); `None` = unlimited.
    pub rate_bps: Option<u64>,
    /// Longest a datagram may queue behind the rate cap before it is dropped.
    pub queue: Duration,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate_bps: None,
            queue: BOTTLENECK_QUEUE,
        }
    }
}

impl Impairment {
    /// A path of `delay` one way with `jitter` on top.
    pub fn delayed(delay: Duration, jitter: Duration) -> Self {
        Self {
            delay,
            jitter,
            ..Self::default()
        }
    }

    /// The same, also losing `loss` (0..1) of the datagrams.
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }
}

/// Both directions of one client's link.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkProfile {
    /// Client to server.
    pub up: Impairment,
    /// Server to client.
    pub down: Impairment,
    /// Seed for the loss and jitter draws.
    pub seed: u64,
}

impl LinkProfile {
    /// The same impairment both ways.
    pub fn symmetric(both: Impairment) -> Self {
        Self {
            up: both.clone(),
            down: both,
            seed: 1,
        }
    }
}

/// A link of limited rate with a bounded queue: when each datagram leaves, or
/// that it is dropped. Sans-I/O; the relay's sending task waits for the times.
#[derive(Debug, Clone, Default)]
struct Bottleneck {
    rate_bps: Option<u64>,
    queue: Duration,
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
        if start.saturating_duration_since(now) > self.queue {
            return None;
        }
        // Count IP and UDP headers too: they use the link as well.
        let bits = (bytes as u64 + 28) * 8;
        let done = start + Duration::from_micros(bits * 1_000_000 / rate);
        self.busy_until = Some(done);
        Some(done)
    }
}

/// Why a datagram did not pass a [`Link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    Random,
    QueueFull,
}

/// One direction of one client's link (sans-I/O): when a datagram arrives, if at all.
struct Link {
    imp: Impairment,
    bottleneck: Bottleneck,
    rng: StdRng,
}

impl Link {
    fn new(imp: Impairment, seed: u64) -> Self {
        Self {
            bottleneck: Bottleneck {
                rate_bps: imp.rate_bps,
                queue: imp.queue,
                busy_until: None,
            },
            imp,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn set_rate(&mut self, bps: Option<u64>) {
        self.imp.rate_bps = bps;
        self.bottleneck.rate_bps = bps;
    }

    fn pass(&mut self, bytes: usize, now: Instant) -> Result<Instant, Lost> {
        if self.imp.loss > 0.0 && self.rng.random::<f64>() < self.imp.loss {
            return Err(Lost::Random);
        }
        let left = self.bottleneck.admit(bytes, now).ok_or(Lost::QueueFull)?;
        let jitter = match self.imp.jitter.as_micros() as u64 {
            0 => Duration::ZERO,
            max => Duration::from_micros(self.rng.random_range(0..=max)),
        };
        Ok(left + self.imp.delay + jitter)
    }
}

struct DropRecord {
    at: Instant,
    resent_after: Option<Duration>,
}

/// Both links of one client.
struct ClientLinks {
    up: Link,
    down: Link,
}

struct State {
    drop_one_in: u16,
    /// RTP payload types subject to `drop_one_in` (empty: every RTP packet).
    payload_types: Vec<u8>,
    drops: HashMap<(u32, u16), DropRecord>,
    order: Vec<(u32, u16)>,
    default_profile: LinkProfile,
    profiles: HashMap<IpAddr, LinkProfile>,
    links: HashMap<SocketAddr, ClientLinks>,
    stats: RelayStats,
}

impl State {
    fn new(drop_one_in: u16, payload_types: Vec<u8>, default_profile: LinkProfile) -> Self {
        Self {
            drop_one_in,
            payload_types,
            drops: HashMap::new(),
            order: Vec::new(),
            default_profile,
            profiles: HashMap::new(),
            links: HashMap::new(),
            stats: RelayStats::default(),
        }
    }

    fn links(&mut self, client: SocketAddr) -> &mut ClientLinks {
        let profile = self
            .profiles
            .get(&client.ip())
            .unwrap_or(&self.default_profile);
        // Each client draws its own numbers, repeatably.
        let seed = profile.seed ^ (self.links.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (up, down) = (profile.up.clone(), profile.down.clone());
        self.links.entry(client).or_insert_with(|| ClientLinks {
            up: Link::new(up, seed),
            down: Link::new(down, seed ^ 0x5555),
        })
    }

    /// When a client→server datagram arrives at the server, if it does.
    fn pass_up(&mut self, client: SocketAddr, bytes: usize, now: Instant) -> Option<Instant> {
        match self.links(client).up.pass(bytes, now) {
            Ok(at) => {
                self.stats.to_server += 1;
                Some(at)
            }
            Err(_) => {
                self.stats.random_drops.0 += 1;
                None
            }
        }
    }

    /// When a server→client datagram arrives at the client, if it does.
    fn pass_down(&mut self, client: SocketAddr, d: &[u8], now: Instant) -> Option<Instant> {
        if !self.pass_drop_rule(d, now) {
            return None;
        }
        match self.links(client).down.pass(d.len(), now) {
            Ok(at) => {
                self.stats.to_client += 1;
                Some(at)
            }
            Err(Lost::Random) => {
                self.stats.random_drops.1 += 1;
                None
            }
            Err(Lost::QueueFull) => {
                self.stats.bottleneck_drops += 1;
                None
            }
        }
    }

    /// The `drop_one_in` rule: drops the first pass of every n-th RTP packet of the
    /// chosen payload types, and times its retransmission.
    fn pass_drop_rule(&mut self, d: &[u8], now: Instant) -> bool {
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

/// A running relay; its sockets close when it is dropped.
pub struct Relay {
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    fn new(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Start a relay in front of a viewer for the server candidates in `answer` and
    /// return it with the answer rewritten to point at it. Video RTP (by the answer's
    /// video payload types) whose sequence number is a multiple of `drop_one_in` is
    /// dropped once (0: nothing is). The link is perfect until
    /// [`set_downlink_bps`](Self::set_downlink_bps) narrows it.
    pub async fn start(answer: &str, drop_one_in: u16) -> TkResult<(Relay, String)> {
        Self::start_with(answer, drop_one_in, LinkProfile::default()).await
    }

    /// [`start`](Self::start) over a link with `profile`.
    pub async fn start_with(
        answer: &str,
        drop_one_in: u16,
        profile: LinkProfile,
    ) -> TkResult<(Relay, String)> {
        let relay = Relay::new(State::new(
            drop_one_in,
            video_payload_types(answer),
            profile,
        ));
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
                continue; // a TCP path would bypass the relay
            }
            let server: SocketAddr = format!("{}:{}", f[4], f[5]).parse().map_err(s)?;
            let front_addr = match fronts.get(&server) {
                Some(a) => *a,
                None => {
                    let a = relay
                        .listen(SocketAddr::new(server.ip(), 0), server)
                        .await?;
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

    /// A relay listening on `front` (what the SFU advertises) that forwards to
    /// `server` (where the SFU is bound). Clients get `default_profile` unless
    /// [`set_profile`](Self::set_profile) names their address.
    pub async fn in_front_of(
        front: SocketAddr,
        server: SocketAddr,
        default_profile: LinkProfile,
    ) -> TkResult<Relay> {
        let relay = Relay::new(State::new(0, Vec::new(), default_profile));
        relay.listen(front, server).await?;
        Ok(relay)
    }

    /// The link for clients at `ip` from their next new address on.
    pub fn set_profile(&self, ip: IpAddr, profile: LinkProfile) {
        lock(&self.state).profiles.insert(ip, profile);
    }

    async fn listen(&self, front: SocketAddr, server: SocketAddr) -> TkResult<SocketAddr> {
        let socket = Arc::new(UdpSocket::bind(front).await.map_err(s)?);
        let addr = socket.local_addr().map_err(s)?;
        let task = tokio::spawn(front_loop(
            socket,
            server,
            self.state.clone(),
            self.tasks.clone(),
        ));
        lock(&self.tasks).push(task);
        Ok(addr)
    }

    /// What the relay has seen so far.
    pub fn stats(&self) -> RelayStats {
        let st = lock(&self.state);
        let now = Instant::now();
        let mut out = st.stats.clone();
        out.dropped = st.order.len() as u64;
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

    /// Narrow every client's downlink to `bps` (IP payload rate), or open it (`None`).
    pub fn set_downlink_bps(&self, bps: Option<u64>) {
        let mut st = lock(&self.state);
        st.default_profile.down.rate_bps = bps;
        for links in st.links.values_mut() {
            links.down.set_rate(bps);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

/// Client-facing socket: what the client believes is the server.
async fn front_loop(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    // One server-facing socket per client address, so each client 5-tuple stays
    // distinct; and one scheduled sender per direction.
    let mut uplinks: HashMap<SocketAddr, mpsc::UnboundedSender<(Instant, Vec<u8>)>> =
        HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let up = match uplinks.get(&client) {
            Some(up) => up.clone(),
            None => {
                let Ok(back) = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).await else {
                    continue;
                };
                let back = Arc::new(back);
                let (up, up_rx) = mpsc::unbounded_channel();
                let (down, down_rx) = mpsc::unbounded_channel();
                let spawned = [
                    tokio::spawn(scheduled_sender(up_rx, back.clone(), server)),
                    tokio::spawn(back_loop(back, client, down, state.clone())),
                    tokio::spawn(scheduled_sender(down_rx, front.clone(), client)),
                ];
                lock(&tasks).extend(spawned);
                uplinks.insert(client, up.clone());
                up
            }
        };
        let at = lock(&state).pass_up(client, n, Instant::now());
        if let Some(at) = at {
            let _ = up.send((at, buf[..n].to_vec()));
        }
    }
}

/// Server-facing socket for one client address: what the server sends it goes
/// through the downlink to [`scheduled_sender`].
async fn back_loop(
    back: Arc<UdpSocket>,
    client: SocketAddr,
    down: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    state: Arc<Mutex<State>>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, _)) = back.recv_from(&mut buf).await else {
            continue;
        };
        let at = lock(&state).pass_down(client, &buf[..n], Instant::now());
        if let Some(at) = at
            && down.send((at, buf[..n].to_vec())).is_err()
        {
            return;
        }
    }
}

/// Sends each datagram to `to` at its arrival time, in the order of those times:
/// jitter reorders, as it does on a real path.
async fn scheduled_sender(
    mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
) {
    // (arrival time, order of admission as a tie-break, datagram)
    let mut due: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut admitted = 0u64;
    let mut open = true;
    while open || !due.is_empty() {
        let next = due.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            m = rx.recv(), if open => match m {
                Some((at, d)) => {
                    admitted += 1;
                    due.push(Reverse((at, admitted, d)));
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now).into()), if next.is_some() => {
                let now = Instant::now();
                while due.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                    if let Some(Reverse((_, _, d))) = due.pop() {
                        let _ = socket.send_to(&d, to).await;
                    }
                }
            }
        }
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

    fn client() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn drops_every_nth_video_packet_once_and_times_the_resend() {
        let mut st = State::new(10, vec![96], LinkProfile::default());
        let t0 = Instant::now();
        let passed: Vec<u16> = (1..=30)
            .filter(|&q| st.pass_down(client(), &rtp(96, q, 7), t0).is_some())
            .collect();
        assert_eq!(passed.len(), 27);
        assert!(!passed.contains(&10) && !passed.contains(&20) && !passed.contains(&30));
        // audio (other payload type), RTCP, STUN and DTLS pass untouched
        let c = client();
        assert!(st.pass_down(c, &rtp(111, 40, 8), t0).is_some());
        assert!(
            st.pass_down(c, &[0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0], t0)
                .is_some()
        );
        assert!(st.pass_down(c, &[0x00, 0x01, 0x00, 0x00], t0).is_some());
        assert!(
            st.pass_down(c, &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], t0)
                .is_some()
        );
        // the retransmission of seq 20 passes and is timed
        let later = t0 + Duration::from_millis(35);
        assert_eq!(st.pass_down(c, &rtp(96, 20, 7), later), Some(later));
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
        let mut b = Bottleneck {
            queue: BOTTLENECK_QUEUE,
            ..Default::default()
        };
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
    fn jitter_reorders_and_loss_is_about_the_asked_share() {
        let t0 = Instant::now();
        let imp = Impairment::delayed(Duration::from_millis(15), Duration::from_millis(10))
            .with_loss(0.05);
        let mut link = Link::new(imp, 7);
        // A burst of 1,000 datagrams sent 0.1 ms apart.
        let arrivals: Vec<Instant> = (0..1000u64)
            .filter_map(|i| link.pass(1000, t0 + Duration::from_micros(100 * i)).ok())
            .collect();
        let lost = 1000 - arrivals.len();
        assert!((30..=70).contains(&lost), "{lost} of 1000 lost at 5 %");
        for at in &arrivals {
            let d = at.saturating_duration_since(t0);
            assert!(d >= Duration::from_millis(15) && d <= Duration::from_millis(126));
        }
        let overtaken = arrivals.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(overtaken > 100, "jitter reorders the burst: {overtaken}");
        // The same seed draws the same numbers.
        let mut again = Link::new(link.imp.clone(), 7);
        let first: Vec<_> = (0..1000u64)
            .filter_map(|i| again.pass(1000, t0 + Duration::from_micros(100 * i)).ok())
            .collect();
        assert_eq!(first, arrivals);
    }

    #[test]
    fn each_client_address_gets_its_own_profile() {
        let bad = LinkProfile::symmetric(Impairment::default().with_loss(1.0));
        let mut st = State::new(0, Vec::new(), LinkProfile::default());
        st.profiles.insert("192.0.2.9".parse().unwrap(), bad);
        let t0 = Instant::now();
        let lossy: SocketAddr = "192.0.2.9:4000".parse().unwrap();
        assert_eq!(st.pass_up(lossy, 100, t0), None);
        assert_eq!(st.pass_down(lossy, &[0u8; 100], t0), None);
        assert_eq!(st.pass_up(client(), 100, t0), Some(t0));
        assert_eq!(st.stats.random_drops, (1, 1));
    }

    #[test]
    fn video_payload_types_from_the_answer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n";
        assert_eq!(video_payload_types(sdp), vec![96, 97]);
    }
}
