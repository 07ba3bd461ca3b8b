//! Prometheus metrics, one registry per server, served as text on a separate listener
//! (`--metrics-listen`) so scraping never competes with the gRPC port.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gist_requests_total` | counter | `rpc`, `code` |
//! | `gist_request_duration_seconds` | histogram | `rpc` |
//! | `gist_queue_duration_seconds` | histogram | `queue`, `lane`, `model` |
//! | `gist_inference_duration_seconds` | histogram (per batch) | `queue`, `model` |
//! | `gist_batch_size` | histogram | `queue` |
//! | `gist_queue_depth` | gauge | `queue`, `lane` |
//! | `gist_queue_rejections_total` | counter | `queue`, `lane` |
//! | `gist_model_info` | gauge (1 per model served) | `role`, `model`, `version`, `default` |
//! | `gist_model_load_failures_total` | counter | `role`, `model` |
//! | `gist_dropped_total` | counter | `queue`, `reason` (`deadline`, `cancelled`) |
//! | `gist_input_tokens_total` | counter | `rpc` |
//! | `gist_model_load_seconds` | gauge | |
//! | `gist_in_flight_requests` | gauge | |
//! | `process_*` (resident memory, CPU, open fds) | | |

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    queue_seconds: HistogramVec,
    inference_seconds: HistogramVec,
    batch_size: HistogramVec,
    queue_depth: IntGaugeVec,
    rejections: IntCounterVec,
    dropped: IntCounterVec,
    input_tokens: IntCounterVec,
    model_load_seconds: Gauge,
    model_info: IntGaugeVec,
    load_failures: IntCounterVec,
    in_flight: IntGauge,
    streams_open: IntGauge,
    stream_items: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

