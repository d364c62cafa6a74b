//! nim-signaling-bench: a load generator for call setups, made of the real
//! Rust client against the real server (embedded, or external by URL).

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use nim_signaling_client::{Client, ClientConfig, ConnState, Notification, Sink};
use nim_signaling_protocol::codes::OK;
use nim_signaling_protocol::frames::{request_frame, SUBPROTOCOL};
use nim_signaling_server::net::auth::hmac_token;
use nim_signaling_server::{self as server, ServerConfig, ServerHandle};

mod hostile;

/// nim-signaling-bench: load generator for nim-signaling call setups.
///
/// Connects --clients logged-in clients (the real Rust client). --callers
/// pairs of them (caller, callee) make calls; the rest stay idle. One call
/// setup is: caller `call` -> callee gets INVITE -> callee `accept`
/// (autoJoin) -> caller gets ACCEPT -> caller `close` -> callee gets
/// ROOM_CLOSE. Reported: setups/s, failures by code ("timeout": a
/// notification that did not come within --timeout-ms), missed starts (open
/// loop: a start fell due while every pair was busy; never queued), the
/// latency from sending `call` to the callee's INVITE and to its ROOM_CLOSE
/// (µs), and the RSS before connecting, with the clients idle and at the end.
///
/// Memory: without --url the server runs in this process, so the RSS and
/// bytes per connection include the clients too. For the server alone run
/// nim-signaling-server separately and give --url and --server-pid.
///
/// Many connections: the client library connects from the default source
/// address, so past ~28k connections to one server address the ephemeral
/// ports run out. --source-ips spreads the idle connections over several
/// local addresses (127.0.0.0/8 all work on Linux); those idle connections
/// are then bare WebSockets that log in and answer pings (ws:// only).
///
/// Examples:
///   nim-signaling-bench --clients 10000 --callers 500 --rate 1000
///   nim-signaling-bench --rate 0 --duration 30 --json
///   echo '{"listen":"127.0.0.1:7800","maxConnectionsPerIp":100000,"maxRequestsPerSecond":100000}' > srv.json
///   nim-signaling-server --config srv.json &
///   nim-signaling-bench --url ws://127.0.0.1:7800 --server-pid $! \
///       --clients 100000 --callers 100 --source-ips 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
///
/// An external server's own limits apply, hence the config above: its
/// maxRequestsPerSecond (default 100 per connection) answers fast pairs
/// with 416, and maxConnectionsPerIp (default 10000) closes connections. Both
/// processes need `ulimit -n` above the number of clients.
///
/// Hostile load (--hostile MIX,...): instead of call setups, attacks an
/// external server (--server-config, --server-pid) with each mix in turn
/// while a well-behaved pair makes calls and logs in; see hostile.rs and
/// scripts/soak.sh:
///   nim-signaling-bench --hostile all --server-config soak.json --server-pid $! \
///       --rate 20 --duration 20 --source-ips 127.0.0.2,127.0.0.3
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Connected, logged-in clients in all (callers and callees included).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Caller/callee pairs that make calls [default: clients / 2].
    #[arg(long, value_name = "PAIRS")]
    callers: Option<usize>,
    /// Call setups per second over all pairs (open loop); 0: every pair
    /// back to back, as fast as it can.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// A running server (ws://host:port) instead of an embedded one; or
    /// several nodes of one cluster, comma-separated (logins go to each in
    /// turn).
    #[arg(long)]
    url: Option<String>,
    /// Read the server's RSS from /proc/PID/status (with --url: the
    /// server-only memory per connection) instead of this process's.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Log in with HMAC tokens made with this secret (a server started
    /// with --hmac-secret).
    #[arg(long, value_name = "SECRET")]
    hmac_secret: Option<String>,
    /// Local addresses the idle connections bind to, round-robin
    /// (comma-separated), to get past the ephemeral port limit.
    #[arg(long, value_name = "IP,IP,...", value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Tokio worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// How long a reply or a notification may take (ms): the client's
    /// request timeout (408) and the wait for each event ("timeout").
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Logins in progress at once while connecting. Past the server's
    /// listen backlog (128: tokio's default) connects overflow it and wait
    /// out a 1 s SYN retransmit.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Clients do not acknowledge INVITEs (client config
    /// `inviteReceipts: false`): setups without the INVITE_DELIVERED round
    /// trip, to measure what receipts cost.
    #[arg(long)]
    no_receipts: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Attack mixes to run one after the other (comma-separated; `all`:
    /// every one), each for --duration seconds and then the server's own
    /// lifetimes, the first after --warmup seconds of the well-behaved
    /// load alone. The well-behaved pair makes --rate calls per second.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "MIX,...")]
    hostile: Vec<hostile::Mix>,
    /// With --hostile: the config file the server runs with. Its address,
    /// auth secret, limits, lifetimes, metricsListen and admin API are the
    /// bench's too (only auth modes none and hmac).
    #[arg(long, value_name = "FILE")]
    server_config: Option<PathBuf>,
    /// With --hostile pre-login: sockets kept open at once, over
    /// --source-ips (default 127.0.0.1).
    #[arg(long, default_value_t = 1000)]
    hostile_sockets: usize,
}

