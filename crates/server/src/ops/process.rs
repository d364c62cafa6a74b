//! The standard process metrics of Prometheus clients (`process_*`), read
//! from `/proc/self` on Linux. A value that cannot be read is left out
//! (with its `# HELP`/`# TYPE`), so elsewhere the exposition simply has
//! none of them.

use std::fmt::Write as _;

/// What /proc says about this process; `None` where it could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of the times in /proc/<pid>/stat: USER_HZ, which
/// Linux fixes at 100 for user space on every architecture it supports
/// today (Prometheus's own procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    /// This process, now.
    #[cfg(target_os = "linux")]
    pub fn current() -> ProcessStats {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let mut s = ProcessStats::default();
        if let Some(stat) = read("/proc/self/stat") {
            let btime = read("/proc/stat").as_deref().and_then(boot_time);
            let (cpu, start) = from_stat(&stat, btime);
            s.cpu_seconds = cpu;
            s.start_time_seconds = start;
        }
        if let Some(status) = read("/proc/self/status") {
            s.resident_bytes = status_kb(&status, "VmRSS:").map(|kb| kb * 1024);
            s.virtual_bytes = status_kb(&status, "VmSize:").map(|kb| kb * 1024);
        }
        s.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        s
    }

    /// Nothing to read outside Linux.
    #[cfg(not(target_os = "linux"))]
    pub fn current() -> ProcessStats {
        ProcessStats::default()
    }

    /// The `process_*` families, Prometheus text (counter families named
    /// with their `_total`, as the rest of the exposition).
    pub fn render(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, value: Option<String>| {
            if let Some(v) = value {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name} {v}");
            }
        };
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.map(|v| v.to_string()),
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_bytes.map(|v| v.to_string()),
        );
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_bytes.map(|v| v.to_string()),
        );
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.map(|v| v.to_string()),
        );
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds.map(|v| v.to_string()),
        );
    }
}

/// `btime` of /proc/stat: the boot time, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// (CPU seconds, start time in seconds since the epoch) from
/// /proc/self/stat. The command name (field 2) is in parentheses and may
/// hold spaces or parentheses itself, so fields are counted after the last
/// `)`: field 3 (state) is the first there, utime 14, stime 15, starttime 22.
fn from_stat(stat: &str, boot_time: Option<u64>) -> (Option<f64>, Option<f64>) {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (None, None);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let cpu = match (ticks(14), ticks(15)) {
        (Some(u), Some(s)) => Some((u + s) as f64 / USER_HZ),
        _ => None,
    };
    let start = match (ticks(22), boot_time) {
        (Some(t), Some(b)) => Some(b as f64 + t as f64 / USER_HZ),
        _ => None,
    };
    (cpu, start)
}

/// A `Key:   123 kB` line of /proc/self/status, in kB.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.trim();
        v.strip_suffix("kB").unwrap_or(v).trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_an_awkward_command_name() {
        // Fields 3.. after "(name) ": state ppid pgrp session tty tpgid
        // flags minflt cminflt majflt cmajflt utime stime cutime cstime
        // priority nice threads itrealvalue starttime vsize rss ...
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 8 0 12345 1000000 300 18446744073709551615";
        let (cpu, start) = from_stat(stat, Some(1_700_000_000));
        assert_eq!(cpu, Some(3.0));
        assert_eq!(start, Some(1_700_000_123.45));
        assert_eq!(from_stat("garbage", Some(1)), (None, None));
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        let status = "Name:\tx\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(2048));
        assert_eq!(status_kb(status, "VmSize:"), Some(123_456));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn renders_what_is_known_and_leaves_out_the_rest() {
        let mut out = String::new();
        ProcessStats {
            cpu_seconds: Some(1.5),
            open_fds: Some(7),
            ..Default::default()
        }
        .render(&mut out);
        assert_eq!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.5\n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 7\n"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let s = ProcessStats::current();
        assert!(s.cpu_seconds.is_some(), "{s:?}");
        assert!(s.resident_bytes.unwrap() > 0, "{s:?}");
        assert!(
            s.virtual_bytes.unwrap() >= s.resident_bytes.unwrap(),
            "{s:?}"
        );
        assert!(s.open_fds.unwrap() >= 3, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{s:?}"
        );
    }
}
