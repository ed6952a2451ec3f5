//! Prometheus metrics, kept as plain atomics owned by the server instance (no global
//! recorder, so several servers can run in one test process).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::Hub;

/// Upper bounds of the request latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_server_errors: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
    pub messages: AtomicU64,
    pub batches: AtomicU64,
    /// Sends answered `unavailable` because the writer panicked or returned no result.
    pub writer_failures: AtomicU64,
    pub ws_connections_total: AtomicU64,
    pub ws_frames_in: AtomicU64,
    pub ws_rate_limited: AtomicU64,
    /// Requests answered 503 by load shedding.
    pub shed: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, status: u16, seconds: f64) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.http_server_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, hub: &Hub) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        counter(
            "chatnode_ws_connections",
            "Open authenticated WebSocket connections.",
            "gauge",
            hub.connection_count() as u64,
        );
        counter(
            "chatnode_online_users",
            "Users with at least one connection to this node.",
            "gauge",
            hub.online_users() as u64,
        );
        counter(
            "chatnode_ws_connections_total",
            "WebSocket connections authenticated since start.",
            "counter",
            g(&self.ws_connections_total),
        );
        counter(
            "chatnode_ws_frames_received_total",
            "WebSocket frames received.",
            "counter",
            g(&self.ws_frames_in),
        );
        counter(
            "chatnode_ws_rate_limited_total",
            "WebSocket frames refused by the rate limit.",
            "counter",
            g(&self.ws_rate_limited),
        );
        counter(
            "chatnode_ws_slow_closed_total",
            "Connections closed as too slow (4008).",
            "counter",
            g(&hub.slow_closed),
        );
        counter(
            "chatnode_messages_total",
            "Messages committed.",
            "counter",
            g(&self.messages),
        );
        counter(
            "chatnode_http_shed_total",
            "Requests refused with 503 by load shedding.",
            "counter",
            g(&self.shed),
        );
        counter(
            "chatnode_message_batches_total",
            "Group-commit transactions.",
            "counter",
            g(&self.batches),
        );
        counter(
            "chatnode_message_writer_failures_total",
            "Sends answered unavailable because the writer panicked or gave no result.",
            "counter",
            g(&self.writer_failures),
        );
        counter(
            "chatnode_http_server_errors_total",
            "HTTP responses with status >= 500.",
            "counter",
            g(&self.http_server_errors),
        );
        let _ = writeln!(
            s,
            "# HELP chatnode_http_request_duration_seconds HTTP request latency."
        );
        let _ = writeln!(s, "# TYPE chatnode_http_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += g(&self.latency_buckets[i]);
            let _ = writeln!(
                s,
                "chatnode_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let total = g(&self.http_requests);
        let _ = writeln!(
            s,
            "chatnode_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            s,
            "chatnode_http_request_duration_seconds_sum {}",
            g(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(s, "chatnode_http_request_duration_seconds_count {total}");
        s
    }
}