impl Args {
    fn pairs(&self) -> usize {
        self.callers.unwrap_or(self.clients / 2)
    }

    fn idle(&self) -> usize {
        self.clients - 2 * self.pairs()
    }

    /// Every connection is a file descriptor here, two with the embedded
    /// server (its end too); past the limit the server stops accepting and
    /// logins hang until they time out.
    fn fds_needed(&self) -> u64 {
        let per_client = if self.url.is_some() { 1 } else { 2 };
        (self.clients * per_client) as u64 + 64
    }

    fn check(&self) -> Result<(), String> {
        if !self.hostile.is_empty() {
            return hostile::check(self);
        }
        if self.pairs() == 0 || 2 * self.pairs() > self.clients {
            return Err(format!(
                "--callers {} needs 1 to clients / 2 = {} pairs",
                self.pairs(),
                self.clients / 2
            ));
        }
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        if !finite(self.rate) || !finite(self.warmup) || !finite(self.duration) {
            return Err("--rate, --warmup and --duration must be >= 0".into());
        }
        if self.duration == 0.0 || self.timeout_ms == 0 || self.connect_concurrency == 0 {
            return Err("--duration, --timeout-ms and --connect-concurrency must be > 0".into());
        }
        let wss = self.url.as_deref().is_some_and(|u| u.starts_with("wss://"));
        if wss && !self.source_ips.is_empty() {
            return Err("--source-ips works with ws:// only".into());
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = args.check() {
        eprintln!("nim-signaling-bench: {e}");
        std::process::exit(2);
    }
    let fds = raise_fd_limit();
    if !args.hostile.is_empty() {
        std::process::exit(hostile::main(&args, fds));
    }
    if fds < args.fds_needed() {
        eprintln!(
            "nim-signaling-bench: {} clients need about {} file descriptors; the limit is {fds} (ulimit -n)",
            args.clients,
            args.fds_needed()
        );
        std::process::exit(2);
    }
    let rt = runtime(args.threads);
    let outcome = rt.block_on(run(&args));
    // Tearing down thousands of sessions gracefully measures nothing.
    rt.shutdown_background();
    match outcome {
        Ok(report) if args.json => println!("{}", report.to_json()),
        Ok(report) => report.print_table(),
        Err(e) => {
            eprintln!("nim-signaling-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// The bench's runtime: --threads workers, or one per core.
fn runtime(threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n);
    }
    rt.enable_all().build().expect("tokio runtime")
}

/// Raises the soft limit on open files to the hard one (often 1024 against
/// far more) and returns the limit in force.
fn raise_fd_limit() -> u64 {
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                ..lim
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

async fn run(args: &Args) -> Result<Report<'_>, String> {
    let (url, _server) = server_url(args).await?;
    let target = Target {
        urls: url.split(',').map(String::from).collect(),
        next_url: AtomicUsize::new(0),
        hmac_secret: args.hmac_secret.clone(),
        timeout_ms: args.timeout_ms,
        receipts: !args.no_receipts,
        prefix: format!("bench-{:08x}", rand::random::<u32>()),
    };
    let drops = Arc::new(AtomicU64::new(0));
    let rss_before = rss_kb(args.server_pid);

    let pairs = connect_pairs(args, &target, &drops).await?;
    let _idle = connect_idle(args, &target, &drops).await?;
    // Let the login bursts settle (channels sync, first heartbeats).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kb(args.server_pid);

    let plan = Plan::starting_now(args.warmup, args.duration);
    let (stats, missed_starts, _pairs) = load(args, plan, pairs).await;
    let rss_end = rss_kb(args.server_pid);
    Ok(Report {
        args,
        url,
        threads: tokio::runtime::Handle::current().metrics().num_workers(),
        stats,
        missed_starts,
        connection_drops: drops.load(Ordering::Relaxed),
        rss_before,
        rss_idle,
        rss_end,
    })
}

/// The server to load: `--url`, or one started here that no limit of its
/// own gets in the way of (every connection comes from one address and a
/// back-to-back pair sends far more than the default requests per second).
async fn server_url(args: &Args) -> Result<(String, Option<ServerHandle>), String> {
    if let Some(url) = &args.url {
        return Ok((url.clone(), None));
    }
    let defaults = ServerConfig::default();
    let connections = defaults.max_connections.max(args.clients);
    let cfg = ServerConfig {
        max_connections: connections,
        max_connections_per_ip: connections,
        max_requests_per_second: 1_000_000,
        ..defaults
    };
    let srv = server::start(cfg)
        .await
        .map_err(|f| format!("embedded server: {}", f.message))?;
    Ok((srv.url().to_string(), Some(srv)))
}

/// Resident set size in KiB of `pid`, or of this process.
fn rss_kb(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/status".into(),
        |p| format!("/proc/{p}/status"),
    );
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Connecting and logging in.

/// Where and as whom the bench's clients log in.
struct Target {
    /// The nodes: each login goes to the next (so with two nodes of one
    /// cluster, a pair's caller and callee sit on different nodes).
    urls: Vec<String>,
    next_url: AtomicUsize,
    hmac_secret: Option<String>,
    timeout_ms: u64,
    receipts: bool,
    /// Makes this run's accounts its own, so a server that still remembers
    /// an earlier run (rooms, invitations, devices) does not get in the way.
    prefix: String,
}

/// Each bench account logs in on one device.
const DEVICE: &str = "bench";

impl Target {
    fn account(&self, role: &str, i: usize) -> String {
        format!("{}-{role}{i}", self.prefix)
    }

    fn token(&self, account: &str) -> String {
        let Some(secret) = &self.hmac_secret else {
            return String::new();
        };
        let day_from_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 86_400;
        hmac_token(secret, account, day_from_now)
    }

    fn client_config(&self, account: &str) -> ClientConfig {
        self.client_config_as(account, DEVICE, true)
    }

    /// The config of `account`'s client on `device`; `reconnect: false`
    /// for clients that are to stay down once their connection is lost.
    fn client_config_as(&self, account: &str, device: &str, reconnect: bool) -> ClientConfig {
        let url = &self.urls[self.next_url.fetch_add(1, Ordering::Relaxed) % self.urls.len()];
        let cfg = json!({
            "serverUrl": url, "account": account, "token": self.token(account),
            "deviceId": device, "requestTimeoutMs": self.timeout_ms,
            "inviteReceipts": self.receipts, "reconnect": reconnect,
        });
        ClientConfig::from_json(&cfg.to_string()).expect("bench client config is valid")
    }

    /// A logged-in client whose notifications go to `sink`.
    async fn login(&self, account: &str, sink: Sink) -> Result<Client, String> {
        let client = Client::new(self.client_config(account), sink);
        match client.login().await {
            (OK, _) => Ok(client),
            (code, body) => Err(format!("login of {account} failed ({code}): {body}")),
        }
    }
}

/// A notification as the bench sees it: when the client handed it to the
/// sink, and the event's JSON.
struct Stamped {
    at: Instant,
    event: String,
}

/// Forwards online events, stamped on arrival, to `events` (None: drops
/// them), and counts connections lost.
fn bench_sink(events: Option<mpsc::UnboundedSender<Stamped>>, drops: Arc<AtomicU64>) -> Sink {
    Arc::new(move |n| {
        let at = Instant::now();
        match n {
            Notification::Online(event) => {
                if let Some(tx) = &events {
                    let _ = tx.send(Stamped { at, event });
                }
            }
            Notification::ConnectionState(c)
                if matches!(
                    c.state,
                    ConnState::Reconnecting | ConnState::Disconnected | ConnState::Kicked
                ) =>
            {
                drops.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    })
}

/// Runs `connect(i)` for i in 0..n, at most `concurrency` at once, in order.
async fn connect_all<T, F, Fut>(
    what: &str,
    n: usize,
    concurrency: usize,
    connect: F,
) -> Result<Vec<T>, String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut done = Vec::with_capacity(n);
    let mut logins = futures_util::stream::iter((0..n).map(connect)).buffered(concurrency);
    let mut last_note = Instant::now();
    while let Some(c) = logins.next().await {
        done.push(c?);
        if last_note.elapsed() >= Duration::from_secs(1) {
            last_note = Instant::now();
            eprintln!("connecting {what}: {}/{n}", done.len());
        }
    }
    Ok(done)
}

async fn connect_pairs(
    args: &Args,
    target: &Target,
    drops: &Arc<AtomicU64>,
) -> Result<Vec<Pair>, String> {
    connect_all("pairs", args.pairs(), args.connect_concurrency, |id| {
        Pair::connect(id, target, drops.clone())
    })
    .await
}

/// The idle clients, kept alive by the returned handles (bare sockets, with
/// --source-ips, live in their own tasks).
async fn connect_idle(
    args: &Args,
    target: &Target,
    drops: &Arc<AtomicU64>,
) -> Result<Vec<Client>, String> {
    let ips = &args.source_ips;
    if ips.is_empty() {
        return connect_all("idle clients", args.idle(), args.connect_concurrency, |i| {
            let account = target.account("i", i);
            let sink = bench_sink(None, drops.clone());
            async move { target.login(&account, sink).await }
        })
        .await;
    }
    let server = resolve(&target.urls[0]).await?;
    connect_all("idle sockets", args.idle(), args.connect_concurrency, |i| {
        let account = target.account("i", i);
        let source = ips[i % ips.len()];
        raw_idle(target, server, source, account, drops.clone())
    })
    .await?;
    Ok(Vec::new())
}

/// The socket address of a `ws://host:port` URL.
async fn resolve(url: &str) -> Result<SocketAddr, String> {
    let req = url
        .into_client_request()
        .map_err(|e| format!("bad URL {url}: {e}"))?;
    let host = req.uri().host().unwrap_or("").trim_matches(['[', ']']);
    let port = req.uri().port_u16().unwrap_or(80);
    let mut found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {url}: {e}"))?;
    found
        .next()
        .ok_or_else(|| format!("{url} resolves to no address"))
}

/// An idle connection from `source`, done by hand because the client
/// library connects by URL only, with no way to choose the local address.
/// It logs in and then only reads, which is enough to stay logged in:
/// tungstenite answers the server's pings while the stream is polled.
async fn raw_idle(
    target: &Target,
    server: SocketAddr,
    source: IpAddr,
    account: String,
    drops: Arc<AtomicU64>,
) -> Result<(), String> {
    // Bounded as a whole: a server that stopped accepting (e.g. out of file
    // descriptors) would otherwise hold the handshake forever.
    let limit = Duration::from_millis(target.timeout_ms);
    let mut ws = tokio::time::timeout(limit, raw_login(target, server, source, &account))
        .await
        .map_err(|_| format!("idle {account} from {source}: no login within {limit:?}"))??;
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
        drops.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// Connects from `source` and logs in as `account`.
async fn raw_login(
    target: &Target,
    server: SocketAddr,
    source: IpAddr,
    account: &str,
) -> Result<WebSocketStream<TcpStream>, String> {
    let fail = |e: &dyn fmt::Display| format!("idle {account} from {source}: {e}");
    let stream = connect_from(source, server).await.map_err(|e| fail(&e))?;
    let mut ws = ws_handshake(&target.urls[0], stream)
        .await
        .map_err(|e| fail(&e))?;
    let params = json!({"account": account, "token": target.token(account), "deviceId": DEVICE});
    let login = request_frame(0, "login", &params, None);
    ws.send(Message::text(login)).await.map_err(|e| fail(&e))?;
    match login_reply_code(&mut ws).await {
        Some(code) if code == i64::from(OK) => Ok(ws),
        other => Err(fail(&format!("login answered {other:?}"))),
    }
}

/// A TCP connection to `server` from the local address `source`.
async fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

/// The WebSocket handshake for `url` (ws://) on `stream`, offering the
/// protocol's subprotocol.
async fn ws_handshake(url: &str, stream: TcpStream) -> Result<WebSocketStream<TcpStream>, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Reads frames up to the login reply (id 0) and returns its code.
async fn login_reply_code(ws: &mut WebSocketStream<TcpStream>) -> Option<i64> {
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let frame: Value = serde_json::from_str(&text).ok()?;
        if frame["t"] == "res" && frame["id"] == 0 {
            return frame["result"]["code"].as_i64();
        }
    }
    None
}

// ---------------------------------------------------------------------------
// One caller/callee pair and its call setup.

/// Why a setup failed: a request answered with another code than 200
/// (408 when the client's request timeout ran out), a notification that
/// did not come in time, or a `call` result without a channelId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failed {
    Code(i32),
    Timeout,
    NoRoom,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Code(c) => write!(f, "{c}"),
            Failed::Timeout => f.write_str("timeout"),
            Failed::NoRoom => f.write_str("no channelId"),
        }
    }
}

/// One setup's result. The INVITE latency is kept even when a later step
/// fails: it was measured all the same.
struct Outcome {
    started: Instant,
    invite_us: Option<u64>,
    setup_us: Option<u64>,
    failure: Option<Failed>,
}

/// The parts of an event, or of a reply carrying a room, that the bench
/// looks at.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomOf<'a> {
    #[serde(borrow)]
    channel_info: ChannelHead<'a>,
    #[serde(borrow, default)]
    event_type: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelHead<'a> {
    #[serde(borrow)]
    channel_id: Cow<'a, str>,
}

/// The channelId of the room in a reply (`create`, `call`).
fn channel_id(result: &str) -> Option<String> {
    let r: RoomOf = serde_json::from_str(result).ok()?;
    Some(r.channel_info.channel_id.into_owned())
}

/// One side of a pair: a logged-in client and the events it received.
struct Party {
    client: Client,
    account: String,
    events: mpsc::UnboundedReceiver<Stamped>,
}

impl Party {
    async fn connect(
        target: &Target,
        account: String,
        drops: Arc<AtomicU64>,
    ) -> Result<Self, String> {
        let (tx, events) = mpsc::unbounded_channel();
        let client = target.login(&account, bench_sink(Some(tx), drops)).await?;
        Ok(Party {
            client,
            account,
            events,
        })
    }

