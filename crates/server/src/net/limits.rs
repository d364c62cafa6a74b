//! Limits on connections: how many one IP address may hold, how many may
//! be logging in and how many logged in at once, and how fast one device
//! may send requests. (The quotas of an account, which span rooms, are in
//! `service.rs`; sizes of parameters in `protocol/params.rs`.)

use dashmap::DashMap;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::ServerConfig;
use nim_signaling_protocol::codes::RATE_LIMITED;
use nim_signaling_protocol::Failure;

/// The budgets a listener's connections share. A connection holds a place
/// among the pending logins (`maxPendingLogins`) from when it is accepted
/// until it logs in, then a place among the sessions (`maxConnections`)
/// until it closes, so connections that never log in cannot take the
/// places of sessions; a place among its address's connections
/// (`maxConnectionsPerIp`) all along; and, until it logs in, one among its
/// address's pending logins (`maxPendingLoginsPerIp`), so that one address
/// takes at most that many of the pending places whatever its share of
/// the sessions. When every pending place is taken, the oldest pending
/// connection gives its place up to a new one (see [`PendingLogins`]).
pub struct ConnectionLimits {
    per_ip: Arc<PerIp>,
    pending_per_ip: Arc<PerIp>,
    /// Places of connections accepted and not logged in yet.
    pending: Arc<PendingLogins>,
    /// Places of logged-in sessions.
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    /// The request rate of each device.
    pub rates: Arc<DeviceRates>,
}

/// A connection's places among its address's connections and pending
/// logins, before it has a place among everyone's pending logins.
pub struct AddressPlaces {
    ip: IpSlot,
    pending_ip: IpSlot,
}

/// What an accepted connection holds of the budgets until it closes.
pub struct Admission {
    /// Its place among its address's connections.
    _ip: IpSlot,
    /// Its place among its address's pending logins, until it logs in.
    /// An evicted connection keeps it until it is closed, so that an
    /// address's connections on their way out still count against it.
    pending_ip: Option<IpSlot>,
    place: Place,
}

/// Where a connection's place among the pending logins, then the
/// sessions, is.
enum Place {
    /// Waiting for its login: the place is in [`PendingLogins`]' queue,
    /// where a newer connection may take it.
    Queued(Queued),
    /// Its login arrived: the place is the connection's own, out of the
    /// queue, until the login is through (or refused and the connection
    /// closed).
    Pending { _place: OwnedSemaphorePermit },
    /// Logged in.
    Session { _place: OwnedSemaphorePermit },
    /// A newer connection took the place; this one is on its way out.
    Evicted,
}

/// Where a new connection's place among the pending logins came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceFrom {
    /// A free one.
    Free,
    /// The oldest pending connection's, which was told to close.
    Evicted,
}

