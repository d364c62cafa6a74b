//! Limits on connections: how many one IP address may hold, how many may
//! be logging in and how many logged in at once, and how fast one device
//! may send requests. (The quotas of an account, which span rooms, are in
//! `service.rs`; sizes of parameters in `protocol/params.rs`.)

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::ServerConfig;
use nim_signaling_protocol::codes::RATE_LIMITED;
use nim_signaling_protocol::Failure;

/// The budgets a listener's connections share. A connection holds a place
/// among the pending logins (`maxPendingLogins`) from before it is accepted
/// until it logs in, then a place among the sessions (`maxConnections`)
/// until it closes, so connections that never log in cannot take the
/// places of sessions; a place among its address's connections
/// (`maxConnectionsPerIp`) all along; and, until it logs in, one among its
/// address's pending logins (`maxPendingLoginsPerIp`), so that one address
/// takes at most that many of the pending places whatever its share of
/// the sessions.
pub struct ConnectionLimits {
    per_ip: Arc<PerIp>,
    pending_per_ip: Arc<PerIp>,
    /// Places of connections accepted and not logged in yet.
    pending: Arc<Semaphore>,
    /// Places of logged-in sessions.
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    /// The request rate of each device.
    pub rates: Arc<DeviceRates>,
}

/// A place among the pending logins, taken before `accept`.
pub struct PendingLogin(OwnedSemaphorePermit);

/// What an accepted connection holds of the budgets until it closes.
pub struct Admission {
    /// Its place among its address's connections.
    _ip: IpSlot,
    /// Its place among its address's pending logins, until it logs in.
    pending_ip: Option<IpSlot>,
    /// A place among the pending logins until the login succeeds, then
    /// one among the sessions.
    place: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    pub fn new(cfg: &ServerConfig) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            per_ip: PerIp::new(cfg.max_connections_per_ip),
            pending_per_ip: PerIp::new(cfg.max_pending_logins_per_ip),
            pending: Arc::new(Semaphore::new(cfg.max_pending_logins)),
            sessions: Arc::new(Semaphore::new(cfg.max_connections)),
            max_sessions: cfg.max_connections,
            rates: DeviceRates::new(
                cfg.max_requests_per_second,
                account_rate(cfg.max_requests_per_second, cfg.max_devices_per_account),
            ),
        })
    }

    /// Waits for a place among the pending logins. The listener takes it
    /// before accepting: while every place is taken, new connections wait
    /// in the kernel's listen backlog instead of being accepted and dropped.
    pub async fn pending_login(&self) -> Result<PendingLogin, AcquireError> {
        self.pending.clone().acquire_owned().await.map(PendingLogin)
    }

    /// Admits a connection from `ip` into the place `pending`, or None
    /// when that address already holds `maxConnectionsPerIp` connections
    /// or `maxPendingLoginsPerIp` pending ones (the places are given back).
    pub fn admit(&self, ip: IpAddr, pending: PendingLogin) -> Option<Admission> {
        Some(Admission {
            _ip: self.per_ip.admit(ip)?,
            pending_ip: Some(self.pending_per_ip.admit(ip)?),
            place: pending.0,
        })
    }

    /// The answer to a login while `maxConnections` sessions are live.
    fn sessions_full(&self) -> Failure {
        Failure::new(
            RATE_LIMITED,
            format!(
                "this server's logged-in sessions are at maxConnections ({})",
                self.max_sessions
            ),
        )
    }
}

impl Admission {
    /// The connection logged in: its pending place is traded for a
    /// session's. When `maxConnections` sessions are live it keeps the
    /// pending place and gets the refusal to answer the login with.
    pub fn log_in(&mut self, limits: &ConnectionLimits) -> Result<(), Failure> {
        self.place = limits
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| limits.sessions_full())?;
        self.pending_ip = None;
        Ok(())
    }
}

/// Open connections per IP address.
pub struct PerIp {
    max: usize,
    open: DashMap<IpAddr, usize>,
}

/// One admitted connection; it stops counting when dropped.
pub struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: DashMap::new(),
        })
    }

    /// Counts a connection from `ip`, or None when that address already
    /// holds `max` (the refused connection is not counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map(|n| *n).unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.table.open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
        self.table.open.remove_if(&self.ip, |_, n| *n == 0);
    }
}

/// What an account's devices may send together: as much as its most
/// devices at once could (`maxRequestsPerSecond` × `maxDevicesPerAccount`),
/// so that logging in under ever new deviceIds, each with a fresh bucket,
/// buys no more.
fn account_rate(per_device: u32, max_devices: usize) -> u32 {
    per_device.saturating_mul(u32::try_from(max_devices).unwrap_or(u32::MAX))
}

