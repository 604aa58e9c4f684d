//! fncache's metrics on a Prometheus endpoint.
//!
//! Run with `cargo run -p fncache-observe --example prometheus` and open
//! <http://127.0.0.1:9000/metrics> (or scrape it); `-- --once` prints the page and exits.
//!
//! fncache records through the `metrics` facade (its `metrics` feature); any recorder works.
//! This one is `metrics-exporter-prometheus`, rendering the text format. An application would
//! usually let the exporter serve the page itself (its default `http-listener` feature:
//! `PrometheusBuilder::new().with_http_listener(addr).install()`); the example serves it with
//! std's `TcpListener` so that the workspace does not build an HTTP stack for it.
//!
//! Install the recorder before building caches: fncache registers its handles when a cache is
//! built and when it first sees a function, and handles taken before a recorder exists count
//! nowhere.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prometheus = PrometheusBuilder::new()
        // Store latency as a histogram with these buckets (seconds), rather than a summary.
        .set_buckets_for_metric(
            Matcher::Full("fncache_store_seconds".into()),
            &[0.000_01, 0.000_1, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5],
        )?
        .install_recorder()?;

    let cache = fncache::Cache::builder("prometheus-example")
        .memory()
        .build_blocking()?;
    for i in 0..10u64 {
        let x = i % 3;
        cache.get_or_compute("square", &(x,), || x * x)?;
    }

    if std::env::args().any(|a| a == "--once") {
        print!("{}", prometheus.render());
        return Ok(());
    }
    let listener = TcpListener::bind("127.0.0.1:9000")?;
    println!("metrics on http://127.0.0.1:9000/metrics");
    for stream in listener.incoming() {
        let mut stream = stream?;
        // Read the request head (whatever it asks for, the answer is the metrics page).
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        // Every visit is a call too: watch the counters move.
        cache.get_or_compute("square", &(7u64,), || 49u64)?;
        let body = prometheus.render();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
