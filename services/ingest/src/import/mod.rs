//! Imports of Telegram Desktop exports.
//!
//! A parser thread reads the export as a stream (bounded memory whatever its size), maps
//! each chat and message to its event and encodes it; the async side publishes the encoded
//! records as a staged import ([`chatvault_common::staged`]): every record goes out at once,
//! no Kafka transaction stays open while the export is read, and read models apply the
//! import only when its commit markers follow, which happens only when the whole export
//! parsed cleanly and Kafka acknowledged every record. A broken export, a cancelled import
//! or a crashed ingest is never applied, and never holds back anyone else's events.

pub mod attachments;
mod event_mapping;
pub mod source;
pub mod upload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chatvault_common::config::KafkaConfig;
use chatvault_common::topics::CHAT_EVENTS;
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::{ImportProgress, ImportSummary, WarningCount};
use telegram_export::{ExportEvent, MessageKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use attachments::AttachmentStore;
use chatvault_common::staged::{chat_import_committed, StagedPublisher};
pub use event_mapping::{chat_imported_event, message_posted_event, EncodedEvent, CHAT_IMPORTED_TYPE, MESSAGE_POSTED_TYPE};
use source::{export_bytes_total, ExportReader};
pub use source::{locate_export, locate_server_export, ExportSource};

/// Records handed from the parser thread to the publisher at a time.
const RECORDS_PER_BATCH: usize = 1024;
/// Batches in flight between the parser thread and the publisher: with the producer's own
/// bounded queue this keeps the import's memory flat.
const BATCHES_IN_CHANNEL: usize = 4;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// One import to run.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub import_id: String,
    /// The export to read.
    pub source: ExportSource,
    pub local_utc_offset_seconds: i32,
    /// The chat id of a single-chat HTML export (HTML does not carry it).
    pub html_chat_id: Option<i64>,
    /// Who imports (the caller's username): the owner of the archive the import adds to
    /// and of its stored attachments.
    pub owner: String,
    /// Where attachments are stored; `None` imports messages only.
    pub attachments: Option<crate::files::FileUploader>,
    /// Whose bytes the export is: decides how much a parse error may say about them.
    pub origin: ExportOrigin,
}

/// Where the export came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOrigin {
    /// A path on the server (`ImportExport`, admins only). Until the export has shown itself
    /// to be one (its first chat parsed), errors never describe the file's content: the path
    /// may name any file the service can read. Only errors about the export's shape pass
    /// (an `UnexpectedStructure` or `UnsupportedLayout`): they arise inside a well-formed
    /// object or page and name what the export format expects and the type found there,
    /// never bytes or characters of the file.
    ServerPath,
    /// The caller's own bytes, uploaded into the folder `root`. Errors give the detail the
    /// parser found, with paths relative to the upload.
    Upload { root: std::path::PathBuf },
}

impl ExportOrigin {
    /// Returns how events name `source`: its path on the server, or for an upload its path
    /// inside the upload (`upload:result.json`).
    fn label_of(&self, source: &ExportSource) -> String {
        let label = source.label();
        match self {
            ExportOrigin::ServerPath => label,
            ExportOrigin::Upload { root } => {
                let relative = std::path::Path::new(&label).strip_prefix(root).map(|path| path.display().to_string()).unwrap_or_default();
                format!("upload:{}", if relative.is_empty() { "." } else { relative.as_str() })
            }
        }
    }

    /// Returns the error a parse failure becomes for this origin. `export_recognised` says
    /// whether the export produced its first event before failing.
    fn parse_failure(&self, error: &telegram_export::ExportError, source_label: &str, export_recognised: bool) -> Error {
        match self {
            ExportOrigin::ServerPath if !export_recognised && !names_only_the_export_shape(error) => {
                tracing::info!(%error, "server path refused: not a telegram export");
                Error::InvalidArgument(format!("{source_label} is not a Telegram export (no result.json or messages.html that can be read)"))
            }
            ExportOrigin::ServerPath => Error::InvalidArgument(error.to_string()),
            ExportOrigin::Upload { root } => {
                let upload_prefix = format!("{}{}", root.display(), std::path::MAIN_SEPARATOR);
                Error::InvalidArgument(error.to_string().replace(&upload_prefix, ""))
            }
        }
    }
}

