//! Prometheus metrics, kept in a `prometheus-client` [`Registry`] and rendered as OpenMetrics text.
//!
//! Counters and the gauge are atomics; labelled metrics are [`Family`]s (a read lock to find the
//! series, a write lock only the first time a label set is seen); the latency histogram is the
//! crate's (a short lock per route). The labelled op counters are looked up once, here, so a push
//! only touches atomics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`]'s output (OpenMetrics text 1.0.0).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency bucket upper bounds, in seconds (`+Inf` is implicit).
const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
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

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// All metrics of one server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pushes: Counter,
    ops_applied: Counter,
    /// Also exported as `persist_conflicts_total` (the same atomic).
    ops_conflict: Counter,
    ops_rejected: Counter,
    imported: Counter,
    event_streams: Gauge,
    /// Event stream wake-ups by the hub, by cause: [commit, revocation, resync].
    event_wakeups: [Counter; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Counter names are registered without `_total` and help texts without the final period:
        // the encoder adds both.
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("persist_http_requests", "HTTP requests answered", requests.clone());
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "persist_http_request_duration",
            "Time to answer, by route",
            Unit::Seconds,
            latency.clone(),
        );
        let pushes = Counter::default();
        registry.register("persist_pushes", "Pushes answered", pushes.clone());
        let imported = Counter::default();
        registry.register(
            "persist_import_items",
            "Items written by bulk imports",
            imported.clone(),
        );
        let ops = Family::<OutcomeLabels, Counter>::default();
        registry.register("persist_ops_pushed", "Pushed ops, by outcome", ops.clone());
        let outcome = |outcome| ops.get_or_create_owned(&OutcomeLabels { outcome });
        let (ops_applied, ops_conflict, ops_rejected) =
            (outcome("applied"), outcome("conflict"), outcome("rejected"));
        registry.register(
            "persist_conflicts",
            "Pushed ops answered with a conflict",
            ops_conflict.clone(),
        );
        let event_streams = Gauge::default();
        registry.register(
            "persist_event_streams",
            "Connected event streams",
            event_streams.clone(),
        );
        let wakeups = Family::<CauseLabels, Counter>::default();
        registry.register(
            "persist_event_stream_wakeups",
            "Event streams woken by the event hub, by cause",
            wakeups.clone(),
        );
        let wakeup = |cause| wakeups.get_or_create_owned(&CauseLabels { cause });
        let event_wakeups = [wakeup("commit"), wakeup("revocation"), wakeup("resync")];
        Metrics {
            registry,
            event_wakeups,
            requests,
            latency,
            pushes,
            ops_applied,
            ops_conflict,
            ops_rejected,
            imported,
            event_streams,
        }
    }
}

impl Metrics {
    pub(crate) fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
        self.latency.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    }

    pub(crate) fn observe_push(&self, applied: u64, conflicts: u64, rejected: u64) {
        self.pushes.inc();
        self.ops_applied.inc_by(applied);
        self.ops_conflict.inc_by(conflicts);
        self.ops_rejected.inc_by(rejected);
    }

    pub(crate) fn observe_import(&self, items: u64) {
        self.imported.inc_by(items);
    }

    pub(crate) fn event_stream_opened(&self) {
        self.event_streams.inc();
    }

    pub(crate) fn event_stream_closed(&self) {
        self.event_streams.dec();
    }

    pub(crate) fn event_stream_woken(&self, cause: WakeCause) {
        self.event_wakeups[cause as usize].inc();
    }

    /// The OpenMetrics text exposition (served with [`CONTENT_TYPE`]), ending in `# EOF`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a `String` cannot fail, and every label value here encodes.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
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
        metrics.event_stream_opened();
        let text = metrics.render();
        assert!(text.contains(
            "persist_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "persist_http_request_duration_seconds_bucket{le=\"0.005\",route=\"/v1/push\"} 1"
        ));
        assert!(text.contains("persist_ops_pushed_total{outcome=\"applied\"} 9"));
        assert!(text.contains("persist_ops_pushed_total{outcome=\"rejected\"} 0"));
        assert!(text.contains("persist_conflicts_total 1"));
        assert!(text.contains("# TYPE persist_http_request_duration_seconds histogram"));
        assert!(text.contains("# UNIT persist_http_request_duration_seconds seconds"));
        assert!(
            text.contains("# HELP persist_pushes Pushes answered.\n# TYPE persist_pushes counter")
        );
        assert!(text.contains("persist_event_streams 1"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
