//! Configuration: command-line flags, environment variables and an optional
//! TOML file, in that order of precedence, over sane defaults.
//!
//! Every setting has all three spellings: `--public-url`, `FIELDCAST_PUBLIC_URL`
//! and `public_url = "…"` in the file given by `--config`/`FIELDCAST_CONFIG`
//! (nested settings use a table: `[media] udp_port = 8189` is
//! `--media-udp-port` / `FIELDCAST_MEDIA_UDP_PORT`).
//!
//! The layering is clap's and serde's: clap reads each flag or else its
//! environment variable, serde reads the file, and [`Config::resolve`] lays
//! the two over the defaults field by field. That last step stays written
//! out (rather than figment's merge) because flat flags meet nested tables
//! and some settings are checked across layers; figment would need the same
//! mapping as key renames.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "fieldcast",
    version,
    about = "Live commerce for farmers: stream the field, sell directly."
)]
pub struct Cli {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "FIELDCAST_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (migrates the database first).
    Serve {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Seed a demo farmer, shop, products and broadcast, and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Look at the cluster this node's settings name (`--cluster`).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// List the nodes alive now, their load and what each owns.
    Status {
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flags and environment variables. Every field is optional so the file
/// and the defaults can fill what is missing.
#[derive(Args, Debug, Default, Clone)]
pub struct SettingsArgs {
    /// Address and port to listen on for HTTP(S).
    #[arg(long, env = "FIELDCAST_BIND")]
    pub bind: Option<SocketAddr>,
    /// Public base URL people use to reach this server (links, cookies).
    #[arg(long, env = "FIELDCAST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Database URL: sqlite://path or postgres://user@host/db.
    #[arg(long, env = "FIELDCAST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the SQLite database and other state.
    #[arg(long, env = "FIELDCAST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log output format.
    #[arg(long, env = "FIELDCAST_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain: serve HTTPS (a camera needs a secure context off localhost).
    #[arg(long, env = "FIELDCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "FIELDCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Media: one UDP port for all WebRTC traffic (simplest firewall rule).
    #[arg(long, env = "FIELDCAST_MEDIA_UDP_PORT")]
    pub media_udp_port: Option<u16>,
    /// Media: UDP port range instead of one port, e.g. 50000-50199.
    #[arg(
        long,
        env = "FIELDCAST_MEDIA_UDP_PORTS",
        conflicts_with = "media_udp_port"
    )]
    pub media_udp_ports: Option<String>,
    /// Media: TCP port for ICE-TCP, for networks that block UDP (0 = off).
    #[arg(long, env = "FIELDCAST_MEDIA_TCP_PORT")]
    pub media_tcp_port: Option<u16>,
    /// Media: public IP to advertise when behind 1:1 NAT (repeatable, comma-separated in env).
    #[arg(long, env = "FIELDCAST_MEDIA_PUBLIC_IP", value_delimiter = ',')]
    pub media_public_ip: Vec<IpAddr>,
    /// Media: most viewers per broadcast.
    #[arg(long, env = "FIELDCAST_MEDIA_MAX_VIEWERS")]
    pub media_max_viewers: Option<usize>,
    /// Chat: messages one person may send at once before the rate limit applies.
    #[arg(long, env = "FIELDCAST_CHAT_BURST")]
    pub chat_burst: Option<u32>,
    /// Chat: sustained messages per minute per person per broadcast.
    #[arg(long, env = "FIELDCAST_CHAT_PER_MINUTE")]
    pub chat_per_minute: Option<u32>,
    /// Orders: default minutes a reservation is held for checkout (1-60).
    #[arg(long, env = "FIELDCAST_HOLD_MINUTES")]
    pub hold_minutes: Option<u32>,
    /// Reverse proxies (IPs or CIDRs) whose client-address header is believed
    /// (repeatable, comma-separated in env).
    #[arg(
        long = "trusted-proxy",
        env = "FIELDCAST_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Header trusted proxies put the client's address in.
    #[arg(long, env = "FIELDCAST_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Recordings: most megabytes all recordings may take on disk.
    #[arg(long, env = "FIELDCAST_RECORDING_QUOTA_MB")]
    pub recording_quota_mb: Option<u64>,
    /// Guests: new guest sessions one client address may start at once.
    #[arg(long, env = "FIELDCAST_GUEST_BURST")]
    pub guest_burst: Option<u32>,
    /// Guests: sustained new guest sessions per minute per client address.
    #[arg(long, env = "FIELDCAST_GUESTS_PER_MINUTE")]
    pub guests_per_minute: Option<u32>,
    /// Cluster: join the cluster coordinated by this NATS server
    /// (nats://host:4222, JetStream on). Needs PostgreSQL.
    #[arg(long, env = "FIELDCAST_CLUSTER")]
    pub cluster: Option<String>,
    /// Cluster: this node's id, unique in the cluster and stable across
    /// restarts (default: the host name).
    #[arg(long, env = "FIELDCAST_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster: this node's own URL, for the other nodes and operators
    /// (default: the public URL).
    #[arg(long, env = "FIELDCAST_NODE_URL")]
    pub node_url: Option<String>,
    /// Cluster: prefix of its NATS buckets and subjects, so several clusters
    /// can share one NATS server (default: fieldcast).
    #[arg(long, env = "FIELDCAST_CLUSTER_PREFIX")]
    pub cluster_prefix: Option<String>,
    /// Operators: bearer token for the operator API (`/api/v1/cluster`);
    /// unset, that API is off.
    #[arg(long, env = "FIELDCAST_OPERATOR_TOKEN")]
    pub operator_token: Option<String>,
}

/// The TOML file's shape.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub tls: FileTls,
    #[serde(default)]
    pub media: FileMedia,
    #[serde(default)]
    pub chat: FileChat,
    #[serde(default)]
    pub orders: FileOrders,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub client_ip_header: Option<String>,
    #[serde(default)]
    pub guests: FileGuests,
    #[serde(default)]
    pub recording: FileRecording,
    #[serde(default)]
    pub cluster: FileCluster,
    pub operator_token: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    pub url: Option<String>,
    pub node_id: Option<String>,
    pub node_url: Option<String>,
    pub prefix: Option<String>,
}

