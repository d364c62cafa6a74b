//! `--hostile MIX,...`: the soak of issue 17. Attack mixes against an
//! external server, one after the other, while a well-behaved pair of
//! clients keeps making calls and logging in.
//!
//! For each mix: the server's RSS (VmRSS of --server-pid) and its own
//! gauges (`/metrics`, when the config has `metricsListen`) at the start,
//! the largest seen from the start until the after sample, and after the
//! attack, once the server's documented lifetimes for what the attack left
//! behind have run out (read from the server's config: see
//! [`Soak::settle`]); what the attack achieved (attempts per second, and
//! every answer it got, counted); and the well-behaved latencies (login,
//! call→INVITE) during the attack, beside those of the --warmup seconds
//! just before it (for a later mix: the end of the previous one's wait).
//!
//! The mixes:
//!
//! - room-flood: one account on `maxDevicesPerAccount` devices creates
//!   rooms with a 4 KiB `ext` at its allowed request rate, reconnecting
//!   whenever a create is refused (403 at `maxRoomsCreatedPerAccount`).
//! - ghost-invites: one account on `maxDevicesPerAccount` devices invites,
//!   and then cancels, never-seen accounts with `offlineEnabled` and a
//!   4 KiB `attachExt`, at its allowed request rate: three invitations in
//!   four to a new name, the fourth to one of ten names that so get far
//!   more than `maxOfflineEvents`.
//! - reconnect-flood: one account and device connecting, sending five
//!   requests and dropping the connection, over and over; and eight loops
//!   of another account logging in with a new deviceId every time, sending
//!   five requests and logging out; no pacing.
//! - pre-login: --hostile-sockets connections over --source-ips that never
//!   send anything, one in four after finishing the WebSocket handshake;
//!   each is opened again when the server closes it.
//! - slow-bodies: twice the operator port's connection cap of POSTs to the
//!   admin API (with the right token) announcing a 1 MiB body and then
//!   trickling it a byte every 500 ms, sending nothing, or sending all but
//!   its last byte at once.
//!
//! Sockets the attack holds when it ends are kept: the server has to close
//! them itself, and those still open at the after sample are counted.

use clap::ValueEnum;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use nim_signaling_client::Client;
use nim_signaling_protocol::codes::{OK, ROOM_NOT_EXIST};
use nim_signaling_server::net::auth::AuthConfig;
use nim_signaling_server::ops::http::{MAX_BODY_BYTES, MAX_CONNECTIONS as OPERATOR_CONNECTIONS};
use nim_signaling_server::ServerConfig;

use super::{
    bench_sink, channel_id, connect_from, histogram, micros, resolve, rss_kb, runtime,
    ws_handshake, Args, Failed, Pair, Quantiles, Target,
};

/// An attack mix (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// One account's devices create rooms with 4 KiB ext, reconnecting when refused.
    RoomFlood,
    /// Invite and cancel, offlineEnabled with 4 KiB attachExt, to never-seen accounts.
    GhostInvites,
    /// One device reconnecting over and over; and new deviceIds logging in and out.
    ReconnectFlood,
    /// Sockets that never log in (raw TCP, and some after the WebSocket handshake).
    PreLogin,
    /// Admin requests whose bodies trickle, stall, or stop a byte short.
    SlowBodies,
    /// Every mix above, in this order.
    All,
}

const EVERY_MIX: [Mix; 5] = [
    Mix::RoomFlood,
    Mix::GhostInvites,
    Mix::ReconnectFlood,
    Mix::PreLogin,
    Mix::SlowBodies,
];

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::RoomFlood => "room-flood",
            Mix::GhostInvites => "ghost-invites",
            Mix::ReconnectFlood => "reconnect-flood",
            Mix::PreLogin => "pre-login",
            Mix::SlowBodies => "slow-bodies",
            Mix::All => "all",
        }
    }

    /// What the attack's attempts are.
    fn unit(self) -> &'static str {
        match self {
            Mix::RoomFlood => "creates",
            Mix::GhostInvites => "invites",
            Mix::ReconnectFlood => "logins",
            Mix::PreLogin | Mix::SlowBodies => "connections",
            Mix::All => "",
        }
    }
}

/// The largest `ext` / `attachExt` the server takes (docs/SECURITY.md).
const MAX_EXT: usize = 4096;
/// An account nobody uses is forgotten once untouched this long, or
/// `logRetentionMs` if longer (docs/CONFIG.md, `offlineRetentionMs`).
const IDLE_ACCOUNT_FLOOR_MS: i64 = 60_000;
/// The admin and metrics ports answer 408 to a request not complete this
/// long after its head (docs/SECURITY.md).
const OPERATOR_REQUEST_TIMEOUT_MS: i64 = 10_000;
/// Added to the longest lifetime before the after sample: the server
/// sweeps once a second.
const SWEEP_MARGIN_MS: i64 = 2_000;
/// Logins of the well-behaved login probe per second.
const LOGIN_PROBES_PER_S: u64 = 10;
/// Pause after a refused login or connection before the next try, so that
/// the bench spends its core on the attack rather than on spinning.
const REFUSED_BACKOFF: Duration = Duration::from_millis(100);
/// A connect that takes longer (a full listen backlog drops SYNs).
const CONNECT_LIMIT: Duration = Duration::from_secs(3);
/// A connection closed within this long of connecting was refused.
const AT_ONCE: Duration = Duration::from_millis(500);
/// The ghost-invites mix's names that get many invitations each.
const DEEP_GHOSTS: u64 = 10;
/// The reconnect-flood mix: loops on one device, loops on new devices,
/// requests per connection.
const SAME_DEVICE_LOOPS: usize = 1;
const NEW_DEVICE_LOOPS: usize = 8;
const REQUESTS_PER_CONNECTION: usize = 5;
/// The slow-bodies mix: a trickled body's pace.
const TRICKLE_EVERY: Duration = Duration::from_millis(500);

