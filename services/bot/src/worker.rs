//! The storage workers: each takes `FileReceived` events from `bot.events` in one consumer
//! group (cooperative rebalancing, so any number of instances share the partitions), and
//! stores the file in chatvault, in Google Drive, or both, then edits the bot's answer.
//!
//! Delivery is at least once: a record's offset is committed to Kafka after its file is
//! stored (or its failure reported). A worker killed mid-file leaves the record
//! uncommitted, and the instance that takes over its partition stores it again, without
//! duplicates:
//! - chatvault: a file already in the person's date folder with the same SHA-256 is
//!   reused instead of uploaded again;
//! - Drive: the resumable session begun is kept in the database, and the next worker asks
//!   Drive how many bytes it holds and resumes there (a file already complete is found by
//!   its `sha256` app property);
//! - Drive folders: the `chatvault` folder and each date folder are looked up or created
//!   under a row lock in the database, so two workers never create the same folder twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_common::config::KafkaConfig;
use chatvault_common::topics::BOT_EVENTS;
use chatvault_proto::bot::v1::{bot_event, BotEvent, DriveUnlinked, FileReceived, FileStoreFailed, FileStored};
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadMetadata};
use chatvault_proto::storage::v1::ListFilesRequest;
use futures::StreamExt;
use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::ClientConfig;
use teloxide::Bot;
use tokio_util::sync::CancellationToken;

use crate::dates::human_size;
use crate::google::{DriveError, Google, UploadProgress, ROOT_FOLDER_NAME};
use crate::metrics::{BYTES_STORED, DRIVE_RETRIES, FILES_STORED, STORE_FAILURES, STORE_SECONDS};
use crate::settings::BotSettings;
use crate::store::{Store, StoredFile};
use crate::telegram::{self, FetchError, Fetched};
use crate::{clients::Clients, events::Events, sealing::Sealer, BotError};

/// The consumer group of the storage workers.
pub const WORKER_GROUP: &str = "chatvault-bot-workers";

/// Why a file (or one of its targets) was not stored: a reason label and the sentence the
/// person reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// Everything a worker needs.
#[derive(Clone, Debug)]
pub struct Worker {
    pub store: Store,
    pub bot: Bot,
    pub settings: Arc<BotSettings>,
    pub clients: Clients,
    pub google: Option<Google>,
    pub sealer: Option<Sealer>,
    pub events: Events,
}

/// What storing one file came to.
#[derive(Debug, Default)]
struct Outcome {
    sha256: String,
    size: u64,
    /// The name it is stored under (a duplicate keeps the first one's).
    file_name: String,
    folder_date: String,
    file_id: String,
    drive_file_id: String,
    /// Every wanted target already held these bytes.
    duplicate: bool,
    /// A target that failed while another succeeded.
    partial: Option<Failure>,
}

