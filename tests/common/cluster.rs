//! The test server: one embedded node on the memory store, or — in the
//! suites built into `tests/cluster.rs` — three nodes sharing one Redis
//! (in `tests/cluster_sharded.rs`, one Redis Cluster), behind a front door
//! that hands each new connection to the next node, so every test's
//! clients are spread across nodes without the test knowing.

use nim_signaling_server::engine::service::Service;
use nim_signaling_server::ops::metrics::Metrics;
use nim_signaling_server::{self as server, ServerConfig, ServerHandle};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Nodes of a test cluster.
pub const NODES: usize = 3;

/// Where the cluster tests find Redis: see [`super::redis::url`], or in
/// `tests/cluster_sharded.rs` [`super::redis::cluster_url`].
pub fn redis_url() -> String {
    if sharded() {
        super::redis::cluster_url()
    } else {
        super::redis::url()
    }
}

/// Whether this test binary runs its suites on several nodes. The suites
/// are plain files; `tests/cluster.rs` and `tests/cluster_sharded.rs`
/// include them as modules, so their helpers sit under those crates there.
pub fn on_cluster() -> bool {
    module_path!().starts_with("cluster::") || sharded()
}

/// Whether this test binary's nodes share a Redis Cluster rather than one
/// Redis.
pub fn sharded() -> bool {
    module_path!().starts_with("cluster_sharded::")
}

/// A store config for one test system: its own key prefix, so that tests
/// running at once on one Redis never see each other's rooms.
pub fn redis_store() -> Value {
    let prefix = format!("nimtest-{:016x}", rand::random::<u64>());
    json!({"kind": "redis", "url": redis_url(), "prefix": prefix})
}

pub struct TestServer {
    nodes: Vec<ServerHandle>,
    /// The Redis key prefix of a cluster, deleted at shutdown.
    prefix: Option<String>,
    door: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    url: String,
}

impl TestServer {
    /// Starts the system for `cfg` (already a full server config).
    pub async fn start(cfg: Value) -> TestServer {
        if !on_cluster() {
            let node = start_node(&cfg).await;
            let url = node.url().to_string();
            return TestServer {
                nodes: vec![node],
                prefix: None,
                door: None,
                url,
            };
        }
        let mut cfg = cfg;
        cfg["store"] = redis_store();
        let prefix = cfg["store"]["prefix"].as_str().map(String::from);
        let mut nodes = Vec::new();
        for _ in 0..NODES {
            nodes.push(start_node(&cfg).await);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind door");
        let addr = listener.local_addr().expect("door address");
        let targets: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addr()).collect();
        let scheme = if nodes[0].url().starts_with("wss") {
            "wss"
        } else {
            "ws"
        };
        TestServer {
            nodes,
            prefix,
            door: Some((addr, tokio::spawn(spread(listener, targets)))),
            url: format!("{scheme}://{addr}"),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address clients connect to (the door in cluster mode).
    pub fn local_addr(&self) -> SocketAddr {
        match &self.door {
            Some((addr, _)) => *addr,
            None => self.nodes[0].local_addr(),
        }
    }

    /// The first node's service. Its store is every node's store; its
    /// sessions are its own.
    pub fn service(&self) -> &Arc<Service> {
        self.nodes[0].service()
    }

    pub fn metrics_url(&self) -> Option<String> {
        self.nodes[0].metrics_url()
    }

    /// Events written to sessions, by all nodes.
    pub fn events_sent(&self) -> EventsSent {
        EventsSent(self.nodes.iter().map(|n| n.metrics().clone()).collect())
    }

    pub fn nodes(&self) -> &[ServerHandle] {
        &self.nodes
    }

    /// Shuts every node down gracefully, as one: no node hands its sessions
    /// their last events before every node has applied its requests.
    pub async fn shutdown(mut self) {
        if let Some((_, door)) = self.door.take() {
            door.abort();
        }
        futures_util::future::join_all(self.nodes.iter().map(|n| n.quiesce())).await;
        futures_util::future::join_all(self.nodes.drain(..).map(|n| n.shutdown())).await;
        if let Some(p) = self.prefix.take() {
            forget(&p).await;
        }
    }
}

async fn start_node(cfg: &Value) -> ServerHandle {
    let cfg = ServerConfig::from_json(&cfg.to_string()).expect("server config");
    match server::start(cfg).await {
        Ok(node) => node,
        Err(e) if on_cluster() => panic!(
            "the cluster tests could not use Redis at {}: {}",
            redis_url(),
            e.message
        ),
        Err(e) => panic!("server start: {}", e.message),
    }
}

/// Hands each accepted connection to the next node in turn.
async fn spread(listener: TcpListener, targets: Vec<SocketAddr>) {
    let next = AtomicUsize::new(0);
    while let Ok((mut inbound, _)) = listener.accept().await {
        let to = targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Reads the count of events written to sessions across a system's nodes.
#[derive(Clone)]
pub struct EventsSent(Vec<Arc<Metrics>>);

impl EventsSent {
    pub fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|m| m.events_sent.load(Ordering::SeqCst))
            .sum()
    }
}

/// Deletes a test system's keys, so that a developer's Redis does not fill
/// up with them (best effort: a test that fails before its shutdown leaves
/// its keys behind).
///
/// Not on a Redis Cluster: KEYS sees one node's keys only, and a DEL of
/// keys in several slots is refused. The cluster the tests start is thrown
/// away with the process; one named by NIM_TEST_REDIS_CLUSTER_URL keeps
/// the keys.
pub async fn forget(prefix: &str) {
    if sharded() {
        return;
    }
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut con) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = match redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
    {
        Ok(k) => k,
        Err(_) => return,
    };
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query_async(&mut con).await;
    }
}