impl ConnectionLimits {
    pub fn new(cfg: &ServerConfig) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            per_ip: PerIp::new(cfg.max_connections_per_ip),
            pending_per_ip: PerIp::new(cfg.max_pending_logins_per_ip),
            pending: PendingLogins::new(cfg.max_pending_logins, EVICTABLE_AFTER),
            sessions: Arc::new(Semaphore::new(cfg.max_connections)),
            max_sessions: cfg.max_connections,
            rates: DeviceRates::new(
                cfg.max_requests_per_second,
                account_rate(cfg.max_requests_per_second, cfg.max_devices_per_account),
            ),
        })
    }

    /// Waits until a new connection could have a place among the pending
    /// logins. The listener waits for it before accepting: while every
    /// place is taken by a connection too young to be evicted, new
    /// connections wait in the kernel's listen backlog instead of being
    /// accepted and dropped.
    pub async fn pending_ready(&self) -> Result<(), AcquireError> {
        self.pending.ready().await
    }

    /// Counts a connection from `ip` against its address's shares, or
    /// None when that address already holds `maxConnectionsPerIp`
    /// connections or `maxPendingLoginsPerIp` pending ones (what it took
    /// is given back). This comes before [`ConnectionLimits::place`]: a
    /// connection refused here takes no pending place and evicts nobody.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressPlaces> {
        Some(AddressPlaces {
            ip: self.per_ip.admit(ip)?,
            pending_ip: self.pending_per_ip.admit(ip)?,
        })
    }

    /// Gives the connection admitted into `address` a place among the
    /// pending logins: a free one, else the oldest pending connection's
    /// (see [`PendingLogins`]); normally at once after
    /// [`ConnectionLimits::pending_ready`].
    pub async fn place(
        &self,
        address: AddressPlaces,
    ) -> Result<(Admission, PlaceFrom), AcquireError> {
        let (queued, from) = self.pending.place().await?;
        let admission = Admission {
            _ip: address.ip,
            pending_ip: Some(address.pending_ip),
            place: Place::Queued(queued),
        };
        Ok((admission, from))
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
    /// Resolves once a newer connection has taken this one's pending
    /// place; never once the place is out of the queue
    /// ([`Admission::claim_place`]).
    pub async fn evicted(&mut self) {
        match &mut self.place {
            // The sender goes with the queue's entry, which only an
            // eviction removes while the connection is queued: sent or
            // dropped, the place is gone.
            Place::Queued(q) => {
                let _ = (&mut q.evicted).await;
            }
            Place::Evicted => {}
            Place::Pending { .. } | Place::Session { .. } => std::future::pending().await,
        }
    }

    /// Takes the connection's pending place out of the queue: from now on
    /// no newer connection can take it. False when one already has (the
    /// connection must close). The place is exactly one of the queue's or
    /// the connection's at any time, under the queue's lock, so an
    /// eviction and a login that race end as one of the two.
    pub fn claim_place(&mut self) -> bool {
        if let Place::Queued(q) = &self.place {
            self.place = match q.claim() {
                Some(place) => Place::Pending { _place: place },
                None => Place::Evicted,
            };
        }
        !matches!(self.place, Place::Evicted)
    }

    /// The connection logged in: its pending place is claimed (if it was
    /// not yet) and traded for a session's. When `maxConnections` sessions
    /// are live it keeps the pending place, out of reach of newer
    /// connections, and gets the refusal to answer the login with.
    pub fn log_in(&mut self, limits: &ConnectionLimits) -> Result<(), Failure> {
        if !self.claim_place() {
            return Err(Failure::new(
                RATE_LIMITED,
                format!(
                    "closed for a newer connection: maxPendingLogins ({}) were logging in",
                    limits.pending.max
                ),
            ));
        }
        let session = limits
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| limits.sessions_full())?;
        self.place = Place::Session { _place: session };
        self.pending_ip = None;
        Ok(())
    }
}

/// How long a pending connection is safe from eviction. Without it, a
/// burst of maxPendingLogins connections would evict every connection
/// that is mid-handshake, however briefly, including the well-behaved
/// ones. One second is several round trips of a slow mobile link (TLS,
/// the WebSocket upgrade and the login take two or three of them), a
/// tenth of the default `loginTimeoutMs`, and it bounds evictions to
/// maxPendingLogins a second: an attacker who opens connections faster
/// than that makes new connections wait in the listen backlog (as
/// without eviction), but cannot close a client that logs in within a
/// second of being accepted. While every pending connection is younger
/// than this, new ones wait in the backlog as they did before there was
/// eviction. The price: a server too short of CPU to finish a storm's
/// handshakes within a second closes the oldest of them for newer ones
/// (their clients reconnect, with their backoff); a longer minimum would
/// spare them, but let fewer connections be tried a second under attack.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// The places among the pending logins (`maxPendingLogins`), and the
/// connections waiting for their login in the order they got theirs.
/// When none is free, a new connection takes the place of the oldest
/// waiting one (closest to its login timeout) once that one is
/// [`EVICTABLE_AFTER`] old; the oldest is told to close. So an attacker
/// must open maxPendingLogins connections within a well-behaved client's
/// login time to close it, not merely hold maxPendingLogins open. A
/// connection whose login has arrived takes its place out of the queue
/// ([`Admission::claim_place`]) and is never evicted.
pub struct PendingLogins {
    /// One permit per place. Each permit taken is held by a queued
    /// connection's entry or by a connection that claimed it, and goes
    /// back when that is dropped: exactly once, whoever holds it then.
    places: Arc<Semaphore>,
    max: usize,
    min_age: Duration,
    queue: Mutex<Queue>,
}