/// What the parser thread found, beside the records it sent.
#[derive(Debug, Default)]
struct ParseTotals {
    chat_ids: Vec<i64>,
    attachments: u64,
    messages: u64,
    service_messages: u64,
    warnings: BTreeMap<String, u64>,
    bytes_read: u64,
}

enum ParsedItem {
    Records(Vec<EncodedEvent>, u64),
}

/// Runs one import to its end: returns the summary once the import is committed (its
/// consistency token names the commit markers), or an error after giving it up. `on_progress` is called a few times a second.
pub async fn run_import(
    kafka: &KafkaConfig,
    request: ImportRequest,
    cancel: CancellationToken,
    on_progress: impl Fn(ImportProgress) + Send,
) -> Result<ImportSummary, Error> {
    let started = Instant::now();
    let bytes_total = export_bytes_total(&request.source);
    let topic = kafka.topic(CHAT_EVENTS);
    let mut publisher = StagedPublisher::begin(kafka, &topic, "ingest", &request.import_id).map_err(from_publisher)?;

    let (batches, mut receiver) = mpsc::channel::<ParsedItem>(BATCHES_IN_CHANNEL);
    let parser_request = request.clone();
    let parser_cancel = cancel.clone();
    let runtime = tokio::runtime::Handle::current();
    let parser = tokio::task::spawn_blocking(move || parse_and_encode(parser_request, batches, parser_cancel, runtime));

    let mut last_progress = Instant::now();
    let mut bytes_read = 0u64;
    let mut publish_error = None;
    while let Some(ParsedItem::Records(records, bytes_so_far)) = receiver.recv().await {
        bytes_read = bytes_so_far;
        if cancel.is_cancelled() {
            publish_error = Some(Error::Cancelled);
            break;
        }
        for record in &records {
            if let Err(error) = publisher.publish(&record.key, record.event_type, &record.payload).await {
                publish_error = Some(from_publisher(error));
                break;
            }
        }
        if publish_error.is_some() {
            break;
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            on_progress(progress_of(bytes_read, bytes_total, publisher.published(), started));
        }
    }
    // Dropping the receiver makes a parser that is still running stop at its next send.
    drop(receiver);
    let parse_outcome = parser.await.map_err(|error| Error::Internal(format!("parser thread: {error}")))?;
    let totals = match (publish_error, parse_outcome) {
        (None, Ok(totals)) => totals,
        (Some(error), _) | (None, Err(error)) => {
            publisher.abort();
            return Err(error);
        }
    };
    let published = publisher.published();
    let positions = publisher.commit(chat_import_committed(&request.import_id, &request.owner)).await.map_err(from_publisher)?;
    on_progress(progress_of(totals.bytes_read.max(bytes_read), bytes_total, published, started));
    Ok(ImportSummary {
        import_id: request.import_id,
        chats: totals.chat_ids.len() as u64,
        messages: totals.messages,
        service_messages: totals.service_messages,
        attachments: totals.attachments,
        warnings: totals.warnings.into_iter().map(|(kind, count)| WarningCount { kind, count }).collect(),
        consistency_token: Some(ConsistencyToken { value: positions.to_token() }),
        bytes_read: totals.bytes_read,
        seconds: started.elapsed().as_secs_f64(),
        chat_ids: totals.chat_ids,
    })
}

fn progress_of(bytes_read: u64, bytes_total: u64, published: u64, started: Instant) -> ImportProgress {
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    ImportProgress { bytes_read, bytes_total, messages_published: published, messages_per_second: published as f64 / seconds }
}

