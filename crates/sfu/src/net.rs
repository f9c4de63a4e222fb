//! Sockets: the muxed UDP port (or per-session ports from a range), the passive
//! ICE-TCP listener, and the demultiplexer that routes each datagram to its room.
//!
//! Demultiplexing (one UDP port for every session): a datagram from a remote
//! address we have not seen must be a STUN binding request, whose USERNAME starts
//! with *our* ICE ufrag — unique per session — so it names the session. That
//! remote address is then remembered, and DTLS/SRTP/RTCP from it follow the same
//! route. ICE-TCP connections are routed the same way by their first frame.

use crate::config::{SfuConfig, UdpPorts};
use crate::error::{SfuError, internal};
use crate::room::RoomMsg;
use bytes::{Bytes, BytesMut};
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use rtc::shared::{TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Resource counters (the `counts()` of the public API).
#[derive(Default)]
pub(crate) struct Counters {
    pub sessions: AtomicUsize,
    pub rooms: AtomicUsize,
    pub tasks: AtomicUsize,
    pub udp_sockets: AtomicUsize,
    pub tcp_connections: AtomicUsize,
}

/// Decrements a counter when dropped.
pub(crate) struct CountGuard {
    counters: Arc<Counters>,
    pick: fn(&Counters) -> &AtomicUsize,
}

impl CountGuard {
    pub fn new(counters: &Arc<Counters>, pick: fn(&Counters) -> &AtomicUsize) -> Self {
        pick(counters).fetch_add(1, Ordering::Relaxed);
        Self {
            counters: counters.clone(),
            pick,
        }
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        (self.pick)(&self.counters).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spawn a task that is counted in `Counters::tasks` while it lives.
pub(crate) fn spawn_counted<F>(counters: &Arc<Counters>, fut: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let guard = CountGuard::new(counters, |c| &c.tasks);
    tokio::spawn(async move {
        let _guard = guard;
        fut.await;
    })
}

/// Where a session's packets go.
#[derive(Clone)]
pub(crate) struct Route {
    pub session: u64,
    pub tx: mpsc::Sender<RoomMsg>,
}

#[derive(Default)]
struct Router {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<(SocketAddr, SocketAddr), Route>,
}

/// A bound UDP socket and the address advertised for it in candidates.
#[derive(Clone)]
pub(crate) struct UdpEndpoint {
    pub advertised: SocketAddr,
    pub socket: Arc<UdpSocket>,
}

/// Sockets owned by one session (port-range mode); dropping it closes them.
#[derive(Default)]
pub(crate) struct SessionSockets {
    pub endpoints: Vec<UdpEndpoint>,
    tasks: Vec<JoinHandle<()>>,
    _guards: Vec<CountGuard>,
}

impl Drop for SessionSockets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type TcpConns = HashMap<(SocketAddr, SocketAddr), (u64, mpsc::Sender<Bytes>)>;

pub(crate) struct Net {
    cfg: Arc<SfuConfig>,
    pub counters: Arc<Counters>,
    /// Shared (muxed) UDP endpoints; empty in port-range mode.
    udp: Vec<UdpEndpoint>,
    /// Advertised addresses of the ICE-TCP listeners.
    tcp: Vec<SocketAddr>,
    /// (bind ip, advertised ip) pairs, used to bind per-session sockets.
    ips: Vec<(IpAddr, IpAddr)>,
    router: Arc<Mutex<Router>>,
    tcp_conns: Arc<Mutex<TcpConns>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    _guards: Vec<CountGuard>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The local IPs to bind, and what to advertise for each.
fn resolve_ips(cfg: &SfuConfig) -> Result<Vec<(IpAddr, IpAddr)>, SfuError> {
    let mut binds: Vec<IpAddr> = cfg.bind_ips.clone();
    if binds.is_empty() {
        let mut loopbacks = Vec::new();
        for iface in rtc::shared::ifaces::ifaces().map_err(internal)? {
            let Some(addr) = iface.addr else { continue };
            let ip = addr.ip();
            if !ip.is_ipv4() || ip.is_unspecified() {
                continue;
            }
            if ip.is_loopback() {
                loopbacks.push(ip);
                continue;
            }
            if let IpAddr::V4(v4) = ip
                && v4.is_link_local()
            {
                continue;
            }
            if !binds.contains(&ip) {
                binds.push(ip);
            }
        }
        if cfg.include_loopback || binds.is_empty() {
            for ip in loopbacks {
                if !binds.contains(&ip) {
                    binds.push(ip);
                }
            }
        }
    }
    if binds.is_empty() {
        return Err(SfuError::Internal("no usable network interface".into()));
    }
    Ok(binds
        .into_iter()
        .map(|ip| {
            let public = cfg
                .nat_1to1_ips
                .iter()
                .find(|p| p.is_ipv4() == ip.is_ipv4())
                .copied()
                .unwrap_or(ip);
            (ip, public)
        })
        .collect())
}

impl Net {
    pub async fn start(cfg: Arc<SfuConfig>, counters: Arc<Counters>) -> Result<Arc<Net>, SfuError> {
        let ips = resolve_ips(&cfg)?;
        let (shutdown, _) = watch::channel(false);
        let router = Arc::new(Mutex::new(Router::default()));
        let tcp_conns = Arc::new(Mutex::new(TcpConns::new()));
        let mut udp = Vec::new();
        let mut guards = Vec::new();
        let mut tasks = Vec::new();
        if let UdpPorts::Single(port) = cfg.udp {
            // With port 0 every interface gets its own ephemeral port; fine.
            for &(bind, public) in &ips {
                let socket = UdpSocket::bind(SocketAddr::new(bind, port))
                    .await
                    .map_err(|e| SfuError::Internal(format!("bind udp {bind}:{port}: {e}")))?;
                let local = socket.local_addr().map_err(internal)?;
                let ep = UdpEndpoint {
                    advertised: SocketAddr::new(public, local.port()),
                    socket: Arc::new(socket),
                };
                guards.push(CountGuard::new(&counters, |c| &c.udp_sockets));
                tasks.push(spawn_counted(
                    &counters,
                    udp_recv_loop(ep.clone(), router.clone(), shutdown.subscribe()),
                ));
                udp.push(ep);
            }
        }
        let mut tcp = Vec::new();
        if let Some(port) = cfg.ice_tcp_port {
            for &(bind, public) in &ips {
                let listener = TcpListener::bind(SocketAddr::new(bind, port))
                    .await
                    .map_err(|e| SfuError::Internal(format!("bind tcp {bind}:{port}: {e}")))?;
                let local = listener.local_addr().map_err(internal)?;
                let advertised = SocketAddr::new(public, local.port());
                tcp.push(advertised);
                tasks.push(spawn_counted(
                    &counters,
                    tcp_accept_loop(
                        listener,
                        advertised,
                        router.clone(),
                        tcp_conns.clone(),
                        counters.clone(),
                        cfg.max_sessions * 2,
                        shutdown.subscribe(),
                    ),
                ));
            }
        }
        Ok(Arc::new(Net {
            cfg,
            counters,
            udp,
            tcp,
            ips,
            router,
            tcp_conns,
            shutdown,
            tasks: Mutex::new(tasks),
            _guards: guards,
        }))
    }

    /// Sockets for a new session: nothing in muxed mode; own ports in range mode.
    pub async fn session_sockets(&self) -> Result<SessionSockets, SfuError> {
        let mut s = SessionSockets::default();
        let UdpPorts::Range { min, max } = self.cfg.udp else {
            return Ok(s);
        };
        let span = (max.saturating_sub(min) as u32) + 1;
        for &(bind, public) in &self.ips {
            let start = rand::random_range(0..span);
            let mut bound = None;
            for i in 0..span {
                let port = min + ((start + i) % span) as u16;
                if let Ok(sock) = UdpSocket::bind(SocketAddr::new(bind, port)).await {
                    bound = Some((sock, port));
                    break;
                }
            }
            let Some((sock, port)) = bound else {
                return Err(SfuError::TooManySessions(
                    self.counters.sessions.load(Ordering::Relaxed),
                ));
            };
            let ep = UdpEndpoint {
                advertised: SocketAddr::new(public, port),
                socket: Arc::new(sock),
            };
            s._guards
                .push(CountGuard::new(&self.counters, |c| &c.udp_sockets));
            s.tasks.push(spawn_counted(
                &self.counters,
                udp_recv_loop(ep.clone(), self.router.clone(), self.shutdown.subscribe()),
            ));
            s.endpoints.push(ep);
        }
        Ok(s)
    }

    /// Host candidates (as SDP candidate strings) for a session.
    pub fn candidates(&self, own: &SessionSockets) -> Vec<String> {
        use rtc::ice::tcp_type::TcpType;
        use rtc::peer_connection::transport::{
            CandidateConfig, CandidateHostConfig, RTCIceCandidate,
        };
        let mut out = Vec::new();
        let udp = own
            .endpoints
            .iter()
            .chain(self.udp.iter())
            .map(|e| e.advertised);
        let all = udp
            .map(|a| ("udp", a, TcpType::Unspecified))
            .chain(self.tcp.iter().map(|a| ("tcp", *a, TcpType::Passive)));
        for (network, addr, tcp_type) in all {
            let cand = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: network.to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type,
            }
            .new_candidate_host();
            match cand.and_then(|c| RTCIceCandidate::from(&c).to_json()) {
                Ok(init) => out.push(init.candidate),
                Err(e) => tracing::warn!(%addr, "cannot build candidate: {e}"),
            }
        }
        out
    }

    /// The shared UDP sockets: `(bound, advertised)` address of each.
    pub fn udp_addresses(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.udp
            .iter()
            .filter_map(|e| Some((e.socket.local_addr().ok()?, e.advertised)))
            .collect()
    }

    pub fn register(&self, ufrag: &str, route: Route) {
        lock(&self.router).by_ufrag.insert(ufrag.to_owned(), route);
    }

    /// Sessions the demultiplexer routes by ICE ufrag.
    pub fn routed_sessions(&self) -> usize {
        lock(&self.router).by_ufrag.len()
    }

    /// Drop every route and TCP connection of a session.
    pub fn forget(&self, ufrag: &str, session: u64) {
        {
            let mut r = lock(&self.router);
            r.by_ufrag.remove(ufrag);
            r.by_addr.retain(|_, route| route.session != session);
        }
        lock(&self.tcp_conns).retain(|_, (s, _)| *s != session);
    }

    /// Send one datagram produced by a peer connection; false when it was dropped
    /// (a full socket buffer or TCP queue, or no socket for its address).
    pub fn send(&self, own: &SessionSockets, transport: &TransportContext, data: BytesMut) -> bool {
        match transport.transport_protocol {
            TransportProtocol::UDP => {
                let ep = own
                    .endpoints
                    .iter()
                    .chain(self.udp.iter())
                    .find(|e| e.advertised == transport.local_addr);
                // Non-blocking: a full socket buffer drops the packet, as UDP would.
                ep.is_some_and(|ep| ep.socket.try_send_to(&data, transport.peer_addr).is_ok())
            }
            TransportProtocol::TCP => {
                let conns = lock(&self.tcp_conns);
                conns
                    .get(&(transport.local_addr, transport.peer_addr))
                    .is_some_and(|(_, tx)| tx.try_send(data.freeze()).is_ok())
            }
            _ => false,
        }
    }

    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        lock(&self.tcp_conns).clear();
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// Local ufrag named in a STUN binding request's USERNAME (`ours:theirs`).
pub(crate) fn stun_local_ufrag(b: &[u8]) -> Option<&str> {
    if b.len() < 20 || b[0] > 1 || b[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let end = (20 + len).min(b.len());
    let mut i = 20;
    while i + 4 <= end {
        let typ = u16::from_be_bytes([b[i], b[i + 1]]);
        let alen = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let v = b.get(i + 4..i + 4 + alen)?;
        if typ == 0x0006 {
            let user = std::str::from_utf8(v).ok()?;
            return user.split(':').next();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

async fn udp_recv_loop(
    ep: UdpEndpoint,
    router: Arc<Mutex<Router>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, peer) = tokio::select! {
            r = ep.socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue, // ICMP errors etc.; keep serving
            },
            _ = shutdown.changed() => break,
        };
        let data = &buf[..n];
        let key = (ep.advertised, peer);
        let mut r = lock(&router);
        let route = match r.by_addr.get(&key) {
            Some(route) => route,
            None => {
                let Some(route) = stun_local_ufrag(data)
                    .and_then(|u| r.by_ufrag.get(u))
                    .cloned()
                else {
                    continue;
                };
                r.by_addr.entry(key).or_insert(route)
            }
        };
        let msg = RoomMsg::Net {
            session: route.session,
            transport: TransportContext {
                local_addr: ep.advertised,
                peer_addr: peer,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            data: BytesMut::from(data),
            at: Instant::now(),
        };
        // Never block the shared socket on one slow room: drop instead (it is UDP).
        let _ = route.tx.try_send(msg);
    }
}

async fn tcp_accept_loop(
    listener: TcpListener,
    advertised: SocketAddr,
    router: Arc<Mutex<Router>>,
    conns: Arc<Mutex<TcpConns>>,
    counters: Arc<Counters>,
    max_conns: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            _ = shutdown.changed() => break,
        };
        if counters.tcp_connections.load(Ordering::Relaxed) >= max_conns {
            continue;
        }
        let guard = CountGuard::new(&counters, |c| &c.tcp_connections);
        let (router, conns, sd) = (router.clone(), conns.clone(), shutdown.clone());
        spawn_counted(&counters, async move {
            let _guard = guard;
            tcp_conn(stream, advertised, peer, router, conns, sd).await;
        });
    }
}

async fn tcp_conn(
    mut stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    router: Arc<Mutex<Router>>,
    conns: Arc<Mutex<TcpConns>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut route: Option<Route> = None;
    let (tx, mut rx) = mpsc::channel::<Bytes>(512);
    let mut tx = Some(tx);
    let first_frame_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(first_frame_deadline);
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => {
                let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                decoder.extend_from_slice(&buf[..n]);
                while let Some(frame) = decoder.next_packet() {
                    if route.is_none() {
                        let found = stun_local_ufrag(&frame)
                            .and_then(|u| lock(&router).by_ufrag.get(u).cloned());
                        let Some(found) = found else { return };
                        if let Some(tx) = tx.take() {
                            lock(&conns).insert((local, peer), (found.session, tx));
                        }
                        route = Some(found);
                    }
                    let Some(rt) = &route else { return };
                    let msg = RoomMsg::Net {
                        session: rt.session,
                        transport: TransportContext {
                            local_addr: local,
                            peer_addr: peer,
                            transport_protocol: TransportProtocol::TCP,
                            ecn: None,
                        },
                        data: BytesMut::from(&frame[..]),
                        at: Instant::now(),
                    };
                    if rt.tx.send(msg).await.is_err() {
                        return;
                    }
                }
                if decoder.buffered_len() > 256 * 1024 {
                    break;
                }
            }
            out = rx.recv(), if route.is_some() => {
                let Some(out) = out else { break }; // session forgot this connection
                if stream.write_all(&frame_packet(&out)).await.is_err() {
                    break;
                }
            }
            _ = &mut first_frame_deadline, if route.is_none() => break,
            _ = shutdown.changed() => break,
        }
    }
    lock(&conns).remove(&(local, peer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username_parsing() {
        // Binding request with USERNAME "abcd:efgh"
        let mut m = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        m.extend_from_slice(b"abcd:efgh\0\0\0");
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert_eq!(stun_local_ufrag(&m[..22]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let mut bad = m.clone();
        bad[22] = 0xff; // attribute length beyond the buffer
        assert_eq!(stun_local_ufrag(&bad), None);
    }
}