/// How this node joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// NATS server(s), `nats://host:4222`.
    pub url: String,
    pub node_id: String,
    /// This node's own base URL.
    pub node_url: String,
    pub prefix: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileRecording {
    pub quota_mb: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileGuests {
    pub burst: Option<u32>,
    pub per_minute: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileChat {
    pub burst: Option<u32>,
    pub per_minute: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileOrders {
    pub hold_minutes: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileMedia {
    pub udp_port: Option<u16>,
    pub udp_ports: Option<String>,
    pub tcp_port: Option<u16>,
    #[serde(default)]
    pub public_ips: Vec<IpAddr>,
    pub max_viewers: Option<usize>,
    #[serde(default)]
    pub ice_servers: Vec<IceServerConfig>,
    pub publisher_grace_secs: Option<u64>,
    /// Interfaces to gather candidates on; empty = every non-loopback IPv4 interface.
    #[serde(default)]
    pub bind_ips: Vec<IpAddr>,
    /// Also offer 127.0.0.1 candidates (same-machine testing).
    #[serde(default)]
    pub include_loopback: bool,
}

/// A STUN or TURN server handed to browsers and apps.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// Where WebRTC media flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpPorts {
    /// One port shared by every session (default).
    Single(u16),
    Range(u16, u16),
}

#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub udp: UdpPorts,
    /// `None` when ICE-TCP is off.
    pub tcp_port: Option<u16>,
    pub public_ips: Vec<IpAddr>,
    pub max_viewers: usize,
    pub ice_servers: Vec<IceServerConfig>,
    pub publisher_grace: Duration,
    pub bind_ips: Vec<IpAddr>,
    pub include_loopback: bool,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub media: MediaSettings,
    /// Live-channel tunables (chat rate limits).
    pub live: live::LiveConfig,
    /// Order-service tunables (reservation hold time).
    pub orders: orders::OrdersConfig,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Trusted proxies and their client-address header.
    pub client_ip: api::limits::ClientIpSettings,
    /// Per-client-address rate limits.
    pub limits: api::limits::LimitSettings,
    /// Space all recordings may take (`<data dir>/recordings`).
    pub recording_quota_bytes: u64,
    /// `Some` in cluster mode.
    pub cluster: Option<ClusterSettings>,
    /// Bearer token of the operator API; `None` turns it off.
    pub operator_token: Option<String>,
}

/// Recordings may take 20 GiB unless configured: about 100 hours at 3 MB/min.
pub const DEFAULT_RECORDING_QUOTA_MB: u64 = 20 * 1024;

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_MEDIA_UDP_PORT: u16 = 8189;
pub const DEFAULT_MEDIA_TCP_PORT: u16 = 8189;

impl MediaSettings {
    pub fn sfu_config(&self) -> sfu::SfuConfig {
        sfu::SfuConfig {
            udp: match self.udp {
                UdpPorts::Single(port) => sfu::UdpPorts::Single(port),
                UdpPorts::Range(min, max) => sfu::UdpPorts::Range { min, max },
            },
            ice_tcp_port: self.tcp_port,
            nat_1to1_ips: self.public_ips.clone(),
            ice_servers: self
                .ice_servers
                .iter()
                .map(|s| sfu::IceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            bind_ips: self.bind_ips.clone(),
            include_loopback: self.include_loopback,
            max_viewers_per_room: self.max_viewers,
            publisher_grace: self.publisher_grace,
            ..sfu::SfuConfig::default()
        }
    }

    /// Loopback only, ephemeral ports: for tests on one machine.
    pub fn loopback_for_tests() -> MediaSettings {
        MediaSettings {
            udp: UdpPorts::Single(0),
            tcp_port: None,
            public_ips: Vec::new(),
            max_viewers: 1000,
            ice_servers: Vec::new(),
            publisher_grace: Duration::from_secs(10),
            bind_ips: vec![IpAddr::from([127, 0, 0, 1])],
            include_loopback: true,
        }
    }
}

impl Config {
    /// Defaults for everything, as used by `fieldcast serve` with no settings.
    pub fn defaults() -> Config {
        Config::resolve(SettingsArgs::default(), FileConfig::default()).expect("defaults are valid")
    }

    pub fn load(config_path: Option<&Path>, args: SettingsArgs) -> anyhow::Result<Config> {
        let file = match config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        Config::resolve(args, file)
    }

    pub fn resolve(args: SettingsArgs, file: FileConfig) -> anyhow::Result<Config> {
        let bind = args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("fieldcast.db").display()));
        let tls = match (
            args.tls_cert.or(file.tls.cert),
            args.tls_key.or(file.tls.key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => bail!("TLS needs both a certificate and a key"),
        };
        let public_url = args.public_url.or(file.public_url).unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let host = if bind.ip().is_unspecified() || bind.ip().is_loopback() {
                "localhost".to_owned()
            } else {
                bind.ip().to_string()
            };
            format!("{scheme}://{host}:{}", bind.port())
        });
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("public URL must start with http:// or https://, got {public_url:?}");
        }
        let udp = match (
            args.media_udp_port,
            args.media_udp_ports.or(file.media.udp_ports),
            file.media.udp_port,
        ) {
            (Some(port), _, _) => UdpPorts::Single(port),
            (None, Some(range), _) => parse_port_range(&range)?,
            (None, None, Some(port)) => UdpPorts::Single(port),
            (None, None, None) => UdpPorts::Single(DEFAULT_MEDIA_UDP_PORT),
        };
        let tcp_port = match args
            .media_tcp_port
            .or(file.media.tcp_port)
            .unwrap_or(DEFAULT_MEDIA_TCP_PORT)
        {
            0 => None,
            port => Some(port),
        };
        let public_ips = if args.media_public_ip.is_empty() {
            file.media.public_ips
        } else {
            args.media_public_ip
        };
        let media = MediaSettings {
            udp,
            tcp_port,
            public_ips,
            max_viewers: args
                .media_max_viewers
                .or(file.media.max_viewers)
                .unwrap_or(1000),
            ice_servers: file.media.ice_servers,
            publisher_grace: Duration::from_secs(file.media.publisher_grace_secs.unwrap_or(10)),
            bind_ips: file.media.bind_ips,
            include_loopback: file.media.include_loopback,
        };
        let mut live = live::LiveConfig::default();
        if let Some(burst) = args.chat_burst.or(file.chat.burst) {
            if burst == 0 {
                bail!("chat burst must be at least 1");
            }
            live.chat_burst = burst;
        }
        if let Some(per_minute) = args.chat_per_minute.or(file.chat.per_minute) {
            if per_minute == 0 {
                bail!("chat per-minute rate must be at least 1");
            }
            live.chat_per_minute = per_minute;
        }
        let mut orders = orders::OrdersConfig::default();
        if let Some(minutes) = args.hold_minutes.or(file.orders.hold_minutes) {
            let hold = Duration::from_secs(u64::from(minutes) * 60);
            if hold < orders.min_hold || hold > orders.max_hold {
                bail!(
                    "hold minutes must be between {} and {}",
                    orders.min_hold.as_secs() / 60,
                    orders.max_hold.as_secs() / 60
                );
            }
            orders.default_hold = hold;
        }
        let proxies = if args.trusted_proxies.is_empty() {
            file.trusted_proxies
        } else {
            args.trusted_proxies
        };
        let mut client_ip = api::limits::ClientIpSettings {
            trusted_proxies: proxies
                .iter()
                .map(|p| parse_proxy(p))
                .collect::<anyhow::Result<_>>()?,
            ..Default::default()
        };
        if let Some(header) = args.client_ip_header.or(file.client_ip_header) {
            client_ip.header = axum::http::HeaderName::from_bytes(header.trim().as_bytes())
                .with_context(|| format!("client IP header {header:?} is not a header name"))?;
        }
        let mut limits = api::limits::LimitSettings::default();
        if let Some(burst) = args.guest_burst.or(file.guests.burst) {
            if burst == 0 {
                bail!("guest burst must be at least 1");
            }
            limits.guest.burst = burst;
        }
        if let Some(per_minute) = args.guests_per_minute.or(file.guests.per_minute) {
            if per_minute == 0 {
                bail!("guests per minute must be at least 1");
            }
            limits.guest = api::limits::Rate::per_minute(limits.guest.burst, per_minute);
        }
        let public_url = public_url.trim_end_matches('/').to_owned();
        let cluster = match args.cluster.or(file.cluster.url) {
            None => None,
            Some(url) => {
                if !database_url.starts_with("postgres://")
                    && !database_url.starts_with("postgresql://")
                {
                    bail!(
                        "cluster mode needs PostgreSQL, the one database every node shares; \
                         the database is {} (set --database-url postgres://…)",
                        store::redact(&database_url)
                    );
                }
                let node_id = match args.node_id.or(file.cluster.node_id) {
                    Some(id) => id,
                    None => host_name()
                        .context("no --node-id given and the host name cannot be read; set one")?,
                };
                if !cluster::is_valid_name(&node_id) {
                    bail!(
                        "node id {node_id:?} must be letters, digits, '-' and '_' (set --node-id)"
                    );
                }
                let prefix = args
                    .cluster_prefix
                    .or(file.cluster.prefix)
                    .unwrap_or_else(|| "fieldcast".to_owned());
                if !cluster::is_valid_name(&prefix) {
                    bail!("cluster prefix {prefix:?} must be letters, digits, '-' and '_'");
                }
                let node_url = args
                    .node_url
                    .or(file.cluster.node_url)
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .unwrap_or_else(|| public_url.clone());
                Some(ClusterSettings {
                    url,
                    node_id,
                    node_url,
                    prefix,
                })
            }
        };
        let operator_token = args
            .operator_token
            .or(file.operator_token)
            .filter(|t| !t.is_empty());
        if operator_token.as_ref().is_some_and(|t| t.len() < 16) {
            bail!("the operator token must be at least 16 characters");
        }
        Ok(Config {
            bind,
            public_url,
            database_url,
            data_dir,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            tls,
            media,
            live,
            orders,
            shutdown_grace: Duration::from_secs(10),
            client_ip,
            limits,
            recording_quota_bytes: args
                .recording_quota_mb
                .or(file.recording.quota_mb)
                .unwrap_or(DEFAULT_RECORDING_QUOTA_MB)
                .saturating_mul(1024 * 1024),
            cluster,
            operator_token,
        })
    }
}

