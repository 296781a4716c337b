//! Prometheus metrics and `/metrics`. (Skeleton; issue 23's metrics work fills it.)

/// `[metrics]`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {}

/// The server's metrics.
pub struct Metrics {}

impl Metrics {
    pub fn new(_settings: &MetricsSettings) -> Metrics {
        Metrics {}
    }
}