    /// Sends a request; its result JSON when answered 200.
    async fn ok(&self, op: &str, params: Value) -> Result<String, Failed> {
        match self.client.request(op, params).await {
            (OK, result) => Ok(result),
            (code, _) => Err(Failed::Code(code)),
        }
    }

    /// When the next `event_type` about `room` arrived. Other events are
    /// skipped: ROOM_JOIN beside ACCEPT, and leftovers of a failed setup.
    async fn expect(
        &mut self,
        event_type: &str,
        room: &str,
        limit: Duration,
    ) -> Result<Instant, Failed> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Ok(Some(s)) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                return Err(Failed::Timeout);
            };
            let Ok(ev) = serde_json::from_str::<RoomOf>(&s.event) else {
                continue;
            };
            if ev.event_type == event_type && ev.channel_info.channel_id == room {
                return Ok(s.at);
            }
        }
    }
}

struct Pair {
    id: usize,
    caller: Party,
    callee: Party,
    /// Setups begun, for unique requestIds.
    count: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

impl Pair {
    /// The callee logs in first, so that the first call finds it online.
    async fn connect(id: usize, target: &Target, drops: Arc<AtomicU64>) -> Result<Pair, String> {
        let callee = Party::connect(target, target.account("e", id), drops.clone()).await?;
        let caller = Party::connect(target, target.account("c", id), drops).await?;
        Ok(Pair {
            id,
            caller,
            callee,
            count: 0,
        })
    }