/// The machine's host name, made a valid node id (other characters become
/// `-`): the default node id, stable across restarts.
fn host_name() -> Option<String> {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())?;
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A trusted proxy: an address (`10.0.0.5`) or a network (`10.0.0.0/8`).
fn parse_proxy(raw: &str) -> anyhow::Result<ipnet::IpNet> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("trusted proxy must be an IP address or CIDR, got {raw:?}"))
}

fn parse_port_range(raw: &str) -> anyhow::Result<UdpPorts> {
    let (lo, hi) = raw
        .split_once('-')
        .with_context(|| format!("UDP port range must look like 50000-50199, got {raw:?}"))?;
    let lo: u16 = lo.trim().parse().context("UDP port range start")?;
    let hi: u16 = hi.trim().parse().context("UDP port range end")?;
    if lo == 0 || lo > hi {
        bail!("UDP port range {raw:?} is empty or starts at 0");
    }
    Ok(UdpPorts::Range(lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_is_off_by_default_and_needs_postgresql() {
        let c = Config::defaults();
        assert_eq!(c.cluster, None);
        assert_eq!(c.operator_token, None);
        let on_sqlite = SettingsArgs {
            cluster: Some("nats://127.0.0.1:4222".into()),
            node_id: Some("a".into()),
            ..SettingsArgs::default()
        };
        let err = Config::resolve(on_sqlite.clone(), FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs PostgreSQL"), "{err}");
        let on_postgres = SettingsArgs {
            database_url: Some("postgres://fieldcast@db/fieldcast".into()),
            public_url: Some("https://live.example.cn/".into()),
            ..on_sqlite
        };
        let c = Config::resolve(on_postgres.clone(), FileConfig::default()).unwrap();
        assert_eq!(
            c.cluster,
            Some(ClusterSettings {
                url: "nats://127.0.0.1:4222".into(),
                node_id: "a".into(),
                node_url: "https://live.example.cn".into(),
                prefix: "fieldcast".into(),
            })
        );
        let file: FileConfig = toml::from_str(
            r#"
            operator_token = "0123456789abcdef0123"
            [cluster]
            url = "nats://nats-1:4222"
            node_id = "county-2"
            node_url = "http://10.0.0.2:8080"
            prefix = "shanxi"
            "#,
        )
        .unwrap();
        let c = Config::resolve(
            SettingsArgs {
                database_url: Some("postgres://fieldcast@db/fieldcast".into()),
                ..SettingsArgs::default()
            },
            file,
        )
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(
            (cluster.node_id.as_str(), cluster.node_url.as_str()),
            ("county-2", "http://10.0.0.2:8080")
        );
        assert_eq!(cluster.prefix, "shanxi");
        assert_eq!(c.operator_token.as_deref(), Some("0123456789abcdef0123"));
        let bad_id = SettingsArgs {
            node_id: Some("node 1".into()),
            ..on_postgres
        };
        assert!(Config::resolve(bad_id, FileConfig::default()).is_err());
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::defaults();
        assert_eq!(c.bind.port(), DEFAULT_PORT);
        assert_eq!(c.public_url, "http://localhost:8080");
        assert_eq!(c.database_url, "sqlite://data/fieldcast.db");
        assert_eq!(c.media.udp, UdpPorts::Single(DEFAULT_MEDIA_UDP_PORT));
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            bind = "0.0.0.0:9000"
            public_url = "https://live.example.cn/"
            data_dir = "/var/lib/fieldcast"
            [media]
            udp_ports = "50000-50099"
            public_ips = ["203.0.113.7"]
            [[media.ice_servers]]
            urls = ["stun:stun.example.cn:3478"]
            "#,
        )
        .unwrap();
        let args = SettingsArgs {
            public_url: Some("https://other.example.cn".into()),
            ..Default::default()
        };
        let c = Config::resolve(args, file).unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.public_url, "https://other.example.cn");
        assert_eq!(c.database_url, "sqlite:///var/lib/fieldcast/fieldcast.db");
        assert_eq!(c.media.udp, UdpPorts::Range(50000, 50099));
        assert_eq!(c.media.public_ips.len(), 1);
        assert_eq!(c.media.ice_servers[0].urls[0], "stun:stun.example.cn:3478");
    }

    #[test]
    fn chat_and_hold_settings_apply_and_are_checked() {
        let file: FileConfig =
            toml::from_str("[chat]\nburst = 3\nper_minute = 10\n[orders]\nhold_minutes = 15")
                .unwrap();
        let c = Config::resolve(SettingsArgs::default(), file).unwrap();
        assert_eq!((c.live.chat_burst, c.live.chat_per_minute), (3, 10));
        assert_eq!(c.orders.default_hold, Duration::from_secs(900));
        let too_long = SettingsArgs {
            hold_minutes: Some(600),
            ..Default::default()
        };
        assert!(Config::resolve(too_long, FileConfig::default()).is_err());
    }

    #[test]
    fn trusted_proxies_and_guest_limits_apply_and_are_checked() {
        let file: FileConfig = toml::from_str(
            "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nclient_ip_header = \"X-Real-IP\"\n[guests]\nburst = 30\nper_minute = 12",
        )
        .unwrap();
        let c = Config::resolve(SettingsArgs::default(), file).unwrap();
        assert_eq!(c.client_ip.trusted_proxies.len(), 2);
        assert_eq!(c.client_ip.trusted_proxies[1].to_string(), "::1/128");
        assert_eq!(c.client_ip.header.as_str(), "x-real-ip");
        assert_eq!(c.limits.guest.burst, 30);
        assert_eq!(c.limits.guest.every, Duration::from_secs(5));
        let flags = SettingsArgs {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..Default::default()
        };
        let c = Config::resolve(flags, FileConfig::default()).unwrap();
        assert_eq!(c.client_ip.trusted_proxies[0].to_string(), "127.0.0.1/32");
        assert_eq!(c.client_ip.header.as_str(), "x-forwarded-for");
        assert!(Config::defaults().client_ip.trusted_proxies.is_empty());
        let bad = SettingsArgs {
            trusted_proxies: vec!["proxy.example.cn".into()],
            ..Default::default()
        };
        let err = Config::resolve(bad, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("trusted proxy"), "{err}");
    }

    /// Set in the child process [`flags_beat_env_which_beats_the_file`]
    /// starts; environment variables are process-wide, so the child keeps
    /// them away from the other tests.
    const PRECEDENCE_CHILD: &str = "FIELDCAST_TEST_PRECEDENCE_CHILD";

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "config::tests::precedence_in_a_child",
                "--ignored",
                "--nocapture",
            ])
            .env(PRECEDENCE_CHILD, "1")
            .env("FIELDCAST_BIND", "127.0.0.1:7002")
            .env("FIELDCAST_PUBLIC_URL", "https://env.example.cn")
            .env("FIELDCAST_TRUSTED_PROXIES", "10.0.0.0/8, ::1")
            .env("FIELDCAST_CHAT_BURST", "4")
            .env_remove("FIELDCAST_DATA_DIR")
            .env_remove("FIELDCAST_HOLD_MINUTES")
            .env_remove("FIELDCAST_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by flags_beat_env_which_beats_the_file with its environment"]
    fn precedence_in_a_child() {
        assert!(std::env::var_os(PRECEDENCE_CHILD).is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fieldcast.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:7003\"\npublic_url = \"https://file.example.cn\"\n\
             data_dir = \"/srv/file\"\ntrusted_proxies = [\"192.0.2.1\"]\n\
             [chat]\nburst = 9\nper_minute = 11\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "fieldcast",
            "--config",
            path.to_str().unwrap(),
            "serve",
            "--bind",
            "127.0.0.1:7001",
        ])
        .unwrap();
        let Command::Serve { settings, .. } = cli.command else {
            panic!("serve");
        };
        let c = Config::load(cli.config.as_deref(), settings).unwrap();
        // flag > env > file > default, setting by setting
        assert_eq!(c.bind.port(), 7001, "the flag");
        assert_eq!(c.public_url, "https://env.example.cn", "the environment");
        assert_eq!(
            c.client_ip.trusted_proxies.len(),
            2,
            "the environment's list"
        );
        assert_eq!(c.live.chat_burst, 4, "the environment");
        assert_eq!(c.live.chat_per_minute, 11, "the file");
        assert_eq!(c.data_dir, PathBuf::from("/srv/file"), "the file");
        assert_eq!(
            c.orders.default_hold,
            orders::OrdersConfig::default().default_hold,
            "the default"
        );
    }

    #[test]
    fn the_example_deploy_file_is_valid() {
        let file: FileConfig = toml::from_str(include_str!("../deploy/fieldcast.toml")).unwrap();
        let c = Config::resolve(SettingsArgs::default(), file).unwrap();
        assert_eq!(c.public_url, "https://live.example.cn");
        assert_eq!(c.media.udp, UdpPorts::Single(8189));
    }

    #[test]
    fn the_example_cluster_node_file_is_valid() {
        let file: FileConfig = toml::from_str(include_str!("../deploy/cluster/node.toml")).unwrap();
        let c = Config::resolve(SettingsArgs::default(), file).unwrap();
        let cluster = c.cluster.expect("a cluster node");
        assert_eq!(cluster.node_id, "county-1");
        assert_eq!(cluster.node_url, "http://10.0.0.1:8080");
        assert_eq!(c.public_url, "https://live.example.cn");
    }

    #[test]
    fn bad_settings_are_explained() {
        let file: Result<FileConfig, _> = toml::from_str("bnid = \"x\"");
        assert!(file.unwrap_err().to_string().contains("unknown field"));
        let err = Config::resolve(
            SettingsArgs {
                media_udp_ports: Some("9-1".into()),
                ..Default::default()
            },
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("empty"));
    }
}
