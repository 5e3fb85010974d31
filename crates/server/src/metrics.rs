//! Prometheus metrics, kept in memory and rendered as the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct RequestMetrics {
    /// (method, route, status) → count.
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    /// route → latency histogram.
    latency: BTreeMap<&'static str, Histogram>,
}

/// All metrics of one server.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<RequestMetrics>,
    ops_applied: AtomicU64,
    ops_conflict: AtomicU64,
    ops_rejected: AtomicU64,
    pushes: AtomicU64,
    imported: AtomicU64,
    event_streams: AtomicI64,
    /// Event stream wake-ups by the hub, by cause: [commit, revocation, resync].
    event_wakeups: [AtomicU64; 3],
}

/// Why the event hub woke an event stream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WakeCause {
    /// A commit (of the stream's namespace).
    Commit = 0,
    /// Tokens were revoked: the stream checks its own.
    Revocation = 1,
    /// Events may have been missed: the stream re-reads its head.
    Resync = 2,
}

impl Metrics {
    pub(crate) fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        let mut guard = self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard.requests.entry((method, route, status)).or_default() += 1;
        let histogram = guard.latency.entry(route).or_default();
        histogram.count += 1;
        histogram.sum += seconds;
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[index] += 1;
        }
    }

    pub(crate) fn observe_push(&self, applied: u64, conflicts: u64, rejected: u64) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        self.ops_applied.fetch_add(applied, Ordering::Relaxed);
        self.ops_conflict.fetch_add(conflicts, Ordering::Relaxed);
        self.ops_rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    pub(crate) fn observe_import(&self, items: u64) {
        self.imported.fetch_add(items, Ordering::Relaxed);
    }

    pub(crate) fn event_stream_opened(&self) {
        self.event_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn event_stream_closed(&self) {
        self.event_streams.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn event_stream_woken(&self, cause: WakeCause) {
        self.event_wakeups[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let snapshot = {
            let guard = self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (guard.requests.clone(), guard.latency.clone())
        };
        out.push_str("# HELP persist_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE persist_http_requests_total counter\n");
        for ((method, route, status), count) in &snapshot.0 {
            let _ = writeln!(
                out,
                "persist_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP persist_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE persist_http_request_duration_seconds histogram\n");
        for (route, histogram) in &snapshot.1 {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "persist_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "persist_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "persist_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "persist_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        let counters = [
            ("persist_pushes_total", "Pushes answered.", &self.pushes),
            ("persist_import_items_total", "Items written by bulk imports.", &self.imported),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP persist_ops_pushed_total Pushed ops, by outcome.\n");
        out.push_str("# TYPE persist_ops_pushed_total counter\n");
        for (outcome, value) in [
            ("applied", &self.ops_applied),
            ("conflict", &self.ops_conflict),
            ("rejected", &self.ops_rejected),
        ] {
            let _ = writeln!(
                out,
                "persist_ops_pushed_total{{outcome=\"{outcome}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP persist_conflicts_total Pushed ops answered with a conflict.\n\
             # TYPE persist_conflicts_total counter\npersist_conflicts_total {}\n",
            self.ops_conflict.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP persist_event_streams Connected event streams.\n\
             # TYPE persist_event_streams gauge\npersist_event_streams {}\n",
            self.event_streams.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP persist_event_stream_wakeups_total Times an event stream was woken by an event \
             (a commit of its namespace, a token revocation, a resync).\n\
             # TYPE persist_event_stream_wakeups_total counter\n",
        );
        for (cause, value) in ["commit", "revocation", "resync"].iter().zip(&self.event_wakeups) {
            let _ = writeln!(
                out,
                "persist_event_stream_wakeups_total{{cause=\"{cause}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.observe_request("POST", "/v1/push", 200, Duration::from_millis(3));
        metrics.observe_push(9, 1, 0);
        let text = metrics.render();
        assert!(text.contains(
            "persist_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "persist_http_request_duration_seconds_bucket{route=\"/v1/push\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("persist_ops_pushed_total{outcome=\"applied\"} 9"));
        assert!(text.contains("persist_conflicts_total 1"));
    }
}
