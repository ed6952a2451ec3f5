//! Abuse limits: keyed token buckets (per account, per address, per user).
//!
//! Each key may spend `burst` actions at once; one comes back every `refill`. An empty bucket
//! answers with the seconds until the next token (`Retry-After`), so a limit slows an attacker
//! down without ever locking an account out. State is in memory and per node (documented in
//! docs/deployment.md); full buckets are forgotten so memory stays bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before idle (full) buckets are pruned.
const PRUNE_ABOVE: usize = 100_000;

pub struct Limiter {
    burst: f64,
    refill: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(burst: u32, refill: Duration) -> Limiter {
        Limiter {
            burst: f64::from(burst.max(1)),
            refill,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn level(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        let gained = now.duration_since(since).as_secs_f64() / self.refill.as_secs_f64().max(1e-9);
        (tokens + gained).min(self.burst)
    }

    /// Seconds until `key` may act again, or `None` when it may act now (spends nothing).
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let &(tokens, at) = map.get(key)?;
        let level = self.level(tokens, at, now);
        if level >= 1.0 {
            return None;
        }
        let wait = (1.0 - level) * self.refill.as_secs_f64();
        Some(wait.ceil().max(1.0) as u64)
    }

    /// Spends one action for `key`; `Err(seconds)` when none is left.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, (t, at)| self.level(*t, *at, now) < self.burst);
        }
        let entry = map.entry(key.to_owned()).or_insert((self.burst, now));
        let level = self.level(entry.0, entry.1, now);
        if level < 1.0 {
            let wait = (1.0 - level) * self.refill.as_secs_f64();
            return Err(wait.ceil().max(1.0) as u64);
        }
        *entry = (level - 1.0, now);
        Ok(())
    }
}

/// At most `max` actions per key in any `window` (a sliding log): for limits stated as "N a
/// minute", which a token bucket cannot keep exactly (its burst and its refill add up).
pub struct WindowLimiter {
    max: usize,
    window: Duration,
    log: Mutex<HashMap<String, std::collections::VecDeque<Instant>>>,
}

impl WindowLimiter {
    pub fn new(max: usize, window: Duration) -> WindowLimiter {
        WindowLimiter {
            max: max.max(1),
            window,
            log: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one action for `key`; `Err(seconds)` until the oldest of the last `max`
    /// leaves the window.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let q = map.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        q.push_back(now);
        Ok(())
    }
}

/// The address a request comes from: the peer, or, when the peer is a trusted proxy, the
/// last address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[std::net::IpAddr],
) -> String {
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
        .to_string()
}

/// The server's limits, built from the configuration.
pub struct Limits {
    /// Failed logins per account.
    pub login_account: Limiter,
    /// Login attempts per client address.
    pub login_address: Limiter,
    /// Registrations per client address.
    pub register_address: Limiter,
    /// Friend requests per user.
    pub friend_requests: Limiter,
    /// REST message sends per user (WebSocket sends are limited per connection).
    pub rest_sends: Limiter,
    /// Reports per user.
    pub reports: Limiter,
    /// Posts per incoming webhook (60 a minute).
    pub webhook_posts: WindowLimiter,
    /// Concurrent WebSocket connections per user.
    pub ws_per_user: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.2".parse().unwrap(),
        );
        assert_eq!(
            client_address(proxy, &h, &[]),
            "10.0.0.5",
            "untrusted peer: its own address"
        );
        assert_eq!(
            client_address(proxy, &h, &[proxy]),
            "198.51.100.2",
            "the hop the proxy saw"
        );
        let inner: std::net::IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(client_address(proxy, &h, &[proxy, inner]), "203.0.113.7");
        assert_eq!(
            client_address(proxy, &axum::http::HeaderMap::new(), &[proxy]),
            "10.0.0.5"
        );
    }

    #[test]
    fn a_window_never_lets_more_than_max_through() {
        let l = WindowLimiter::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            assert!(l.take("a").is_ok());
        }
        assert_eq!(l.take("a"), Err(1));
        assert!(l.take("b").is_ok());
        std::thread::sleep(Duration::from_millis(320));
        for _ in 0..3 {
            assert!(l.take("a").is_ok());
        }
        assert!(l.take("a").is_err());
    }

    #[test]
    fn bursts_then_refills_and_tells_how_long_to_wait() {
        let l = Limiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(l.take("a").is_ok());
        }
        let wait = l.take("a").unwrap_err();
        assert!(wait >= 1);
        assert_eq!(l.blocked_for("a"), Some(1));
        assert!(l.take("b").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.blocked_for("a").is_none());
        assert!(l.take("a").is_ok());
    }
}
