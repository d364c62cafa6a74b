//! The Redis Cluster the sharded suites run on (tests/common/redis.rs):
//! that it starts, shards keys across three masters, each with a replica in
//! sync, and that one of its own a test starts can lose a master to its
//! replica and stops when dropped. Through `redis-cli`, so that this needs
//! no cluster support in the `redis` crate.

#[path = "common/redis.rs"]
mod test_redis;
// A second copy of the module, with statics of its own, as each suite
// included in tests/cluster_sharded.rs has: on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "common/redis.rs"]
mod other_copy;

use std::process::Command;
use std::time::{Duration, Instant};
use test_redis::{cluster, cluster_url, RedisCluster};

/// `redis-cli -p port args...` (with `-c`, following MOVED redirections to
/// the master of the key's slot); its output without the trailing newline.
fn cli(port: u16, follow: bool, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    if follow {
        cmd.arg("-c");
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "redis-cli -p {port} {args:?}: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\r', "")
}

fn port_of(url: &str) -> u16 {
    let port = url
        .strip_prefix("redis://127.0.0.1:")
        .expect("a loopback URL");
    port.parse().expect("a port")
}

/// The slot ranges each master serves, by its port, from CLUSTER NODES.
fn slots(port: u16) -> Vec<(u16, Vec<(u16, u16)>)> {
    cli(port, false, &["CLUSTER", "NODES"])
        .lines()
        .filter(|l| l.contains("master"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let addr = f[1].split('@').next().unwrap();
            let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
            let ranges = f[8..]
                .iter()
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (r.parse().unwrap(), r.parse().unwrap()),
                })
                .collect();
            (port, ranges)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn the_shared_cluster_shards_keys_over_three_masters_with_replicas() {
    let started = Instant::now();
    let url = cluster_url();
    eprintln!("cluster_url() = {url} after {:?}", started.elapsed());
    let seed = port_of(&url);
    assert_eq!(cluster().seed_url, url);
    assert!(std::ptr::eq(cluster(), cluster()), "started once");

    let info = cli(seed, false, &["CLUSTER", "INFO"]);
    for want in [
        "cluster_state:ok",
        "cluster_size:3",
        "cluster_known_nodes:6",
    ] {
        assert!(info.lines().any(|l| l == want), "{want} in {info}");
    }

    let c = cluster();
    assert_eq!(c.masters.len(), 3, "{c:?}");
    let mut ports = c.ports();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6, "six distinct ports: {c:?}");
    for m in &c.masters {
        assert!(alive(m.pid) && alive(m.replica.pid), "{m:?}");
        let role = cli(m.port, false, &["ROLE"]);
        assert!(role.starts_with("master"), "{}: {role}", m.port);
        let role = cli(m.replica.port, false, &["ROLE"]);
        assert!(role.starts_with("slave"), "{}: {role}", m.replica.port);
        assert!(
            role.lines().any(|l| l == m.port.to_string()),
            "{} replicates {}: {role}",
            m.replica.port,
            m.port
        );
    }

    // A key for each master: the first key-N whose slot it serves.
    let owners = slots(seed);
    assert_eq!(owners.len(), 3, "{owners:?}");
    for (master, ranges) in &owners {
        let (key, slot) = (0..)
            .map(|i| format!("harness-key-{i}"))
            .map(|k| {
                let slot: u16 = cli(seed, false, &["CLUSTER", "KEYSLOT", &k])
                    .parse()
                    .unwrap();
                (k, slot)
            })
            .find(|(_, s)| ranges.iter().any(|(a, b)| a <= s && s <= b))
            .unwrap();
        let value = format!("on {master} slot {slot}");
        // Through the seed, redirected where the slot lives.
        assert_eq!(cli(seed, true, &["SET", &key, &value]), "OK");
        assert_eq!(cli(seed, true, &["GET", &key]), value);
        // It is there, and only the master of its slot answers for it.
        assert_eq!(cli(*master, false, &["GET", &key]), value);
        if *master != seed {
            let moved = cli(seed, false, &["GET", &key]);
            assert!(moved.starts_with("MOVED"), "{key} on {master}: {moved}");
        }
    }
}

#[test]
fn copies_of_the_helpers_share_one_cluster_per_process() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| test_redis::cluster().masters.clone());
        let b = s.spawn(|| other_copy::cluster().masters.clone());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.len(), 3);
    assert_eq!(
        a,
        b.into_iter()
            .map(|m| test_redis::Master {
                port: m.port,
                pid: m.pid,
                replica: test_redis::Node {
                    port: m.replica.port,
                    pid: m.replica.pid,
                },
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(test_redis::cluster_url(), other_copy::cluster_url());
}

#[test]
fn an_own_cluster_fails_over_a_killed_master_and_stops_when_dropped() {
    let started = Instant::now();
    let own = RedisCluster::start();
    eprintln!("own cluster ready after {:?}", started.elapsed());
    let ports = own.ports();
    let m = own.masters[0].clone();

    let killed = Command::new("kill")
        .args(["-9", &m.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The replica takes over within a few node timeouts (2 s).
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let role = cli(m.replica.port, false, &["ROLE"]);
        let info = cli(m.replica.port, false, &["CLUSTER", "INFO"]);
        if role.starts_with("master") && info.contains("cluster_state:ok") {
            break;
        }
        assert!(Instant::now() < end, "no failover: {role} / {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("failover after {:?}", started.elapsed());

    drop(own);
    for p in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} still answers after the drop"
        );
    }
}
