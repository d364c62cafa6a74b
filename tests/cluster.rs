//! The integration suites again, each test on three nodes sharing one Redis
//! with its clients spread across the nodes (see `common::cluster`), on a
//! Redis this binary starts (tests/common/redis.rs: `redis-server` on the
//! PATH, or `NIM_TEST_REDIS_URL`).
//!
//! Left out, because they test one node's own bookkeeping rather than what
//! the system does: `limits` (connections per IP and per node are counted
//! by each node) and `metrics` (each node counts its own). Cluster-only
//! tests (races, node loss, Redis loss) are in `cluster_faults.rs`.

#[path = "authorization.rs"]
mod authorization;
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
