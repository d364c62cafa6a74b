//! Limits on connections: how many one IP address may hold, and how fast
//! one connection may send requests. (The quotas of an account, which span
//! rooms, are in `service.rs`; sizes of parameters in `protocol/params.rs`.)

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Arc;
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
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
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
