//! The way to Redis: one multiplexed connection to a single Redis, or a
//! cluster connection that routes each command (and each script, by its
//! first key) to the master of its slot and follows resharding and
//! failover. Both pipeline the commands of concurrent requests on their
//! connections; the store uses [`Con`] the same way in both modes.
//!
//! Also the subscription of a node: the system-wide channel (kicks,
//! evictions) and the node's own wake-up channel. On a cluster the node's
//! channel is a sharded one (SSUBSCRIBE/SPUBLISH), so a wake-up travels to
//! the one master that holds the channel's slot instead of every master.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, PushInfo, PushKind,
    RedisFuture, Script, Value,
};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

/// How long connecting may take, and an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to a single Redis or to a Redis Cluster.
#[derive(Clone)]
pub enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => c.req_packed_commands(cmd, offset, count),
            Con::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

impl Con {
    /// Runs independent commands (each may be in another slot) and returns
    /// every reply, in order. A single Redis gets them as one pipeline; a
    /// cluster connection refuses pipelines that cross slots, so there they
    /// are sent at once as separate commands (the connection still
    /// pipelines them to each master). Never use `.ignore()` in `pipe`: the
    /// replies of both modes must line up.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<Vec<T>, redis::RedisError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Con::Single(c) => pipe.query_async(&mut c.clone()).await,
            Con::Cluster(c) => {
                let runs = pipe.cmd_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<T>(&mut c).await }
                });
                futures_util::future::try_join_all(runs).await
            }
        }
    }
}

impl Con {
    /// Runs a pipeline whose commands all touch one slot, in order, as one
    /// round trip in both modes (a cluster connection routes it to that
    /// slot's master).
    pub async fn run_in_slot(&self, pipe: &Pipeline) -> Result<Vec<Value>, redis::RedisError> {
        match self {
            Con::Single(c) => pipe.query_async(&mut c.clone()).await,
            Con::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        }
    }

    /// Runs writes whose replies nobody needs, each a pipeline of plain
    /// commands that touch one slot (each may be in another): one pipeline
    /// on a single Redis, all at once on a cluster.
    pub async fn run_writes(&self, writes: &[Pipeline]) -> Result<(), redis::RedisError> {
        match self {
            Con::Single(c) => {
                let mut pipe = redis::pipe();
                for cmd in writes.iter().flat_map(|p| p.cmd_iter()) {
                    pipe.add_command(cmd.clone());
                }
                pipe.query_async::<Value>(&mut c.clone()).await.map(drop)
            }
            Con::Cluster(c) => {
                let runs = writes.iter().map(|p| {
                    let mut c = c.clone();
                    async move { p.query_async::<Value>(&mut c).await }
                });
                futures_util::future::try_join_all(runs).await.map(drop)
            }
        }
    }
}

/// Sends `pipe` to a single Redis. Unlike
/// [`redis::ScriptInvocation::invoke_async`], a pipeline does not load a
/// script Redis lacks (it restarted, or a replica took over): it is refused
/// with NOSCRIPT, and then sent again once `scripts` are loaded. So only
/// for a pipeline that such a refusal ran none of (all its scripts one of
/// `scripts`), or whose writes may run twice.
pub async fn query_loading<T: redis::FromRedisValue>(
    c: &ConnectionManager,
    pipe: &Pipeline,
    scripts: &[&Script],
) -> Result<T, redis::RedisError> {
    let sent = pipe.query_async(&mut c.clone()).await;
    match sent {
        Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
            for s in scripts {
                let _ = s.load_async(&mut c.clone()).await;
            }
            pipe.query_async(&mut c.clone()).await
        }
        other => other,
    }
}

/// How the store reaches Redis: the URL, and whether it leads to a
/// Redis Cluster (asked of the server itself, so the same `url` setting
/// serves both).
pub struct Link {
    url: String,
    pub cluster: bool,
    /// On a cluster: every node it was last seen to have (the URL's node
    /// first), with the URL's credentials and TLS. A fresh cluster
    /// connection starts from these, so it finds the cluster even when the
    /// URL's node is the one that died.
    seeds: Mutex<Vec<ConnectionInfo>>,
}

