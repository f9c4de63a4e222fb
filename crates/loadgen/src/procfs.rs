//! What the kernel knows about the processes under test and the machine:
//! CPU time and resident memory from `/proc/<pid>`, machine-wide busy time
//! from `/proc/stat`, load average, CPU model, memory, kernel; and raising
//! this process's open-file limit so thousands of sockets fit.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde::Serialize;
use std::time::Instant;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`.
fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// One reading of a process's CPU time and memory.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was read.
    pub at: Instant,
    /// User + system CPU seconds since the process started (all threads).
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kb: u64,
}

/// Parses `utime + stime` (fields 14 and 15) out of a `/proc/<pid>/stat` line.
/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ")": state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from `/proc/<pid>/status`.
pub fn parse_status_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Reads CPU time and memory of `pid` (`None` if it is gone).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        at,
        cpu_s: parse_stat_cpu_ticks(&stat)? as f64 / ticks_per_second(),
        rss_kb: parse_status_rss_kb(&status).unwrap_or(0),
    })
}

/// This process.
pub fn sample_self() -> ProcSample {
    sample(std::process::id()).unwrap_or(ProcSample {
        at: Instant::now(),
        cpu_s: 0.0,
        rss_kb: 0,
    })
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in seconds:
/// (busy, total). Busy excludes idle and iowait.
pub fn parse_proc_stat_total(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    let t = ticks_per_second();
    Some(((total - idle) as f64 / t, total as f64 / t))
}

/// Machine-wide (busy, total) CPU seconds so far.
pub fn machine_cpu() -> (f64, f64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_proc_stat_total(&s))
        .unwrap_or((0.0, 0.0))
}

/// 1, 5 and 15-minute load averages.
pub fn loadavg() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_ascii_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu_model: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// `uname -r`.
    pub kernel: String,
    /// Soft limit on open files for the generator (after raising it).
    pub nofile_limit: u64,
}

impl Machine {
    /// Reads it from `/proc`.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default(),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_ascii_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kb| kb / 1024)
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            nofile_limit: nofile_limit().0,
        }
    }
}

/// (soft, hard) limit on open files.
pub fn nofile_limit() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0))
}

/// Raises the soft open-file limit to the hard limit (10,000 websockets need
/// more than the usual 1,024). Returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let (soft, hard) = nofile_limit();
    if soft >= hard {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(_) => soft,
    }
}

/// CPU used by a process (or the machine) between two readings.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// CPU seconds used in the window.
    pub cpu_s: f64,
    /// Of one core: 1.0 = one core fully busy for the whole window.
    pub cores: f64,
}

impl CpuShare {
    /// From two readings `wall_s` seconds apart.
    pub fn between(cpu_before: f64, cpu_after: f64, wall_s: f64) -> CpuShare {
        let cpu_s = (cpu_after - cpu_before).max(0.0);
        CpuShare {
            cpu_s,
            cores: if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_and_parens_in_the_name() {
        let line = "1234 (fieldcast (serve) x) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 1000000 5000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tfieldcast\nVmPeak:\t  100 kB\nVmRSS:\t   54321 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss_kb(status), Some(54_321));
        assert_eq!(parse_status_rss_kb("Name: x\n"), None);
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n";
        let (busy, total) = parse_proc_stat_total(stat).unwrap();
        let t = ticks_per_second();
        assert!((busy - 150.0 / t).abs() < 1e-9);
        assert!((total - 1000.0 / t).abs() < 1e-9);
    }

    #[test]
    fn this_process_is_readable() {
        let s = sample_self();
        assert!(s.rss_kb > 0);
        assert!(s.cpu_s >= 0.0);
        assert!(Machine::read().cpus >= 1);
    }
}
