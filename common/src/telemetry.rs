//! Logging and tracing: human-readable or JSON log lines, OpenTelemetry spans (exported over
//! OTLP when an endpoint is configured), and W3C `traceparent` propagation so one trace id
//! follows a command from gRPC through Kafka into every projection.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};
use crate::{Error, Result};

/// Keeps the tracer provider alive; flushes spans when dropped. Hold it in `main`.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.tracer_provider.shutdown() {
            eprintln!("telemetry shutdown: {error}");
        }
    }
}

/// Installs the global subscriber for `service_name`. Spans always get OpenTelemetry trace
/// ids (so `traceparent` headers are written even without a collector); they are exported
/// only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `extra_layer` lets a service add a
/// layer of its own (the audit log shipper).
pub fn init_telemetry(service_name: &str, config: &TelemetryConfig) -> Result<TelemetryGuard> {
    let mut provider_builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service_name.to_owned()).build());
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| Error::Config(format!("OTLP exporter for {endpoint}: {error}")))?;
        provider_builder = provider_builder.with_batch_exporter(exporter);
    }
    let tracer_provider = provider_builder.build();
    let tracer = tracer_provider.tracer(service_name.to_owned());
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| Error::Config(format!("log filter {:?}: {error}", config.log_filter)))?;
    let format_layer = match config.log_format {
        LogFormat::Text => {
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let layer = tracing_subscriber::fmt::layer().with_target(true).with_ansi(terminal);
            if terminal {
                layer.with_writer(std::io::stderr).boxed()
            } else {
                // Log files and pipes: field values come from callers (a username at log-in),
                // so control characters are escaped and one event stays one line.
                layer.with_writer(|| ControlEscapingWriter(std::io::stderr())).boxed()
            }
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).boxed(),
    };
    let log_shipping_layer = crate::log_shipping::layer(service_name, config.log_shipping.as_ref());
    tracing_subscriber::registry()
        .with(filter)
        .with(format_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(log_shipping_layer)
        .try_init()
        .map_err(|error| Error::Config(format!("installing the tracing subscriber: {error}")))?;
    Ok(TelemetryGuard { tracer_provider })
}

/// A writer that writes each formatted log event with its control characters escaped
/// (`\n` as `\\n`, ESC as `\\x1b`, NUL as `\\x00`; tabs kept) except the newline that ends
/// it, so a value a caller chose can neither start a forged line nor send terminal escape
/// sequences to whoever reads the log.
#[derive(Debug)]
pub struct ControlEscapingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for ControlEscapingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let (body, ending) = match buffer.split_last() {
            Some((b'\n', body)) => (body, &b"\n"[..]),
            _ => (buffer, &b""[..]),
        };
        if !body.iter().any(|byte| is_escaped_control(*byte)) {
            self.0.write_all(buffer)?;
            return Ok(buffer.len());
        }
        let mut escaped = Vec::with_capacity(buffer.len() + 16);
        for byte in body {
            match *byte {
                b'\n' => escaped.extend_from_slice(b"\\n"),
                b'\r' => escaped.extend_from_slice(b"\\r"),
                control if is_escaped_control(control) => escaped.extend_from_slice(format!("\\x{control:02x}").as_bytes()),
                other => escaped.push(other),
            }
        }
        escaped.extend_from_slice(ending);
        self.0.write_all(&escaped)?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn is_escaped_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// Returns the W3C `traceparent` of `span`, when it has a valid OpenTelemetry context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    span_context.is_valid().then(|| format!("00-{}-{}-{:02x}", span_context.trace_id(), span_context.span_id(), span_context.trace_flags().to_u8()))
}

/// Makes `span` a child of the remote span in `traceparent` (from a gRPC metadata entry or a
/// Kafka header). A malformed value is ignored: tracing never fails a request.
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    let Some(span_context) = parse_traceparent(traceparent) else {
        return;
    };
    let parent = opentelemetry::Context::new().with_remote_span_context(span_context);
    let _ = span.set_parent(parent);
}

fn parse_traceparent(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let trace_id = TraceId::from_hex(parts.next()?).ok()?;
    let span_id = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    if version != "00" || trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::default()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    #[test]
    fn a_forged_line_or_escape_sequence_in_a_field_stays_inside_one_escaped_line() {
        let mut written = Vec::new();
        let event = "INFO login refused username=zz\n2026-11-30T19:00:00Z INFO FORGED\u{1b}[2J\0 tab\there\n";
        ControlEscapingWriter(&mut written).write_all(event.as_bytes()).expect("written");
        let text = String::from_utf8(written).expect("utf-8");
        assert_eq!(text, "INFO login refused username=zz\\n2026-11-30T19:00:00Z INFO FORGED\\x1b[2J\\x00 tab\there\n");
        assert_eq!(text.lines().count(), 1);
    }
    use super::*;

    #[test]
    fn traceparent_parsing_accepts_w3c_and_rejects_garbage() {
        let parsed = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(parsed.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("nonsense").is_none());
    }
}
