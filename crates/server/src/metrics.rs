//! The daemon's counters, in the Prometheus / OpenMetrics text format.
//!
//! Sessions update them as they go ([`Metrics::request`],
//! [`Metrics::login`], [`Metrics::connection`]); the admin listener
//! ([`crate::admin`]) renders them on each scrape, with per-user disk
//! usage as known at that moment.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    /// `ok`, an error code (`not_found`, `quota_exceeded`, ...), or
    /// `disconnected` when the connection broke off during the request.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// A counter of seconds.
pub type Seconds = Counter<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    user: String,
}

/// What happened to a login attempt.
#[derive(Debug, Clone, Copy)]
pub enum LoginResult {
    /// Logged in.
    Ok,
    /// Unknown user or wrong password.
    Failed,
    /// Refused without checking: blocked after failed logins, or too many
    /// sessions.
    Refused,
}

type HistogramFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

/// All of the daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    sessions: Gauge,
    logins: Family<ResultLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    bytes_in: Counter,
    bytes_out: Counter,
    durations: HistogramFamily,
    rate_waits: Family<DirectionLabels, Seconds>,
    used: Family<UserLabels, Gauge>,
    quota: Family<UserLabels, Gauge>,
    memory_limit: Gauge,
    memory_in_use: Gauge,
    memory_waits: Counter,
    /// One render at a time: each refills the per-user families.
    rendering: std::sync::Mutex<()>,
}

