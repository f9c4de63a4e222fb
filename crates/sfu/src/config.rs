//! Configuration of the SFU.

use std::net::IpAddr;
use std::time::Duration;

/// Which UDP ports media uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpPorts {
    /// One UDP port for every session (demultiplexed by ICE username, then by
    /// remote address). `0` = an ephemeral port chosen at start (tests).
    Single(u16),
    /// Each session binds its own port from `min..=max` (classic firewall range).
    Range {
        /// First port.
        min: u16,
        /// Last port (inclusive).
        max: u16,
    },
}

/// A STUN or TURN server handed to clients (the HTTP layer renders these as
/// `Link` headers per RFC 9725 §4.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`.
    pub urls: Vec<String>,
    /// TURN username (empty for STUN).
    pub username: String,
    /// TURN credential (empty for STUN).
    pub credential: String,
}

/// SFU configuration. `Default` is a sane production baseline: UDP 8189 muxed,
/// passive ICE-TCP on 8189, gather on all non-loopback interfaces.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// UDP ports for media.
    pub udp: UdpPorts,
    /// Passive ICE-TCP listener (`Some(0)` = ephemeral, `None` = no TCP candidates).
    pub ice_tcp_port: Option<u16>,
    /// Public IPs advertised instead of the local interface IPs (1:1 NAT, e.g. a cloud
    /// VM's elastic IP). One per address family; the first matching family is used.
    pub nat_1to1_ips: Vec<IpAddr>,
    /// STUN/TURN servers handed to clients.
    pub ice_servers: Vec<IceServer>,
    /// Local IPs to bind and gather host candidates on. Empty = every up,
    /// non-loopback, non-link-local IPv4 interface (plus loopback if
    /// `include_loopback`; loopback alone if nothing else exists).
    pub bind_ips: Vec<IpAddr>,
    /// Also use loopback interfaces when enumerating (tests, single-machine setups).
    pub include_loopback: bool,
    /// Connected viewers (ICE and DTLS done) per room before `RoomFull`. Viewers
    /// still connecting do not take a slot; they are bounded by the two limits below.
    pub max_viewers_per_room: usize,
    /// Sessions not yet connected per client address (IPv6 grouped by /64), over
    /// every room, before `TooManyPending`.
    pub max_pending_per_client: usize,
    /// Viewers not yet connected per room before `RoomBusy`.
    pub max_pending_per_room: usize,
    /// Sessions (publishers + viewers) on the whole server before `TooManySessions`.
    pub max_sessions: usize,
    /// Publisher gone longer than this (and no replacement) => room ended.
    pub publisher_grace: Duration,
    /// At most one keyframe request per publisher stream per this interval.
    pub keyframe_request_min_interval: Duration,
    /// How long forwarded packets are kept to answer NACKs.
    pub nack_cache_duration: Duration,
    /// A session whose ICE and DTLS have not completed within this is dropped,
    /// and its memory and pending place freed (a real client needs 1–3 s, over TURN
    /// a little more).
    pub connect_timeout: Duration,
    /// Starting bandwidth estimate for a new viewer (bit/s).
    pub initial_viewer_bitrate: u64,
    /// How long an estimate must allow a higher layer before switching up.
    pub layer_upgrade_hold: Duration,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            udp: UdpPorts::Single(8189),
            ice_tcp_port: Some(8189),
            nat_1to1_ips: Vec::new(),
            ice_servers: Vec::new(),
            bind_ips: Vec::new(),
            include_loopback: false,
            max_viewers_per_room: 500,
            max_pending_per_client: 32,
            max_pending_per_room: 200,
            max_sessions: 5000,
            publisher_grace: Duration::from_secs(10),
            keyframe_request_min_interval: Duration::from_secs(1),
            nack_cache_duration: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            initial_viewer_bitrate: 1_000_000,
            layer_upgrade_hold: Duration::from_secs(4),
        }
    }
}

impl SfuConfig {
    /// Loopback-only, ephemeral ports: what tests use.
    pub fn loopback_for_tests() -> Self {
        Self {
            udp: UdpPorts::Single(0),
            ice_tcp_port: Some(0),
            bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
            include_loopback: true,
            ..Self::default()
        }
    }
}
