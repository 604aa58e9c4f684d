//! Nothing here: this crate holds fncache's tests and examples of tracing and metrics, whose
//! dependencies (a metrics recorder, OpenTelemetry, a Prometheus exporter) only they build.
