//! OpenTelemetry traces of requests, when `--otlp-endpoint` is on (the binary installs the
//! exporter and calls [`enable`]): the caller's W3C `traceparent` (gRPC metadata, or the
//! HTTP header of the same name) becomes the parent of gist's `rpc` span, and each answered
//! request gets child spans for its queue wait, its batch's formation and the model's time,
//! placed at the instants the model thread measured, with the batch size and the request
//! id as attributes.
//!
//! Off by default, and then free: no layer is installed, nothing is parsed, no span is built;
//! each request pays one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::MetadataMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::worker::Timing;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turn request tracing on (the binary does, once the OTLP exporter is installed as the
/// global tracer provider and the tracing subscriber has its OpenTelemetry layer).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether request tracing is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Reads `traceparent` / `tracestate` from gRPC metadata (HTTP headers become metadata too).
struct Metadata<'a>(&'a MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Make the caller's trace (if it sent a valid `traceparent`) the parent of `span`.
pub(crate) fn set_parent(span: &tracing::Span, metadata: &MetadataMap) {
    if !enabled() || metadata.get("traceparent").is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Metadata(metadata));
    let _ = span.set_parent(parent);
}

/// The child spans of one answered request under `span`: `queue_wait`, `batch_formation`
/// and `model`, at the instants in `timing`.
pub(crate) fn children(span: &tracing::Span, request_id: &str, timing: &Timing) {
    if !enabled() {
        return;
    }
    let Some(model_started) = timing.model_started else {
        return;
    };
    let parent = span.context();
    let tracer = opentelemetry::global::tracer("gist");
    // Instants have no calendar time: place them relative to one reading of both clocks.
    let (now, wall) = (Instant::now(), SystemTime::now());
    let at = |instant: Instant| wall - now.saturating_duration_since(instant);
    let formation_start = model_started - timing.formation;
    let enqueued = model_started - timing.queue;
    let attributes = [
        KeyValue::new("gist.request_id", request_id.to_string()),
        KeyValue::new("gist.batch_size", timing.batch_size as i64),
    ];
    for (name, start, end) in [
        ("queue_wait", enqueued, formation_start),
        ("batch_formation", formation_start, model_started),
        ("model", model_started, model_started + timing.inference),
    ] {
        let mut child = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(at(start))
            .with_attributes(attributes.to_vec())
            .start_with_context(&tracer, &parent);
        child.end_with_timestamp(at(end));
    }
}
