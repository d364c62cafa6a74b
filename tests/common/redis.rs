#![allow(dead_code)] // each test binary uses part of it
//! Redis for the tests: each test binary starts its own on a free loopback
//! port, so that `cargo test` needs no Redis running beforehand and no
//! fixed port, only `redis-server` on the PATH (`scripts/test.sh` installs
//! it). `NIM_TEST_REDIS_URL` points the tests at another Redis instead.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a starting redis-server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The arguments of a throwaway redis-server on `port`: loopback only, no
/// persistence.
fn args(port: u16) -> [String; 8] {
    [
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
    ]
}

fn missing(e: std::io::Error) -> ! {
    panic!(
        "these tests need redis-server on the PATH ({e}): scripts/test.sh installs it, \
         or apt-get install redis-server, or set NIM_TEST_REDIS_URL"
    )
}

/// Waits until something accepts connections on `port`.
pub fn wait_ready(port: u16) {
    let end = Instant::now() + READY_WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "redis-server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts redis-server on `port` and waits until it is ready. The caller
/// owns the process (and kills it).
pub fn spawn(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(args(port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| missing(e));
    wait_ready(port);
    child
}

/// Waits until something accepts connections on `port`: true, or false
/// once the watchdog that should start it has ended or [`READY_WITHIN`]
/// passed (the port was taken, or the server could not start).
fn accepting(port: u16, watchdog: &mut Child) -> bool {
    let end = Instant::now() + READY_WITHIN;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if matches!(watchdog.try_wait(), Ok(Some(_))) || Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Redis the tests of this binary share: `NIM_TEST_REDIS_URL`, or one
/// started at the first call. A test binary ends with `exit`, which runs no
/// destructor, so that one is started under a shell that kills it as soon
/// as this process's end of its stdin closes, however the process ends.
pub fn url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("NIM_TEST_REDIS_URL") {
            return url;
        }
        // Said at once, rather than after waiting for a server that
        // cannot start.
        if let Err(e) = Command::new("redis-server").arg("--version").output() {
            missing(e);
        }
        // The port may be taken between free_port and redis binding it:
        // then the next port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut watchdog = Command::new("sh")
                .arg("-c")
                .arg(r#"redis-server "$@" & r=$!; trap 'kill $r' EXIT; read _"#)
                .arg("sh")
                .args(args(port))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| missing(e));
            if accepting(port, &mut watchdog) {
                // Kept open (never dropped) for the life of the process.
                std::mem::forget(watchdog.stdin.take());
                std::mem::forget(watchdog);
                return format!("redis://127.0.0.1:{port}");
            }
            let _ = watchdog.kill();
        }
        panic!("could not start redis-server on a free port (is it installed? scripts/test.sh)")
    })
    .clone()
}

// ---------------------------------------------------------------------------
// Redis Cluster: three masters, each with one replica.

/// Points the tests at an existing Redis Cluster (one node's URL) instead
/// of the one [`cluster`] starts.
const CLUSTER_ENV: &str = "NIM_TEST_REDIS_CLUSTER_URL";

/// Masters, and replicas per master, of the cluster the tests start.
const MASTERS: usize = 3;
const NODES: usize = MASTERS * 2;

/// How long a new cluster may take to agree on its slots and to bring its
/// replicas in sync (a few seconds on an idle machine; more while the
/// machine is busy compiling or running other suites).
const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(90);

/// Redis Cluster nodes listen on their port plus this for the cluster bus.
const BUS_OFFSET: u16 = 10_000;

/// One redis-server of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub port: u16,
    /// What the node reported as its process id (`INFO server`), e.g. for
    /// `kill -9` in a failover test.
    pub pid: u32,
}

/// A master and the replica that takes over its slots when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub port: u16,
    pub pid: u32,
    pub replica: Node,
}

/// A Redis Cluster as it was when it had become ready: its masters by port,
/// each with its replica. A snapshot: after a failover the cluster's roles
/// differ from these.
#[derive(Debug)]
pub struct RedisCluster {
    /// `redis://127.0.0.1:PORT` of one master: what a cluster client is
    /// given to find the others.
    pub seed_url: String,
    pub masters: Vec<Master>,
    /// The nodes' watchdogs, when this value started them: dropping it
    /// closes their stdin, which stops the nodes and removes their files.
    watchdogs: Vec<Child>,
}

