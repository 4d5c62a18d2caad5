//! The upload pipeline shared by gRPC `UploadFile` and REST `PUT /api/file`.

use std::sync::Arc;

use bytes::Bytes;
use chatvault_common::config::{KafkaConfig, ServiceConfig};
use chatvault_common::consistency::Positions;
use chatvault_common::topics::FILES_EVENTS;
use chatvault_file_store::directory::NodeDirectory;
use chatvault_file_store::erasure::ParityEncoder;
use chatvault_file_store::hashing::{FileHashInBackground, PartHasher};
use chatvault_file_store::layout::{DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE};
use chatvault_file_store::node_client::PartWriter;
use chatvault_file_store::placement::Placement;
use chatvault_file_store::stripes::{Stripe, StripeBuffers, StripeCutter};
use chatvault_file_store::{part_id, DATA_PARTS, PARITY_PARTS, TOTAL_PARTS};
use chatvault_proto::files::v1::{file_event, FileEvent, FilePart, FileStored, StripeLayout};
use futures::{Stream, StreamExt};
use prost::Message as _;
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;

use super::restore::RestoredIdentity;
use crate::Error;

/// Complete stripes that may wait for the next stage, per stage: with the stripe being
/// read, the one being encoded and the blocks queued for the nodes, this bounds an
/// upload's memory to a few stripes whatever the file size.
const STRIPES_WAITING: usize = 1;
/// Idle stripe buffers kept for the next stripes, over all uploads (see
/// `chatvault_file_store::stripes`).
const KEPT_STRIPE_BUFFER_BYTES: usize = 64 << 20;

/// Limits and layout of uploads.
#[derive(Clone, Copy, Debug)]
pub struct UploadSettings {
    /// `CHATVAULT_INGEST_MAX_FILE_BYTES`, default 64 GiB: larger content is refused.
    pub max_file_bytes: u64,
    /// `CHATVAULT_INGEST_STRIPE_BLOCK_BYTES`, default 1 MiB: each part's share of a stripe.
    pub block_size: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self { max_file_bytes: 64 << 30, block_size: DEFAULT_BLOCK_SIZE }
    }
}

impl UploadSettings {
    /// Reads the settings from the service configuration.
    pub fn from_config(config: &ServiceConfig) -> Result<Self, Error> {
        let defaults = Self::default();
        let settings = Self {
            max_file_bytes: config.setting("MAX_FILE_BYTES", defaults.max_file_bytes)?,
            block_size: config.setting("STRIPE_BLOCK_BYTES", defaults.block_size)?,
        };
        if settings.block_size < 2 || !settings.block_size.is_multiple_of(2) || settings.block_size > MAX_BLOCK_SIZE {
            return Err(Error::InvalidArgument(format!("CHATVAULT_INGEST_STRIPE_BLOCK_BYTES must be even, between 2 and {MAX_BLOCK_SIZE}")));
        }
        Ok(settings)
    }
}

/// Who uploads what.
#[derive(Clone, Debug)]
pub struct UploadRequest {
    pub owner: String,
    pub name: String,
    pub content_type: String,
    /// The date folder when it is not the UTC day of the upload (see [`folder_date`]).
    pub folder_date: Option<chrono::NaiveDate>,
}

/// Parses the date folder an uploader asks for: empty means the UTC day of the upload;
/// otherwise `YYYY-MM-DD`, any day up to tomorrow in UTC at `now` (the latest day any time
/// zone has reached, UTC+14). Earlier days are allowed: the folder is the uploader's own
/// filing (the Telegram bot files a message under the day it was sent, which an outage
/// can put days back); the upload time itself is kept apart, unchanged.
///
/// Errors with INVALID_ARGUMENT naming the accepted range.
pub fn folder_date(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Option<chrono::NaiveDate>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let latest = now.date_naive() + chrono::Days::new(1);
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) if date <= latest => Ok(Some(date)),
        _ => Err(Error::InvalidArgument(format!("folder_date {text:?} must be a date YYYY-MM-DD no later than {latest}"))),
    }
}