/// A token bucket: `per_second` requests a second on average, bursts of up
/// to twice that (an app that reconnects sends its queued requests at once).
pub struct RequestRate {
    /// Names the setting in the refusal.
    setting: &'static str,
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RequestRate {
    pub fn new(per_second: u32, setting: &'static str, now: Instant) -> RequestRate {
        let per_second = f64::from(per_second);
        RequestRate {
            setting,
            per_second,
            burst: per_second * 2.0,
            tokens: per_second * 2.0,
            last: now,
        }
    }

    /// The answer to a request over the rate.
    pub fn refusal(&self) -> Failure {
        Failure::new(
            RATE_LIMITED,
            format!(
                "more than {} requests per second ({})",
                self.per_second, self.setting
            ),
        )
    }

    /// Whether one more request may go now (and takes its token if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (forgetting it then
    /// changes nothing).
    fn full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

/// The request rate of each device (account and deviceId) on this node,
/// shared by its connections: reconnecting does not refill the bucket, and
/// a second connection of the device draws from the same one; and of each
/// account, shared by its devices (see [`account_rate`]). A bucket nobody
/// holds is forgotten once it is full again, so the tables hold the
/// devices and accounts connected now and those that left in the last
/// seconds.
pub struct DeviceRates {
    per_second: u32,
    per_account: u32,
    rates: DashMap<(String, String), Arc<DeviceRate>>,
    accounts: DashMap<String, Arc<Mutex<RequestRate>>>,
    /// Size past which the next lookup forgets the buckets it may.
    prune_at: Mutex<usize>,
}

/// One device's bucket, and its account's.
pub struct DeviceRate {
    own: Mutex<RequestRate>,
    account: Arc<Mutex<RequestRate>>,
}

/// Buckets kept before the table is first pruned.
const PRUNE_FLOOR: usize = 1024;

impl DeviceRates {
    pub fn new(per_second: u32, per_account: u32) -> Arc<DeviceRates> {
        Arc::new(DeviceRates {
            per_second,
            per_account,
            rates: DashMap::new(),
            accounts: DashMap::new(),
            prune_at: Mutex::new(PRUNE_FLOOR),
        })
    }

    /// The bucket of `device` of `account`, held by its session.
    pub fn of(&self, account: &str, device: &str, now: Instant) -> Arc<DeviceRate> {
        {
            let mut prune_at = self.prune_at.lock().unwrap_or_else(|e| e.into_inner());
            if self.rates.len() + self.accounts.len() >= *prune_at {
                self.rates
                    .retain(|_, r| Arc::strong_count(r) > 1 || !lock(&r.own).full(now));
                // After the devices: a device bucket holds its account's.
                self.accounts
                    .retain(|_, r| Arc::strong_count(r) > 1 || !lock(r).full(now));
                *prune_at = ((self.rates.len() + self.accounts.len()) * 2).max(PRUNE_FLOOR);
            }
        }
        self.rates
            .entry((account.to_string(), device.to_string()))
            .or_insert_with(|| {
                let shared = self
                    .accounts
                    .entry(account.to_string())
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(RequestRate::new(
                            self.per_account,
                            "maxRequestsPerSecond × maxDevicesPerAccount, for one account",
                            now,
                        )))
                    })
                    .clone();
                Arc::new(DeviceRate {
                    own: Mutex::new(RequestRate::new(
                        self.per_second,
                        "maxRequestsPerSecond",
                        now,
                    )),
                    account: shared,
                })
            })
            .clone()
    }
}