/// The URL of the Redis Cluster the tests of this process share:
/// `NIM_TEST_REDIS_CLUSTER_URL`, or the seed of [`cluster`].
pub fn cluster_url() -> String {
    match std::env::var(CLUSTER_ENV) {
        Ok(url) => url,
        Err(_) => cluster().seed_url.clone(),
    }
}

/// The Redis Cluster the tests of this process share, started at the first
/// call and stopped when the process ends (like [`url`]'s server). With
/// `NIM_TEST_REDIS_CLUSTER_URL`, that cluster as found (its pids mean
/// something only if it runs on this machine).
///
/// Killing one of its nodes disturbs every test that uses it at the time:
/// a test about failover should start its own with [`RedisCluster::start`].
pub fn cluster() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        if let Ok(url) = std::env::var(CLUSTER_ENV) {
            return RedisCluster::found_at(&url)
                .unwrap_or_else(|e| panic!("{CLUSTER_ENV}={url}: not a ready Redis Cluster: {e}"));
        }
        let described = once_per_process(|| {
            let started = RedisCluster::start();
            let described = started.describe();
            // Its nodes are to outlive every test of the process: its
            // watchdogs are never dropped, so they end with the process.
            std::mem::forget(started);
            described
        });
        RedisCluster::parse(&described)
    })
}

impl RedisCluster {
    /// Starts a cluster of the caller's own: six redis-servers on free
    /// loopback ports, three masters with one replica each, each node
    /// under a watchdog as in [`url`]. Returns once every node sees every
    /// slot served and every replica is in sync with its master. The nodes
    /// stop when the value is dropped, or when the process ends.
    pub fn start() -> RedisCluster {
        for tool in ["redis-server", "redis-cli"] {
            if let Err(e) = Command::new(tool).arg("--version").output() {
                missing(e);
            }
        }
        let dir = fresh_dir();
        let mut ports = Vec::new();
        let mut watchdogs = Vec::new();
        for _ in 0..NODES {
            let (port, watchdog) = start_cluster_node(&dir, &ports);
            ports.push(port);
            watchdogs.push(watchdog);
        }
        // Masters first: `--cluster create` makes the first three the
        // masters, so the seed below is one.
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| missing(e));
        assert!(
            created.status.success(),
            "redis-cli --cluster create on ports {ports:?} failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let seed = ports[0];
        let end = Instant::now() + CLUSTER_READY_WITHIN;
        let masters = loop {
            // Only every node's own view shows that the configuration has
            // spread: a node that has not yet heard of a master's slots
            // answers for them with CLUSTERDOWN.
            let ready = ports
                .iter()
                .try_for_each(|&p| serves_all_slots("127.0.0.1", p))
                .and_then(|()| topology("127.0.0.1", seed));
            match ready {
                Ok(masters) => break masters,
                Err(e) => assert!(
                    Instant::now() < end,
                    "the Redis Cluster on ports {ports:?} was not ready within \
                     {CLUSTER_READY_WITHIN:?}: {e}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        RedisCluster {
            seed_url: format!("redis://127.0.0.1:{seed}"),
            masters,
            watchdogs,
        }
    }

    /// Every node's port: masters first, then their replicas in the same
    /// order.
    pub fn ports(&self) -> Vec<u16> {
        let masters = self.masters.iter().map(|m| m.port);
        masters
            .chain(self.masters.iter().map(|m| m.replica.port))
            .collect()
    }

    /// An existing cluster, from the node at `url`.
    fn found_at(url: &str) -> Result<RedisCluster, String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let addr = rest.rsplit_once('@').map_or(rest, |(_, a)| a);
        let addr = addr.split('/').next().unwrap_or(addr);
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse().ok()?)))
            .ok_or_else(|| format!("no host:port in {url}"))?;
        serves_all_slots(host, port)?;
        Ok(RedisCluster {
            seed_url: url.to_string(),
            masters: topology(host, port)?,
            watchdogs: Vec::new(),
        })
    }

    /// The cluster as text, for [`once_per_process`]: the seed, then a line
    /// per master: its port and pid, its replica's port and pid.
    fn describe(&self) -> String {
        let mut text = self.seed_url.clone();
        for m in &self.masters {
            let r = &m.replica;
            text += &format!("\n{} {} {} {}", m.port, m.pid, r.port, r.pid);
        }
        text
    }

    fn parse(text: &str) -> RedisCluster {
        let mut lines = text.lines();
        let seed_url = lines.next().unwrap_or_default().to_string();
        let masters = lines
            .map(|line| {
                let n: Vec<u32> = line.split(' ').filter_map(|f| f.parse().ok()).collect();
                assert_eq!(n.len(), 4, "a cluster description line: {line:?}");
                Master {
                    port: n[0] as u16,
                    pid: n[1],
                    replica: Node {
                        port: n[2] as u16,
                        pid: n[3],
                    },
                }
            })
            .collect();
        RedisCluster {
            seed_url,
            masters,
            watchdogs: Vec::new(),
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for mut w in self.watchdogs.drain(..) {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}

/// A new, empty directory for one cluster's files (its nodes' configs,
/// and the snapshot a replica saves when it first syncs), removed by the
/// nodes' watchdogs when they end.
fn fresh_dir() -> std::path::PathBuf {
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("nim-test-redis-cluster-{}-{nanos:09}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot make {}: {e}", dir.display()),
        }
    }
}

