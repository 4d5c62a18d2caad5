//! Log shipping: a tracing layer that sends every log line of level INFO and above to
//! `audit.logs` (key = service name), where the audit service stores it beside the events.
//! Each record's value is the line as a JSON object, tagged `content-type: application/json`
//! so readers such as `chatvault topics tail` know it is not protobuf.
//!
//! It never blocks the service: the layer formats the line and `try_send`s it into a bounded
//! channel; one thread hands lines to a librdkafka producer with a bounded queue and a short
//! message timeout. A full channel, a full producer queue or a failed delivery (Kafka away)
//! drops the line and counts it in `chatvault_log_lines_dropped_total`; delivered lines count
//! in `chatvault_log_lines_shipped_total`.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use prometheus::IntCounter;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::envelope::{Envelope, ACTOR, CONTENT_TYPE, JSON_CONTENT_TYPE};

/// Lines waiting for the producer thread at most.
const CHANNEL_CAPACITY: usize = 8192;

/// Log lines dropped: channel full, producer queue full, or delivery failed.
pub static LOG_LINES_DROPPED: LazyLock<IntCounter> =
    LazyLock::new(|| register_counter("chatvault_log_lines_dropped_total", "log lines not shipped to audit.logs (queue full or Kafka unavailable)"));

/// Log lines delivered to `audit.logs`.
pub static LOG_LINES_SHIPPED: LazyLock<IntCounter> =
    LazyLock::new(|| register_counter("chatvault_log_lines_shipped_total", "log lines delivered to audit.logs"));

fn register_counter(name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("metric definition is valid");
    // A second registration (two services in one test process) keeps the first counter.
    let _ = prometheus::default_registry().register(Box::new(counter.clone()));
    counter
}

/// Where log lines go.
#[derive(Clone, Debug)]
pub struct LogShippingConfig {
    pub brokers: String,
    /// Full topic name (prefix included).
    pub topic: String,
}

/// One formatted log line.
#[derive(Debug)]
struct LogLine {
    level: Level,
    json: String,
    traceparent: Option<String>,
}

/// The layer; create it with [`start`].
#[derive(Debug)]
pub struct LogShippingLayer {
    /// `None` when shipping is off or could not start: the layer then does nothing.
    sender: Option<SyncSender<LogLine>>,
    service: String,
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
    /// Events of this target are not shipped (see [`skipped_target_of`]).
    skipped_target: Option<&'static str>,
}

/// Returns the layer feeding `config`'s topic (starting the shipping thread), or a layer
/// that does nothing when `config` is `None`. Always installing the layer (rather than an
/// `Option` of it) matters: `Option<Layer>` does not forward `on_register_dispatch`, which
/// the trace-id lookup needs.
pub fn layer(service: &str, config: Option<&LogShippingConfig>) -> LogShippingLayer {
    let sender = config.and_then(|config| start(service, config));
    LogShippingLayer { sender, service: service.to_owned(), dispatch: OnceLock::new(), skipped_target: skipped_target_of(service) }
}

/// The audit service consumes `audit.logs`; its projection logs one line per applied trace,
/// which, shipped, would come back as a record of the same trace and be logged again: a
/// loop. Its projection lines therefore stay local.
fn skipped_target_of(service: &str) -> Option<&'static str> {
    (service == "audit").then_some("chatvault_common::projection")
}

/// Starts the shipping thread and returns the sender feeding it; `None` (with a message on
/// stderr) when the producer cannot be created.
fn start(service: &str, config: &LogShippingConfig) -> Option<SyncSender<LogLine>> {
    let producer: ThreadedProducer<CountingContext> = match ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", format!("chatvault-{service}-logs"))
        .set("acks", "1")
        .set("linger.ms", "50")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "20000")
        .set("queue.buffering.max.kbytes", "16384")
        // Lines older than this are dropped (and counted) rather than kept for a broker
        // that may not come back soon.
        .set("message.timeout.ms", "15000")
        .create_with_context(CountingContext)
    {
        Ok(producer) => producer,
        Err(error) => {
            eprintln!("log shipping disabled: {error}");
            return None;
        }
    };
    let (sender, receiver) = sync_channel(CHANNEL_CAPACITY);
    let topic = config.topic.clone();
    let service_name = service.to_owned();
    let spawned = std::thread::Builder::new().name("log-shipping".to_owned()).spawn(move || ship_lines(receiver, producer, &topic, &service_name));
    if let Err(error) = spawned {
        eprintln!("log shipping disabled: {error}");
        return None;
    }
    Some(sender)
}

fn ship_lines(receiver: Receiver<LogLine>, producer: ThreadedProducer<CountingContext>, topic: &str, service: &str) {
    while let Ok(line) = receiver.recv() {
        let headers = log_line_headers(line.level, service, line.traceparent);
        let record = BaseRecord::to(topic).key(service).payload(&line.json).headers(headers);
        if producer.send(record).is_err() {
            LOG_LINES_DROPPED.inc();
        }
    }
    // The layer is gone (process exit): give queued lines a moment.
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(2));
}

