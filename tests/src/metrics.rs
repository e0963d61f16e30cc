//! What the processes' `/metrics` endpoints report, summed the way a test
//! asks about it: one metric, over the samples whose labels match.

use prometheus_parse::{Scrape, Value};

/// One or more scrapes, read together (say, every gateway's).
pub struct Metrics(Vec<Scrape>);

impl Metrics {
    /// One scrape of a `/metrics` endpoint.
    pub async fn scrape(url: &str) -> Self {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("valid Prometheus text format");
        Self(vec![scrape])
    }

    /// Several processes' scrapes, summed together.
    pub fn merge(all: impl IntoIterator<Item = Metrics>) -> Self {
        Self(all.into_iter().flat_map(|m| m.0).collect())
    }

    /// Every metric name served, once per sample.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|s| s.samples.iter().map(|sample| sample.metric.as_str()))
    }

    /// Sum of a counter, gauge or histogram count over samples whose labels
    /// match (a histogram's sum is the untyped sample `<name>_sum`).
    pub fn total(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(metric, labels)
            .map(|value| match value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// Observations of histogram `metric` at or below its bucket bound `le`,
    /// over the samples whose labels match.
    pub fn at_most(&self, metric: &str, labels: &[(&str, &str)], le: f64) -> f64 {
        self.matching(metric, labels)
            .filter_map(|value| match value {
                Value::Histogram(buckets) => buckets.iter().find(|b| b.less_than == le),
                _ => None,
            })
            .map(|b| b.count)
            .sum()
    }

    /// The values of `metric`'s samples whose labels match.
    fn matching<'a>(
        &'a self,
        metric: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.0
            .iter()
            .flat_map(|s| &s.samples)
            .filter(move |s| s.metric == metric)
            .filter(move |s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| &s.value)
    }
}