impl Link {
    /// Asks the Redis at `url` whether it is part of a cluster.
    pub async fn probe(url: &str) -> Result<Link, String> {
        let client = redis::Client::open(url).map_err(|e| format!("store url {url}: {e}"))?;
        let mut con = tokio::time::timeout(
            CONNECT_TIMEOUT * 3,
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| format!("cannot reach redis at {url}: timed out"))?
        .map_err(|e| format!("cannot reach redis at {url}: {e}"))?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut con)
            .await
            .map_err(|e| format!("cannot reach redis at {url}: {e}"))?;
        let seed = url
            .into_connection_info()
            .map_err(|e| format!("store url {url}: {e}"))?;
        Ok(Link {
            url: url.to_string(),
            cluster: info.lines().any(|l| l.trim() == "cluster_enabled:1"),
            seeds: Mutex::new(vec![seed]),
        })
    }

    fn seeds(&self) -> Vec<ConnectionInfo> {
        self.seeds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The cluster's `CLUSTER NODES` as the first reachable known node
    /// tells it, asked over a connection of its own: the routed connection
    /// may be stuck on a master that died (it re-reads the slot map on a
    /// MOVED reply, not on a timeout). Learns the nodes it lists.
    pub async fn topology(&self) -> Option<String> {
        for seed in self.seeds() {
            let ask = async {
                let client = redis::Client::open(seed.clone())?;
                let mut con = client.get_multiplexed_async_connection().await?;
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut con)
                    .await
            };
            let Ok(Ok(text)) = tokio::time::timeout(CONNECT_TIMEOUT / 2, ask).await else {
                continue;
            };
            let mut known = vec![seed.clone()];
            for line in text.lines() {
                // <id> <host:port@bus[,hostname]> <flags> ...
                let mut f = line.split_whitespace();
                let (Some(_), Some(addr), Some(flags)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                if flags.contains("fail") || flags.contains("noaddr") {
                    continue;
                }
                let hostport = addr.split(['@', ',']).next().unwrap_or("");
                let Some((host, port)) = hostport.rsplit_once(':') else {
                    continue;
                };
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                let mut info = seed.clone();
                info.addr = match &seed.addr {
                    ConnectionAddr::TcpTls {
                        insecure,
                        tls_params,
                        ..
                    } => ConnectionAddr::TcpTls {
                        host: host.to_string(),
                        port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => ConnectionAddr::Tcp(host.to_string(), port),
                };
                if !known.iter().any(|k| k.addr == info.addr) {
                    known.push(info);
                }
            }
            *self.seeds.lock().unwrap_or_else(|e| e.into_inner()) = known;
            return Some(text);
        }
        None
    }

    /// The connection commands and scripts go through.
    pub async fn connect(&self) -> Result<Con, redis::RedisError> {
        if self.cluster {
            let c = self.cluster_client(None)?;
            return Ok(Con::Cluster(c.get_async_connection().await?));
        }
        let client = redis::Client::open(self.url.as_str())?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(1000);
        Ok(Con::Single(
            ConnectionManager::new_with_config(client, cfg).await?,
        ))
    }

    fn cluster_client(
        &self,
        pushes: Option<UnboundedSender<PushInfo>>,
    ) -> Result<redis::cluster::ClusterClient, redis::RedisError> {
        let mut b = redis::cluster::ClusterClientBuilder::new(self.seeds())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(3);
        if let Some(tx) = pushes {
            // Pushes (subscribed messages) need RESP3.
            b = b
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx);
        }
        b.build()
    }

    /// Subscribes to `channel` (system-wide) and `own` (this node's) and
    /// feeds what arrives to `out` as (channel, payload). Returns when the
    /// subscription is lost (a single Redis), could not be made, or the
    /// cluster's masters changed (`moved`: a new connection then finds the
    /// master that now holds `own`); the caller subscribes again. `subscribed` runs once the subscription
    /// stands, and again whenever a cluster connection re-made it after a
    /// failover or a reconnect (messages may have been missed meanwhile).
    pub async fn subscribe(
        &self,
        channel: &str,
        own: &str,
        out: &UnboundedSender<(String, String)>,
        subscribed: &(dyn Fn() + Send + Sync),
        moved: &mut watch::Receiver<u64>,
    ) -> Result<(), redis::RedisError> {
        use futures_util::StreamExt;
        if !self.cluster {
            let client = redis::Client::open(self.url.as_str())?;
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&[channel, own]).await?;
            subscribed();
            let mut stream = ps.on_message();
            while let Some(msg) = stream.next().await {
                if let Ok(text) = msg.get_payload::<String>() {
                    let _ = out.send((msg.get_channel_name().to_string(), text));
                }
            }
            return Ok(());
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut con = self
            .cluster_client(Some(tx))?
            .get_async_connection()
            .await?;
        con.subscribe(channel).await?;
        con.ssubscribe(own).await?;
        subscribed();
        // The connection re-subscribes by itself; it stays alive as long as
        // it is held here.
        let mut confirmations = 0;
        moved.borrow_and_update();
        loop {
            let push = tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = moved.changed() => break,
            };
            match push.kind {
                PushKind::Message | PushKind::SMessage => {
                    let mut it = push.data.into_iter();
                    let (Some(ch), Some(payload)) = (it.next(), it.next()) else {
                        continue;
                    };
                    let (Ok(ch), Ok(text)) = (
                        redis::from_redis_value::<String>(&ch),
                        redis::from_redis_value::<String>(&payload),
                    ) else {
                        continue;
                    };
                    let _ = out.send((ch, text));
                }
                PushKind::Subscribe | PushKind::SSubscribe => {
                    confirmations += 1;
                    // The first two confirm the subscriptions made above.
                    if confirmations > 2 {
                        subscribed();
                    }
                }
                PushKind::Disconnection => subscribed(),
                _ => {}
            }
        }
        drop(con);
        Ok(())
    }

    /// The command that sends to a node's own channel.
    pub fn publish_cmd(&self) -> &'static str {
        if self.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }
}