/// A stored file.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub file_id: String,
    pub size: u64,
    pub sha256: String,
    pub upload_date: String,
    pub fault_tolerance: u32,
    pub positions: Positions,
}

/// Stores uploaded files on the storage nodes and publishes them.
#[derive(Clone)]
pub struct FileUploader {
    directory: NodeDirectory,
    producer: FutureProducer,
    topic: String,
    settings: UploadSettings,
    stripe_buffers: Arc<StripeBuffers>,
}

impl std::fmt::Debug for FileUploader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FileUploader").field("topic", &self.topic).field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The parts of one upload in progress.
struct PartsInProgress {
    file_id: String,
    placement: Placement,
    writers: Vec<Option<PartWriter>>,
    hashers: Vec<PartHasher>,
    part_size: u64,
}

impl FileUploader {
    /// Returns an uploader placing parts on the nodes of `directory`.
    pub fn new(directory: NodeDirectory, kafka: &KafkaConfig, settings: UploadSettings) -> Result<Self, Error> {
        let producer = chatvault_common::kafka::idempotent_producer(kafka, "chatvault-ingest-files")?;
        Ok(Self { directory, producer, topic: kafka.topic(FILES_EVENTS), settings, stripe_buffers: StripeBuffers::new(KEPT_STRIPE_BUFFER_BYTES) })
    }

    /// Returns the upload settings.
    pub fn settings(&self) -> UploadSettings {
        self.settings
    }

    /// Stores the file whose bytes `body` yields; returns it once it is published.
    pub async fn upload<S>(&self, request: UploadRequest, body: S) -> Result<StoredFile, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
    {
        self.upload_as(uuid::Uuid::now_v7().to_string(), request, body).await
    }

    /// Returns whether parts of `file_id` are on some node already (an attachment stored
    /// by an earlier import of the same export).
    pub async fn is_stored(&self, file_id: &str) -> bool {
        let first_part = part_id(file_id, 0);
        for node in self.directory.nodes() {
            let Ok(mut client) = self.directory.clients().client(&node.address) else { continue };
            let request = chatvault_proto::storagenode::v1::StatPartRequest { part_id: first_part.clone() };
            if client.stat_part(request).await.is_ok() {
                return true;
            }
        }
        false
    }

    /// Stores the file under the given id (attachments use an id derived from their
    /// content, so importing the same export again stores nothing twice).
    #[tracing::instrument(skip_all, fields(owner = %request.owner, name = %request.name, file_id = %file_id))]
    pub async fn upload_as<S>(&self, file_id: String, request: UploadRequest, body: S) -> Result<StoredFile, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
    {
        self.store(file_id, request, None, body).await
    }

    /// Stores a file coming back from a backup under its old id, owner and upload time
    /// (`request.owner` is replaced by the identity's). Refuses it with ALREADY_EXISTS when
    /// parts of that id are on a node (so a refused restore never deletes a live file's
    /// parts), and with DATA_LOSS, nothing kept, when the bytes do not hash to the
    /// identity's SHA-256. The caller checks that an admin asks.
    #[tracing::instrument(skip_all, fields(owner = %identity.owner, name = %request.name, file_id = %identity.file_id))]
    pub async fn restore<S>(&self, identity: RestoredIdentity, request: UploadRequest, body: S) -> Result<StoredFile, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
    {
        if self.is_stored(&identity.file_id).await {
            return Err(Error::AlreadyExists(format!("file {} is already stored; nothing was written", identity.file_id)));
        }
        let request = UploadRequest { owner: identity.owner.clone(), ..request };
        self.store(identity.file_id.clone(), request, Some(&identity), body).await
    }

