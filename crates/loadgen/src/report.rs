//! Results: a table for people, a JSON file for machines, both with the
//! conditions of the run (machine, load average, who used how much CPU).

use crate::error::Result;
use crate::procfs::{self, CpuShare, Machine};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One target of the issue and where this run stands.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The target, as written in the issue (e.g. `≤ 2.5 µs`).
    pub target: String,
    /// The measured value, formatted.
    pub measured: String,
    /// Met, missed, or not measurable in this run.
    pub met: Option<bool>,
}

impl Target {
    /// A target met when `ok` holds.
    pub fn check(name: &str, target: &str, measured: String, ok: Option<bool>) -> Target {
        Target {
            name: name.to_owned(),
            target: target.to_owned(),
            measured,
            met: ok,
        }
    }
}

/// CPU and memory of everyone on the machine during the measurement window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuReport {
    /// Window length, seconds.
    pub window_s: f64,
    /// The server process (when its pid is known).
    pub server: Option<CpuShare>,
    /// This generator process.
    pub generator: CpuShare,
    /// Every CPU of the machine (busy = not idle, not iowait).
    pub machine_busy: CpuShare,
    /// What neither the server nor the generator used: other people's work.
    pub others: Option<CpuShare>,
    /// Server resident memory at the end of the window, MiB.
    pub server_rss_mib: Option<f64>,
    /// Largest server resident memory seen during the run, MiB.
    pub server_rss_max_mib: Option<f64>,
}

/// Measures CPU over a window: start it, do the work, finish it.
pub struct CpuWindow {
    pid: Option<u32>,
    start: Instant,
    server: Option<procfs::ProcSample>,
    generator: procfs::ProcSample,
    machine: (f64, f64),
    profiler: Option<std::process::Child>,
}

impl CpuWindow {
    /// Takes the first readings. With `profile`, also samples the server's
    /// stacks with `perf record -e cpu-clock` into that file for the window
    /// (software clock sampling works on VMs without hardware counters).
    pub fn start(server_pid: Option<u32>, profile: Option<&Path>) -> CpuWindow {
        let profiler = match (server_pid, profile) {
            (Some(pid), Some(out)) => std::process::Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| tracing::warn!(error = %e, "perf could not start; no profile"))
                .ok(),
            _ => None,
        };
        CpuWindow {
            pid: server_pid,
            start: Instant::now(),
            server: server_pid.and_then(procfs::sample),
            generator: procfs::sample_self(),
            machine: procfs::machine_cpu(),
            profiler,
        }
    }

    /// Takes the second readings and computes the shares.
    pub fn finish(mut self, rss_max_kb: Option<u64>) -> CpuReport {
        if let Some(mut p) = self.profiler.take() {
            // SIGINT makes perf write its file and exit.
            let _ = crate::server::signal(p.id(), nix::sys::signal::Signal::SIGINT);
            let _ = p.wait();
        }
        let wall = self.start.elapsed().as_secs_f64();
        let server_now = self.pid.and_then(procfs::sample);
        let me = procfs::sample_self();
        let machine = procfs::machine_cpu();
        let server = match (self.server, server_now) {
            (Some(a), Some(b)) => Some(CpuShare::between(a.cpu_s, b.cpu_s, wall)),
            _ => None,
        };
        let generator = CpuShare::between(self.generator.cpu_s, me.cpu_s, wall);
        let machine_busy = CpuShare::between(self.machine.0, machine.0, wall);
        let others = server.map(|s| {
            let cpu_s = (machine_busy.cpu_s - s.cpu_s - generator.cpu_s).max(0.0);
            CpuShare {
                cpu_s,
                cores: cpu_s / wall.max(1e-9),
            }
        });
        let mib = |kb: u64| kb as f64 / 1024.0;
        CpuReport {
            window_s: wall,
            server,
            generator,
            machine_busy,
            others,
            server_rss_mib: server_now.map(|s| mib(s.rss_kb)),
            server_rss_max_mib: rss_max_kb.or(server_now.map(|s| s.rss_kb)).map(mib),
        }
    }
}

