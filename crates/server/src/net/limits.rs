//! Limits on connections: how many one IP address may hold, and how fast
//! one device may send requests. (The quotas of an account, which span
//! rooms, are in `service.rs`; sizes of parameters in `protocol/params.rs`.)

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nim_signaling_protocol::codes::RATE_LIMITED;
use nim_signaling_protocol::Failure;

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

/// A token bucket: `per_second` requests a second on average, bursts of up
/// to twice that (an app that reconnects sends its queued requests at once).
pub struct RequestRate {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RequestRate {
    pub fn new(per_second: u32, now: Instant) -> RequestRate {
        let per_second = f64::from(per_second);
        RequestRate {
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
                "more than {} requests per second (maxRequestsPerSecond)",
                self.per_second
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
/// a second connection of the device draws from the same one. A bucket
/// nobody holds is forgotten once it is full again, so the table holds
/// the devices connected now and those that left in the last seconds.
pub struct DeviceRates {
    per_second: u32,
    rates: DashMap<(String, String), Arc<DeviceRate>>,
    /// Size past which the next lookup forgets the buckets it may.
    prune_at: Mutex<usize>,
}

/// One device's bucket.
pub struct DeviceRate(Mutex<RequestRate>);

/// Buckets kept before the table is first pruned.
const PRUNE_FLOOR: usize = 1024;

impl DeviceRates {
    pub fn new(per_second: u32) -> Arc<DeviceRates> {
        Arc::new(DeviceRates {
            per_second,
            rates: DashMap::new(),
            prune_at: Mutex::new(PRUNE_FLOOR),
        })
    }

    /// The bucket of `device` of `account`, held by its session.
    pub fn of(&self, account: &str, device: &str, now: Instant) -> Arc<DeviceRate> {
        {
            let mut prune_at = self.prune_at.lock().unwrap_or_else(|e| e.into_inner());
            if self.rates.len() >= *prune_at {
                self.rates
                    .retain(|_, r| Arc::strong_count(r) > 1 || !r.lock().full(now));
                *prune_at = (self.rates.len() * 2).max(PRUNE_FLOOR);
            }
        }
        self.rates
            .entry((account.to_string(), device.to_string()))
            .or_insert_with(|| {
                Arc::new(DeviceRate(Mutex::new(RequestRate::new(
                    self.per_second,
                    now,
                ))))
            })
            .clone()
    }
}

impl DeviceRate {
    fn lock(&self) -> std::sync::MutexGuard<'_, RequestRate> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether one more request (or a frame that is not one) may go now.
    pub fn allow(&self, now: Instant) -> bool {
        self.lock().allow(now)
    }

    /// The answer to a request over the rate.
    pub fn refusal(&self) -> Failure {
        self.lock().refusal()
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

    #[test]
    fn a_device_s_connections_share_one_bucket_until_it_is_full_again() {
        let t0 = Instant::now();
        let rates = DeviceRates::new(10);
        let first = rates.of("alice", "d1", t0);
        assert_eq!((0..100).take_while(|_| first.allow(t0)).count(), 20);
        drop(first);
        // Reconnected at once: the same, empty bucket.
        let again = rates.of("alice", "d1", t0);
        assert!(!again.allow(t0), "a reconnect does not refill it");
        assert!(
            rates.of("alice", "d2", t0).allow(t0),
            "another device has its own"
        );
        drop(again);
        // Past the floor, buckets nobody holds and that refilled go; a
        // held one stays.
        let held = rates.of("bob", "d1", t0);
        assert!(held.allow(t0));
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

    #[test]
    fn rate_allows_a_burst_then_the_average() {
        let t0 = Instant::now();
        let mut r = RequestRate::new(10, t0);
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