pub fn check(args: &Args) -> Result<(), String> {
    if args.server_config.is_none() || args.server_pid.is_none() {
        return Err(
            "--hostile needs --server-config and --server-pid: an external server, \
             whose RSS is read alone"
                .into(),
        );
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let at_least_0 = |v: f64| v.is_finite() && v >= 0.0;
    if !positive(args.rate) || !positive(args.duration) || !at_least_0(args.warmup) {
        return Err("--hostile needs --rate > 0, --duration > 0 and --warmup >= 0".into());
    }
    if args.hostile_sockets == 0 || args.timeout_ms == 0 {
        return Err("--hostile-sockets and --timeout-ms must be > 0".into());
    }
    if args.url.as_deref().is_some_and(|u| u.starts_with("wss://")) {
        return Err("--hostile speaks ws:// only".into());
    }
    Ok(())
}

/// Runs the mixes and prints the report; the process's exit code.
pub fn main(args: &Args, fds: u64) -> i32 {
    let soak = match Soak::new(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nim-signaling-bench: {e}");
            return 2;
        }
    };
    let needed = (args.hostile_sockets + 2 * OPERATOR_CONNECTIONS + 256) as u64;
    if fds < needed {
        eprintln!(
            "nim-signaling-bench: --hostile needs about {needed} file descriptors; \
             the limit is {fds} (ulimit -n)"
        );
        return 2;
    }
    let rt = runtime(args.threads);
    let outcome = rt.block_on(soak.run());
    rt.shutdown_background();
    match outcome {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_value(&report).expect("report as JSON"));
            } else {
                report.print();
            }
            0
        }
        Err(e) => {
            eprintln!("nim-signaling-bench: {e}");
            1
        }
    }
}

/// What the run needs to know of the server.
struct Soak<'a> {
    args: &'a Args,
    cfg: Arc<ServerConfig>,
    url: String,
    hmac_secret: Option<String>,
    mixes: Vec<Mix>,
}

