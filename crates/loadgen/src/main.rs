//! `loadgen`: one command per scenario. See the crate docs and BENCHMARKS.md.

// The kernel interfaces go through `nix`; nothing here needs raw pointers.
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand, ValueEnum};
use loadgen::chat::ChatOptions;
use loadgen::media::ViewersOptions;
use loadgen::media::publisher::PublisherOptions;
use loadgen::report::{Report, RunContext};
use loadgen::sale::{SaleOptions, Via};
use loadgen::server::{self, Database, Server, ServerOptions};
use loadgen::{Error, procfs};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Drives a fieldcast server over WHIP, WHEP, websockets and HTTP and measures it."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Debug)]
struct Global {
    /// Drive this running server (http://host:port) instead of starting one.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Process id of the server given with --url (for its CPU and memory).
    #[arg(long, global = true, requires = "url")]
    pid: Option<u32>,
    /// Database of the server given with --url (for the sale's oversell check).
    #[arg(long, global = true, requires = "url")]
    database_url: Option<String>,
    /// fieldcast binary to start (default: the one next to this executable).
    #[arg(long, global = true)]
    fieldcast: Option<PathBuf>,
    /// Database of the started server: sqlite, postgres (a fresh database on
    /// FIELDCAST_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres) or a URL.
    #[arg(long, global = true, default_value = "sqlite")]
    db: String,
    /// Where to write the JSON report (default: loadgen-<scenario>.json).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Worker threads of the generator.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// RUST_LOG of the started server (its log stays in its data directory).
    #[arg(long, global = true, default_value = "warn")]
    server_log: String,
    /// Profile the server during the measurement window with
    /// `perf record -e cpu-clock -g` into this file (read it with `perf report -i`).
    #[arg(long, global = true)]
    profile: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// One WHIP publisher, N WHEP viewers.
    Viewers {
        /// WHEP viewers.
        #[arg(long, default_value_t = 500)]
        viewers: usize,
        /// New viewers per second.
        #[arg(long, default_value_t = 50.0)]
        ramp: f64,
        /// Measurement window, seconds (after the ramp and a short settle).
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Publisher video bitrate, kbit/s.
        #[arg(long, default_value_t = 1500)]
        video_kbps: u64,
        /// Frames per second.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Keyframe interval, seconds.
        #[arg(long, default_value_t = 2.0)]
        keyframe_secs: f64,
        /// Decrypt one media packet in this many for the forwarding delay.
        #[arg(long, default_value_t = 16)]
        sample_every: u64,
        /// Address the viewers use.
        #[arg(long, default_value = "127.0.0.1")]
        local_ip: IpAddr,
    },
    /// N websocket viewers in one room, M chat messages per second.
    Chat {
        /// Connections in the room.
        #[arg(long, default_value_t = 10_000)]
        viewers: usize,
        /// Chat messages per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Guest senders (default: enough for the per-person rate limit).
        #[arg(long)]
        senders: Option<usize>,
        /// Sending window, seconds.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// New connections per second while filling the room.
        #[arg(long, default_value_t = 1000.0)]
        connect_rate: f64,
    },
    /// B buyers tap "buy" on one offer at once.
    Sale {
        /// Buyers, each a guest on its own connection.
        #[arg(long, default_value_t = 2000)]
        buyers: usize,
        /// Taps per buyer, one after the other.
        #[arg(long, default_value_t = 5)]
        taps: u32,
        /// Units on offer (default: 80 % of all taps, so it sells out).
        #[arg(long)]
        stock: Option<u32>,
        /// Per-buyer limit (default: taps).
        #[arg(long)]
        per_buyer_limit: Option<u32>,
        /// HTTP reservations or the websocket `buy`.
        #[arg(long, value_enum, default_value_t = ViaArg::Http)]
        via: ViaArg,
        /// Open loop: taps due at this rate (per second, over all buyers)
        /// instead of everyone at once; latency counts from when a tap was due.
        #[arg(long)]
        rate: Option<f64>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ViaArg {
    Http,
    Ws,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "loadgen=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.global.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(report) => {
            let failed_check = report
                .targets
                .iter()
                .any(|t| t.name == "oversell" && t.met == Some(false));
            if failed_check {
                eprintln!("loadgen: the oversell check FAILED");
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Report, Error> {
    let nofile = procfs::raise_nofile_limit();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut ctx = RunContext::capture(command);
    ctx.profile = cli.global.profile.clone();
    let g = &cli.global;
    let name = match &cli.scenario {
        Scenario::Viewers { .. } => "viewers",
        Scenario::Chat { .. } => "chat",
        Scenario::Sale { .. } => "sale",
    };
    let mut server = match &g.url {
        Some(url) => Server::attach(url, g.pid, g.database_url.clone()),
        None => {
            let binary = g
                .fieldcast
                .clone()
                .or_else(server::sibling_binary)
                .ok_or_else(|| {
                    Error::Server(
                        "no fieldcast binary next to loadgen; build it (cargo build --release -p fieldcast) or pass --fieldcast".into(),
                    )
                })?;
            let mut opts = ServerOptions::new(binary);
            opts.database = Database::parse(&g.db)?;
            opts.rust_log = g.server_log.clone();
            if let Scenario::Viewers { viewers, .. } = &cli.scenario {
                opts.max_viewers = viewers + 10;
            }
            Server::start(&opts).await?
        }
    };
    tracing::info!(server = server.base(), pid = ?server.pid(), nofile, scenario = name, "running");
    let result = match cli.scenario {
        Scenario::Viewers {
            viewers,
            ramp,
            duration,
            video_kbps,
            fps,
            keyframe_secs,
            sample_every,
            local_ip,
        } => {
            let opts = ViewersOptions {
                viewers,
                ramp_per_s: ramp,
                duration: Duration::from_secs(duration),
                shards: g.threads.max(1),
                sample_every,
                local_ip,
                publisher: PublisherOptions {
                    video_bps: video_kbps * 1000,
                    fps,
                    keyframe_interval: Duration::from_secs_f64(keyframe_secs),
                    ..Default::default()
                },
                ..Default::default()
            };
            loadgen::media::run(&mut server, &opts, ctx).await
        }
        Scenario::Chat {
            viewers,
            rate,
            senders,
            duration,
            connect_rate,
        } => {
            let opts = ChatOptions {
                viewers,
                rate,
                senders,
                duration: Duration::from_secs(duration),
                connect_rate,
                shards: g.threads.max(1),
                ..Default::default()
            };
            loadgen::chat::run(&mut server, &opts, ctx).await
        }
        Scenario::Sale {
            buyers,
            taps,
            stock,
            per_buyer_limit,
            via,
            rate,
        } => {
            let opts = SaleOptions {
                buyers,
                taps,
                stock,
                per_buyer_limit,
                via: match via {
                    ViaArg::Http => Via::Http,
                    ViaArg::Ws => Via::Ws,
                },
                rate,
                ..Default::default()
            };
            loadgen::sale::run(&mut server, &opts, ctx).await
        }
    };
    let stopped = server.stop().await;
    let report = result?;
    stopped?;
    println!("{}", report.table());
    let out = g
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("loadgen-{name}.json")));
    report.write_json(&out)?;
    println!("JSON report: {}", out.display());
    Ok(report)
}