    async fn setup(&mut self, limit: Duration) -> Outcome {
        self.count += 1;
        let request_id = format!("{}-{}", self.id, self.count);
        let started = Instant::now();
        let mut out = Outcome {
            started,
            invite_us: None,
            setup_us: None,
            failure: None,
        };
        let params = json!({"type": 1, "account": self.callee.account, "requestId": request_id});
        let room = match self.call(params).await {
            Ok(room) => room,
            Err(f) => {
                out.failure = Some(f);
                return out;
            }
        };
        if let Err(f) = self
            .answer_and_close(&room, &request_id, limit, &mut out)
            .await
        {
            out.failure = Some(f);
            // A room left open would count against both accounts' quotas.
            let _ = self.caller.ok("close", json!({"channelId": room})).await;
        }
        out
    }

    /// Sends `call`; the new room's channelId.
    async fn call(&self, params: Value) -> Result<String, Failed> {
        let result = self.caller.ok("call", params).await?;
        channel_id(&result).ok_or(Failed::NoRoom)
    }

    /// The steps after a successful `call`.
    async fn answer_and_close(
        &mut self,
        room: &str,
        request_id: &str,
        limit: Duration,
        out: &mut Outcome,
    ) -> Result<(), Failed> {
        let invited = self.callee.expect("INVITE", room, limit).await?;
        out.invite_us = Some(micros(invited - out.started));
        let accept = json!({"channelId": room, "account": self.caller.account,
            "requestId": request_id, "autoJoin": true});
        self.callee.ok("accept", accept).await?;
        self.caller.expect("ACCEPT", room, limit).await?;
        self.caller.ok("close", json!({"channelId": room})).await?;
        let closed = self.callee.expect("ROOM_CLOSE", room, limit).await?;
        out.setup_us = Some(micros(closed - out.started));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Driving the load.

/// When the load starts, when measuring starts and when new setups stop.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Plan {
    fn starting_now(warmup_s: f64, duration_s: f64) -> Plan {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(warmup_s);
        Plan {
            start,
            measure_from,
            end: measure_from + Duration::from_secs_f64(duration_s),
        }
    }

    fn phase(&self, now: Instant) -> &'static str {
        if now < self.measure_from {
            "warmup"
        } else if now < self.end {
            "run"
        } else {
            "drain"
        }
    }
}

/// Runs the load; returns the measured stats, the missed starts and the
/// pairs (still connected, for the memory reading at the end).
async fn load(args: &Args, plan: Plan, pairs: Vec<Pair>) -> (Stats, u64, Vec<Pair>) {
    let limit = Duration::from_millis(args.timeout_ms);
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    let (idle_tx, idle_rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(plan, results_rx));
    let mut go = Vec::with_capacity(pairs.len());
    let mut running = Vec::with_capacity(pairs.len());
    for pair in pairs {
        // Capacity 1: a pair is only told to go while it is idle.
        let (tx, rx) = mpsc::channel(1);
        go.push(tx);
        running.push(tokio::spawn(pair_loop(
            pair,
            rx,
            idle_tx.clone(),
            results_tx.clone(),
            limit,
        )));
    }
    drop((idle_tx, results_tx));
    let missed = if args.rate > 0.0 {
        open_loop(plan, args.rate, &go, idle_rx).await
    } else {
        closed_loop(plan, &go, idle_rx).await
    };
    // Closing the go channels lets each pair finish its setup and return.
    drop(go);
    let mut pairs = Vec::with_capacity(running.len());
    for r in running {
        pairs.push(r.await.expect("pair task"));
    }
    let stats = collector.await.expect("collector task");
    (stats, missed, pairs)
}

/// Does one setup each time it is told to, then reports itself idle.
async fn pair_loop(
    mut pair: Pair,
    mut go: mpsc::Receiver<()>,
    idle: mpsc::UnboundedSender<usize>,
    results: mpsc::UnboundedSender<Outcome>,
    limit: Duration,
) -> Pair {
    while go.recv().await.is_some() {
        let _ = results.send(pair.setup(limit).await);
        let _ = idle.send(pair.id);
    }
    pair
}

/// Starts setups at `rate` per second until the end of the plan, each on
/// an idle pair. A start that finds every pair busy is counted, not queued:
/// queueing would hide the server's slowness from the latencies.
async fn open_loop(
    plan: Plan,
    rate: f64,
    go: &[mpsc::Sender<()>],
    mut idle_rx: mpsc::UnboundedReceiver<usize>,
) -> u64 {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut idle: VecDeque<usize> = (0..go.len()).collect();
    let mut missed = 0;
    let mut next = plan.start;
    while next < plan.end {
        tokio::time::sleep_until(next.into()).await;
        while let Ok(id) = idle_rx.try_recv() {
            idle.push_back(id);
        }
        // The timer wakes late by up to a millisecond or so: start every
        // setup that fell due meanwhile.
        let now = Instant::now();
        while next <= now && next < plan.end {
            match idle.pop_front() {
                Some(id) => {
                    let _ = go[id].try_send(());
                }
                None if next >= plan.measure_from => missed += 1,
                None => {}
            }
            next += period;
        }
    }
    missed
}

/// Keeps every pair busy until the end of the plan. Never misses a start.
async fn closed_loop(
    plan: Plan,
    go: &[mpsc::Sender<()>],
    mut idle_rx: mpsc::UnboundedReceiver<usize>,
) -> u64 {
    for g in go {
        let _ = g.try_send(());
    }
    let end = tokio::time::Instant::from_std(plan.end);
    while let Ok(Some(id)) = tokio::time::timeout_at(end, idle_rx.recv()).await {
        let _ = go[id].try_send(());
    }
    0
}

// ---------------------------------------------------------------------------
// Statistics and the report.

/// Latencies in µs, up to a minute, to 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

struct Stats {
    setups: u64,
    invite_us: Histogram<u64>,
    setup_us: Histogram<u64>,
    failures: BTreeMap<Failed, u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            setups: 0,
            invite_us: histogram(),
            setup_us: histogram(),
            failures: BTreeMap::new(),
        }
    }

    fn add(&mut self, o: &Outcome) {
        if let Some(us) = o.invite_us {
            self.invite_us.saturating_record(us);
        }
        if let Some(us) = o.setup_us {
            self.setup_us.saturating_record(us);
            self.setups += 1;
        }
        if let Some(f) = o.failure {
            *self.failures.entry(f).or_default() += 1;
        }
    }

    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn reset(&mut self) {
        self.setups = 0;
        self.invite_us.reset();
        self.setup_us.reset();
        self.failures.clear();
    }
}