impl<'a> Soak<'a> {
    fn new(args: &'a Args) -> Result<Soak<'a>, String> {
        let path = args.server_config.as_ref().expect("checked");
        let cfg = ServerConfig::from_file(path)
            .map_err(|f| format!("--server-config {}: {}", path.display(), f.message))?;
        let url = match &args.url {
            Some(u) => u.clone(),
            None if cfg.tls.is_some() => return Err("--hostile speaks ws:// only".into()),
            None if cfg.listen.ends_with(":0") => {
                return Err("the server config listens on port 0: give --url".into())
            }
            None => format!("ws://{}", cfg.listen),
        };
        let hmac_secret = match &cfg.auth {
            AuthConfig::None {} => None,
            AuthConfig::Hmac { secret } => Some(secret.clone()),
            AuthConfig::Static { .. } => {
                return Err("--hostile logs in with auth mode none or hmac, not static".into())
            }
        };
        let mut mixes = Vec::new();
        for m in &args.hostile {
            match m {
                Mix::All => mixes.extend(EVERY_MIX),
                m => mixes.push(*m),
            }
        }
        if mixes.contains(&Mix::SlowBodies)
            && (cfg.admin_listen.is_none() || cfg.admin_token.is_none())
        {
            return Err(
                "the slow-bodies mix needs adminListen and adminToken in the config".into(),
            );
        }
        Ok(Soak {
            args,
            cfg: Arc::new(cfg),
            url,
            hmac_secret,
            mixes,
        })
    }

    async fn run(&self) -> Result<SoakReport, String> {
        let args = self.args;
        let pid = args.server_pid.expect("checked");
        let target = Arc::new(Target {
            urls: vec![self.url.clone()],
            next_url: AtomicUsize::new(0),
            hmac_secret: self.hmac_secret.clone(),
            timeout_ms: args.timeout_ms,
            receipts: !args.no_receipts,
            prefix: format!("soak-{:08x}", rand::random::<u32>()),
        });
        let server = resolve(&self.url).await?;
        let metrics = match &self.cfg.metrics_listen {
            Some(a) => Some(lookup(a).await?),
            None => None,
        };
        let admin = match &self.cfg.admin_listen {
            Some(a) => Some(lookup(a).await?),
            None => None,
        };
        let samples = Arc::new(Samples::default());
        tokio::spawn(sample_loop(samples.clone(), pid, metrics));
        let limit = Duration::from_millis(args.timeout_ms);
        let wb = WellBehaved::start(target.clone(), args.rate, limit).await?;
        eprintln!("well-behaved pair logged in; {} s of it alone", args.warmup);
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

        let mut mixes = Vec::new();
        for &mix in &self.mixes {
            let (settle, settle_from) = self.settle(mix);
            eprintln!(
                "{}: {} s of attack, then {:.0} s for {settle_from}",
                mix.name(),
                args.duration,
                settle.as_secs_f64()
            );
            let start = Instant::now();
            let cpu_start = (cpu_ticks(Some(pid)), cpu_ticks(None), machine_busy_ticks());
            let rss_start = rss_kb(Some(pid));
            let gauges_start = scrape_opt(metrics).await;
            let until = start + Duration::from_secs_f64(args.duration);
            let attack = Arc::new(Attack {
                target: target.clone(),
                cfg: self.cfg.clone(),
                server,
                admin,
                source_ips: args.source_ips.clone(),
                sockets: args.hostile_sockets,
                until,
                settle_end: until + settle,
                tally: Tally::default(),
            });
            let workers = attack.launch(mix);
            tokio::time::sleep_until(until.into()).await;
            let attempts = attack.tally.attempts.load(Ordering::Relaxed);
            let achieved_s = start.elapsed().as_secs_f64();
            let cpu_end = (cpu_ticks(Some(pid)), cpu_ticks(None), machine_busy_ticks());
            let pct = |a: Option<u64>, b: Option<u64>| {
                Some((b? - a?) as f64 * 100.0 / clock_ticks_per_s() / achieved_s)
            };
            tokio::time::sleep_until(attack.settle_end.into()).await;
            let after_at = Instant::now();
            let rss_after = rss_kb(Some(pid));
            let gauges_after = scrape_opt(metrics).await;
            // Workers stop by the settle's end; a request in flight then
            // ends within --timeout-ms.
            for w in workers {
                let abort = w.abort_handle();
                if tokio::time::timeout(limit, w).await.is_err() {
                    abort.abort();
                }
            }
            let warmup = Duration::from_secs_f64(args.warmup);
            let quiet_from = start.checked_sub(warmup).unwrap_or(start);
            mixes.push(MixReport {
                mix: mix.name(),
                unit: mix.unit(),
                attack_s: args.duration,
                settle_s: settle.as_secs_f64(),
                settle_from,
                attempts,
                attempts_per_s: attempts as f64 / achieved_s,
                outcomes: attack.tally.outcomes(),
                peak_open_sockets: attack.tally.peak_open.load(Ordering::Relaxed),
                server_cpu_pct: pct(cpu_start.0, cpu_end.0),
                bench_cpu_pct: pct(cpu_start.1, cpu_end.1),
                other_cpu_pct: pct(cpu_start.2, cpu_end.2).and_then(|all| {
                    let ours = pct(cpu_start.0, cpu_end.0)? + pct(cpu_start.1, cpu_end.1)?;
                    Some((all - ours).max(0.0))
                }),
                rss_kb: Rss {
                    start: rss_start,
                    peak: samples.peak_rss(start, after_at),
                    after: rss_after,
                },
                gauges: GaugeReport {
                    start: gauges_start,
                    peak: samples.peak_gauges(start, after_at),
                    after: gauges_after,
                },
                during: wb.window(start, until),
                before: wb.window(quiet_from, start),
            });
        }
        wb.stop.store(true, Ordering::Relaxed);
        Ok(SoakReport {
            server: self.url.clone(),
            server_pid: pid,
            server_config: args
                .server_config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            calls_per_s: args.rate,
            login_probes_per_s: LOGIN_PROBES_PER_S,
            warmup_s: args.warmup,
            mixes,
        })
    }

    /// How long after the attack the after sample is taken: the longest
    /// lifetime the server documents for what the mix leaves behind, plus
    /// the sweep's margin; and that sum spelt out.
    fn settle(&self, mix: Mix) -> (Duration, String) {
        let c = &self.cfg;
        let idle = (
            "idle account",
            c.log_retention_ms.max(IDLE_ACCOUNT_FLOOR_MS),
        );
        let parts = match mix {
            Mix::RoomFlood => vec![("roomTtlMs", c.room_ttl_ms), idle],
            Mix::GhostInvites => vec![
                ("offlineRetentionMs", c.offline_retention_ms),
                ("roomTtlMs", c.room_ttl_ms),
                ("inviteTtlMs", c.invite_ttl_ms),
                idle,
            ],
            Mix::ReconnectFlood => vec![("memberDropGraceMs", c.member_drop_grace_ms), idle],
            // A connection that waited in the listen backlog has its
            // loginTimeoutMs from when it is accepted.
            Mix::PreLogin => vec![("2 x loginTimeoutMs", 2 * c.login_timeout_ms as i64)],
            Mix::SlowBodies => vec![("admin request timeout", OPERATOR_REQUEST_TIMEOUT_MS)],
            Mix::All => unreachable!("expanded"),
        };
        let longest = parts.iter().map(|p| p.1).max().unwrap_or(0);
        let named: Vec<String> = parts
            .iter()
            .map(|(n, ms)| format!("{n} {}", secs(*ms)))
            .collect();
        let from = format!("max({}) + {}", named.join(", "), secs(SWEEP_MARGIN_MS));
        let ms = (longest + SWEEP_MARGIN_MS).max(0) as u64;
        (Duration::from_millis(ms), from)
    }
}

/// "5 s", "0.5 s".
fn secs(ms: i64) -> String {
    format!("{} s", ms as f64 / 1000.0)
}

/// User and system CPU time of `pid` (or of this process), in clock ticks.
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(|| "/proc/self/stat".into(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // After the command's ")": state is field 3, utime 14, stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU time of the whole machine that was not idle, in clock ticks
/// (the first line of /proc/stat).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user and nice).
    let all: u64 = ticks.iter().take(8).sum();
    Some(all - ticks.get(3)? - ticks.get(4).copied().unwrap_or(0))
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: a plain query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

async fn lookup(addr: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {addr}"))
}

// ---------------------------------------------------------------------------
// The server's memory and gauges, sampled.

/// The `/metrics` series read, by their names less `nim_signaling_`:
/// gauges, then counters (reported as their growth over the mix).
const GAUGES: [&str; 5] = [
    "connections",
    "sessions",
    "rooms",
    "log_entries",
    "timers_pending",
];
const COUNTERS: [&str; 5] = [
    "logins_total",
    "connections_refused_total",
    "pending_evicted_total",
    "events_sent_total",
    "timers_run_total",
];

type Gauges = BTreeMap<&'static str, f64>;

#[derive(Default)]
struct Samples {
    rss: Mutex<Vec<(Instant, u64)>>,
    gauges: Mutex<Vec<(Instant, Gauges)>>,
}

impl Samples {
    fn peak_rss(&self, from: Instant, to: Instant) -> Option<u64> {
        let rss = self.rss.lock().expect("samples");
        let inside = rss.iter().filter(|(at, _)| (from..=to).contains(at));
        inside.map(|(_, kb)| *kb).max()
    }

    /// Each gauge's largest value in the window.
    fn peak_gauges(&self, from: Instant, to: Instant) -> Option<Gauges> {
        let all = self.gauges.lock().expect("samples");
        let mut peak: Option<Gauges> = None;
        for (_, g) in all.iter().filter(|(at, _)| (from..=to).contains(at)) {
            let p = peak.get_or_insert_with(Gauges::new);
            for (name, v) in g.iter().filter(|(n, _)| GAUGES.contains(n)) {
                let e = p.entry(name).or_insert(*v);
                *e = e.max(*v);
            }
        }
        peak
    }
}

/// VmRSS every 100 ms, the gauges every second.
async fn sample_loop(samples: Arc<Samples>, pid: u32, metrics: Option<SocketAddr>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for n in 0u64.. {
        tick.tick().await;
        if let Some(kb) = rss_kb(Some(pid)) {
            samples
                .rss
                .lock()
                .expect("samples")
                .push((Instant::now(), kb));
        }
        if n % 10 == 0 {
            if let Some(g) = scrape_opt(metrics).await {
                let mut all = samples.gauges.lock().expect("samples");
                all.push((Instant::now(), g));
            }
        }
    }
}

async fn scrape_opt(metrics: Option<SocketAddr>) -> Option<Gauges> {
    let addr = metrics?;
    tokio::time::timeout(Duration::from_secs(2), scrape(addr))
        .await
        .ok()?
}

/// The gauges of `GET /metrics`, over a connection of its own.
async fn scrape(addr: SocketAddr) -> Option<Gauges> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    let mut found = Gauges::new();
    for line in body.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(short) = name.strip_prefix("nim_signaling_") else {
            continue;
        };
        let known = GAUGES.iter().chain(&COUNTERS).find(|g| **g == short);
        if let (Some(g), Ok(v)) = (known, v.parse()) {
            found.insert(*g, v);
        }
    }
    Some(found)
}

// ---------------------------------------------------------------------------
// The well-behaved clients.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Login,
    Invite,
    Setup,
}