fn transfer_buckets() -> Histogram {
    // 1 ms to ~4.4 hours, ×4 per bucket.
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("ftpd");
        let connections = Gauge::default();
        let sessions = Gauge::default();
        let logins = Family::default();
        let requests = Family::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let durations: HistogramFamily = Family::new_with_constructor(transfer_buckets);
        let rate_waits = Family::default();
        let used = Family::default();
        let quota = Family::default();
        let (memory_limit, memory_in_use, memory_waits): (Gauge, Gauge, Counter) = Default::default();
        registry.register("connections_open", "Connections being served (logged in or not)", connections.clone());
        registry.register("sessions_open", "Logged-in sessions", sessions.clone());
        registry.register("logins", "Login attempts by result (ok, failed, refused)", logins.clone());
        registry.register("requests", "Requests by operation and outcome", requests.clone());
        registry.register("received_bytes", "File bytes received by uploads", bytes_in.clone());
        registry.register("sent_bytes", "File bytes sent by downloads", bytes_out.clone());
        registry.register(
            "transfer_duration_seconds",
            "Duration of put and get requests, whatever their outcome",
            durations.clone(),
        );
        registry.register(
            "rate_wait_seconds",
            "Time transfers spent waiting on bandwidth caps (user's or daemon's), by direction",
            rate_waits.clone(),
        );
        registry.register("user_used_bytes", "Disk space used per user (users logged in since start)", used.clone());
        registry.register("user_quota_bytes", "Quota per user (users logged in since start)", quota.clone());
        registry.register(
            "transfer_memory_limit_bytes",
            "Memory the chunk buffers of all transfers may take (transfer_memory)",
            memory_limit.clone(),
        );
        registry.register(
            "transfer_memory_in_use_bytes",
            "Memory the chunk buffers of transfers take now",
            memory_in_use.clone(),
        );
        registry.register(
            "transfer_memory_waits",
            "Times a transfer waited for room for a chunk buffer",
            memory_waits.clone(),
        );
        Metrics {
            registry,
            connections,
            sessions,
            logins,
            requests,
            bytes_in,
            bytes_out,
            durations,
            rate_waits,
            used,
            quota,
            memory_limit,
            memory_in_use,
            memory_waits,
            rendering: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts a connection until the returned guard is dropped.
    pub fn connection(&self) -> GaugeGuard {
        GaugeGuard::new(&self.connections)
    }

    /// Records a login attempt; a successful one counts as an open session
    /// until the returned guard is dropped.
    pub fn login(&self, result: LoginResult) -> Option<GaugeGuard> {
        let label = match result {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Refused => "refused",
        };
        self.logins.get_or_create(&ResultLabels { result: label }).inc();
        matches!(result, LoginResult::Ok).then(|| GaugeGuard::new(&self.sessions))
    }

    /// Records a finished request: `outcome` is `ok`, an error code, or
    /// `disconnected` when the connection broke off during it.
    pub fn request(&self, op: &'static str, outcome: &'static str, bytes: u64, took: Duration) {
        self.requests.get_or_create(&RequestLabels { op, outcome }).inc();
        match op {
            "put" => {
                self.bytes_in.inc_by(bytes);
            }
            "get" => {
                self.bytes_out.inc_by(bytes);
            }
            _ => return,
        }
        self.durations.get_or_create(&OpLabels { op }).observe(took.as_secs_f64());
    }

    /// The counter of time spent waiting on bandwidth caps in `direction`
    /// (`upload` or `download`).
    pub fn rate_wait(&self, direction: &'static str) -> Seconds {
        self.rate_waits.get_or_create(&DirectionLabels { direction }).clone()
    }

    /// Logged-in sessions now.
    pub fn sessions(&self) -> i64 {
        self.sessions.get()
    }

    /// Connections being served now.
    pub fn connections(&self) -> i64 {
        self.connections.get()
    }

    /// Records the state of the transfers' buffer budget (before a render):
    /// its limit (`None` for none), bytes in use now, and waits since the
    /// start.
    pub fn transfer_memory(&self, limit: Option<u64>, in_use: u64, waits: u64) {
        let gauge = |n: u64| n.min(i64::MAX as u64) as i64;
        self.memory_limit.set(limit.map_or(0, gauge));
        self.memory_in_use.set(gauge(in_use));
        // A counter only goes up: by what the budget counted since.
        let _one = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
        self.memory_waits.inc_by(waits.saturating_sub(self.memory_waits.get()));
    }

    /// Renders every metric, with each user's bytes used and quota as
    /// given.
    pub fn render(&self, users: impl IntoIterator<Item = (String, u64, Option<u64>)>) -> String {
        let _one = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
        self.used.clear();
        self.quota.clear();
        for (user, used, quota) in users {
            let labels = UserLabels { user };
            self.used.get_or_create(&labels).set(used.min(i64::MAX as u64) as i64);
            if let Some(q) = quota {
                self.quota.get_or_create(&labels).set(q.min(i64::MAX as u64) as i64);
            }
        }
        let mut out = String::new();
        // Writing to a String can't fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Keeps a gauge one higher while it lives.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: &Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_bytes_are_counted_by_operation_and_outcome() {
        let m = Metrics::default();
        m.request("put", "ok", 1000, Duration::from_millis(3));
        m.request("put", "quota_exceeded", 0, Duration::from_millis(1));
        m.request("get", "disconnected", 10, Duration::from_millis(1));
        m.request("ls", "ok", 0, Duration::from_millis(1));
        let guard = m.login(LoginResult::Ok);
        m.login(LoginResult::Failed);
        let text = m.render([("alice".to_owned(), 5, Some(10))]);
        assert!(text.contains(r#"ftpd_requests_total{op="put",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"ftpd_requests_total{op="put",outcome="quota_exceeded"} 1"#), "{text}");
        assert!(text.contains(r#"ftpd_requests_total{op="get",outcome="disconnected"} 1"#), "{text}");
        assert!(text.contains("ftpd_received_bytes_total 1000"), "{text}");
        assert!(text.contains("ftpd_sent_bytes_total 10"), "{text}");
        assert!(text.contains(r#"ftpd_transfer_duration_seconds_count{op="put"} 2"#), "{text}");
        assert!(!text.contains(r#"ftpd_transfer_duration_seconds_count{op="ls"}"#), "{text}");
        assert!(text.contains("ftpd_sessions_open 1"), "{text}");
        drop(guard);
        assert!(text.contains(r#"ftpd_user_used_bytes{user="alice"} 5"#), "{text}");
        assert!(text.contains(r#"ftpd_user_quota_bytes{user="alice"} 10"#), "{text}");
        m.transfer_memory(Some(64 << 20), 3 << 20, 5);
        m.transfer_memory(Some(64 << 20), 1 << 20, 7);
        let text = m.render([]);
        assert!(text.contains("ftpd_transfer_memory_limit_bytes 67108864"), "{text}");
        assert!(text.contains("ftpd_transfer_memory_in_use_bytes 1048576"), "{text}");
        assert!(text.contains("ftpd_transfer_memory_waits_total 7"), "{text}");
        assert!(text.contains("ftpd_sessions_open 0"), "{text}");
        assert!(text.contains(r#"ftpd_logins_total{result="failed"} 1"#), "{text}");
    }
}
