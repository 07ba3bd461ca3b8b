//! OpenTelemetry: the real `gist serve --otlp-endpoint` exports its spans to a receiver
//! built here from the official collector protos (`opentelemetry-proto`'s TraceService, a
//! tonic server on port 0). A gRPC call and an HTTP call, each with its own W3C
//! `traceparent`, must come back as gist spans in the caller's trace, parented to the
//! caller's span, each with queue_wait, batch_formation and model children that carry the
//! batch size and the request id; an NDJSON batch is one span with those children per item.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::common::{curl, HANG_GUARD};
use gist::pb;

/// The collector side of OTLP/gRPC: every export request is handed to the test.
struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone())
}

/// The spans of `trace_id`: gist's span under the caller's `parent`, named `rpc`, and its
/// three children with `request_id`.
fn check_trace(spans: &[Span], trace_id: &str, parent: &str, rpc: &str, request_id: &str) {
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    let server = trace
        .iter()
        .find(|s| hex(&s.parent_span_id) == parent)
        .unwrap_or_else(|| panic!("no span of {trace_id} under the caller's {parent}: {names:?}"));
    assert_eq!(server.name, rpc);
    assert_eq!(
        attribute(server, "request_id"),
        Some(Value::StringValue(request_id.into()))
    );
    let mut children: Vec<&Span> = trace
        .iter()
        .copied()
        .filter(|s| s.parent_span_id == server.span_id)
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    let child_names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        child_names,
        ["queue_wait", "batch_formation", "model"],
        "{names:?}"
    );
    for child in &children {
        assert_eq!(
            attribute(child, "gist.request_id"),
            Some(Value::StringValue(request_id.into()))
        );
        assert!(
            matches!(attribute(child, "gist.batch_size"), Some(Value::IntValue(n)) if n >= 1),
            "{child:?}"
        );
        assert!(child.start_time_unix_nano <= child.end_time_unix_nano);
        assert!(child.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= server.end_time_unix_nano);
    }
    // One after the other: the queue wait ends where the batch's forming begins, and that
    // where the model starts.
    assert_eq!(
        children[0].end_time_unix_nano,
        children[1].start_time_unix_nano
    );
    assert_eq!(
        children[1].end_time_unix_nano,
        children[2].start_time_unix_nano
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_in_the_callers_trace() {
    let (spans_tx, mut spans_rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(spans_tx)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gist"))
        .args(["serve", "--engine", "fake", "--log-format", "json"])
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--otlp-endpoint", &format!("http://{receiver}")])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut grpc, mut http) = (None, None);
    let started = async {
        while grpc.is_none() || http.is_none() {
            let line = lines.next_line().await.unwrap().expect("gist serve exited");
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            let message = json["fields"]["message"].as_str().unwrap_or("");
            let address = json["fields"]["address"].as_str().map(str::to_string);
            if message.starts_with("listening") {
                grpc = address;
            } else if message.starts_with("HTTP/JSON API") {
                http = address;
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, started).await.unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (grpc, http) = (grpc.unwrap(), http.unwrap());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    crate::common::health_becomes(
        channel.clone(),
        "gist.v1.Summarizer",
        tonic_health::pb::health_check_response::ServingStatus::Serving,
    )
    .await;

    // A gRPC caller in trace 4bf9…, its span 00f0…
    let (grpc_trace, grpc_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut request = tonic::Request::new(pb::SummarizeRequest {
        text: "He met Imran Khan. They spoke about trade.".into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-{grpc_parent}-01").parse().unwrap(),
    );
    request
        .metadata_mut()
        .insert("x-request-id", "otel-grpc".parse().unwrap());
    pb::summarizer_client::SummarizerClient::new(channel)
        .summarize(request)
        .await
        .unwrap();

    // An HTTP caller in another trace.
    let (http_trace, http_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let answer = curl(&[
        &format!("http://{http}/v1/entities"),
        "-H",
        &format!("traceparent: 00-{http_trace}-{http_parent}-01"),
        "-H",
        "X-Request-Id: otel-http",
        "-d",
        r#"{"text": "He met Imran Khan in Islamabad."}"#,
    ])
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // An NDJSON batch in a third trace: one span for the stream, children per item.
    let (batch_trace, batch_parent) = ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174");
    let answer = curl(&[
        &format!("http://{http}/v1/entities:batch"),
        "-H",
        &format!("traceparent: 00-{batch_trace}-{batch_parent}-01"),
        "--data-binary",
        "{\"id\": \"item-1\", \"text\": \"He met Imran Khan.\"}\n{\"id\": \"item-2\", \"text\": \"Li Keqiang spoke.\"}\n",
    ])
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body.lines().count(), 2, "{answer:?}");

    // SIGTERM: gist drains, then flushes its exporter before it exits.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(HANG_GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut spans = Vec::new();
    while let Ok(export) = spans_rx.try_recv() {
        for resource in export.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone());
            assert_eq!(service, Some(Value::StringValue("gist".into())));
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
    }
    check_trace(&spans, grpc_trace, grpc_parent, "Summarize", "otel-grpc");
    check_trace(
        &spans,
        http_trace,
        http_parent,
        "ExtractEntities",
        "otel-http",
    );
    let stream = spans
        .iter()
        .find(|s| hex(&s.trace_id) == batch_trace && hex(&s.parent_span_id) == batch_parent)
        .expect("the batch's stream span under the caller's span");
    assert_eq!(stream.name, "ExtractEntitiesStream");
    for item in ["item-1", "item-2"] {
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == stream.span_id)
            .filter(|s| attribute(s, "gist.request_id") == Some(Value::StringValue(item.into())))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(children.len(), 3, "{item}: {children:?}");
        for name in ["queue_wait", "batch_formation", "model"] {
            assert!(children.contains(&name), "{item}: {children:?}");
        }
    }
}
