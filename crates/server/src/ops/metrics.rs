//! Server metrics in the Prometheus text format (or OpenMetrics, for a
//! scraper that asks for it), and the small HTTP listener that serves them
//! (`/metrics`) with a health check (`/healthz`) on their own address
//! (`metricsListen`), away from the signaling port.
//!
//! Counters are plain atomics indexed by operation and code, so recording
//! on the hot path takes no lock and allocates nothing.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::ops::http::{self, HttpResponse};

use crate::engine::observe::{Happening, Observer};
use crate::engine::service::Service;
use crate::store::StoreStats;
use nim_signaling_protocol::codes;
use nim_signaling_protocol::Op;

/// The codes counted by name; any other lands in "other".
const CODES: &[i32] = &[
    codes::OK,
    codes::AUTH_FAILED,
    codes::FORBIDDEN,
    codes::TIMEOUT,
    codes::INVALID_PARAM,
    codes::NOT_CONNECTED,
    codes::RATE_LIMITED,
    codes::INTERNAL,
    codes::PEER_OFFLINE,
    codes::PUSH_UNREACHABLE,
    codes::ROOM_NOT_EXIST,
    codes::ROOM_EXISTS,
    codes::NOT_IN_ROOM,
    codes::ALREADY_IN_ROOM,
    codes::INVITE_NOT_EXIST,
    codes::INVITE_REJECTED,
    codes::INVITE_ACCEPTED,
    codes::UID_CONFLICT,
    codes::ROOM_FULL,
    codes::IN_ROOM_ON_OTHER_DEVICE,
    codes::PEER_BUSY,
];

/// Upper bounds (µs) of the request latency buckets.
const BUCKETS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// Slots per dimension: the known values plus one for "other".
const OP_SLOTS: usize = Op::ALL.len() + 1;
const CODE_SLOTS: usize = 22;
const BUCKET_SLOTS: usize = 12;
const _: () = assert!(CODES.len() + 1 == CODE_SLOTS);
const _: () = assert!(BUCKETS_US.len() + 1 == BUCKET_SLOTS);