impl Worker {
    /// Consumes `bot.events` in the workers' consumer group until `stop` is cancelled.
    ///
    /// `session_timeout` is how long the group waits for a silent instance before giving
    /// its partitions to the others (the time a killed worker's file waits).
    pub async fn run(self, kafka: &KafkaConfig, session_timeout: Duration, stop: CancellationToken) -> Result<(), BotError> {
        let topic = kafka.topic(BOT_EVENTS);
        let group = format!("{}{WORKER_GROUP}", kafka.topic_prefix);
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("group.id", &group)
            .set("client.id", "chatvault-bot-worker")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", (session_timeout.as_millis() / 4).max(500).to_string())
            // A large file to Drive may take long; the worker must stay in the group meanwhile.
            .set("max.poll.interval.ms", "3600000")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        consumer.subscribe(&[&topic])?;
        tracing::info!(%topic, %group, "storage worker consuming");
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => break,
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(error = %error, "consuming bot.events failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Some(work) = message.payload().and_then(|payload| BotEvent::decode(payload).ok()).and_then(|event| match event.event {
                Some(bot_event::Event::FileReceived(work)) => Some(work),
                _ => None,
            }) {
                // Stopping mid-file leaves the record uncommitted: another worker stores it.
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = self.handle(work) => {}
                }
            }
            if let Err(error) = consumer.commit_message(&message, CommitMode::Sync) {
                tracing::warn!(error = %error, "committing a bot.events offset failed; the record may be handled again");
            }
        }
        Ok(())
    }

    /// Stores one received file and tells the person how it went.
    #[tracing::instrument(skip_all, fields(work_id = %work.work_id, kind = %work.kind))]
    pub async fn handle(&self, work: FileReceived) {
        let outcome = self.store_file(&work).await;
        let elapsed_ms = chrono::Utc::now().timestamp_millis().saturating_sub(work.received_unix_ms).max(0);
        match outcome {
            Ok(outcome) => {
                STORE_SECONDS.with_label_values(&[&work.kind]).observe(elapsed_ms as f64 / 1000.0);
                let text = stored_text(&outcome);
                telegram::edit_answer(&self.bot, work.chat_id, work.reply_message_id, &text).await;
                if let Some(failure) = &outcome.partial {
                    self.report_failure(&work, failure).await;
                }
                let event = bot_event::Event::FileStored(FileStored {
                    work_id: work.work_id.clone(),
                    account_id: work.account_id.clone(),
                    username: work.username.clone(),
                    kind: work.kind.clone(),
                    file_name: outcome.file_name.clone(),
                    size: outcome.size,
                    sha256: outcome.sha256.clone(),
                    folder_date: outcome.folder_date.clone(),
                    file_id: outcome.file_id.clone(),
                    drive_file_id: outcome.drive_file_id.clone(),
                    duplicate: outcome.duplicate,
                    elapsed_ms,
                });
                if let Err(error) = self.events.publish(&work.username, &work.telegram_file_unique_id, event).await {
                    tracing::warn!(error = %error, "publishing FileStored failed");
                }
                tracing::info!(sha256 = %outcome.sha256, size = outcome.size, duplicate = outcome.duplicate, "file stored");
            }
            Err(failure) => {
                let text = format!("Could not store {}: {}", work.file_name, failure.message);
                telegram::edit_answer(&self.bot, work.chat_id, work.reply_message_id, &text).await;
                self.report_failure(&work, &failure).await;
            }
        }
    }

    async fn report_failure(&self, work: &FileReceived, failure: &Failure) {
        STORE_FAILURES.with_label_values(&[failure.reason]).inc();
        tracing::warn!(reason = failure.reason, message = %failure.message, "file not stored");
        let event = bot_event::Event::FileStoreFailed(FileStoreFailed {
            work_id: work.work_id.clone(),
            account_id: work.account_id.clone(),
            username: work.username.clone(),
            file_name: work.file_name.clone(),
            reason: failure.reason.to_owned(),
            message: failure.message.clone(),
        });
        if let Err(error) = self.events.publish(&work.username, &work.telegram_file_unique_id, event).await {
            tracing::warn!(error = %error, "publishing FileStoreFailed failed");
        }
    }

    async fn store_file(&self, work: &FileReceived) -> Result<Outcome, Failure> {
        let internal = |error: BotError| Failure::new("chatvault", format!("the bot's database did not answer ({error}); send the file again later"));
        // The work names the account; it is stored only while that Telegram account is
        // still linked to it (an /unlink before a worker got to the file ends it).
        let link = self.store.link_of_account(&work.account_id).await.map_err(internal)?;
        if link.is_none_or(|link| link.telegram_user_id != work.telegram_user_id) {
            return Err(Failure::new(
                "unlinked",
                "this Telegram account was unlinked before the file was stored; link it again and send the file again",
            ));
        }
        let fetched = self.fetch(work).await?;
        // One worker at a time stores a person's bytes: the same file sent twice (two
        // records, perhaps on two partitions) is stored once. The lock ends with the
        // transaction, or with the connection if the worker dies.
        let mut client = self.store.pool().get().await.map_err(|error| internal(error.into()))?;
        let claim = client.transaction().await.map_err(|error| internal(error.into()))?;
        claim
            .execute("SELECT pg_advisory_xact_lock($1)", &[&content_lock_key(&work.account_id, &fetched.sha256)])
            .await
            .map_err(|error| internal(error.into()))?;
        let outcome = self.store_fetched(work, &fetched).await;
        if let Err(error) = claim.commit().await {
            tracing::warn!(error = %error, "releasing a content lock failed");
        }
        outcome
    }

    async fn store_fetched(&self, work: &FileReceived, fetched: &Fetched) -> Result<Outcome, Failure> {
        let internal = |error: BotError| Failure::new("chatvault", format!("the bot's database did not answer ({error}); send the file again later"));
        let mut existing = self.store.stored_file(&work.account_id, &fetched.sha256).await.map_err(internal)?;
        if let Some(file) = existing.as_mut() {
            // Recorded copies the person has deleted since are stored again.
            self.forget_deleted_copies(work, file).await;
        }
        // The same bytes stay in the date folder they were first stored in.
        let folder_date = existing.as_ref().map_or_else(|| work.folder_date.clone(), |file| file.folder_date.clone());
        let wants_chatvault = work.store_target != "drive";
        let wants_drive = work.store_target != "chatvault";
        let mut outcome = Outcome { sha256: fetched.sha256.clone(), size: fetched.size, folder_date: folder_date.clone(), ..Outcome::default() };
        let mut stored_now = false;
        let mut failures = Vec::new();
        if wants_chatvault {
            match existing.as_ref().filter(|file| !file.file_id.is_empty()) {
                Some(file) => outcome.file_id = file.file_id.clone(),
                None => match self.store_in_chatvault(work, fetched, &folder_date).await {
                    Ok(file_id) => {
                        outcome.file_id = file_id;
                        stored_now = true;
                        FILES_STORED.with_label_values(&["chatvault", "false"]).inc();
                        BYTES_STORED.with_label_values(&["chatvault"]).inc_by(fetched.size);
                    }
                    Err(failure) => failures.push(failure),
                },
            }
        }
        if wants_drive {
            match existing.as_ref().filter(|file| !file.drive_file_id.is_empty()) {
                Some(file) => outcome.drive_file_id = file.drive_file_id.clone(),
                None => match self.store_in_drive(work, fetched, &folder_date).await {
                    Ok(drive_file_id) => {
                        outcome.drive_file_id = drive_file_id;
                        stored_now = true;
                        FILES_STORED.with_label_values(&["drive", "false"]).inc();
                        BYTES_STORED.with_label_values(&["drive"]).inc_by(fetched.size);
                    }
                    Err(failure) => failures.push(failure),
                },
            }
        }
        if outcome.file_id.is_empty() && outcome.drive_file_id.is_empty() {
            return Err(failures.into_iter().next().unwrap_or_else(|| Failure::new("chatvault", "no storage target is set")));
        }
        outcome.duplicate = !stored_now;
        if outcome.duplicate {
            FILES_STORED.with_label_values(&[if wants_chatvault { "chatvault" } else { "drive" }, "true"]).inc();
        }
        outcome.partial = failures.into_iter().next();
        let record = StoredFile {
            account_id: work.account_id.clone(),
            sha256: fetched.sha256.clone(),
            folder_date,
            kind: work.kind.clone(),
            file_name: existing.as_ref().map_or_else(|| work.file_name.clone(), |file| file.file_name.clone()),
            content_type: work.content_type.clone(),
            size: fetched.size,
            file_id: outcome.file_id.clone(),
            drive_file_id: outcome.drive_file_id.clone(),
        };
        self.store.record_stored_file(&record).await.map_err(internal)?;
        outcome.file_name = record.file_name.clone();
        Ok(outcome)
    }

    /// Clears the ids of recorded copies that are gone: a chatvault file the person deleted,
    /// a Drive file deleted or trashed. A copy that cannot be checked now is kept.
    async fn forget_deleted_copies(&self, work: &FileReceived, file: &mut StoredFile) {
        if !file.file_id.is_empty() {
            let request = self.clients.as_person(
                &work.account_id,
                &work.username,
                chatvault_proto::storage::v1::StatFileRequest { file_id: file.file_id.clone(), consistency_token: None },
            );
            if let Err(status) = self.clients.files().stat_file(request).await {
                if status.code() == tonic::Code::NotFound {
                    file.file_id.clear();
                }
            }
        }
        if !file.drive_file_id.is_empty() {
            let still_there = async {
                let (google, sealer) = (self.google.as_ref()?, self.sealer.as_ref()?);
                let grant = self.store.grant(&work.account_id).await.ok()??;
                let refresh = sealer.open(&work.account_id, &grant.sealed_refresh).ok()?;
                let token = google.access_token(&work.account_id, &refresh).await.ok()?;
                google.file_exists(&token, &file.drive_file_id).await.ok()
            }
            .await;
            if still_there == Some(false) {
                file.drive_file_id.clear();
            }
        }
        if let Err(error) = self.store.replace_stored_ids(file).await {
            tracing::warn!(error = %error, "recording deleted copies failed");
        }
    }

    /// Fetches the file's bytes from Telegram, trying three times over a broken connection.
    async fn fetch(&self, work: &FileReceived) -> Result<Fetched, Failure> {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            match telegram::fetch(&self.bot, &self.settings, &work.telegram_file_id).await {
                Ok(fetched) => return Ok(fetched),
                Err(FetchError::TooBig) => return Err(Failure::new("too_big", too_big_text(work.size, &self.settings))),
                Err(FetchError::Telegram(error)) => last = error,
            }
        }
        Err(Failure::new("telegram", format!("Telegram did not hand over the file ({last}); send it again later")))
    }

    /// Stores the bytes in the person's chatvault date folder, as the person; reuses a file
    /// with the same SHA-256 already in that folder (one stored by a worker that stopped
    /// before recording it).
    async fn store_in_chatvault(&self, work: &FileReceived, fetched: &Fetched, folder_date: &str) -> Result<String, Failure> {
        let failed = |error: &dyn std::fmt::Display| Failure::new("chatvault", format!("chatvault did not take it ({error}); send it again later"));
        let listed = self
            .clients
            .files()
            .list_files(self.clients.as_person(
                &work.account_id,
                &work.username,
                ListFilesRequest { date: folder_date.to_owned(), consistency_token: None },
            ))
            .await;
        if let Ok(listed) = listed {
            if let Some(file) = listed.into_inner().files.into_iter().find(|file| file.sha256 == fetched.sha256) {
                return Ok(file.file_id);
            }
        }
        let source = tokio::fs::File::open(&fetched.path).await.map_err(|error| failed(&error))?;
        let metadata = UploadFileRequest {
            message: Some(upload_file_request::Message::Metadata(UploadMetadata {
                name: work.file_name.clone(),
                content_type: work.content_type.clone(),
                restore: None,
                folder_date: folder_date.to_owned(),
            })),
        };
        let chunks = tokio_util::io::ReaderStream::with_capacity(source, 1 << 20)
            .take_while(|chunk| futures::future::ready(chunk.is_ok()))
            .filter_map(|chunk| futures::future::ready(chunk.ok()))
            .map(|chunk| UploadFileRequest { message: Some(upload_file_request::Message::Chunk(chunk)) });
        let requests = futures::stream::iter([metadata]).chain(chunks);
        let response = self
            .clients
            .uploads()
            .upload_file(self.clients.as_person(&work.account_id, &work.username, requests))
            .await
            .map_err(|status| failed(&status.message()))?
            .into_inner();
        if response.sha256 != fetched.sha256 {
            // A short read of the temporary file: the stored copy is not the file sent.
            let _ = self
                .clients
                .files()
                .delete_file(self.clients.as_person(
                    &work.account_id,
                    &work.username,
                    chatvault_proto::storage::v1::DeleteFileRequest {
                        file_id: response.file_id.clone(),
                        consistency_token: response.consistency_token,
                    },
                ))
                .await;
            return Err(failed(&"the stored bytes did not match the received ones"));
        }
        Ok(response.file_id)
    }

    /// Stores the bytes in the person's Drive, in `chatvault/<folder_date>`.
    async fn store_in_drive(&self, work: &FileReceived, fetched: &Fetched, folder_date: &str) -> Result<String, Failure> {
        let (Some(google), Some(sealer)) = (&self.google, &self.sealer) else {
            return Err(Failure::new("drive", "Google Drive is not set up on this installation"));
        };
        let not_linked = || Failure::new("drive_auth", "Google Drive is not linked; send /drive to link it");
        let grant = self
            .store
            .grant(&work.account_id)
            .await
            .map_err(|error| Failure::new("drive", format!("the bot's database did not answer ({error})")))?;
        let grant = grant.ok_or_else(not_linked)?;
        if grant.needs_relink {
            return Err(refused_failure());
        }
        let refresh = sealer.open(&work.account_id, &grant.sealed_refresh).map_err(|_| not_linked())?;
        let drive = DriveCalls { google, account_id: &work.account_id, refresh: &refresh, settings: &self.settings };
        let attempt = || async {
            let root = self.ensure_folder(&drive, "", ROOT_FOLDER_NAME, None).await?;
            let folder = self.ensure_folder(&drive, folder_date, folder_date, Some(&root)).await?;
            self.upload_to_drive(&drive, work, fetched, folder_date, &folder).await
        };
        let result = match attempt().await {
            Err(DriveError::NotFound) => {
                // A folder the person deleted in Drive: forget the folders found before and
                // make them again.
                if let Err(error) = self.store.forget_drive_folders(&work.account_id).await {
                    tracing::warn!(error = %error, "forgetting Drive folders failed");
                }
                attempt().await
            }
            other => other,
        };
        match result {
            Ok(drive_file_id) => Ok(drive_file_id),
            Err(DriveError::Refused) => {
                // Kept (so /drive off can still revoke it) but not used again until /drive.
                if let Err(error) = self.store.mark_grant_refused(&work.account_id).await {
                    tracing::warn!(error = %error, "marking a refused Drive grant failed");
                }
                let event = bot_event::Event::DriveUnlinked(DriveUnlinked {
                    account_id: work.account_id.clone(),
                    username: work.username.clone(),
                    reason: "refused".to_owned(),
                });
                if let Err(error) = self.events.publish(&work.username, &work.account_id, event).await {
                    tracing::warn!(error = %error, "publishing DriveUnlinked failed");
                }
                Err(refused_failure())
            }
            Err(DriveError::Quota(_)) => {
                Err(Failure::new("drive_quota", "Google Drive kept answering that its rate limit was reached; send the file again later"))
            }
            Err(other) => Err(Failure::new(other.reason(), format!("Google Drive did not take it ({other})"))),
        }
    }

    /// Returns the Drive folder recorded as `key` for the person, looking it up or creating
    /// it (named `name` under `parent`) under a row lock when it is not recorded yet.
    async fn ensure_folder(&self, drive: &DriveCalls<'_>, key: &str, name: &str, parent: Option<&str>) -> Result<String, DriveError> {
        let database = |error: &dyn std::fmt::Display| DriveError::Other(format!("the bot's database did not answer ({error})"));
        let mut client = self.store.pool().get().await.map_err(|error| database(&error))?;
        let transaction = client.transaction().await.map_err(|error| database(&error))?;
        transaction
            .execute("INSERT INTO drive_folders (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&drive.account_id, &key])
            .await
            .map_err(|error| database(&error))?;
        let row = transaction
            .query_one("SELECT folder_id FROM drive_folders WHERE account_id = $1 AND name = $2 FOR UPDATE", &[&drive.account_id, &key])
            .await
            .map_err(|error| database(&error))?;
        if let Some(folder_id) = row.get::<_, Option<String>>(0) {
            transaction.commit().await.map_err(|error| database(&error))?;
            return Ok(folder_id);
        }
        // Not recorded: a folder of that name made earlier (by a grant since renewed) is
        // used again; otherwise it is created, once, while the row stays locked.
        let found = drive.call(|token| async move { drive.google.find_folder(&token, name, parent).await }).await?;
        let folder_id = match found {
            Some(folder_id) => folder_id,
            None => drive.call(|token| async move { drive.google.create_folder(&token, name, parent).await }).await?,
        };
        transaction
            .execute("UPDATE drive_folders SET folder_id = $3 WHERE account_id = $1 AND name = $2", &[&drive.account_id, &key, &folder_id])
            .await
            .map_err(|error| database(&error))?;
        transaction.commit().await.map_err(|error| database(&error))?;
        Ok(folder_id)
    }

    /// Uploads the bytes with a resumable session, resuming a session an earlier attempt
    /// (or another worker) began from the byte Drive confirms.
    async fn upload_to_drive(
        &self,
        drive: &DriveCalls<'_>,
        work: &FileReceived,
        fetched: &Fetched,
        folder_date: &str,
        folder_id: &str,
    ) -> Result<String, DriveError> {
        let (account_id, sha256, total) = (drive.account_id, fetched.sha256.as_str(), fetched.size);
        let database = |error: BotError| DriveError::Other(format!("the bot's database did not answer ({error})"));
        let recorded = self.store.upload_session(account_id, sha256, folder_date).await.map_err(database)?;
        let mut session = match recorded {
            Some((uri, _)) => Some(uri),
            None => {
                // No session begun: the file may be complete already (stored by a worker
                // that stopped before recording it).
                if let Some(id) = drive.call(|token| async move { drive.google.find_file(&token, folder_id, sha256).await }).await? {
                    return Ok(id);
                }
                None
            }
        };
        let mut attempts = 0u32;
        let mut backoff = self.settings.drive_backoff;
        loop {
            if attempts >= self.settings.drive_attempts {
                return Err(DriveError::Other("Google Drive kept dropping the upload".to_owned()));
            }
            let mut fresh = false;
            let uri = match session.clone() {
                Some(uri) => uri,
                None => {
                    fresh = true;
                    let (name, content_type) = (work.file_name.as_str(), work.content_type.as_str());
                    let uri = drive
                        .call(|token| async move { drive.google.start_upload(&token, folder_id, name, content_type, sha256, total).await })
                        .await?;
                    self.store.save_upload_session(account_id, sha256, folder_date, &uri, total).await.map_err(database)?;
                    session = Some(uri.clone());
                    uri
                }
            };
            let uri_ref = uri.as_str();
            let progress = if fresh {
                Ok(UploadProgress::Received(0))
            } else {
                drive.call(|token| async move { drive.google.upload_status(&token, uri_ref, total).await }).await
            };
            let offset = match progress {
                Ok(UploadProgress::Done(id)) => {
                    self.store.delete_upload_session(account_id, sha256, folder_date).await.map_err(database)?;
                    return Ok(id);
                }
                Ok(UploadProgress::Received(received)) => received,
                Err(DriveError::SessionGone) => {
                    attempts += 1;
                    session = None;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if offset > 0 {
                tracing::info!(offset, total, "resuming a Drive upload");
            }
            let token = drive.token().await?;
            match drive.google.upload_from(&token, &uri, &fetched.path, offset, total, self.settings.drive_chunk).await {
                Ok(id) => {
                    self.store.delete_upload_session(account_id, sha256, folder_date).await.map_err(database)?;
                    return Ok(id);
                }
                Err(DriveError::SessionGone) => {
                    attempts += 1;
                    session = None;
                }
                Err(DriveError::Unauthorized) => {
                    attempts += 1;
                    drive.google.forget_access_token(account_id);
                }
                Err(error @ (DriveError::Interrupted(_) | DriveError::Quota(_))) => {
                    attempts += 1;
                    if attempts >= self.settings.drive_attempts {
                        return Err(error);
                    }
                    DRIVE_RETRIES.with_label_values(&[error.reason()]).inc();
                    tracing::info!(error = %error, wait_ms = backoff.as_millis() as u64, "Drive upload interrupted; resuming after a pause");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Drive calls for one person, with the retries that help: a fresh access token after a
/// 401, exponential backoff after a quota answer or a broken connection.
struct DriveCalls<'a> {
    google: &'a Google,
    account_id: &'a str,
    refresh: &'a str,
    settings: &'a BotSettings,
}

impl DriveCalls<'_> {
    async fn token(&self) -> Result<String, DriveError> {
        self.google.access_token(self.account_id, self.refresh).await
    }

    async fn call<T, F, Fut>(&self, mut operation: F) -> Result<T, DriveError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, DriveError>>,
    {
        let mut backoff = self.settings.drive_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.token().await?;
            let error = match operation(token).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let retry = match &error {
                DriveError::Unauthorized => {
                    self.google.forget_access_token(self.account_id);
                    attempt < 2
                }
                DriveError::Quota(_) | DriveError::Interrupted(_) => attempt < self.settings.drive_attempts,
                _ => false,
            };
            if !retry {
                return Err(error);
            }
            DRIVE_RETRIES.with_label_values(&[error.reason()]).inc();
            if !matches!(error, DriveError::Unauthorized) {
                tracing::info!(error = %error, attempt, wait_ms = backoff.as_millis() as u64, "Drive call refused; retrying after a pause");
                let started = Instant::now();
                tokio::time::sleep(backoff).await;
                tracing::debug!(waited_ms = started.elapsed().as_millis() as u64, "retrying the Drive call");
                backoff = backoff.saturating_mul(2);
            }
        }
    }
}

fn refused_failure() -> Failure {
    Failure::new("drive_auth", "Google no longer accepts chatvault's access to your Drive (it expired or was revoked). Send /drive to link it again.")
}

/// The advisory-lock key of one person's bytes: the first 8 bytes of SHA-256 of
/// `<account id>:<content SHA-256>`.
fn content_lock_key(account_id: &str, sha256: &str) -> i64 {
    let digest = crate::store::secret_hash(&format!("{account_id}:{sha256}"));
    i64::from_str_radix(&digest[..15], 16).unwrap_or(0)
}

/// The sentence for a file above the Bot API's download limit.
pub fn too_big_text(size: u64, settings: &BotSettings) -> String {
    let size_text = if size > 0 { format!("It is {}; t", human_size(size)) } else { "T".to_owned() };
    if settings.api_local {
        format!("{size_text}he Bot API server refused to hand over a file this large.")
    } else {
        format!(
            "{size_text}he Telegram Bot API lets a bot download files of at most {}, so I cannot fetch it. \
             Split it into smaller parts, or ask your admin to run a self-hosted Bot API server (local mode), which lifts the limit to 2000 MB.",
            human_size(settings.download_limit)
        )
    }
}

/// The edited answer once a file is stored.
fn stored_text(outcome: &Outcome) -> String {
    let places = match (!outcome.file_id.is_empty(), !outcome.drive_file_id.is_empty()) {
        (true, true) => "chatvault and Google Drive",
        (false, true) => "Google Drive",
        _ => "chatvault",
    };
    let mut text = if outcome.duplicate {
        format!(
            "Already stored in {}: {}, {} ({places}; the same file was sent before)",
            outcome.folder_date,
            outcome.file_name,
            human_size(outcome.size)
        )
    } else {
        format!("Stored in {}: {}, {} ({places})", outcome.folder_date, outcome.file_name, human_size(outcome.size))
    };
    if let Some(failure) = &outcome.partial {
        text.push_str(&format!(
            "\nNot stored in {}: {}",
            if failure.reason.starts_with("drive") { "Google Drive" } else { "chatvault" },
            failure.message
        ));
    }
    text
}