/// A port for a cluster node: free, and its bus port too. Both below the
/// kernel's usual ephemeral range (32768 and up), where outgoing
/// connections would take them at random; `taken` are the ports of the
/// cluster's other nodes, whose bus ports are theirs too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    let bindable = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    loop {
        let port = 10_000 + rand::random::<u16>() % 12_000;
        let clash = taken
            .iter()
            .any(|&t| [t, t + BUS_OFFSET].contains(&port) || t == port + BUS_OFFSET);
        if !clash && bindable(port) && bindable(port + BUS_OFFSET) {
            return port;
        }
    }
}

/// Starts one cluster node under a watchdog (see [`url`]); its files go in
/// a directory of its own under `dir`, for a replica saves its first sync
/// as dump.rdb there. When the watchdog ends it stops the node, waits for
/// it and removes that directory, and `dir` once it is empty. The port is
/// retried as in [`url`].
fn start_cluster_node(dir: &std::path::Path, taken: &[u16]) -> (u16, Child) {
    const WATCHDOG: &str = r#"d=$1; shift
redis-server "$@" & r=$!
trap 'kill $r 2>/dev/null; wait $r; rm -rf "$d"; rmdir "${d%/*}" 2>/dev/null' EXIT
read _"#;
    for _ in 0..5 {
        let port = free_cluster_port(taken);
        let node_dir = dir.join(port.to_string());
        // _all: a failed node's watchdog removed `dir` if it was empty.
        std::fs::create_dir_all(&node_dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", node_dir.display()));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&node_dir)
            .args(args(port))
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .arg("--dir")
            .arg(&node_dir)
            // A replica takes over 2 s after its master stops answering,
            // rather than the default 15 s, so failover tests are quick.
            .args(["--cluster-node-timeout", "2000"])
            // A master waits this long (default 5 s) for more replicas
            // before it starts sending its data to the first: here there is
            // one replica each, and the wait would be most of the start.
            .args(["--repl-diskless-sync-delay", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| missing(e));
        if accepting(port, &mut watchdog) {
            return (port, watchdog);
        }
        // Closing its stdin (rather than killing it) lets the watchdog stop
        // the node, if it runs at all, and remove its directory.
        drop(watchdog.stdin.take());
        let _ = watchdog.wait();
    }
    panic!("could not start a Redis Cluster node on a free port (is redis-server installed? scripts/test.sh)")
}

/// Runs `redis-cli` against one node; its output, or why not.
fn cli(host: &str, port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", host, "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    if !out.status.success() || text.starts_with("ERR") {
        return Err(format!(
            "{host}:{port} {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

/// The value of `field` in `INFO`-style `field:value` lines.
fn field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether the node sees a whole cluster of three masters with replicas
/// serving every slot.
fn serves_all_slots(host: &str, port: u16) -> Result<(), String> {
    let info = cli(host, port, &["CLUSTER", "INFO"])?;
    let want = [
        ("cluster_state", "ok".to_string()),
        ("cluster_known_nodes", NODES.to_string()),
        ("cluster_size", MASTERS.to_string()),
    ];
    for (name, value) in want {
        if field(&info, name) != Some(value.as_str()) {
            return Err(format!(
                "{host}:{port} says {name}:{:?}",
                field(&info, name)
            ));
        }
    }
    Ok(())
}

/// The masters and replicas, as the node at `host:port` sees them, each
/// master with one replica that is in sync with it (else an error saying
/// what is not yet so).
fn topology(host: &str, port: u16) -> Result<Vec<Master>, String> {
    struct Line<'a> {
        id: &'a str,
        host: String,
        port: u16,
        master: bool,
        of: &'a str,
    }
    let nodes = cli(host, port, &["CLUSTER", "NODES"])?;
    // <id> <ip:port@busport[,hostname]> <flags> <master id or -> ...
    let lines: Vec<Line> = nodes
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let addr = f.get(1)?.split(['@', ',']).next()?;
            let (h, p) = addr.rsplit_once(':')?;
            let flags = f.get(2)?;
            if flags.contains("fail") || flags.contains("handshake") || flags.contains("noaddr") {
                return None;
            }
            Some(Line {
                id: f[0],
                // A node names itself by an empty host before it has
                // learnt its address from another.
                host: if h.is_empty() {
                    host.to_string()
                } else {
                    h.to_string()
                },
                port: p.parse().ok()?,
                master: flags.contains("master"),
                of: f.get(3)?,
            })
        })
        .collect();
    let pid = |l: &Line| -> Result<u32, String> {
        let info = cli(&l.host, l.port, &["INFO", "server"])?;
        field(&info, "process_id")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{}:{} gave no process_id", l.host, l.port))
    };
    let mut masters = Vec::new();
    for m in lines.iter().filter(|l| l.master) {
        let replicas: Vec<&Line> = lines.iter().filter(|l| !l.master && l.of == m.id).collect();
        let [r] = replicas[..] else {
            return Err(format!("master {} has {} replicas", m.port, replicas.len()));
        };
        let mine = cli(&m.host, m.port, &["INFO", "replication"])?;
        if field(&mine, "connected_slaves") != Some("1") {
            return Err(format!("master {} has no replica connected", m.port));
        }
        let theirs = cli(&r.host, r.port, &["INFO", "replication"])?;
        if field(&theirs, "master_link_status") != Some("up") {
            return Err(format!("replica {} is not in sync with {}", r.port, m.port));
        }
        masters.push(Master {
            port: m.port,
            pid: pid(m)?,
            replica: Node {
                port: r.port,
                pid: pid(r)?,
            },
        });
    }
    if masters.len() != MASTERS {
        return Err(format!("{} masters, not {MASTERS}", masters.len()));
    }
    masters.sort_by_key(|m| m.port);
    Ok(masters)
}

/// Runs `start` once in this process and gives every caller its result.
///
/// A OnceLock is not enough: each suite file declares `mod common;`, so a
/// binary that includes several suites (tests/cluster_sharded.rs) holds a
/// copy of this module, and of its statics, per suite. The copies meet at
/// a Linux abstract socket named after the process: exactly one binds it
/// and runs `start`, the others connect and read the result it serves.
/// Such a socket needs no file and vanishes with the process.
#[cfg(target_os = "linux")]
fn once_per_process(start: impl FnOnce() -> String) -> String {
    use std::io::{Read, Write};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let name = format!("nim-test-redis-cluster-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract socket name");
    match UnixListener::bind_addr(&addr) {
        Ok(listener) => {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(start));
            // "ok" or "failed", then the description or the panic message.
            let answer = match &result {
                Ok(described) => format!("ok\n{described}"),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    format!("failed\n{msg}")
                }
            };
            // Copies that asked meanwhile wait in the listen queue.
            std::thread::spawn(move || {
                for mut peer in listener.incoming().flatten() {
                    let _ = peer.write_all(answer.as_bytes());
                }
            });
            result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let mut answer = String::new();
            let read = UnixStream::connect_addr(&addr).and_then(|mut peer| {
                // Bounded: the starting copy gives up within its own
                // limits, well before this.
                peer.set_read_timeout(Some(CLUSTER_READY_WITHIN * 2))?;
                peer.read_to_string(&mut answer)
            });
            if let Err(e) = read {
                panic!("waiting for this process's Redis Cluster to start: {e}");
            }
            match answer.split_once('\n') {
                Some(("ok", described)) => described.to_string(),
                Some((_, why)) => panic!("this process's Redis Cluster did not start: {why}"),
                None => panic!("this process's Redis Cluster did not start"),
            }
        }
        Err(e) => panic!("cannot bind the abstract socket {name}: {e}"),
    }
}

/// Elsewhere, once per copy of this module (see the Linux version).
#[cfg(not(target_os = "linux"))]
fn once_per_process(start: impl FnOnce() -> String) -> String {
    start()
}