#[derive(Default)]
struct Histogram {
    /// Cumulative counts are computed when rendering; each slot counts the
    /// observations of its own bucket (the last: above every bound).
    buckets: [AtomicU64; BUCKET_SLOTS],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, us: u64) {
        let slot = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

/// Everything the server counts.
#[derive(Default)]
pub struct Metrics {
    /// Open connections (before and after login).
    pub connections: AtomicI64,
    /// Logged-in sessions.
    pub sessions: AtomicI64,
    pub logins: AtomicU64,
    pub logins_refused: AtomicU64,
    /// Connections closed as soon as accepted (over maxConnectionsPerIp).
    pub connections_refused: AtomicU64,
    /// Connections not logged in yet closed to give their place to a new
    /// one (at maxPendingLogins).
    pub pending_evicted: AtomicU64,
    /// Event frames written to sessions.
    pub events_sent: AtomicU64,
    /// Sessions dropped because they did not take their events in time.
    pub slow_readers_dropped: AtomicU64,
    /// Requests answered from the retry record instead of being applied.
    pub repeats_answered: AtomicU64,
    pub timers_run: AtomicU64,
    /// Pushes the push gateway took (2xx) / refused or did not answer.
    pub pushes_accepted: AtomicU64,
    pub pushes_refused: AtomicU64,
    pub webhooks: crate::ops::webhooks::Counters,
    requests: [[AtomicU64; CODE_SLOTS]; OP_SLOTS],
    latency: [Histogram; OP_SLOTS],
}

fn op_slot(op: &str) -> usize {
    Op::from_name(op).map_or(Op::ALL.len(), Op::index)
}

fn code_slot(code: i32) -> usize {
    CODES.iter().position(|c| *c == code).unwrap_or(CODES.len())
}

/// The engine's happenings, counted.
impl Observer for Metrics {
    fn request_answered(&self, op: &str, code: i32, took: Duration) {
        self.request(op, code, took);
    }
    fn happened(&self, what: Happening) {
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Relaxed);
        };
        let gauge = |gauge: &AtomicI64, delta: i64| {
            gauge.fetch_add(delta, Relaxed);
        };
        match what {
            Happening::ConnectionOpened => gauge(&self.connections, 1),
            Happening::ConnectionClosed => gauge(&self.connections, -1),
            Happening::ConnectionRefused => add(&self.connections_refused, 1),
            Happening::PendingEvicted => add(&self.pending_evicted, 1),
            Happening::SessionOpened => {
                add(&self.logins, 1);
                gauge(&self.sessions, 1);
            }
            Happening::SessionClosed => gauge(&self.sessions, -1),
            Happening::LoginRefused => add(&self.logins_refused, 1),
            Happening::EventsSent(n) => add(&self.events_sent, n),
            Happening::SlowReaderDropped => add(&self.slow_readers_dropped, 1),
            Happening::RepeatAnswered => add(&self.repeats_answered, 1),
            Happening::TimersRun(n) => add(&self.timers_run, n),
            Happening::Pushed(true) => add(&self.pushes_accepted, 1),
            Happening::Pushed(false) => add(&self.pushes_refused, 1),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::default()
    }

    /// One request answered with `code` after `took`.
    pub fn request(&self, op: &str, code: i32, took: Duration) {
        let op = op_slot(op);
        self.requests[op][code_slot(code)].fetch_add(1, Relaxed);
        self.latency[op].observe(took.as_micros() as u64);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, with
    /// the store's sizes as gauges, the build and the process.
    pub fn render(&self, store: StoreStats) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str(
            "# HELP nim_signaling_build_info The running build: its version, always 1.\n\
             # TYPE nim_signaling_build_info gauge\n",
        );
        let _ = writeln!(
            out,
            "nim_signaling_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        crate::ops::process::ProcessStats::current().render(&mut out);
        let sizes = [
            ("rooms", "Rooms remembered (valid or not).", store.rooms),
            (
                "log_entries",
                "Events held in the accounts' logs (queued, offline, for resume).",
                store.log_entries,
            ),
            ("timers_pending", "Timers waiting to run.", store.timers),
        ];
        for (name, help, v) in sizes {
            let _ = writeln!(out, "# HELP nim_signaling_{name} {help}");
            let _ = writeln!(out, "# TYPE nim_signaling_{name} gauge");
            let _ = writeln!(out, "nim_signaling_{name} {v}");
        }
        let gauges = [
            (
                "connections",
                "Open WebSocket connections.",
                &self.connections,
            ),
            ("sessions", "Logged-in sessions.", &self.sessions),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP nim_signaling_{name} {help}");
            let _ = writeln!(out, "# TYPE nim_signaling_{name} gauge");
            let _ = writeln!(out, "nim_signaling_{name} {}", v.load(Relaxed));
        }
        let counters = [
            ("logins_total", "Successful logins.", &self.logins),
            (
                "logins_refused_total",
                "Refused logins (token, limits).",
                &self.logins_refused,
            ),
            (
                "connections_refused_total",
                "Connections closed as soon as accepted (over maxConnectionsPerIp or maxPendingLoginsPerIp).",
                &self.connections_refused,
            ),
            (
                "pending_evicted_total",
                "Connections not logged in yet closed to give their place to a new one (at maxPendingLogins).",
                &self.pending_evicted,
            ),
            (
                "events_sent_total",
                "Event frames written to sessions.",
                &self.events_sent,
            ),
            (
                "slow_readers_dropped_total",
                "Sessions dropped for not taking their events in time.",
                &self.slow_readers_dropped,
            ),
            (
                "repeats_answered_total",
                "Resent requests answered from the retry record.",
                &self.repeats_answered,
            ),
            (
                "timers_run_total",
                "Timers run (invitation expiry, devices gone).",
                &self.timers_run,
            ),
            (
                "pushes_accepted_total",
                "Pushes the push gateway took (2xx).",
                &self.pushes_accepted,
            ),
            (
                "pushes_refused_total",
                "Pushes the push gateway refused or did not answer in time.",
                &self.pushes_refused,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP nim_signaling_{name} {help}");
            let _ = writeln!(out, "# TYPE nim_signaling_{name} counter");
            let _ = writeln!(out, "nim_signaling_{name} {}", v.load(Relaxed));
        }
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.webhooks.render(&mut out);
        out
    }

    fn op_name(i: usize) -> &'static str {
        Op::ALL.get(i).map_or("other", |op| op.as_str())
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP nim_signaling_requests_total Requests answered, by operation and code.\n",
        );
        out.push_str("# TYPE nim_signaling_requests_total counter\n");
        for (op, row) in self.requests.iter().enumerate() {
            for (c, n) in row.iter().enumerate() {
                let n = n.load(Relaxed);
                if n == 0 {
                    continue;
                }
                let code = CODES.get(c).map(|c| c.to_string());
                let code = code.as_deref().unwrap_or("other");
                let op = Self::op_name(op);
                let _ = writeln!(
                    out,
                    "nim_signaling_requests_total{{op=\"{op}\",code=\"{code}\"}} {n}"
                );
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        out.push_str(
            "# HELP nim_signaling_request_seconds Time to answer a request, by operation.\n",
        );
        out.push_str("# TYPE nim_signaling_request_seconds histogram\n");
        for (op, h) in self.latency.iter().enumerate() {
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let op = Self::op_name(op);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_US.iter().enumerate() {
                cumulative += h.buckets[i].load(Relaxed);
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "nim_signaling_request_seconds_bucket{{op=\"{op}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "nim_signaling_request_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "nim_signaling_request_seconds_sum{{op=\"{op}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "nim_signaling_request_seconds_count{{op=\"{op}\"}} {count}"
            );
        }
    }
}

/// The OpenMetrics 1.0 text of a [`Metrics::render`] exposition. The two
/// differ in one place that matters to parsers: OpenMetrics names a
/// counter family without its `_total` suffix in `# HELP` and `# TYPE`
/// (the samples keep it), and rejects a family named `x_total` as clashing
/// with its own samples; and it ends with `# EOF`.
pub fn to_openmetrics(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = match name.strip_suffix("_total") {
                    Some(family) if counters.contains(name) => family,
                    _ => name,
                };
                let _ = writeln!(out, "{prefix}{name} {tail}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus's own
/// scrapes do, ahead of text/plain). Quality values are not weighed: any
/// mention of application/openmetrics-text that is not refused with q=0.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text"))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>() == Ok(0.0))
                })
        })
}

/// Serves `/metrics` and `/healthz` (GET) on `listener` until the task is
/// dropped; any other path is 404.
pub async fn serve_http(listener: TcpListener, service: Arc<Service>, metrics: Arc<Metrics>) {
    let router = Router::new()
        .route("/metrics", get(exposition))
        .route("/healthz", get(healthz))
        .fallback(|| async { HttpResponse::text(404, "not found\n") })
        .with_state((service, metrics));
    http::serve_router(listener, router).await
}

type Shared = (Arc<Service>, Arc<Metrics>);

async fn exposition(State((service, metrics)): State<Shared>, headers: HeaderMap) -> HttpResponse {
    let text = metrics.render(service.store.stats().await);
    let (content_type, body) = if wants_openmetrics(&headers) {
        (OPENMETRICS_TEXT, to_openmetrics(&text))
    } else {
        (PROMETHEUS_TEXT, text)
    };
    HttpResponse {
        status: 200,
        content_type,
        body,
        headers: Vec::new(),
    }
}

async fn healthz(State((service, _)): State<Shared>) -> HttpResponse {
    if service.draining.load(Relaxed) {
        return HttpResponse::text(503, "draining\n");
    }
    match service.store.health().await {
        Ok(()) => HttpResponse::text(200, "ok\n"),
        // A load balancer takes the node out; the body says why.
        Err(why) => HttpResponse::text(503, format!("{why}\n")),
    }
}

#[cfg(test)]
#[path = "metrics_check.rs"]
mod check;

#[cfg(test)]
mod tests {
    use super::check::{problems, Format};
    use super::*;

    fn busy() -> String {
        let m = Metrics::new();
        m.request("call", 200, Duration::from_micros(80));
        m.request("call", 200, Duration::from_micros(3_000));
        m.request("join", 10404, Duration::from_micros(2_000_000));
        m.request("bogus", 12345, Duration::from_micros(40));
        m.logins.fetch_add(2, Relaxed);
        m.render(StoreStats {
            rooms: 1,
            log_entries: 2,
            timers: 3,
        })
    }

    #[test]
    fn build_info_and_process_metrics() {
        let text = busy();
        let want = format!(
            "nim_signaling_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == want), "no {want:?} in\n{text}");
        assert!(text.contains("# TYPE nim_signaling_build_info gauge\n"));
        #[cfg(target_os = "linux")]
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}\n{text}"
            );
            let v: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} sample in\n{text}"));
            assert!(v >= 0.0, "{name} {v}");
        }
    }

    /// Both expositions pass the strict reader; the Prometheus text as
    /// OpenMetrics does not (the `_total` families, no `# EOF`), which is
    /// what OpenMetrics parsers rejected before it had its own format.
    #[test]
    fn expositions_parse_strictly() {
        let text = busy();
        assert_eq!(problems(&text, Format::Prometheus), Vec::<String>::new());
        let om = to_openmetrics(&text);
        assert_eq!(problems(&om, Format::OpenMetrics), Vec::<String>::new());
        assert!(om.ends_with("\n# EOF\n"));
        for line in [
            "# TYPE nim_signaling_logins counter",
            "# HELP nim_signaling_logins Successful logins.",
            "nim_signaling_logins_total 2",
            "# TYPE nim_signaling_requests counter",
            "nim_signaling_requests_total{op=\"call\",code=\"200\"} 2",
            "# TYPE nim_signaling_webhook_dropped counter",
            "# TYPE nim_signaling_request_seconds histogram",
            "# TYPE nim_signaling_rooms gauge",
        ] {
            assert!(om.lines().any(|l| l == line), "no {line:?} in\n{om}");
        }
        let as_om = problems(&text, Format::OpenMetrics);
        assert!(
            as_om.iter().any(|p| p.contains("named with _total"))
                && as_om.iter().any(|p| p.contains("not # EOF")),
            "{as_om:?}"
        );
        // The reader does catch what it claims to.
        let broken = "# TYPE a_seconds histogram\n\
                      a_seconds_bucket{le=\"1\"} 2\n\
                      a_seconds_bucket{le=\"0.5\"} 1\n\
                      a_seconds_count 2\n\
                      # TYPE b counter\nb 1\n# TYPE b gauge\n";
        let found = problems(broken, Format::Prometheus);
        for want in [
            "out of order",
            "no +Inf",
            "no _sum",
            "without _total",
            "second TYPE",
        ] {
            assert!(found.iter().any(|p| p.contains(want)), "{want}: {found:?}");
        }
    }

    #[test]
    fn openmetrics_when_the_scraper_asks() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::ACCEPT, v.parse().unwrap());
            wants_openmetrics(&h)
        };
        // What Prometheus sends.
        assert!(accept(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!accept("text/plain;version=0.0.4"));
        assert!(!accept("*/*"));
        assert!(!accept("application/openmetrics-text; q=0"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }

    #[test]
    fn renders_counts_by_op_and_code_and_latency_buckets() {
        let m = Metrics::new();
        m.request("call", 200, Duration::from_micros(80));
        m.request("call", 200, Duration::from_micros(3_000));
        m.request("join", 10404, Duration::from_micros(40));
        m.request("bogus", 12345, Duration::from_micros(40));
        m.connections.fetch_add(3, Relaxed);
        let stats = StoreStats {
            rooms: 4,
            log_entries: 5,
            timers: 6,
        };
        let text = m.render(stats);
        for line in [
            "nim_signaling_connections 3",
            "nim_signaling_rooms 4",
            "nim_signaling_log_entries 5",
            "nim_signaling_timers_pending 6",
            "nim_signaling_requests_total{op=\"call\",code=\"200\"} 2",
            "nim_signaling_requests_total{op=\"join\",code=\"10404\"} 1",
            "nim_signaling_requests_total{op=\"other\",code=\"other\"} 1",
            "nim_signaling_request_seconds_bucket{op=\"call\",le=\"0.0001\"} 1",
            "nim_signaling_request_seconds_bucket{op=\"call\",le=\"0.0025\"} 1",
            "nim_signaling_request_seconds_bucket{op=\"call\",le=\"0.005\"} 2",
            "nim_signaling_request_seconds_bucket{op=\"call\",le=\"+Inf\"} 2",
            "nim_signaling_request_seconds_count{op=\"call\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("op=\"leave\""), "unused series are left out");
    }
}