/// Returns the headers of one log line's record: the envelope (`event-type` `log.<LEVEL>`,
/// `producer` the service, `actor` `system:<service>`), with `content-type: application/json` in place of
/// the envelope's protobuf one, since the value is the line as JSON.
fn log_line_headers(level: Level, service: &str, traceparent: Option<String>) -> OwnedHeaders {
    let envelope = Envelope::new(format!("log.{level}"), service, traceparent);
    let envelope_headers = envelope.to_headers();
    let mut headers = OwnedHeaders::new_with_capacity(envelope_headers.count() + 1);
    for header in envelope_headers.iter().filter(|header| header.key != CONTENT_TYPE && header.key != ACTOR) {
        headers = headers.insert(header);
    }
    headers
        .insert(Header { key: CONTENT_TYPE, value: Some(JSON_CONTENT_TYPE.as_bytes()) })
        // `system:` names the service's own work; usernames hold no `:`, so no account can
        // take a service's name and read its log lines as its own audit trail.
        .insert(Header { key: ACTOR, value: Some(system_actor(service).as_bytes()) })
}

/// Returns the actor of a service's own work, as `system:storage`.
pub fn system_actor(service: &str) -> String {
    format!("system:{service}")
}

/// Counts deliveries and failures.
#[derive(Debug)]
struct CountingContext;

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match delivery_result {
            Ok(_) => LOG_LINES_SHIPPED.inc(),
            Err(_) => LOG_LINES_DROPPED.inc(),
        }
    }
}

/// Collects an event's fields as JSON.
struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), serde_json::Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), serde_json::Value::String(format!("{value:?}")));
    }
}

impl LogShippingLayer {
    /// Returns the `traceparent` of the current span, when the OpenTelemetry layer gave it one.
    fn current_traceparent<S>(&self, context: &Context<'_, S>) -> Option<String>
    where
        S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    {
        let span = context.lookup_current()?;
        let dispatch = self.dispatch.get()?.upgrade()?;
        let otel_context = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)?;
        let otel_span = otel_context.span();
        let span_context = otel_span.span_context();
        span_context
            .is_valid()
            .then(|| format!("00-{}-{}-{:02x}", span_context.trace_id(), span_context.span_id(), span_context.trace_flags().to_u8()))
    }
}

impl<S> Layer<S> for LogShippingLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let Some(sender) = &self.sender else { return };
        let metadata = event.metadata();
        // More verbose levels compare greater: skip DEBUG and TRACE.
        let skipped = self.skipped_target.is_some_and(|target| metadata.target() == target);
        if *metadata.level() > Level::INFO || metadata.target().starts_with("rdkafka") || skipped {
            return;
        }
        let mut fields = serde_json::Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let traceparent = self.current_traceparent(&context);
        // The span's trace id, else one the event names itself (a projection applying
        // records of another trace logs it as a field).
        let trace_id = traceparent
            .as_deref()
            .and_then(crate::envelope::trace_id_of)
            .map(str::to_owned)
            .or_else(|| fields.get("trace_id").and_then(|value| value.as_str()).map(str::to_owned));
        let line = serde_json::json!({
            "trace_id": trace_id,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "service": self.service,
            "level": metadata.level().as_str(),
            "target": metadata.target(),
            "fields": fields,
        });
        let outcome = sender.try_send(LogLine { level: *metadata.level(), json: line.to_string(), traceparent });
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = outcome {
            LOG_LINES_DROPPED.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let (sender, receiver) = sync_channel(2);
        let layer = LogShippingLayer { sender: Some(sender), service: "test".to_owned(), dispatch: OnceLock::new(), skipped_target: None };
        let subscriber = tracing_subscriber::registry().with(layer);
        let dropped_before = LOG_LINES_DROPPED.get();
        tracing::subscriber::with_default(subscriber, || {
            for index in 0..5 {
                tracing::info!(index, "line");
            }
            tracing::debug!("not shipped");
        });
        assert_eq!(LOG_LINES_DROPPED.get() - dropped_before, 3);
        let first: serde_json::Value = serde_json::from_str(&receiver.recv().expect("a line").json).expect("json");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["fields"]["message"], "line");
        assert_eq!(first["fields"]["index"], 0);
    }

    #[test]
    fn log_lines_are_tagged_json_with_the_service_as_actor() {
        use crate::envelope::{header_text, EVENT_TYPE, PRODUCER, PROTOBUF_CONTENT_TYPE, TRACEPARENT};
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = log_line_headers(Level::WARN, "ingest", Some(traceparent.to_owned()));
        assert_eq!(header_text(&headers, CONTENT_TYPE), Some(JSON_CONTENT_TYPE));
        assert_eq!(header_text(&headers, EVENT_TYPE), Some("log.WARN"));
        assert_eq!(header_text(&headers, PRODUCER), Some("ingest"));
        assert_eq!(header_text(&headers, ACTOR), Some("system:ingest"));
        assert_eq!(header_text(&headers, TRACEPARENT), Some(traceparent));
        let content_types = headers.iter().filter(|header| header.key == CONTENT_TYPE).count();
        assert_eq!(content_types, 1, "one content type, not the envelope's {PROTOBUF_CONTENT_TYPE} beside it");
        let actors = headers.iter().filter(|header| header.key == ACTOR).count();
        assert_eq!(actors, 1);
    }

    #[test]
    fn the_audit_service_does_not_ship_its_own_projection_lines() {
        assert_eq!(skipped_target_of("audit"), Some("chatvault_common::projection"));
        assert_eq!(skipped_target_of("storage"), None);
    }
}
