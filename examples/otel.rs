//! fncache's spans exported with OpenTelemetry.
//!
//! Run with `cargo run -p fncache-observe --example otel`: each cached call is a span
//! `fncache.call` (attributes `cache`, `function`, `outcome`, `store_seconds`) with the store
//! ops as `trace` events in it; here they are printed by OpenTelemetry's stdout exporter. For a
//! collector, put an OTLP exporter (`opentelemetry-otlp`) where the stdout one is.
//!
//! fncache's spans are at `debug` and its store events at `trace`: a filter on the target
//! `fncache` chooses them (and costs the calls nothing when it leaves them out).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("fncache-example")))
        .with(
            Targets::new()
                .with_target("fncache", LevelFilter::TRACE)
                .with_target("otel", LevelFilter::INFO),
        );
    tracing::subscriber::with_default(subscriber, || -> Result<(), fncache::Error> {
        let cache = fncache::Cache::builder("otel-example")
            .memory()
            .build_blocking()?;
        // The caller's span is the parent of the cache's spans, and the cache's span the
        // parent of the function's.
        let _request = tracing::info_span!(target: "otel", "request").entered();
        for _ in 0..2 {
            cache.get_or_compute("square", &(12u64,), || {
                tracing::info!(target: "otel", "computing");
                144u64
            })?;
        }
        Ok(())
    })?;
    // Exports what is still buffered.
    provider.shutdown()?;
    Ok(())
}