impl Metrics {
    /// A fresh registry with every gist metric (and the process collector on Linux); the
    /// depth of each of `queues` starts at 0, so dashboards see every queue from the start.
    pub fn new(queues: &[&str]) -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let requests = counter(
            "gist_requests_total",
            "Requests answered, by RPC and gRPC status code.",
            &["rpc", "code"],
        );
        let request_seconds = histogram(
            "gist_request_duration_seconds",
            "Time from receiving a request to answering it.",
            &["rpc"],
            LATENCY_BUCKETS,
        );
        let queue_seconds = histogram(
            "gist_queue_duration_seconds",
            "Time requests waited in their queue before the model ran them.",
            &["queue", "lane", "model"],
            LATENCY_BUCKETS,
        );
        let inference_seconds = histogram(
            "gist_inference_duration_seconds",
            "Time the model thread spent on one batch.",
            &["queue", "model"],
            LATENCY_BUCKETS,
        );
        let batch_size = histogram(
            "gist_batch_size",
            "Requests per batch run by the model thread.",
            &["queue"],
            BATCH_BUCKETS,
        );
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "gist_queue_depth",
                "Requests waiting in each queue, by lane.",
            ),
            &["queue", "lane"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique metric");
        let rejections = counter(
            "gist_queue_rejections_total",
            "Requests refused because their queue's lane was full (RESOURCE_EXHAUSTED).",
            &["queue", "lane"],
        );
        let dropped = counter(
            "gist_dropped_total",
            "Queued requests dropped before the model ran them.",
            &["queue", "reason"],
        );
        let input_tokens = counter(
            "gist_input_tokens_total",
            "Model tokens of the inputs answered successfully.",
            &["rpc"],
        );
        let model_load_seconds = Gauge::new(
            "gist_model_load_seconds",
            "Time it took to load the models.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(model_load_seconds.clone()))
            .expect("unique metric");
        let model_info = IntGaugeVec::new(
            Opts::new(
                "gist_model_info",
                "1 for each model served, with its version and whether it is its role's default.",
            ),
            &["role", "model", "version", "default"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(model_info.clone()))
            .expect("unique metric");
        let load_failures = counter(
            "gist_model_load_failures_total",
            "Models a reload failed to load (their old versions keep serving).",
            &["role", "model"],
        );
        let in_flight = IntGauge::new(
            "gist_in_flight_requests",
            "Requests received and not yet answered.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let streams_open = gauge("gist_streams_open", "Streams open now.");
        let stream_items = gauge(
            "gist_stream_items",
            "Items held by streams: read and not yet sent back (queued, running or waiting to be sent).",
        );
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            registry.register(Box::new(process)).expect("unique metric");
        }
        for queue in queues {
            for lane in ["interactive", "batch"] {
                queue_depth.with_label_values(&[queue, lane]).set(0);
            }
        }
        Arc::new(Metrics {
            registry,
            requests,
            request_seconds,
            queue_seconds,
            inference_seconds,
            batch_size,
            queue_depth,
            rejections,
            dropped,
            input_tokens,
            model_load_seconds,
            model_info,
            load_failures,
            in_flight,
            streams_open,
            stream_items,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding metric families to a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// A request was answered.
    pub fn answered(&self, rpc: &str, code: tonic::Code, elapsed: Duration) {
        self.requests
            .with_label_values(&[rpc, crate::pb::code_name(code)])
            .inc();
        self.request_seconds
            .with_label_values(&[rpc])
            .observe(elapsed.as_secs_f64());
    }

    /// Input tokens of a successful request.
    pub fn tokens(&self, rpc: &str, tokens: usize) {
        self.input_tokens
            .with_label_values(&[rpc])
            .inc_by(tokens as u64);
    }

    /// Requests in flight changed by `delta`.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.add(delta);
    }

    /// Streams open changed by `delta`.
    pub fn streams_open(&self, delta: i64) {
        self.streams_open.add(delta);
    }

    /// Items held by streams changed by `delta`.
    pub fn stream_items(&self, delta: i64) {
        self.stream_items.add(delta);
    }

    pub(crate) fn set_queue_depth(&self, queue: &str, lane: &str, depth: usize) {
        self.queue_depth
            .with_label_values(&[queue, lane])
            .set(depth as i64);
    }

    pub(crate) fn rejected(&self, queue: &str, lane: &str) {
        self.rejections.with_label_values(&[queue, lane]).inc();
    }

    pub(crate) fn dropped(&self, queue: &str, reason: &str) {
        self.dropped.with_label_values(&[queue, reason]).inc();
    }

    pub(crate) fn batch(&self, queue: &str, size: usize) {
        self.batch_size
            .with_label_values(&[queue])
            .observe(size as f64);
    }

    pub(crate) fn inference(&self, queue: &str, model: &str, elapsed: Duration) {
        self.inference_seconds
            .with_label_values(&[queue, model])
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn queued(&self, queue: &str, lane: &str, model: &str, waited: Duration) {
        self.queue_seconds
            .with_label_values(&[queue, lane, model])
            .observe(waited.as_secs_f64());
    }

    /// The models served now: `gist_model_info` is 1 for each (and only those).
    pub(crate) fn set_models(&self, models: &[(&str, &str, &str, bool)]) {
        self.model_info.reset();
        for (role, name, version, default) in models {
            self.model_info
                .with_label_values(&[
                    *role,
                    *name,
                    *version,
                    if *default { "true" } else { "false" },
                ])
                .set(1);
        }
    }

    /// A model (or the manifest) failed to load in a reload.
    pub(crate) fn load_failed(&self, role: &str, model: &str) {
        self.load_failures.with_label_values(&[role, model]).inc();
    }

    pub(crate) fn model_loaded(&self, elapsed: Duration) {
        self.model_load_seconds.set(elapsed.as_secs_f64());
    }
}

/// Serve `GET /metrics` (Prometheus text format) on `listener` until `shutdown`. A
/// deliberately small HTTP/1.1 responder: one request per connection, nothing else served.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // Read the request head (bounded, with a timeout against idle sockets).
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&request);
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = if line.starts_with("GET ")
                && (target == "/metrics" || target.starts_with("/metrics?"))
            {
                (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(),
                )
            } else {
                (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "gist serves metrics at GET /metrics\n".to_string(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_happened() {
        let m = Metrics::new(&["summarize", "entities", "analyze"]);
        m.answered("Summarize", tonic::Code::Ok, Duration::from_millis(12));
        m.answered("Summarize", tonic::Code::ResourceExhausted, Duration::ZERO);
        m.batch("summarize", 3);
        m.set_queue_depth("entities", "batch", 7);
        m.set_models(&[("ner", "a", "0123456789ab", true)]);
        m.load_failed("ner", "b");
        let text = m.render();
        assert!(
            text.contains(r#"gist_requests_total{code="OK",rpc="Summarize"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gist_requests_total{code="RESOURCE_EXHAUSTED",rpc="Summarize"} 1"#)
        );
        assert!(text.contains(r#"gist_batch_size_sum{queue="summarize"} 3"#));
        assert!(text.contains(r#"gist_queue_depth{lane="batch",queue="entities"} 7"#));
        assert!(text.contains(r#"gist_queue_depth{lane="interactive",queue="analyze"} 0"#));
        assert!(text.contains(
            r#"gist_model_info{default="true",model="a",role="ner",version="0123456789ab"} 1"#
        ));
        assert!(text.contains(r#"gist_model_load_failures_total{model="b",role="ner"} 1"#));
    }
}
