//! Prometheus metrics made and registered in one call, so a process's metric set is a list of
//! names, help texts and labels rather than a constructor and a registration apart. Names and
//! labels are each process's own; the text exposition is sorted by name, so the order metrics are
//! made in does not show.

use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder, core::Collector,
};

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric registry: every method makes one metric and registers it. Names are fixed in the
/// code, so an invalid or repeated one is a bug and panics at start.
#[derive(Default)]
pub struct Registry(prometheus::Registry);

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn register<M: Collector + Clone + 'static>(&self, metric: M) -> M {
        self.0
            .register(Box::new(metric.clone()))
            .expect("unique metric names");
        metric
    }

    /// An integer counter per label set.
    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// An integer counter per label set, exposed divided by `scale`: an amount counted exactly in
    /// small units (nano-dollars) and shown in large ones (dollars), so the exposition never
    /// carries the error a float accumulates over many additions (`0.008556000000000008`).
    /// Exact to 2^53 units.
    pub fn scaled_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        scale: u64,
    ) -> IntCounterVec {
        let inner = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.0
            .register(Box::new(Scaled {
                inner: inner.clone(),
                scale: scale as f64,
            }))
            .expect("unique metric names");
        inner
    }

    /// An integer counter.
    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("valid metric"))
    }

    /// A floating-point counter per label set.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        self.register(CounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// An integer gauge.
    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("valid metric"))
    }

    /// An integer gauge per label set.
    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// A floating-point gauge per label set.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    /// A histogram with `buckets` (upper bounds, ascending).
    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.register(Histogram::with_opts(opts).expect("valid metric"))
    }

    /// A histogram with `buckets` (upper bounds, ascending) per label set.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        self.register(HistogramVec::new(opts, labels).expect("valid metric"))
    }

    /// Prometheus text exposition of every metric (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.0.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

/// An integer counter exposed divided by a scale.
struct Scaled {
    inner: IntCounterVec,
    scale: f64,
}

impl Collector for Scaled {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.inner.collect();
        for family in &mut families {
            for metric in family.mut_metric() {
                let mut scaled = prometheus::proto::Counter::default();
                scaled.set_value(metric.get_counter().get_value() / self.scale);
                metric.set_counter(scaled);
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_counter_adds_exactly_and_shows_the_large_unit() {
        let r = Registry::new();
        let spend = r.scaled_counter_vec("test_usd_total", "USD", &["key"], 1_000_000_000);
        // 600 × $0.00001426 added as floats shows 0.008556000000000008.
        for _ in 0..600 {
            spend.with_label_values(&["k"]).inc_by(14_260);
        }
        let text = r.render();
        assert!(
            text.contains("test_usd_total{key=\"k\"} 0.008556\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE test_usd_total counter"), "{text}");
    }

    #[test]
    fn metrics_render_sorted_by_name_whatever_order_they_were_made_in() {
        let r = Registry::new();
        let b = r.int_counter_vec("test_b_total", "B", &["kind"]);
        let a = r.int_gauge("test_a", "A");
        b.with_label_values(&["x"]).inc();
        a.set(3);
        let text = r.render();
        let a_at = text.find("test_a 3").expect("gauge rendered");
        let b_at = text
            .find("test_b_total{kind=\"x\"} 1")
            .expect("counter rendered");
        assert!(a_at < b_at, "{text}");
    }

    #[test]
    #[should_panic(expected = "unique metric names")]
    fn a_name_made_twice_is_a_bug() {
        let r = Registry::new();
        r.int_gauge("test_twice", "once");
        r.int_gauge("test_twice", "twice");
    }
}