    /// Writes the parts, then publishes `FileStored`; `restored` keeps an old identity.
    async fn store<S>(&self, file_id: String, request: UploadRequest, restored: Option<&RestoredIdentity>, body: S) -> Result<StoredFile, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
    {
        let name = validated_file_name(&request.name)?;
        let content_type = match request.content_type.trim() {
            "" => "application/octet-stream".to_owned(),
            given => given.to_owned(),
        };
        let placement = self.directory.place_new_file().await.map_err(|error| Error::Unavailable(error.to_string()))?;
        let mut writers = Vec::with_capacity(TOTAL_PARTS);
        for (index, node) in placement.nodes.iter().enumerate() {
            let writer = self.directory.clients().start_part_writer(&node.address, &part_id(&file_id, index), self.settings.block_size);
            writers.push(Some(writer.map_err(|error| Error::Unavailable(error.to_string()))?));
        }
        let mut parts = PartsInProgress { file_id, placement, writers, hashers: vec![PartHasher::default(); TOTAL_PARTS], part_size: 0 };
        let outcome = self.write_parts(&mut parts, body).await;
        let (size, sha256) = match outcome {
            Ok(written) => written,
            Err(error) => {
                self.abandon(&mut parts, &[]).await;
                return Err(error);
            }
        };
        if let Some(expected) = restored.filter(|expected| expected.sha256 != sha256) {
            // Checked before the commit: the nodes discard the uncommitted parts.
            self.abandon(&mut parts, &[]).await;
            return Err(Error::DataLoss(format!(
                "the restored bytes of file {} hash to {sha256}, not to the backup's {}; nothing was stored",
                expected.file_id, expected.sha256
            )));
        }
        let committed = self.commit_parts(&mut parts).await;
        if let Err((error, committed_parts)) = committed {
            self.abandon(&mut parts, &committed_parts).await;
            return Err(error);
        }
        let uploaded_at = restored.map_or_else(chrono::Utc::now, |identity| identity.uploaded_at);
        let upload_date = match (restored, request.folder_date) {
            (None, Some(date)) => date.format("%Y-%m-%d").to_string(),
            _ => uploaded_at.format("%Y-%m-%d").to_string(),
        };
        let event = FileEvent {
            event: Some(file_event::Event::FileStored(FileStored {
                file_id: parts.file_id.clone(),
                owner: request.owner.clone(),
                name,
                content_type,
                size,
                sha256: sha256.clone(),
                uploaded_at_unix_ms: uploaded_at.timestamp_millis(),
                upload_date: upload_date.clone(),
                layout: Some(StripeLayout { data_parts: DATA_PARTS as u32, parity_parts: PARITY_PARTS as u32, block_size: self.settings.block_size }),
                parts: parts
                    .placement
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(index, node)| FilePart {
                        index: index as u32,
                        node_id: node.node_id.clone(),
                        size: parts.part_size,
                        sha256: parts.hashers[index].finish_hex(),
                    })
                    .collect(),
                fault_tolerance: parts.placement.fault_tolerance,
            })),
        };
        let published = chatvault_file_store::events::publish_event(
            &self.producer,
            &self.topic,
            &parts.file_id,
            "chatvault.files.v1.FileStored",
            crate::SERVICE_NAME,
            event.encode_to_vec(),
        )
        .await;
        let positions = match published {
            Ok(positions) => positions,
            Err(error) => {
                let all: Vec<usize> = (0..TOTAL_PARTS).collect();
                self.abandon(&mut parts, &all).await;
                return Err(Error::Unavailable(format!("the event log (Kafka) did not take the file; nothing was stored: {error}")));
            }
        };
        tracing::info!(file_id = %parts.file_id, size, fault_tolerance = parts.placement.fault_tolerance, "file stored");
        Ok(StoredFile { file_id: parts.file_id, size, sha256, upload_date, fault_tolerance: parts.placement.fault_tolerance, positions })
    }

    /// Reads `body` stripe by stripe and streams the blocks to the part writers; returns
    /// the file size and SHA-256.
    ///
    /// The stages overlap, so that the client, both cores and the nodes stay busy at once
    /// rather than in turn: reading the body into stripe buffers (one complete stripe waits
    /// while the next is read); per stripe the parity and block hashes on a blocking
    /// thread, after which the 8 blocks queue for the part writers; and the whole-file
    /// SHA-256 of each stripe on another blocking thread while the next stripe is encoded.
    async fn write_parts<S>(&self, parts: &mut PartsInProgress, body: S) -> Result<(u64, String), Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
    {
        let (stripe_sender, mut stripe_receiver) = mpsc::channel::<Stripe>(STRIPES_WAITING);
        let reading = read_stripes(body, self.settings, Arc::clone(&self.stripe_buffers), stripe_sender);
        let writing = async move {
            let mut encoder = ParityEncoder::default();
            let mut file_hash = FileHashInBackground::default();
            while let Some(stripe) = stripe_receiver.recv().await {
                encoder = self.write_stripe(parts, stripe, encoder, &mut file_hash).await?;
            }
            file_hash.finish_hex().await.map_err(|error| Error::Internal(error.to_string()))
        };
        // On an error the other stage is dropped, and with it the stripes it holds.
        let (total, sha256) = futures::future::try_join(reading, writing).await?;
        Ok((total, sha256))
    }

    /// Appends a stripe's parity blocks and computes the SHA-256 of its 8 blocks off the
    /// async threads, passes its file bytes to the file hash, then hands the blocks to the
    /// writers; returns the encoder for the next stripe.
    async fn write_stripe(
        &self,
        parts: &mut PartsInProgress,
        stripe: Stripe,
        mut encoder: ParityEncoder,
        file_hash: &mut FileHashInBackground,
    ) -> Result<ParityEncoder, Error> {
        let (block_len, data_len) = (stripe.block_len(), stripe.data_len());
        let encoded = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let blocks = stripe.with_parity(&mut encoder).map_err(|error| Error::Internal(error.to_string()))?;
            let hashes: Vec<[u8; 32]> = blocks.iter().map(|block| chatvault_file_store::hashing::sha256(block)).collect();
            Ok((blocks, hashes, encoder))
        })
        .await
        .map_err(|error| Error::Internal(format!("encoding task: {error}")))??;
        let (blocks, hashes, encoder) = encoded;
        let mut remaining = data_len;
        let file_bytes = blocks[..DATA_PARTS]
            .iter()
            .map(|block| {
                let taken = block.len().min(remaining);
                remaining -= taken;
                block.slice(..taken)
            })
            .collect();
        file_hash.add(file_bytes).await.map_err(|error| Error::Internal(error.to_string()))?;
        for (index, hash) in hashes.into_iter().enumerate() {
            parts.hashers[index].push_block_hash(hash);
        }
        parts.part_size += block_len as u64;
        let sends = parts.writers.iter_mut().zip(blocks).zip(&parts.placement.nodes).map(|((writer, block), node)| async move {
            let length = block.len() as u64;
            let writer = writer.as_mut().expect("writers stay until commit");
            writer.send(block).await.map(|()| (node.node_id.as_str(), length))
        });
        for sent in futures::future::join_all(sends).await {
            let (node_id, length) = sent.map_err(|error| Error::Unavailable(format!("writing a part failed: {error}")))?;
            self.directory.record_bytes_sent(node_id, length);
        }
        Ok(encoder)
    }

    /// Commits every part; on failure returns the indexes that did commit.
    async fn commit_parts(&self, parts: &mut PartsInProgress) -> Result<(), (Error, Vec<usize>)> {
        let part_size = parts.part_size;
        let commits = parts.writers.iter_mut().zip(&parts.hashers).map(|(writer, hasher)| {
            let writer = writer.take().expect("writers stay until commit");
            writer.commit(part_size, hasher.finish_hex())
        });
        let results = futures::future::join_all(commits).await;
        let mut committed = Vec::new();
        let mut first_error = None;
        for (index, result) in results.into_iter().enumerate() {
            let node_id = &parts.placement.nodes[index].node_id;
            match result {
                Ok(_) => {
                    committed.push(index);
                    self.directory.record_part_finished(node_id, part_size, true);
                }
                Err(error) => {
                    self.directory.record_part_finished(node_id, part_size, false);
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err((Error::Unavailable(format!("storing a part failed; nothing was stored: {error}")), committed)),
        }
    }

    /// Aborts unfinished writers and deletes the parts in `committed`.
    async fn abandon(&self, parts: &mut PartsInProgress, committed: &[usize]) {
        for (index, writer) in parts.writers.iter_mut().enumerate() {
            if let Some(writer) = writer.take() {
                writer.abort();
                self.directory.record_part_finished(&parts.placement.nodes[index].node_id, parts.part_size, false);
            }
        }
        let deletes = committed.iter().map(|index| {
            let node = &parts.placement.nodes[*index];
            let part = part_id(&parts.file_id, *index);
            let clients = self.directory.clients().clone();
            async move {
                if let Err(error) = clients.delete_part(&node.address, &part).await {
                    tracing::warn!(part_id = %part, node_id = %node.node_id, %error, "could not delete the part of a refused upload");
                }
            }
        });
        futures::future::join_all(deletes).await;
    }
}

/// Reads `body` into stripes and hands them on, refusing content past the maximum size;
/// returns the file size.
async fn read_stripes<S>(mut body: S, settings: UploadSettings, buffers: Arc<StripeBuffers>, stripes: mpsc::Sender<Stripe>) -> Result<u64, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Unpin,
{
    let mut cutter = StripeCutter::new(settings.block_size, buffers);
    let mut total: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        if total > settings.max_file_bytes {
            return Err(Error::ResourceExhausted(format!(
                "the file is larger than the maximum of {} bytes; nothing was stored",
                settings.max_file_bytes
            )));
        }
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            if let Some(stripe) = cutter.fill(&mut rest) {
                stripes.send(stripe).await.map_err(|_| Error::Internal("the part writers stopped".to_owned()))?;
            }
        }
    }
    if let Some(stripe) = cutter.finish() {
        stripes.send(stripe).await.map_err(|_| Error::Internal("the part writers stopped".to_owned()))?;
    }
    Ok(total)
}

