//! Logs and traces: the `tracing` subscriber (text or JSON lines on stderr, level from
//! `RUST_LOG`) and, with `--otlp-endpoint`, an OpenTelemetry layer exporting spans over
//! OTLP/gRPC. Without the flag no exporter, layer or propagator exists at all.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::{LogArgs, LogFormat};

/// The exporter of a process that traces; shut it down before exiting so that the last
/// spans are sent.
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Send the spans still buffered and stop the exporter (blocking: call it from a
    /// blocking thread).
    pub fn shutdown(self) {
        if let Some(provider) = self.0 {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "the OTLP exporter did not shut down cleanly");
            }
        }
    }
}

/// Install the subscriber for `log`. Must run inside the tokio runtime (the OTLP exporter
/// is a tonic client).
///
/// # Errors
/// When `--otlp-endpoint` is not a usable endpoint.
pub fn init(log: &LogArgs) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = match log.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let Some(endpoint) = &log.otlp_endpoint else {
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init();
        return Ok(Telemetry(None));
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("gist").build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // Spans go to OpenTelemetry from INFO up, whatever RUST_LOG says of the logs.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("gist"))
        .with_filter(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    crate::server::trace::enable();
    tracing::info!(%endpoint, "exporting traces over OTLP/gRPC");
    Ok(Telemetry(Some(provider)))
}