struct Record {
    at: Instant,
    probe: Probe,
    /// The latency (µs), or why there is none.
    result: Result<u64, String>,
}

/// A pair making calls at a steady rate (the bench's call setup) and a
/// probe logging one more device in and out [`LOGIN_PROBES_PER_S`] times
/// a second, on a thread and runtime of their own, so that the attack's
/// tasks never queue ahead of them in the bench.
struct WellBehaved {
    records: Mutex<Vec<Record>>,
    stop: AtomicBool,
}

impl WellBehaved {
    async fn start(target: Arc<Target>, rate: f64, limit: Duration) -> Result<Arc<Self>, String> {
        let wb = Arc::new(WellBehaved {
            records: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let w = wb.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async {
                let logins = tokio::spawn(w.clone().logins(target.clone()));
                w.calls(target, rate, limit, ready_tx).await;
                let _ = logins.await;
            });
        });
        ready
            .await
            .map_err(|_| "the well-behaved clients stopped".to_string())??;
        Ok(wb)
    }

    fn record(&self, at: Instant, probe: Probe, result: Result<u64, String>) {
        let r = Record { at, probe, result };
        self.records.lock().expect("records").push(r);
    }

    async fn calls(
        &self,
        target: Arc<Target>,
        rate: f64,
        limit: Duration,
        ready: tokio::sync::oneshot::Sender<Result<(), String>>,
    ) {
        let drops = Arc::new(AtomicU64::new(0));
        let mut pair = match Pair::connect(0, &target, drops).await {
            Ok(p) => p,
            Err(e) => {
                let _ = ready.send(Err(format!("well-behaved pair: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut pace = Pace::new(rate);
        while !self.stop.load(Ordering::Relaxed) {
            pace.wait().await;
            let o = pair.setup(limit).await;
            let failed = |f: Option<Failed>| Err(f.map_or("none".into(), |f| f.to_string()));
            let invite = o.invite_us.map_or_else(|| failed(o.failure), Ok);
            self.record(o.started, Probe::Invite, invite);
            let setup = o.setup_us.map_or_else(|| failed(o.failure), Ok);
            self.record(o.started, Probe::Setup, setup);
        }
    }

    async fn logins(self: Arc<Self>, target: Arc<Target>) {
        let account = target.account("probe", 0);
        let drops = Arc::new(AtomicU64::new(0));
        let mut pace = Pace::new(LOGIN_PROBES_PER_S as f64);
        while !self.stop.load(Ordering::Relaxed) {
            pace.wait().await;
            let cfg = target.client_config_as(&account, "probe", false);
            let client = Client::new(cfg, bench_sink(None, drops.clone()));
            let started = Instant::now();
            let (code, _) = client.login().await;
            let took = micros(started.elapsed());
            let result = if code == OK {
                Ok(took)
            } else {
                Err(code.to_string())
            };
            self.record(started, Probe::Login, result);
            if code == OK {
                let _ = client.logout().await;
            }
            client.shutdown();
        }
    }

    /// The records started in `from..to`.
    fn window(&self, from: Instant, to: Instant) -> WellBehavedReport {
        let records = self.records.lock().expect("records");
        let inside: Vec<&Record> = records
            .iter()
            .filter(|r| (from..to).contains(&r.at))
            .collect();
        let of = |probe: Probe| {
            let mut h = histogram();
            let mut failures = BTreeMap::new();
            for r in inside.iter().filter(|r| r.probe == probe) {
                match &r.result {
                    Ok(us) => h.saturating_record(*us),
                    Err(why) => *failures.entry(why.clone()).or_default() += 1,
                }
            }
            Latencies {
                count: h.len(),
                us: (!h.is_empty()).then(|| Quantiles::from(&h)),
                failures,
            }
        };
        WellBehavedReport {
            login: of(Probe::Login),
            call_invite: of(Probe::Invite),
            setup: of(Probe::Setup),
        }
    }
}

/// Paces a loop at `per_s` rounds a second, never catching up on rounds
/// it fell behind on.
struct Pace {
    next: tokio::time::Instant,
    period: Duration,
}

impl Pace {
    fn new(per_s: f64) -> Pace {
        Pace {
            next: tokio::time::Instant::now(),
            period: Duration::from_secs_f64(1.0 / per_s),
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = self.next.max(tokio::time::Instant::now()) + self.period;
    }
}

// ---------------------------------------------------------------------------
// The attacks.

/// What an attack achieved: its attempts (the mix's unit), every outcome
/// counted by name, and the sockets it held at once at most.
#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
    open: AtomicI64,
    peak_open: AtomicI64,
}

impl Tally {
    fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, what: String) {
        *self
            .outcomes
            .lock()
            .expect("tally")
            .entry(what)
            .or_default() += 1;
    }

    fn outcomes(&self) -> BTreeMap<String, u64> {
        self.outcomes.lock().expect("tally").clone()
    }

    /// Counts a socket open until the guard is dropped.
    fn hold(&self) -> Held<'_> {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(now, Ordering::Relaxed);
        Held(self)
    }
}

struct Held<'a>(&'a Tally);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a socket of the attack ended.
enum Ending {
    /// The server closed it, after this long, saying this.
    Closed(Duration, String),
    /// Still open at the after sample.
    Open,
}

impl Ending {
    fn closed(opened: Instant, how: impl Into<String>) -> Ending {
        Ending::Closed(opened.elapsed(), how.into())
    }

    /// Its name in the tally, and whether it was refused at once.
    fn outcome(&self) -> (String, bool) {
        match self {
            Ending::Open => ("still open at the after sample".into(), false),
            Ending::Closed(after, how) if *after < AT_ONCE => (format!("{how} at once"), true),
            Ending::Closed(after, how) => {
                (format!("{how} after {:.0} s", after.as_secs_f64()), false)
            }
        }
    }
}

/// One mix's run: what it attacks, until when, and its tally.
struct Attack {
    target: Arc<Target>,
    cfg: Arc<ServerConfig>,
    server: SocketAddr,
    admin: Option<SocketAddr>,
    source_ips: Vec<IpAddr>,
    sockets: usize,
    /// No new attempts from then on.
    until: Instant,
    /// Sockets still open then are counted as such and let go.
    settle_end: Instant,
    tally: Tally,
}

impl Attack {
    fn going(&self) -> bool {
        Instant::now() < self.until
    }

    fn launch(self: &Arc<Self>, mix: Mix) -> Vec<JoinHandle<()>> {
        match mix {
            Mix::RoomFlood => self.spread(self.cfg.max_devices_per_account, Self::room_flood),
            Mix::GhostInvites => {
                let next = Arc::new(AtomicU64::new(0));
                self.spread(self.cfg.max_devices_per_account, move |a, d| {
                    a.ghost_invites(d, next.clone())
                })
            }
            Mix::ReconnectFlood => {
                let next = Arc::new(AtomicU64::new(0));
                let mut w = self.spread(SAME_DEVICE_LOOPS, |a, _| a.same_device());
                w.extend(self.spread(NEW_DEVICE_LOOPS, move |a, _| a.new_devices(next.clone())));
                w
            }
            Mix::PreLogin => self.spread(self.sockets, Self::pre_login),
            Mix::SlowBodies => self.spread(2 * OPERATOR_CONNECTIONS, Self::slow_bodies),
            Mix::All => unreachable!("expanded"),
        }
    }

    /// `n` tasks of `work(attack, i)`.
    fn spread<F, Fut>(self: &Arc<Self>, n: usize, work: F) -> Vec<JoinHandle<()>>
    where
        F: Fn(Arc<Self>, usize) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        (0..n)
            .map(|i| tokio::spawn(work(self.clone(), i)))
            .collect()
    }

    /// A logged-in client of `account` on `device` that does not
    /// reconnect, or None (counted, and after a pause) when refused.
    async fn login(&self, label: &str, account: &str, device: &str) -> Option<Client> {
        let cfg = self.target.client_config_as(account, device, false);
        let client = Client::new(cfg, bench_sink(None, Arc::new(AtomicU64::new(0))));
        let (code, _) = client.login().await;
        self.tally.count(format!("{label} {code}"));
        if code == OK {
            return Some(client);
        }
        client.shutdown();
        tokio::time::sleep(REFUSED_BACKOFF).await;
        None
    }

    /// Sends a request and counts its answer as "`name` `code`".
    async fn ask(&self, client: &Client, name: &str, op: &str, params: Value) -> (i32, String) {
        let (code, result) = client.request(op, params).await;
        self.tally.count(format!("{name} {code}"));
        (code, result)
    }

    /// One device of the room flood.
    async fn room_flood(self: Arc<Self>, device: usize) {
        let account = self.target.account("flood", 0);
        let device = format!("d{device}");
        let create = json!({"type": 1, "ext": "x".repeat(MAX_EXT)});
        let mut pace = Pace::new(f64::from(self.cfg.max_requests_per_second));
        while self.going() {
            let Some(client) = self.login("login", &account, &device).await else {
                continue;
            };
            while self.going() {
                pace.wait().await;
                self.tally.attempt();
                let (code, _) = self.ask(&client, "create", "create", create.clone()).await;
                if code != OK {
                    break; // refused: reconnect and try again
                }
            }
            client.shutdown();
        }
    }

    /// One device of the ghost invitations; `next` numbers the names.
    async fn ghost_invites(self: Arc<Self>, device: usize, next: Arc<AtomicU64>) {
        let account = self.target.account("ghoster", 0);
        let device = format!("d{device}");
        let ext = "x".repeat(MAX_EXT);
        let mut pace = Pace::new(f64::from(self.cfg.max_requests_per_second));
        while self.going() {
            let Some(client) = self.login("login", &account, &device).await else {
                continue;
            };
            // The room the invitations are into, made again when its
            // roomTtlMs has run out.
            let mut room: Option<String> = None;
            while self.going() {
                pace.wait().await;
                let Some(channel) = room.clone() else {
                    let (code, result) = self
                        .ask(&client, "create", "create", json!({"type": 1}))
                        .await;
                    room = channel_id(&result).filter(|_| code == OK);
                    continue;
                };
                let n = next.fetch_add(1, Ordering::Relaxed);
                let ghost = if n % 4 == 3 {
                    self.target
                        .account("deep-ghost", (n / 4 % DEEP_GHOSTS) as usize)
                } else {
                    self.target.account("ghost", n as usize)
                };
                let params = json!({"channelId": channel, "account": ghost,
                    "requestId": format!("g{n}"), "offlineEnabled": true, "attachExt": ext});
                self.tally.attempt();
                let (code, _) = self.ask(&client, "invite", "invite", params.clone()).await;
                if code == ROOM_NOT_EXIST {
                    room = None;
                    continue;
                }
                pace.wait().await;
                self.ask(&client, "cancel", "cancel", params).await;
            }
            client.shutdown();
        }
    }

    /// One of the loops on one account and device: connect, send
    /// requests, drop the connection.
    async fn same_device(self: Arc<Self>) {
        let account = self.target.account("recon", 0);
        while self.going() {
            self.tally.attempt();
            let label = "login same device";
            let Some(client) = self.login(label, &account, "same").await else {
                continue;
            };
            for _ in 0..REQUESTS_PER_CONNECTION {
                let params = json!({"channelId": "soak-no-such-room"});
                self.ask(&client, "query same device", "queryChannelInfo", params)
                    .await;
            }
            client.shutdown();
        }
    }

    /// One of the loops logging in with a new deviceId every time, sending
    /// requests and logging out; `next` numbers the devices.
    async fn new_devices(self: Arc<Self>, next: Arc<AtomicU64>) {
        let account = self.target.account("recon", 1);
        while self.going() {
            self.tally.attempt();
            let device = format!("dev{}", next.fetch_add(1, Ordering::Relaxed));
            let label = "login new device";
            let Some(client) = self.login(label, &account, &device).await else {
                continue;
            };
            for _ in 0..REQUESTS_PER_CONNECTION {
                let params = json!({"channelId": "soak-no-such-room"});
                self.ask(&client, "query new device", "queryChannelInfo", params)
                    .await;
            }
            let (code, _) = client.logout().await;
            self.tally.count(format!("logout {code}"));
            client.shutdown();
        }
    }

    /// Connects (counted) from `source` to `to`; None when it failed.
    async fn connect(&self, source: IpAddr, to: SocketAddr) -> Option<TcpStream> {
        self.tally.attempt();
        let failed = match tokio::time::timeout(CONNECT_LIMIT, connect_from(source, to)).await {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => format!("connect failed ({})", e.kind()),
            Err(_) => "connect timed out".to_string(),
        };
        self.tally.count(failed);
        tokio::time::sleep(REFUSED_BACKOFF).await;
        None
    }

    /// Counts how `ending` ended; whether to go on.
    async fn ended(&self, ending: Ending) -> bool {
        let (name, refused) = ending.outcome();
        self.tally.count(name);
        if refused {
            tokio::time::sleep(REFUSED_BACKOFF).await;
        }
        !matches!(ending, Ending::Open)
    }

    /// One socket of the pre-login mix, opened again and again.
    async fn pre_login(self: Arc<Self>, i: usize) {
        let ips = &self.source_ips;
        let source = match ips.is_empty() {
            true => IpAddr::V4(Ipv4Addr::LOCALHOST),
            false => ips[i % ips.len()],
        };
        let handshake = i % 4 == 3;
        while self.going() {
            let Some(stream) = self.connect(source, self.server).await else {
                continue;
            };
            let held = self.tally.hold();
            let ending = if handshake {
                self.silent_ws(stream).await
            } else {
                self.silent_tcp(stream).await
            };
            drop(held);
            if !self.ended(ending).await {
                break;
            }
        }
    }

    /// A raw TCP connection that sends nothing; until the server closes it.
    async fn silent_tcp(&self, mut stream: TcpStream) -> Ending {
        let opened = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            let read = stream.read(&mut buf);
            match tokio::time::timeout_at(self.settle_end.into(), read).await {
                Err(_) => return Ending::Open,
                Ok(Ok(0) | Err(_)) => return Ending::closed(opened, "tcp closed"),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// A WebSocket that never logs in; until the server closes it.
    async fn silent_ws(&self, stream: TcpStream) -> Ending {
        let opened = Instant::now();
        let end = self.settle_end.into();
        let handshake = ws_handshake(&self.target.urls[0], stream);
        let mut ws = match tokio::time::timeout_at(end, handshake).await {
            Err(_) => return Ending::Open,
            Ok(Err(_)) => return Ending::closed(opened, "ws handshake refused"),
            Ok(Ok(ws)) => ws,
        };
        loop {
            match tokio::time::timeout_at(end, ws.next()).await {
                Err(_) => return Ending::Open,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let code = frame.map_or(0, |f| u16::from(f.code));
                    return Ending::closed(opened, format!("ws close {code}"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => {
                    return Ending::closed(opened, "ws closed without a close frame")
                }
            }
        }
    }

    /// One connection of the slow-bodies mix, opened again and again.
    async fn slow_bodies(self: Arc<Self>, i: usize) {
        let admin = self.admin.expect("checked: adminListen");
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let style = [Body::Trickle, Body::Stall, Body::AllButOne][i % 3];
        while self.going() {
            let Some(stream) = self.connect(source, admin).await else {
                continue;
            };
            let held = self.tally.hold();
            let ending = self.slow_body(stream, style).await;
            drop(held);
            if !self.ended(ending).await {
                break;
            }
        }
    }

    /// A POST whose body comes as `style` says, and never whole; until
    /// the server closes the connection.
    async fn slow_body(&self, stream: TcpStream, style: Body) -> Ending {
        let opened = Instant::now();
        let (mut rd, mut wr) = stream.into_split();
        let token = self.cfg.admin_token.as_deref().unwrap_or_default();
        let head = format!(
            "POST /v1/rooms/soak-no-such-room/control HTTP/1.1\r\nHost: admin\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {MAX_BODY_BYTES}\r\n\r\n"
        );
        let send = async move {
            if wr.write_all(head.as_bytes()).await.is_ok() {
                style.send(&mut wr).await;
            }
            // Dropping the write half would end the body (a FIN): keep it.
            std::future::pending::<()>().await;
        };
        let answer = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        let answer = tokio::time::timeout_at(self.settle_end.into(), answer);
        let got = tokio::select! {
            got = answer => got,
            () = send => unreachable!("pending"),
        };
        let Ok(got) = got else {
            return Ending::Open;
        };
        // "HTTP/1.1 408 Request Timeout": its status.
        let status = String::from_utf8_lossy(&got)
            .split_whitespace()
            .nth(1)
            .map(str::to_string);
        match status {
            Some(s) => Ending::closed(opened, format!("{} answered {s}", style.name())),
            None => Ending::closed(opened, format!("{} closed unanswered", style.name())),
        }
    }
}

/// How the slow-bodies mix sends a body of `MAX_BODY_BYTES`.
#[derive(Clone, Copy)]
enum Body {
    /// A byte every [`TRICKLE_EVERY`].
    Trickle,
    /// Nothing.
    Stall,
    /// All but the last byte, at once.
    AllButOne,
}

impl Body {
    fn name(self) -> &'static str {
        match self {
            Body::Trickle => "trickle",
            Body::Stall => "stall",
            Body::AllButOne => "all-but-one",
        }
    }

    async fn send(self, wr: &mut tokio::net::tcp::OwnedWriteHalf) {
        match self {
            Body::Trickle => {
                while wr.write_all(b" ").await.is_ok() {
                    tokio::time::sleep(TRICKLE_EVERY).await;
                }
            }
            Body::Stall => {}
            Body::AllButOne => {
                let chunk = [b' '; 16 * 1024];
                let mut left = MAX_BODY_BYTES - 1;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if wr.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The report.

#[derive(Serialize)]
struct SoakReport {
    server: String,
    server_pid: u32,
    server_config: String,
    calls_per_s: f64,
    login_probes_per_s: u64,
    warmup_s: f64,
    mixes: Vec<MixReport>,
}

#[derive(Serialize)]
struct MixReport {
    mix: &'static str,
    unit: &'static str,
    attack_s: f64,
    settle_s: f64,
    settle_from: String,
    attempts: u64,
    attempts_per_s: f64,
    outcomes: BTreeMap<String, u64>,
    peak_open_sockets: i64,
    /// CPU time during the attack, in % of one core: the server's, and
    /// this bench's (the attack and the well-behaved clients).
    server_cpu_pct: Option<f64>,
    bench_cpu_pct: Option<f64>,
    /// What every other process on the machine took meanwhile (a shared
    /// machine: builds), in % of one core.
    other_cpu_pct: Option<f64>,
    rss_kb: Rss,
    gauges: GaugeReport,
    /// The well-behaved clients during the attack, and in the quiet
    /// --warmup seconds before it.
    during: WellBehavedReport,
    before: WellBehavedReport,
}

#[derive(Serialize)]
struct Rss {
    start: Option<u64>,
    peak: Option<u64>,
    after: Option<u64>,
}

#[derive(Serialize)]
struct GaugeReport {
    start: Option<Gauges>,
    peak: Option<Gauges>,
    after: Option<Gauges>,
}

#[derive(Serialize)]
struct WellBehavedReport {
    login: Latencies,
    call_invite: Latencies,
    setup: Latencies,
}

#[derive(Serialize)]
struct Latencies {
    count: u64,
    us: Option<Quantiles>,
    failures: BTreeMap<String, u64>,
}

impl Latencies {
    /// "p50 / p99 / max" in ms, and the failures if any.
    fn brief(&self) -> String {
        let mut s = match &self.us {
            Some(q) => format!("{} / {} / {}", ms(q.p50), ms(q.p99), ms(q.max)),
            None => "-".into(),
        };
        if !self.failures.is_empty() {
            let f: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            s += &format!(" (failed {})", f.join(", "));
        }
        s
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn kb(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

impl SoakReport {
    fn print(&self) {
        println!(
            "hostile soak: server {} (pid {}, {}); well-behaved: {} calls/s, {} logins/s",
            self.server,
            self.server_pid,
            self.server_config,
            self.calls_per_s,
            self.login_probes_per_s
        );
        for m in &self.mixes {
            println!();
            println!(
                "{}: {} {} in {} s ({:.0}/s); after sample {:.0} s later = {}",
                m.mix, m.attempts, m.unit, m.attack_s, m.attempts_per_s, m.settle_s, m.settle_from
            );
            let outcomes: Vec<String> = m
                .outcomes
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            println!("  outcomes     {}", outcomes.join(", "));
            let pct = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0} %"));
            println!(
                "  CPU          server {}  bench {}  others {} (of one core, during the attack)",
                pct(m.server_cpu_pct),
                pct(m.bench_cpu_pct),
                pct(m.other_cpu_pct)
            );
            if m.peak_open_sockets > 0 {
                println!(
                    "  sockets      {} open at once at most",
                    m.peak_open_sockets
                );
            }
            let r = &m.rss_kb;
            println!(
                "  RSS KiB      start {}  peak {}  after {}",
                kb(r.start),
                kb(r.peak),
                kb(r.after)
            );
            for (name, g) in [
                ("start", &m.gauges.start),
                ("peak", &m.gauges.peak),
                ("after", &m.gauges.after),
            ] {
                let Some(g) = g else { continue };
                let v: Vec<String> = g
                    .iter()
                    .filter(|(k, _)| GAUGES.contains(k))
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!("  gauges {name:<6}{}", v.join("  "));
            }
            if let (Some(a), Some(b)) = (&m.gauges.start, &m.gauges.after) {
                let grown: Vec<String> = COUNTERS
                    .iter()
                    .filter_map(|c| Some(format!("{c} +{}", b.get(c)? - a.get(c)?)))
                    .collect();
                println!("  counters     {}", grown.join("  "));
            }
            println!("  well-behaved p50 / p99 / max ms   during the attack   |   before it");
            for (name, d, b) in [
                ("login", &m.during.login, &m.before.login),
                ("call->INVITE", &m.during.call_invite, &m.before.call_invite),
            ] {
                println!(
                    "    {name:<13}{:<29} ({:>4})   |   {} ({})",
                    d.brief(),
                    d.count,
                    b.brief(),
                    b.count
                );
            }
        }
        println!();
        println!(
            "{:<16}{:>11}{:>10}{:>10}{:>10}{:>14}{:>14}",
            "mix", "attempts/s", "RSS start", "peak", "after", "login p99", "INVITE p99"
        );
        for m in &self.mixes {
            let p99 = |l: &Latencies| l.us.as_ref().map_or("-".into(), |q| ms(q.p99));
            println!(
                "{:<16}{:>11.0}{:>10}{:>10}{:>10}{:>11} ms{:>11} ms",
                m.mix,
                m.attempts_per_s,
                kb(m.rss_kb.start),
                kb(m.rss_kb.peak),
                kb(m.rss_kb.after),
                p99(&m.during.login),
                p99(&m.during.call_invite)
            );
        }
    }
}