/// The parser thread: reads the export, maps and encodes every event, and hands batches to
/// the publisher. Stops early when the publisher goes away or the import is cancelled.
fn parse_and_encode(
    request: ImportRequest,
    batches: mpsc::Sender<ParsedItem>,
    cancel: CancellationToken,
    runtime: tokio::runtime::Handle,
) -> Result<ParseTotals, Error> {
    let mut reader = ExportReader::open(&request.source, request.local_utc_offset_seconds, request.html_chat_id)?;
    let mut attachments = match &request.attachments {
        Some(uploader) => Some(AttachmentStore::new(uploader.clone(), request.owner.clone(), &request.source.root(), runtime)?),
        None => None,
    };
    // An upload's label is its path inside the upload (`result.json`), never the server's
    // temporary folder: the label travels in ChatImported to every reader of the event.
    let source_label = request.origin.label_of(&request.source);
    let imported_at_unix = chrono::Utc::now().timestamp();
    let mut totals = ParseTotals::default();
    let mut records = Vec::with_capacity(RECORDS_PER_BATCH);
    let mut export_recognised = false;
    loop {
        let event = reader.next_event().map_err(|error| request.origin.parse_failure(&error, &source_label, export_recognised))?;
        let Some(event) = event else { break };
        export_recognised = true;
        match event {
            ExportEvent::ChatStarted(header) => {
                totals.chat_ids.push(header.chat_id);
                records.push(chat_imported_event(&header, &request.owner, &request.import_id, &source_label, imported_at_unix));
            }
            ExportEvent::Message(message) => {
                totals.messages += 1;
                if message.kind == MessageKind::Service {
                    totals.service_messages += 1;
                }
                for warning in &message.warnings {
                    *totals.warnings.entry(warning.kind.as_str().to_owned()).or_insert(0) += 1;
                }
                let file_id = match (&mut attachments, message.media.as_ref().and_then(|media| media.path.as_deref())) {
                    (Some(store), Some(reference)) => {
                        let mime_type = message.media.as_ref().and_then(|media| media.mime_type.as_deref());
                        match store.file_id_of(reference, mime_type)? {
                            Ok(file_id) => Some(file_id),
                            Err(skipped) => {
                                // Counted in the summary; a default export lacks most files, so not one line each.
                                tracing::debug!(reference, reason = skipped.warning_kind(), "attachment not stored");
                                *totals.warnings.entry(skipped.warning_kind().to_owned()).or_insert(0) += 1;
                                None
                            }
                        }
                    }
                    _ => None,
                };
                records.push(message_posted_event(message, file_id, &request.owner, &request.import_id));
            }
            ExportEvent::ChatFinished { .. } => {}
        }
        if records.len() >= RECORDS_PER_BATCH {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let full_batch = std::mem::replace(&mut records, Vec::with_capacity(RECORDS_PER_BATCH));
            if batches.blocking_send(ParsedItem::Records(full_batch, reader.bytes_read())).is_err() {
                return Err(Error::Cancelled);
            }
        }
    }
    totals.bytes_read = reader.bytes_read();
    if let Some(store) = attachments.as_mut() {
        // The import commits only once every attachment it links to is stored.
        store.finish()?;
    }
    totals.attachments = attachments.as_ref().map_or(0, |store| store.linked_count);
    if !records.is_empty() && batches.blocking_send(ParsedItem::Records(records, totals.bytes_read)).is_err() {
        return Err(Error::Cancelled);
    }
    Ok(totals)
}

/// Returns whether `error` names only the export format's shape (what was expected there and
/// the type found), never bytes or characters of the file.
fn names_only_the_export_shape(error: &telegram_export::ExportError) -> bool {
    matches!(error, telegram_export::ExportError::UnexpectedStructure { .. } | telegram_export::ExportError::UnsupportedLayout { .. })
}

/// Keeps Kafka's unavailability as such (UNAVAILABLE to the caller, "try again later").
fn from_publisher(error: chatvault_common::Error) -> Error {
    match error {
        chatvault_common::Error::Unavailable(message) => Error::Unavailable(message),
        chatvault_common::Error::Kafka(cause) => Error::Kafka(cause),
        other => Error::Common(other),
    }
}