/// Gathers outcomes until every pair has stopped; prints a progress line
/// each second. Only setups started after the warmup count in the result.
async fn collect(plan: Plan, mut results: mpsc::UnboundedReceiver<Outcome>) -> Stats {
    let mut measured = Stats::new();
    let mut last_second = Stats::new();
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((plan.start + second).into(), second);
    loop {
        tokio::select! {
            outcome = results.recv() => {
                let Some(o) = outcome else { break };
                last_second.add(&o);
                if o.started >= plan.measure_from {
                    measured.add(&o);
                }
            }
            _ = tick.tick() => {
                print_progress(&plan, &measured, &last_second);
                last_second.reset();
            }
        }
    }
    measured
}

fn print_progress(plan: &Plan, measured: &Stats, last_second: &Stats) {
    let now = Instant::now();
    eprintln!(
        "{:>4.0}s {:<6} setups/s {:>6}  total {:>8}  failures {:>5}  p99 {:>8} us",
        (now - plan.start).as_secs_f64(),
        plan.phase(now),
        last_second.setups,
        measured.setups,
        measured.failed(),
        last_second.setup_us.value_at_quantile(0.99),
    );
}

#[derive(Serialize)]
struct Quantiles {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

impl From<&Histogram<u64>> for Quantiles {
    fn from(h: &Histogram<u64>) -> Self {
        Quantiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

struct Report<'a> {
    args: &'a Args,
    url: String,
    threads: usize,
    stats: Stats,
    missed_starts: u64,
    connection_drops: u64,
    rss_before: Option<u64>,
    rss_idle: Option<u64>,
    rss_end: Option<u64>,
}

impl Report<'_> {
    fn setups_per_s(&self) -> f64 {
        self.stats.setups as f64 / self.args.duration
    }