fn lock(r: &Mutex<RequestRate>) -> std::sync::MutexGuard<'_, RequestRate> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeviceRate {
    /// Takes the token of one more request (or of a frame that is not
    /// one) from the device's bucket and its account's, or answers with the
    /// refusal naming the one that is empty.
    pub fn take(&self, now: Instant) -> Result<(), Failure> {
        for bucket in [&self.own, &*self.account] {
            Self::take_from(bucket, now)?;
        }
        Ok(())
    }

    /// Takes the token of a login from the account's bucket only: logins
    /// under ever new deviceIds are held to the account's rate, and a
    /// device's own requests keep their whole burst.
    pub fn take_login(&self, now: Instant) -> Result<(), Failure> {
        Self::take_from(&self.account, now)
    }

    fn take_from(bucket: &Mutex<RequestRate>, now: Instant) -> Result<(), Failure> {
        let mut b = lock(bucket);
        if b.allow(now) {
            Ok(())
        } else {
            Err(b.refusal())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn per_ip_counts_and_releases() {
        let t = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = t.admit(a).expect("first");
        let s2 = t.admit(a).expect("second");
        assert!(t.admit(a).is_none(), "third from the same address");
        assert!(t.admit(b).is_some(), "another address is not affected");
        drop(s1);
        assert_eq!(t.open_from(a), 1);
        let _s3 = t.admit(a).expect("room again after one left");
        drop(s2);
        assert_eq!(t.open_from(a), 1);
    }

    /// Pending and session places are separate budgets: a connection
    /// trades the one for the other when it logs in, a refusal gives back
    /// what it took, and a login refused for want of a session place keeps
    /// its pending one until the connection closes.
    #[tokio::test]
    async fn a_connection_trades_its_pending_place_for_a_session_place() {
        let cfg = ServerConfig {
            max_pending_logins: 1,
            max_connections: 1,
            max_connections_per_ip: 1,
            ..ServerConfig::default()
        };
        let limits = ConnectionLimits::new(&cfg);
        let free = |l: &ConnectionLimits| {
            (
                l.pending.available_permits(),
                l.sessions.available_permits(),
            )
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let pending = limits.pending_login().await.unwrap();
        let mut first = limits.admit(a, pending).expect("first");
        assert_eq!(free(&limits), (0, 1));
        first.log_in(&limits).expect("a session place");
        assert_eq!(free(&limits), (1, 0));
        let pending = limits.pending_login().await.unwrap();
        assert!(limits.admit(a, pending).is_none(), "over the address's cap");
        assert_eq!(free(&limits), (1, 0), "the pending place is given back");
        let pending = limits.pending_login().await.unwrap();
        let mut second = limits.admit(b, pending).expect("another address");
        let refused = second.log_in(&limits).expect_err("no session place");
        assert_eq!(refused.code, RATE_LIMITED);
        assert!(refused.message.contains("maxConnections"), "{refused:?}");
        assert_eq!(free(&limits), (0, 0), "still pending");
        drop(first);
        second.log_in(&limits).expect("the place the first left");
        drop(second);
        assert_eq!(free(&limits), (1, 1));
    }

    /// One address holds at most maxPendingLoginsPerIp connections that
    /// have not logged in, however many it may hold in all; logging in
    /// frees that place.
    #[tokio::test]
    async fn one_address_takes_a_bounded_share_of_the_pending_places() {
        let cfg = ServerConfig {
            max_pending_logins: 4,
            max_pending_logins_per_ip: 1,
            max_connections_per_ip: 10,
            ..ServerConfig::default()
        };
        let limits = ConnectionLimits::new(&cfg);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut first = limits
            .admit(a, limits.pending_login().await.unwrap())
            .unwrap();
        let second = limits.admit(a, limits.pending_login().await.unwrap());
        assert!(second.is_none(), "a second pending login from a");
        assert_eq!(
            limits.per_ip.open_from(a),
            1,
            "the refusal gave back its place"
        );
        assert!(limits
            .admit(b, limits.pending_login().await.unwrap())
            .is_some());
        first.log_in(&limits).unwrap();
        let third = limits.admit(a, limits.pending_login().await.unwrap());
        assert!(third.is_some(), "a logged in: its pending place is free");
    }

    #[test]
    fn a_device_s_connections_share_one_bucket_until_it_is_full_again() {
        let t0 = Instant::now();
        let rates = DeviceRates::new(10, 1000);
        let first = rates.of("alice", "d1", t0);
        assert_eq!((0..100).take_while(|_| first.take(t0).is_ok()).count(), 20);
        drop(first);
        // Reconnected at once: the same, empty bucket.
        let again = rates.of("alice", "d1", t0);
        assert!(again.take(t0).is_err(), "a reconnect does not refill it");
        assert!(
            rates.of("alice", "d2", t0).take(t0).is_ok(),
            "another device has its own"
        );
        drop(again);
        // Past the floor, buckets nobody holds and that refilled go; a
        // held one stays.
        let held = rates.of("bob", "d1", t0);
        assert!(held.take(t0).is_ok());
        let later = t0 + Duration::from_secs(10);
        for i in 0..PRUNE_FLOOR {
            drop(rates.of(&format!("x{i}"), "d", later));
        }
        assert!(
            rates.rates.len() < PRUNE_FLOOR,
            "pruned: {}",
            rates.rates.len()
        );
        assert!(rates
            .rates
            .contains_key(&("bob".to_string(), "d1".to_string())));
    }

    /// Ever new deviceIds of one account draw from the account's bucket:
    /// together no more than its burst, and the refusal names the bound.
    #[test]
    fn new_device_ids_do_not_buy_an_account_more() {
        let t0 = Instant::now();
        let rates = DeviceRates::new(10, 30);
        let mut served = 0;
        let mut refusal = None;
        for i in 0..20 {
            let d = rates.of("mallory", &format!("d{i}"), t0);
            while d.take(t0).is_ok() {
                served += 1;
            }
            refusal = d.take(t0).err();
        }
        assert_eq!(served, 60, "the account's burst, twice 30");
        let f = refusal.unwrap();
        assert_eq!(f.code, RATE_LIMITED);
        assert!(f.message.contains("maxDevicesPerAccount"), "{f:?}");
        assert!(
            rates.of("alice", "d0", t0).take(t0).is_ok(),
            "another account"
        );
    }

    #[test]
    fn rate_allows_a_burst_then_the_average() {
        let t0 = Instant::now();
        let mut r = RequestRate::new(10, "maxRequestsPerSecond", t0);
        let burst = (0..100).take_while(|_| r.allow(t0)).count();
        assert_eq!(burst, 20, "twice the rate at once");
        assert!(!r.allow(t0 + Duration::from_millis(50)), "half a token");
        assert!(
            r.allow(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        // A quiet second refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(10);
        let burst = (0..100).take_while(|_| r.allow(later)).count();
        assert_eq!(burst, 20);
    }
}