const SLOTS: usize = super::keys::SLOTS as usize;

/// Records, from a `CLUSTER NODES` reply, the configuration epoch of the
/// master serving each slot into `slots` (one entry per slot; empty before
/// the first reading). True when a slot's master changed since the last
/// reading: a replica promoted (a new epoch) or the slot moved to another
/// master. Masters marked failing are skipped, so their slots keep what was
/// last seen until the promoted replica claims them.
pub fn read_slot_epochs(text: &str, slots: &mut Vec<u64>) -> bool {
    let first = slots.is_empty();
    if first {
        *slots = vec![0; SLOTS];
    }
    let mut moved = false;
    for line in text.lines() {
        // <id> <addr> <flags> <master> <ping> <pong> <config-epoch> <link> <slot>...
        let f: Vec<&str> = line.split_whitespace().collect();
        let healthy_master = f.get(2).is_some_and(|flags| {
            flags.split(',').any(|x| x == "master")
                && !flags.split(',').any(|x| x == "fail" || x == "fail?")
        });
        let (true, Some(Ok(config))) = (healthy_master, f.get(6).map(|e| e.parse::<u64>())) else {
            continue;
        };
        for range in f.iter().skip(8) {
            // Slots being migrated are listed in brackets; their owner is
            // still the one named by the plain ranges.
            if range.starts_with('[') {
                continue;
            }
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            let (Ok(lo), Ok(hi)) = (lo.parse::<usize>(), hi.parse::<usize>()) else {
                continue;
            };
            for s in slots.iter_mut().take(hi.min(SLOTS - 1) + 1).skip(lo) {
                if !first && *s != 0 && *s != config {
                    moved = true;
                }
                *s = config;
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::read_slot_epochs;

    const BEFORE: &str = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
b1 127.0.0.1:7004@17004 slave a2 0 0 2 connected
";

    #[test]
    fn the_first_reading_moves_nothing_and_a_steady_one_neither() {
        let mut slots = Vec::new();
        assert!(!read_slot_epochs(BEFORE, &mut slots));
        assert_eq!((slots[0], slots[5461], slots[16383]), (1, 2, 3));
        assert!(!read_slot_epochs(BEFORE, &mut slots));
    }

    #[test]
    fn a_failing_master_keeps_its_slots_until_its_replica_takes_them() {
        let mut slots = Vec::new();
        read_slot_epochs(BEFORE, &mut slots);
        let failing = BEFORE.replace("master - 0 0 2", "master,fail? - 0 0 2");
        assert!(!read_slot_epochs(&failing, &mut slots), "no new master yet");
        assert_eq!(slots[6000], 2);
        let promoted = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
b1 127.0.0.1:7004@17004 master - 0 0 4 connected 5461-10922
";
        assert!(read_slot_epochs(promoted, &mut slots));
        assert_eq!((slots[0], slots[6000], slots[16383]), (1, 4, 3));
    }

    #[test]
    fn a_migrating_slot_stays_with_its_owner() {
        let mut slots = Vec::new();
        read_slot_epochs(BEFORE, &mut slots);
        let migrating = BEFORE.replace("0-5460", "0-5460 [100->-a2]");
        assert!(!read_slot_epochs(&migrating, &mut slots));
        assert_eq!(slots[100], 1);
    }
}