/// Samples the server's resident memory twice a second, keeping the largest.
pub struct RssWatch {
    max_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssWatch {
    /// Starts sampling `pid` (does nothing without one).
    pub fn start(pid: Option<u32>) -> RssWatch {
        let max_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(pid) = pid {
            let (m, s) = (max_kb.clone(), stop.clone());
            tokio::spawn(async move {
                while !s.load(Ordering::Relaxed) {
                    if let Some(p) = procfs::sample(pid) {
                        m.fetch_max(p.rss_kb, Ordering::Relaxed);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            });
        }
        RssWatch { max_kb, stop }
    }

    /// The largest value seen so far (KiB), if any.
    pub fn max_kb(&self) -> Option<u64> {
        Some(self.max_kb.load(Ordering::Relaxed)).filter(|v| *v > 0)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Which server a run drove.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// Base URL.
    pub url: String,
    /// Process id, if known.
    pub pid: Option<u32>,
    /// Binary started by the generator (None = attached to a running server).
    pub binary: Option<String>,
    /// Database engine (`sqlite`, `postgres`), if known.
    pub database: Option<String>,
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `viewers`, `chat`, `sale`.
    pub scenario: String,
    /// The command line that produced it.
    pub command: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// Load average (1, 5, 15 min) before the run: other people's work.
    pub load_before: [f64; 3],
    /// Load average after the run.
    pub load_after: [f64; 3],
    /// The server.
    pub server: ServerInfo,
    /// CPU over the measurement window.
    pub cpu: CpuReport,
    /// Human-readable rows (also in `results`).
    pub rows: Vec<(String, String)>,
    /// Scenario results, in full.
    pub results: serde_json::Value,
    /// The targets.
    pub targets: Vec<Target>,
    /// Caveats of this run.
    pub notes: Vec<String>,
}

/// RFC 3339 now.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Report {
    /// The report of one `scenario` run against `server`: the conditions
    /// captured in `ctx`, the load now, and `results` in full. A note is
    /// added if the server is no longer running.
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        scenario: &str,
        ctx: RunContext,
        server: &mut crate::server::Server,
        database: Option<String>,
        cpu: CpuReport,
        rows: Vec<(String, String)>,
        results: &impl Serialize,
        targets: Vec<Target>,
        mut notes: Vec<String>,
    ) -> Result<Report> {
        if !server.running() {
            notes.push(format!(
                "the server died during the run:\n{}",
                server.log_tail(20)
            ));
        }
        Ok(Report {
            scenario: scenario.into(),
            command: ctx.command,
            started_at: ctx.started_at,
            machine: ctx.machine,
            load_before: ctx.load_before,
            load_after: procfs::loadavg(),
            server: ServerInfo {
                url: server.base().to_owned(),
                pid: server.pid(),
                binary: server.binary().map(|p| p.display().to_string()),
                database,
            },
            cpu,
            rows,
            results: serde_json::to_value(results)
                .map_err(|e| crate::Error::Invalid(e.to_string()))?,
            targets,
            notes,
        })
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "\n== {} ({}) ==", self.scenario, self.started_at);
        let _ = writeln!(out, "command: {}", self.command);
        let _ = writeln!(
            out,
            "machine: {} × {}, {} MiB, kernel {}; load avg before {:.2} {:.2} {:.2}, after {:.2} {:.2} {:.2}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_mib,
            self.machine.kernel,
            self.load_before[0],
            self.load_before[1],
            self.load_before[2],
            self.load_after[0],
            self.load_after[1],
            self.load_after[2],
        );
        let w = self
            .rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(10);
        let _ = writeln!(out);
        for (k, v) in &self.rows {
            let pad = w - k.chars().count();
            let _ = writeln!(out, "  {k}{}  {v}", " ".repeat(pad));
        }
        let c = &self.cpu;
        let _ = writeln!(
            out,
            "\n  CPU over the {:.1} s window (1.00 = one core):",
            c.window_s
        );
        if let Some(s) = c.server {
            let _ = writeln!(
                out,
                "    server     {:.2} cores ({:.2} s)",
                s.cores, s.cpu_s
            );
        }
        let _ = writeln!(
            out,
            "    generator  {:.2} cores ({:.2} s)",
            c.generator.cores, c.generator.cpu_s
        );
        if let Some(o) = c.others {
            let _ = writeln!(
                out,
                "    others     {:.2} cores (other people's work)",
                o.cores
            );
        }
        let _ = writeln!(
            out,
            "    machine    {:.2} of {} cores busy",
            c.machine_busy.cores, self.machine.cpus
        );
        if let Some(rss) = c.server_rss_max_mib {
            let _ = writeln!(out, "  server RSS max {rss:.1} MiB");
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                out,
                "\n  target                                   goal            measured          "
            );
            for t in &self.targets {
                let mark = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                let _ = writeln!(
                    out,
                    "  {:<40} {:<15} {:<17} {mark}",
                    t.name, t.target, t.measured
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }

    /// Writes the JSON file (creating its directory).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| crate::Error::Invalid(format!("report: {e}")))?;
        std::fs::write(path, text + "\n")?;
        Ok(())
    }
}

/// The conditions common to every report.
pub struct RunContext {
    /// Command line.
    pub command: String,
    /// Write a `perf` profile of the server over the window here.
    pub profile: Option<std::path::PathBuf>,
    /// Start time.
    pub started_at: String,
    /// Load before.
    pub load_before: [f64; 3],
    /// Machine.
    pub machine: Machine,
}

impl RunContext {
    /// Captures the conditions now.
    pub fn capture(command: String) -> RunContext {
        RunContext {
            command,
            profile: None,
            started_at: now_rfc3339(),
            load_before: procfs::loadavg(),
            machine: Machine::read(),
        }
    }
}
