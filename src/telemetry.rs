//! Logs to stderr always; spans to an OpenTelemetry collector (Jaeger, Tempo, an OTel collector) over
//! OTLP/HTTP when an endpoint is configured, so a CRM that traces its own calls sees huixi's too.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Keeps the span exporter alive; dropping it flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: could not flush traces: {e}");
            }
        }
    }
}

/// `otlp`: the collector's base URL (e.g. http://jaeger:4318); spans go to `<otlp>/v1/traces`.
pub fn init(default_level: &str, otlp: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let provider = match otlp {
        Some(base) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')))
                .build()
                .map_err(|e| anyhow::anyhow!("OTLP exporter for {base}: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name("huixi")
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        None => None,
    };
    // Traces keep huixi's info spans whatever the log level: -v changes what is printed, not what a
    // collector receives.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("huixi"))
            .with_filter(EnvFilter::new("huixi=info"))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    Ok(Telemetry { provider })
}