/// Returns the file name without folders; refuses empty and overlong names.
pub(crate) fn validated_file_name(name: &str) -> Result<String, Error> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::InvalidArgument("the file name is missing (give the original name of the file)".to_owned()));
    }
    if base.len() > 255 || base.chars().any(char::is_control) {
        return Err(Error::InvalidArgument("the file name must be at most 255 bytes without control characters".to_owned()));
    }
    Ok(base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_folders() {
        assert_eq!(validated_file_name("/tmp/a/report.pdf").expect("valid"), "report.pdf");
        assert!(validated_file_name("dir/").is_err());
        assert!(validated_file_name("").is_err());
    }
}

#[cfg(test)]
mod folder_date_tests {
    use chrono::TimeZone;

    use super::folder_date;

    #[test]
    fn a_folder_date_may_be_any_past_day_and_at_most_tomorrow() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 23, 30, 0).single().expect("now");
        assert_eq!(folder_date("", now).expect("empty"), None);
        assert_eq!(folder_date("2026-11-23", now).expect("tomorrow: UTC+14").map(|date| date.to_string()).as_deref(), Some("2026-11-23"));
        assert_eq!(folder_date(" 2026-10-01 ", now).expect("a past day").map(|date| date.to_string()).as_deref(), Some("2026-10-01"));
        for refused in ["2026-11-24", "22.11.2026", "2026-02-30", "yesterday"] {
            let error = folder_date(refused, now).expect_err(refused);
            assert!(error.to_string().contains("no later than 2026-11-23"), "{error}");
        }
    }
}