/// The connections waiting for their login. Each entry holds one of the
/// places, so there are at most maxPendingLogins.
struct Queue {
    next_id: u64,
    /// By id, given in the order the places were taken: the first entry
    /// is the oldest.
    waiting: BTreeMap<u64, Waiting>,
}

struct Waiting {
    since: Instant,
    place: OwnedSemaphorePermit,
    /// Tells the connection that it was evicted.
    evict: oneshot::Sender<()>,
}

/// A connection's entry in the queue; dropping it gives back the place
/// if the entry still holds it.
struct Queued {
    pending: Arc<PendingLogins>,
    id: u64,
    evicted: oneshot::Receiver<()>,
}

impl PendingLogins {
    fn new(max: usize, min_age: Duration) -> Arc<PendingLogins> {
        Arc::new(PendingLogins {
            places: Arc::new(Semaphore::new(max)),
            max,
            min_age,
            queue: Mutex::new(Queue {
                next_id: 0,
                waiting: BTreeMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the oldest waiting connection may be evicted, if one waits.
    fn evictable_at(&self, queue: &Queue) -> Option<Instant> {
        let (_, oldest) = queue.waiting.first_key_value()?;
        oldest.since.checked_add(self.min_age)
    }

    /// Waits until [`PendingLogins::take`] would give a place: one is
    /// free, or the oldest waiting connection is old enough to be evicted.
    async fn ready(&self) -> Result<(), AcquireError> {
        loop {
            let evictable_at = {
                let queue = self.lock();
                if self.places.available_permits() > 0 {
                    return Ok(());
                }
                self.evictable_at(&queue)
            };
            // Places are taken only by `take`, under the lock: none taken
            // since, at most some given back.
            let freed = self.places.acquire();
            match evictable_at {
                Some(at) if at <= Instant::now() => return Ok(()),
                Some(at) => tokio::select! {
                    place = freed => drop(place?),
                    () = tokio::time::sleep_until(at.into()) => {}
                },
                None => drop(freed.await?),
            }
        }
    }

    /// A place for a connection accepted at `now`: a free one, else the
    /// oldest waiting connection's if it is old enough (it is told to
    /// close); None when there is neither.
    fn take(self: &Arc<Self>, now: Instant) -> Option<(Queued, PlaceFrom)> {
        // Under the lock from the look at the free places to the new
        // entry: a place given back meanwhile is taken rather than an
        // eviction made for nothing.
        let mut queue = self.lock();
        let (place, from) = match self.places.clone().try_acquire_owned() {
            Ok(place) => (place, PlaceFrom::Free),
            Err(TryAcquireError::NoPermits) => {
                let oldest = queue.waiting.first_entry()?;
                if now.saturating_duration_since(oldest.get().since) < self.min_age {
                    return None;
                }
                let victim = oldest.remove();
                // Gone already if its connection is being dropped; the
                // place is free either way.
                let _ = victim.evict.send(());
                (victim.place, PlaceFrom::Evicted)
            }
            Err(TryAcquireError::Closed) => return None,
        };
        let id = queue.next_id;
        queue.next_id += 1;
        let (evict, evicted) = oneshot::channel();
        queue.waiting.insert(
            id,
            Waiting {
                since: now,
                place,
                evict,
            },
        );
        let queued = Queued {
            pending: self.clone(),
            id,
            evicted,
        };
        Some((queued, from))
    }

    /// Waits for a place and takes it (see [`PendingLogins::take`]).
    async fn place(self: &Arc<Self>) -> Result<(Queued, PlaceFrom), AcquireError> {
        loop {
            if let Some(taken) = self.take(Instant::now()) {
                return Ok(taken);
            }
            self.ready().await?;
        }
    }
}

impl Queued {
    /// Takes this connection's place out of the queue, or None when a
    /// newer connection took it.
    fn claim(&self) -> Option<OwnedSemaphorePermit> {
        let mut queue = self.pending.lock();
        queue.waiting.remove(&self.id).map(|w| w.place)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        // The place goes back under the lock, so that `take` sees it
        // free, or the entry still there, never neither.
        let mut queue = self.pending.lock();
        drop(queue.waiting.remove(&self.id));
    }
}

/// Open connections per IP address: per IPv4 address, and per /64 for
/// IPv6 (see [`address_of`]).
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
        let ip = address_of(ip);
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
        self.open.get(&address_of(ip)).map(|n| *n).unwrap_or(0)
    }
}

/// The address the per-IP limits count `ip` under. One IPv6 host is
/// commonly given a whole /64, so counting IPv6 addresses one by one
/// would give a single attacker 2^64 fresh shares: an IPv6 address counts
/// as its /64. An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`)
/// counts as that IPv4 address.
pub fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
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
    /// Forgets the buckets nobody holds that are full again, and gives
    /// back the table space they took; returns the size past which a
    /// lookup prunes next. Lookups prune as the tables grow; the sweeper
    /// calls [`DeviceRates::prune`] so that they also shrink once a flood
    /// of deviceIds has gone.
    fn prune_full(&self, now: Instant) -> usize {
        self.rates
            .retain(|_, r| Arc::strong_count(r) > 1 || !lock(&r.own).full(now));
        // After the devices: a device bucket holds its account's.
        self.accounts
            .retain(|_, r| Arc::strong_count(r) > 1 || !lock(r).full(now));
        crate::ops::heap::shrink_when_sparse(&self.rates);
        crate::ops::heap::shrink_when_sparse(&self.accounts);
        ((self.rates.len() + self.accounts.len()) * 2).max(PRUNE_FLOOR)
    }

    /// See [`DeviceRates::prune_full`].
    pub fn prune(&self, now: Instant) {
        let mut prune_at = self.prune_at.lock().unwrap_or_else(|e| e.into_inner());
        *prune_at = self.prune_full(now);
    }

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
                *prune_at = self.prune_full(now);
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

    /// A connection from `ip` admitted and given a pending place, as the
    /// accept loop does; None when its address is over a share.
    async fn admitted(limits: &ConnectionLimits, ip: &str) -> Option<(Admission, PlaceFrom)> {
        let address = limits.admit(ip.parse().unwrap())?;
        Some(limits.place(address).await.expect("a place"))
    }

    /// The free places: (pending logins, sessions).
    fn free(limits: &ConnectionLimits) -> (usize, usize) {
        (
            limits.pending.places.available_permits(),
            limits.sessions.available_permits(),
        )
    }

    /// Pending and session places are separate budgets: a connection
    /// trades the one for the other when it logs in, a connection refused
    /// for its address takes no place, and a login refused for want of a
    /// session place keeps its pending one until the connection closes.
    #[tokio::test]
    async fn a_connection_trades_its_pending_place_for_a_session_place() {
        let cfg = ServerConfig {
            max_pending_logins: 1,
            max_connections: 1,
            max_connections_per_ip: 1,
            ..ServerConfig::default()
        };
        let limits = ConnectionLimits::new(&cfg);
        let (mut first, from) = admitted(&limits, "10.0.0.1").await.expect("first");
        assert_eq!(from, PlaceFrom::Free);
        assert_eq!(free(&limits), (0, 1));
        first.log_in(&limits).expect("a session place");
        assert_eq!(free(&limits), (1, 0));
        assert!(
            admitted(&limits, "10.0.0.1").await.is_none(),
            "over the address's cap"
        );
        assert_eq!(free(&limits), (1, 0), "no pending place taken");
        let (mut second, _) = admitted(&limits, "10.0.0.2")
            .await
            .expect("another address");
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
        let (mut first, _) = admitted(&limits, "10.0.0.1").await.unwrap();
        let second = admitted(&limits, "10.0.0.1").await;
        assert!(second.is_none(), "a second pending login from a");
        assert_eq!(
            limits.per_ip.open_from(a),
            1,
            "the refusal gave back its place"
        );
        assert!(admitted(&limits, "10.0.0.2").await.is_some());
        first.log_in(&limits).unwrap();
        let third = admitted(&limits, "10.0.0.1").await;
        assert!(third.is_some(), "a logged in: its pending place is free");
    }

    /// With every place taken, a new connection takes the oldest waiting
    /// one's, and only once that one is old enough; the oldest is told, the
    /// younger ones are not, and a place goes back once, by whoever holds
    /// it when it is dropped.
    #[test]
    fn the_oldest_waiting_connection_gives_its_place_up_once_old_enough() {
        let pending = PendingLogins::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut taken = Vec::new();
        for ms in [0, 10, 20] {
            let (queued, from) = pending.take(at(ms)).expect("a free place");
            assert_eq!(from, PlaceFrom::Free);
            taken.push(queued);
        }
        let [mut a, mut b, mut c]: [Queued; 3] = taken.try_into().ok().unwrap();
        assert!(
            pending.take(at(999)).is_none(),
            "every waiting connection is younger than the minimum age"
        );
        let (_d, from) = pending.take(at(1000)).expect("the oldest's place");
        assert_eq!(from, PlaceFrom::Evicted);
        assert!(a.evicted.try_recv().is_ok(), "the oldest is told");
        assert!(b.evicted.try_recv().is_err() && c.evicted.try_recv().is_err());
        assert!(a.claim().is_none(), "an evicted connection has no place");
        assert!(
            pending.take(at(1005)).is_none(),
            "the oldest now is 995 ms old"
        );
        let (_e, from) = pending.take(at(1010)).expect("b's place");
        assert_eq!(from, PlaceFrom::Evicted);
        assert!(b.evicted.try_recv().is_ok());
        assert!(c.evicted.try_recv().is_err(), "c is younger");
        assert_eq!(pending.lock().waiting.len(), 3, "bounded by the places");
        assert_eq!(pending.places.available_permits(), 0);
        drop((a, b));
        assert_eq!(
            pending.places.available_permits(),
            0,
            "the evicted gave back nothing: their places are d's and e's"
        );
        drop(c);
        assert_eq!(pending.places.available_permits(), 1, "c's place");
    }

    /// The listener waits before accepting while every place is held by
    /// a connection too young to give it up, and goes on as soon as one is
    /// old enough or a place is given back. (The ages are set by the
    /// instants passed to `take`, not by sleeping.)
    #[tokio::test]
    async fn a_new_connection_waits_while_every_pending_one_is_too_young() {
        let min_age = Duration::from_secs(1);
        let pending = PendingLogins::new(2, min_age);
        let now = Instant::now();
        let never_old = now + Duration::from_secs(3600);
        let (young, _) = pending.take(never_old).unwrap();
        let (_younger, _) = pending.take(never_old).unwrap();
        assert!(pending.take(now).is_none());
        let waiting = tokio::spawn({
            let pending = pending.clone();
            async move { pending.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "both are too young");
        drop(young);
        let ready = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(ready, Ok(Ok(Ok(())))), "a place was given back");
        let (_, from) = pending.place().await.unwrap();
        assert_eq!(from, PlaceFrom::Free);
        // One that comes of age while the listener waits.
        let pending = PendingLogins::new(1, min_age);
        let (_oldest, _) = pending.take(now - Duration::from_millis(900)).unwrap();
        let ready = tokio::time::timeout(Duration::from_secs(5), pending.ready()).await;
        assert!(matches!(ready, Ok(Ok(()))), "the oldest came of age");
        let (_, from) = pending.place().await.unwrap();
        assert_eq!(from, PlaceFrom::Evicted);
    }

    /// A connection whose login arrived takes its place out of the queue:
    /// never evicted, while it waits for a session place or after it got
    /// one; eviction and login racing end as one of the two, and every
    /// place comes back exactly once.
    #[tokio::test]
    async fn a_connection_whose_login_arrived_is_never_evicted() {
        let cfg = ServerConfig {
            max_pending_logins: 2,
            max_connections: 1,
            ..ServerConfig::default()
        };
        // Evictable at once, so that the test need not wait.
        let mut limits = ConnectionLimits::new(&cfg);
        Arc::get_mut(&mut limits).unwrap().pending = PendingLogins::new(2, Duration::ZERO);
        async fn not_evicted(a: &mut Admission) -> bool {
            let wait = tokio::time::timeout(Duration::from_millis(20), a.evicted());
            wait.await.is_err()
        }
        let (mut logged_in, _) = admitted(&limits, "10.0.0.1").await.unwrap();
        let (mut evicted, _) = admitted(&limits, "10.0.0.2").await.unwrap();
        logged_in.log_in(&limits).expect("a session");
        let (mut claimed, from) = admitted(&limits, "10.0.0.3").await.unwrap();
        assert_eq!(from, PlaceFrom::Free, "the logged-in one's place");
        let (mut queued, from) = admitted(&limits, "10.0.0.4").await.unwrap();
        assert_eq!(from, PlaceFrom::Evicted);
        // Evicted first, then its login arrives: the login loses.
        assert!(!not_evicted(&mut evicted).await, "told");
        assert!(!evicted.claim_place());
        let refused = evicted.log_in(&limits).expect_err("evicted");
        assert!(refused.message.contains("maxPendingLogins"), "{refused:?}");
        assert!(not_evicted(&mut logged_in).await);
        // Its login arrived first: the eviction passes it by.
        assert!(claimed.claim_place());
        let (_newest, from) = admitted(&limits, "10.0.0.5").await.unwrap();
        assert_eq!(from, PlaceFrom::Evicted);
        assert!(!not_evicted(&mut queued).await, "the one still queued");
        assert!(not_evicted(&mut claimed).await);
        assert!(claimed.log_in(&limits).is_err(), "no session place yet");
        assert!(claimed.claim_place() && not_evicted(&mut claimed).await);
        drop(logged_in);
        claimed.log_in(&limits).expect("the session place now free");
        assert_eq!(free(&limits), (1, 0), "the newest holds one pending place");
        drop((evicted, queued, claimed, _newest));
        assert_eq!(free(&limits), (2, 1), "every place back, none twice");
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

    /// IPv6 addresses of one /64 share one count, as do an IPv4 address
    /// and its IPv6-mapped form; other prefixes and addresses do not.
    #[test]
    fn an_ipv6_host_s_prefix_counts_as_one_address() {
        let table = PerIp::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = table.admit(ip("2001:db8:1:2::1")).expect("first");
        let _b = table.admit(ip("2001:db8:1:2:ffff::9")).expect("second");
        assert!(
            table.admit(ip("2001:db8:1:2:dead:beef:0:1")).is_none(),
            "a third address of the /64"
        );
        assert!(table.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let _c = table.admit(ip("192.0.2.7")).expect("an IPv4 address");
        let _d = table
            .admit(ip("::ffff:192.0.2.7"))
            .expect("its mapped form");
        assert!(table.admit(ip("192.0.2.7")).is_none(), "counted together");
        assert_eq!(table.open_from(ip("::ffff:192.0.2.7")), 2);
    }

    /// Once a flood of deviceIds has gone, the sweeper's prune forgets
    /// their buckets, full again, and the tables give their space back;
    /// the bucket of a device still connected stays.
    #[test]
    fn a_flood_of_device_ids_leaves_no_table_behind() {
        let t0 = Instant::now();
        let rates = DeviceRates::new(10, 1000);
        let held = rates.of("alice", "d1", t0);
        for i in 0..20_000 {
            let d = rates.of("mallory", &format!("d{i}"), t0);
            let _ = d.take(t0);
        }
        let flooded = rates.rates.capacity();
        assert!(flooded >= 20_000 / 2, "the flood's table: {flooded}");
        rates.prune(t0 + Duration::from_secs(10));
        assert_eq!(rates.rates.len(), 1, "alice's device alone");
        assert_eq!(rates.accounts.len(), 1, "alice's account alone");
        assert!(
            rates.rates.capacity() <= PRUNE_FLOOR,
            "the table shrank: {} of {flooded}",
            rates.rates.capacity()
        );
        assert!(held.take(t0).is_ok(), "alice's bucket is the one she holds");
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