    /// Whose RSS the readings are.
    fn rss_of(&self) -> String {
        match self.args.server_pid {
            Some(pid) => format!("pid {pid}"),
            None => "self".into(),
        }
    }

    fn server(&self) -> &str {
        match self.args.url {
            Some(_) => &self.url,
            None => "embedded",
        }
    }

    /// What each connection added to the RSS while idle.
    fn bytes_per_connection(&self) -> Option<i64> {
        let (before, idle) = (self.rss_before?, self.rss_idle?);
        Some((idle as i64 - before as i64) * 1024 / self.args.clients as i64)
    }

    fn failures(&self) -> BTreeMap<String, u64> {
        let f = &self.stats.failures;
        f.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    fn to_json(&self) -> Value {
        json!({
            "setups": self.stats.setups,
            "duration_s": self.args.duration,
            "setups_per_s": self.setups_per_s(),
            "failures": self.failures(),
            "missed_starts": self.missed_starts,
            "invite_notify_us": Quantiles::from(&self.stats.invite_us),
            "setup_us": Quantiles::from(&self.stats.setup_us),
            "clients": self.args.clients,
            "idle_clients": self.args.idle(),
            "pairs": self.args.pairs(),
            "rate": self.args.rate,
            "threads": self.threads,
            "warmup_s": self.args.warmup,
            "server": self.server(),
            "connection_drops": self.connection_drops,
            "rss_of": self.rss_of(),
            "rss_before_kb": self.rss_before,
            "rss_idle_kb": self.rss_idle,
            "rss_end_kb": self.rss_end,
            "bytes_per_connection": self.bytes_per_connection(),
        })
    }

    fn print_table(&self) {
        let a = self.args;
        let rate = if a.rate > 0.0 {
            format!("{}/s", a.rate)
        } else {
            "max".into()
        };
        println!(
            "{} server {}: {} clients ({} pairs, {} idle), rate {rate}, {} s (+{} s warmup), {} threads",
            if a.url.is_some() { "external" } else { "embedded" },
            self.url,
            a.clients,
            a.pairs(),
            a.idle(),
            a.duration,
            a.warmup,
            self.threads
        );
        println!(
            "setups            {:>10}  ({:.1}/s)",
            self.stats.setups,
            self.setups_per_s()
        );
        println!("missed starts     {:>10}", self.missed_starts);
        println!("connection drops  {:>10}", self.connection_drops);
        let failures: Vec<String> = self
            .failures()
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        let failures = if failures.is_empty() {
            "none".to_string()
        } else {
            failures.join(", ")
        };
        println!("failures          {failures}");
        println!("latency (us)             p50        p90        p99        max");
        for (name, h) in [
            ("call -> INVITE", &self.stats.invite_us),
            ("setup (ROOM_CLOSE)", &self.stats.setup_us),
        ] {
            let q = Quantiles::from(h);
            println!(
                "{name:<19}{:>10} {:>10} {:>10} {:>10}",
                q.p50, q.p90, q.p99, q.max
            );
        }
        let kb = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        println!(
            "RSS of {} (KiB)   before {}  idle {}  end {}",
            self.rss_of(),
            kb(self.rss_before),
            kb(self.rss_idle),
            kb(self.rss_end)
        );
        if let Some(b) = self.bytes_per_connection() {
            println!("per connection    {b} bytes (idle - before) / clients");
        }
    }
}
