//! The integration suites of `tests/cluster.rs` again, each test on three
//! nodes with its clients spread across them (see `common::cluster`), the
//! nodes sharing one Redis Cluster of three masters, each with a replica,
//! instead of one Redis: every key a room or session has may live on
//! another master. The cluster is started by this process (six
//! redis-servers on free loopback ports; tests/common/redis.rs:
//! `redis-server` and `redis-cli` on the PATH), or named by
//! `NIM_TEST_REDIS_CLUSTER_URL`.
//!
//! Left out, as there: `limits` and `metrics` (one node's own bookkeeping).
//! The cluster-only suite is in too; its two tests that stop or cut their
//! own single Redis (`OwnRedis`) still do so on a plain Redis here.

#[path = "authorization.rs"]
mod authorization;
#[path = "cluster_faults.rs"]
mod cluster_faults;
#[path = "delivery.rs"]
mod delivery;
#[path = "glare_busy_group.rs"]
mod glare_busy_group;
#[path = "offline_bounds.rs"]
mod offline_bounds;
#[path = "push.rs"]
mod push;
#[path = "query_receipts_update.rs"]
mod query_receipts_update;
#[path = "scenarios.rs"]
mod scenarios;
#[path = "slow_app.rs"]
mod slow_app;
#[path = "smoke.rs"]
mod smoke;
#[path = "tls.rs"]
mod tls;
