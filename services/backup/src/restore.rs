//! Restoring a backup through the platform's own paths, so every projection rebuilds:
//! accounts through the users service, files through ingest (same ids, owners and dates),
//! chats, messages and their grants as events on `chat.events` in one staged import, each
//! archive under the owner the backup names (backups from before owners existed have no
//! owner columns: their archives come back with the owner `""`, which only admins see). The
//! backup is verified whole first; rows the platform already holds are counted and not sent
//! again.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, StringArray};
use chatvault_common::consistency::Positions;
use chatvault_common::staged::{chat_import_committed, StagedPublisher};
use chatvault_common::topics::CHAT_EVENTS;
use chatvault_proto::backup::v1::{Progress, RestoreSummary, RestoredTable};
use chatvault_proto::chat::v1::{chat_event, ChatEvent, ChatImported, ChatShared, Media, MessagePosted, TextEntity};
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::{upload_file_request, RestoredFileIdentity, UploadFileRequest, UploadMetadata};
use chatvault_proto::snapshot::v1::snapshot_service_client::SnapshotServiceClient;
use chatvault_proto::snapshot::v1::ExportSnapshotRequest;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::ListChatsRequest;
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::RestoredAccount;
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;

use crate::copy_binary::ColumnSpec;
use crate::manifest::{relative_path, Manifest, BLOBS_FOLDER};
use crate::snapshot_stream::{consume_snapshot, TableSink};
use crate::table_files::TableReader;
use crate::{Context, Error};

/// How long a restore waits for storage to apply what it published.
const PROJECTION_WAIT: Duration = Duration::from_secs(600);

/// Opens `table` of the backup: `kind` when given and present, else Parquet, else CSV.
pub fn read_table(manifest: &Manifest, folder: &Path, table: &str, kind: Option<&str>) -> Result<TableReader, Error> {
    let entry = manifest.table(table).ok_or_else(|| Error::Damaged(format!("the backup has no table {table}")))?;
    let file = kind
        .and_then(|kind| manifest.table_file(table, kind))
        .or_else(|| manifest.table_file(table, "parquet"))
        .or_else(|| manifest.table_file(table, "csv"))
        .ok_or_else(|| Error::Damaged(format!("the backup has no file for table {table}")))?;
    TableReader::open(folder, file, &entry.columns)
}

/// The column `name` of `batch`, which must be present.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::ArrayRef, Error> {
    batch.column_by_name(name).ok_or_else(|| Error::Damaged(format!("column {name} is missing")))
}

/// The text column `name` of `batch`.
pub fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, Error> {
    column(batch, name)?.as_string_opt::<i32>().ok_or_else(|| Error::Damaged(format!("column {name} is not text")))
}

/// The column `name` of `batch` as Arrow primitive type `T` (the tables' schema fixes it).
fn primitive_column<'a, T: arrow_array::ArrowPrimitiveType>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::PrimitiveArray<T>, Error> {
    column(batch, name)?.as_primitive_opt::<T>().ok_or_else(|| Error::Damaged(format!("column {name} is not of type {}", T::DATA_TYPE)))
}

fn int64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::Int64Array, Error> {
    primitive_column::<Int64Type>(batch, name)
}

fn timestamp_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::TimestampMicrosecondArray, Error> {
    primitive_column::<TimestampMicrosecondType>(batch, name)
}

/// The owners of `batch`'s rows: its `owner` column, or none (every owner `""`) in a backup
/// taken before archives had owners.
struct Owners<'a>(Option<&'a StringArray>);

impl<'a> Owners<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, Error> {
        match batch.column_by_name("owner") {
            None => Ok(Self(None)),
            Some(_) => Ok(Self(Some(text_column(batch, "owner")?))),
        }
    }

    fn value(&self, row: usize) -> &'a str {
        self.0.map_or("", |owners| owners.value(row))
    }
}

fn optional_text(column: &StringArray, row: usize) -> Option<String> {
    (!column.is_null(row)).then(|| column.value(row).to_owned())
}

fn optional_seconds(column: &arrow_array::TimestampMicrosecondArray, row: usize) -> Option<i64> {
    (!column.is_null(row)).then(|| column.value(row).div_euclid(1_000_000))
}

fn optional_millis(column: &arrow_array::TimestampMicrosecondArray, row: usize) -> i64 {
    if column.is_null(row) {
        0
    } else {
        column.value(row).div_euclid(1_000)
    }
}

/// What the platform holds now, by key (archives by owner and chat id).
#[derive(Debug, Default)]
struct PresentKeys {
    chats: HashSet<(String, i64)>,
    messages: HashSet<(String, i64, i64)>,
    grants: HashSet<(String, i64, String)>,
    files: HashSet<String>,
}

/// Collects a table's keys into one of the sets of `PresentKeys`.
struct KeySink {
    table: String,
    keys: std::sync::Arc<std::sync::Mutex<PresentKeys>>,
}

impl TableSink for KeySink {
    fn batch(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let mut keys = self.keys.lock().map_err(|_| Error::Internal("key set poisoned".into()))?;
        match self.table.as_str() {
            "message_keys" => {
                let owners = Owners::of(batch)?;
                let chats = int64_column(batch, "chat_id")?;
                let messages = int64_column(batch, "message_id")?;
                keys.messages.extend((0..batch.num_rows()).map(|row| (owners.value(row).to_owned(), chats.value(row), messages.value(row))));
            }
            "chats" => {
                let owners = Owners::of(batch)?;
                let chats = int64_column(batch, "chat_id")?;
                keys.chats.extend((0..batch.num_rows()).map(|row| (owners.value(row).to_owned(), chats.value(row))));
            }
            "chat_grants" => {
                let owners = Owners::of(batch)?;
                let chats = int64_column(batch, "chat_id")?;
                let grantees = text_column(batch, "grantee")?;
                keys.grants.extend((0..batch.num_rows()).map(|row| (owners.value(row).to_owned(), chats.value(row), grantees.value(row).to_owned())));
            }
            "files" => {
                let ids = text_column(batch, "file_id")?;
                keys.files.extend(ids.iter().flatten().map(str::to_owned));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<crate::manifest::FileEntry>, Error> {
        Ok(Vec::new())
    }
}

async fn present_keys(context: &Context, chat_ids: &[i64]) -> Result<PresentKeys, Error> {
    let keys = std::sync::Arc::new(std::sync::Mutex::new(PresentKeys::default()));
    let request = ExportSnapshotRequest {
        tables: vec!["message_keys".into(), "chats".into(), "chat_grants".into(), "files".into()],
        chat_ids: chat_ids.to_vec(),
    };
    let mut client = SnapshotServiceClient::new(context.peers.storage.clone()).max_decoding_message_size(64 << 20);
    let stream = client.export_snapshot(context.peers.request(request)).await.map_err(Error::remote("storage"))?.into_inner();
    let sink_keys = keys.clone();
    let make_sink = move |table: &str, _: &[ColumnSpec], _: &[crate::manifest::Position]| -> Result<Box<dyn TableSink>, Error> {
        Ok(Box::new(KeySink { table: table.to_owned(), keys: sink_keys.clone() }))
    };
    consume_snapshot("storage", stream, make_sink, None).await?;
    let mut keys = keys.lock().map_err(|_| Error::Internal("key set poisoned".into()))?;
    Ok(std::mem::take(&mut *keys))
}

fn report(progress: Option<&mpsc::Sender<Progress>>, item: &str, done: u64, total: u64, unit: &str) {
    if let Some(progress) = progress {
        let _ = progress.try_send(Progress { phase: "restore".into(), item: item.to_owned(), done, total, unit: unit.to_owned() });
    }
}

/// Restores the backup in `folder` as `actor` (who the restored events name). Nothing is
/// written unless the whole backup checks out.
pub async fn restore_folder(
    context: &Context,
    folder: &Path,
    kind: Option<&str>,
    actor: &str,
    progress: Option<mpsc::Sender<Progress>>,
) -> Result<RestoreSummary, Error> {
    chatvault_common::caller::act_as(actor.to_owned(), restore_as_caller(context, folder, kind, progress)).await
}

async fn restore_as_caller(
    context: &Context,
    folder: &Path,
    kind: Option<&str>,
    progress: Option<mpsc::Sender<Progress>>,
) -> Result<RestoreSummary, Error> {
    let progress = progress.as_ref();
    let checking = folder.to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || crate::verify::checked_manifest(&checking))
        .await
        .map_err(|error| Error::Internal(format!("verify task: {error}")))??;
    if let Some(kind) = kind {
        if !manifest.formats.iter().any(|format| format == kind) {
            return Err(Error::InvalidArgument(format!(
                "backup {} holds no {kind} copy (it has {})",
                manifest.backup_id,
                manifest.formats.join(", ")
            )));
        }
    }
    let present = present_keys(context, &manifest.chat_ids).await?;
    let mut tables = Vec::new();
    if manifest.table("accounts").is_some() {
        tables.push(restore_accounts(context, &manifest, folder, kind).await?);
    }
    if manifest.table("files").is_some() {
        tables.push(restore_files(context, &manifest, folder, kind, &present, progress).await?);
    }
    let (chat_tables, positions) = restore_chat_events(context, &manifest, folder, kind, &present, progress).await?;
    tables.extend(chat_tables);
    let token = positions.to_token();
    if !positions.0.is_empty() {
        report(progress, "waiting for storage to apply the restored events", 0, 0, "rows");
        wait_for_storage(context, &token).await?;
    }
    Ok(RestoreSummary { backup_id: manifest.backup_id.clone(), tables, consistency_token: token })
}

async fn restore_accounts(context: &Context, manifest: &Manifest, folder: &Path, kind: Option<&str>) -> Result<RestoredTable, Error> {
    let mut accounts = Vec::new();
    for batch in read_table(manifest, folder, "accounts", kind)? {
        let batch = batch?;
        let ids = text_column(&batch, "account_id")?;
        let usernames = text_column(&batch, "username")?;
        let emails = text_column(&batch, "email")?;
        let hashes = text_column(&batch, "password_hash")?;
        let roles = text_column(&batch, "role")?;
        let created = timestamp_column(&batch, "created_at")?;
        let changed = timestamp_column(&batch, "password_changed_at")?;
        for row in 0..batch.num_rows() {
            accounts.push(RestoredAccount {
                account_id: ids.value(row).to_owned(),
                username: usernames.value(row).to_owned(),
                email: emails.value(row).to_owned(),
                password_hash: hashes.value(row).to_owned(),
                role: roles.value(row).to_owned(),
                created_at_unix_ms: optional_millis(created, row),
                password_changed_at_unix_ms: optional_millis(changed, row),
            });
        }
    }
    let mut client = AccountsServiceClient::new(context.peers.users.clone());
    let response =
        client.restore_accounts(context.peers.request(futures::stream::iter(accounts))).await.map_err(Error::remote("users"))?.into_inner();
    for conflict in &response.conflicts {
        tracing::warn!(conflict = %conflict, "account not restored");
    }
    Ok(RestoredTable { name: "accounts".into(), restored: response.restored, already_present: response.already_present })
}

async fn restore_files(
    context: &Context,
    manifest: &Manifest,
    folder: &Path,
    kind: Option<&str>,
    present: &PresentKeys,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<RestoredTable, Error> {
    let mut restored = 0u64;
    let mut already_present = 0u64;
    let mut without_bytes = 0u64;
    let rows = file_rows(manifest, folder, kind)?;
    let total = rows.len() as u64;
    let mut client = FileUploadServiceClient::new(context.peers.ingest.clone());
    for (index, file) in rows.into_iter().enumerate() {
        report(progress, "files", index as u64, total, "files");
        if present.files.contains(&file.identity.file_id) {
            already_present += 1;
            continue;
        }
        let blob = format!("{BLOBS_FOLDER}/{}", file.identity.sha256);
        if !manifest.files.iter().any(|entry| entry.kind == "blob" && entry.path == blob) {
            without_bytes += 1;
            continue;
        }
        let path = folder.join(relative_path(&blob)?);
        let metadata = UploadFileRequest {
            message: Some(upload_file_request::Message::Metadata(UploadMetadata {
                name: file.name,
                content_type: file.content_type,
                restore: Some(file.identity),
                folder_date: String::new(),
            })),
        };
        let chunks = read_chunks(path).await?;
        let requests = futures::stream::once(async move { metadata }).chain(chunks);
        match client.upload_file(context.peers.request(requests)).await {
            Ok(_) => restored += 1,
            // The nodes still hold this file's parts (a restore interrupted before storage
            // caught up): it is there, not lost.
            Err(status) if status.code() == tonic::Code::AlreadyExists => already_present += 1,
            Err(status) => return Err(Error::remote("ingest")(status)),
        }
    }
    if without_bytes > 0 {
        tracing::warn!(without_bytes, "files of the backup not restored: the backup holds no bytes for them (take backups with --with-files)");
    }
    Ok(RestoredTable { name: "files".into(), restored, already_present })
}

struct FileRow {
    identity: RestoredFileIdentity,
    name: String,
    content_type: String,
}

fn file_rows(manifest: &Manifest, folder: &Path, kind: Option<&str>) -> Result<Vec<FileRow>, Error> {
    let mut rows = Vec::new();
    for batch in read_table(manifest, folder, "files", kind)? {
        let batch = batch?;
        let ids = text_column(&batch, "file_id")?;
        let owners = text_column(&batch, "owner")?;
        let names = text_column(&batch, "name")?;
        let types = text_column(&batch, "content_type")?;
        let hashes = text_column(&batch, "sha256")?;
        let uploaded = timestamp_column(&batch, "uploaded_at")?;
        for row in 0..batch.num_rows() {
            rows.push(FileRow {
                identity: RestoredFileIdentity {
                    file_id: ids.value(row).to_owned(),
                    owner: owners.value(row).to_owned(),
                    uploaded_at_unix_ms: optional_millis(uploaded, row),
                    sha256: hashes.value(row).to_owned(),
                },
                name: names.value(row).to_owned(),
                content_type: types.value(row).to_owned(),
            });
        }
    }
    Ok(rows)
}

/// The file at `path` as upload chunks of 1 MiB, read as they are sent.
async fn read_chunks(path: std::path::PathBuf) -> Result<impl futures::Stream<Item = UploadFileRequest>, Error> {
    let file = tokio::fs::File::open(&path).await?;
    let reader = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    // A read error ends the stream early; ingest then refuses the upload on its SHA-256.
    Ok(reader
        .filter_map(|chunk| futures::future::ready(chunk.ok()))
        .map(|chunk| UploadFileRequest { message: Some(upload_file_request::Message::Chunk(chunk)) }))
}

/// Publishes the backup's chats, messages and grants the platform lacks as one staged
/// import (read models apply all of it or none); returns what each table restored (grants only when the backup has them).
async fn restore_chat_events(
    context: &Context,
    manifest: &Manifest,
    folder: &Path,
    kind: Option<&str>,
    present: &PresentKeys,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<(Vec<RestoredTable>, Positions), Error> {
    let mut chats = RestoredTable { name: "chats".into(), ..Default::default() };
    let mut messages = RestoredTable { name: "messages".into(), ..Default::default() };
    let mut grants = manifest.table("chat_grants").map(|_| RestoredTable { name: "chat_grants".into(), ..Default::default() });
    let total_messages = manifest.table("messages").map_or(0, |table| table.rows);
    let import_id = format!("restore-{}-{}", manifest.backup_id, uuid::Uuid::now_v7().simple());
    let topic = context.kafka.topic(CHAT_EVENTS);
    let mut publisher = StagedPublisher::begin(&context.kafka, &topic, "backup", &import_id)?;
    let outcome: Result<(), Error> = async {
        for batch in read_table(manifest, folder, "chats", kind)? {
            for event in chat_events(&batch?, present, &mut chats)? {
                publisher.publish(&event.key, event.event_type, &event.payload).await?;
            }
        }
        let mut done = 0u64;
        for batch in read_table(manifest, folder, "messages", kind)? {
            let batch = batch?;
            done += batch.num_rows() as u64;
            for event in message_events(&batch, present, &mut messages)? {
                publisher.publish(&event.key, event.event_type, &event.payload).await?;
            }
            report(progress, "messages", done, total_messages, "rows");
        }
        // After the chats: a grant names an archive the transaction has just brought back.
        if let Some(grants) = grants.as_mut() {
            for batch in read_table(manifest, folder, "chat_grants", kind)? {
                for event in grant_events(&batch?, present, grants)? {
                    publisher.publish(&event.key, event.event_type, &event.payload).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            let restorer = chatvault_common::caller::acting_caller().unwrap_or_default();
            let positions = publisher.commit(chat_import_committed(&import_id, &restorer)).await?;
            Ok(([Some(chats), Some(messages), grants].into_iter().flatten().collect(), positions))
        }
        Err(error) => {
            publisher.abort();
            Err(error)
        }
    }
}

struct ChatRecord {
    key: String,
    event_type: &'static str,
    payload: Vec<u8>,
}

fn chat_events(batch: &RecordBatch, present: &PresentKeys, counts: &mut RestoredTable) -> Result<Vec<ChatRecord>, Error> {
    let owners = Owners::of(batch)?;
    let ids = int64_column(batch, "chat_id")?;
    let names = text_column(batch, "name")?;
    let types = text_column(batch, "chat_type")?;
    let left = column(batch, "left_chat")?.as_boolean_opt().ok_or_else(|| Error::Damaged("column left_chat is not boolean".into()))?;
    let import_ids = text_column(batch, "last_import_id")?;
    let sources = text_column(batch, "source")?;
    let imported_at = timestamp_column(batch, "imported_at")?;
    let mut events = Vec::new();
    for row in 0..batch.num_rows() {
        let chat_id = ids.value(row);
        let owner = owners.value(row);
        if present.chats.contains(&(owner.to_owned(), chat_id)) {
            counts.already_present += 1;
            continue;
        }
        counts.restored += 1;
        let event = ChatImported {
            chat_id,
            name: optional_text(names, row),
            chat_type: types.value(row).to_owned(),
            import_id: optional_text(import_ids, row).unwrap_or_default(),
            source: optional_text(sources, row).unwrap_or_default(),
            left: !left.is_null(row) && left.value(row),
            imported_at_unix: optional_seconds(imported_at, row).unwrap_or_default(),
            owner: owner.to_owned(),
        };
        let payload = ChatEvent { event: Some(chat_event::Event::ChatImported(event)) }.encode_to_vec();
        events.push(ChatRecord { key: chat_id.to_string(), event_type: "chatvault.chat.v1.ChatImported", payload });
    }
    Ok(events)
}

fn message_events(batch: &RecordBatch, present: &PresentKeys, counts: &mut RestoredTable) -> Result<Vec<ChatRecord>, Error> {
    let owners = Owners::of(batch)?;
    let chat_ids = int64_column(batch, "chat_id")?;
    let message_ids = int64_column(batch, "message_id")?;
    let kinds = primitive_column::<Int16Type>(batch, "kind")?;
    let sent = timestamp_column(batch, "sent_at")?;
    let edited = timestamp_column(batch, "edited_at")?;
    let text = |name: &str| text_column(batch, name);
    let (from_name, from_id, signature, forwarded, saved) =
        (text("from_name")?, text("from_id")?, text("author_signature")?, text("forwarded_from")?, text("saved_from")?);
    let reply_ids = int64_column(batch, "reply_to_message_id")?;
    let (reply_peer, via_bot, action, actor_name, actor_id) =
        (text("reply_to_peer_id")?, text("via_bot")?, text("action")?, text("actor_name")?, text("actor_id")?);
    let (texts, entities, media, raw, import_ids) = (text("text")?, text("entities")?, text("media")?, text("raw_json")?, text("import_id")?);
    let mut events = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let (owner, chat_id, message_id) = (owners.value(row), chat_ids.value(row), message_ids.value(row));
        if present.messages.contains(&(owner.to_owned(), chat_id, message_id)) {
            counts.already_present += 1;
            continue;
        }
        counts.restored += 1;
        let event = MessagePosted {
            chat_id,
            message_id,
            kind: i32::from(kinds.value(row)),
            date_unix: optional_seconds(sent, row),
            edited_unix: optional_seconds(edited, row),
            from_name: optional_text(from_name, row),
            from_id: optional_text(from_id, row),
            author_signature: optional_text(signature, row),
            forwarded_from: optional_text(forwarded, row),
            saved_from: optional_text(saved, row),
            reply_to_message_id: (!reply_ids.is_null(row)).then(|| reply_ids.value(row)),
            reply_to_peer_id: optional_text(reply_peer, row),
            via_bot: optional_text(via_bot, row),
            action: optional_text(action, row),
            actor_name: optional_text(actor_name, row),
            actor_id: optional_text(actor_id, row),
            text: texts.value(row).to_owned(),
            entities: optional_text(entities, row).map(|json| entities_of_json(&json)).transpose()?.unwrap_or_default(),
            media: optional_text(media, row).map(|json| media_of_json(&json)).transpose()?,
            raw_json: raw.value(row).to_owned(),
            import_id: import_ids.value(row).to_owned(),
            owner: owner.to_owned(),
        };
        let payload = ChatEvent { event: Some(chat_event::Event::MessagePosted(event)) }.encode_to_vec();
        events.push(ChatRecord { key: chat_id.to_string(), event_type: "chatvault.chat.v1.MessagePosted", payload });
    }
    Ok(events)
}

/// `ChatShared` for every grant of the backup the platform lacks, naming who shared it then.
fn grant_events(batch: &RecordBatch, present: &PresentKeys, counts: &mut RestoredTable) -> Result<Vec<ChatRecord>, Error> {
    let owners = Owners::of(batch)?;
    let chat_ids = int64_column(batch, "chat_id")?;
    let grantees = text_column(batch, "grantee")?;
    let granted_by = text_column(batch, "granted_by")?;
    let granted_at = timestamp_column(batch, "granted_at")?;
    let mut events = Vec::new();
    for row in 0..batch.num_rows() {
        let (owner, chat_id, grantee) = (owners.value(row), chat_ids.value(row), grantees.value(row));
        if present.grants.contains(&(owner.to_owned(), chat_id, grantee.to_owned())) {
            counts.already_present += 1;
            continue;
        }
        counts.restored += 1;
        let event = ChatShared {
            chat_id,
            owner: owner.to_owned(),
            grantee: grantee.to_owned(),
            actor: granted_by.value(row).to_owned(),
            shared_at_unix: optional_seconds(granted_at, row).unwrap_or_default(),
        };
        let payload = ChatEvent { event: Some(chat_event::Event::ChatShared(event)) }.encode_to_vec();
        events.push(ChatRecord { key: chat_id.to_string(), event_type: "chatvault.chat.v1.ChatShared", payload });
    }
    Ok(events)
}

/// Entities as storage keeps them: `[{"kind", "offset", "length", "extra"?}]`.
fn entities_of_json(json: &str) -> Result<Vec<TextEntity>, Error> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|error| Error::Damaged(format!("entities are not JSON: {error}")))?;
    let Some(items) = value.as_array() else {
        return Err(Error::Damaged("entities are not a JSON array".into()));
    };
    Ok(items
        .iter()
        .map(|item| TextEntity {
            kind: item["kind"].as_str().unwrap_or_default().to_owned(),
            offset: item["offset"].as_u64().unwrap_or_default() as u32,
            length: item["length"].as_u64().unwrap_or_default() as u32,
            extra_json: item.get("extra").filter(|extra| extra.is_object()).map(ToString::to_string).unwrap_or_default(),
        })
        .collect())
}

/// Media as storage keeps it: an object of the `Media` fields.
fn media_of_json(json: &str) -> Result<Media, Error> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|error| Error::Damaged(format!("media is not JSON: {error}")))?;
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64);
    Ok(Media {
        kind: text("kind").unwrap_or_default(),
        path: text("path"),
        not_included_reason: text("not_included_reason"),
        file_name: text("file_name"),
        file_size: number("file_size"),
        mime_type: text("mime_type"),
        width: number("width").map(|value| value as u32),
        height: number("height").map(|value| value as u32),
        duration_seconds: number("duration_seconds").map(|value| value as u32),
        thumbnail_path: text("thumbnail_path"),
        file_id: text("file_id"),
    })
}

/// Waits until storage has applied `token` (its queries wait boundedly; this retries).
async fn wait_for_storage(context: &Context, token: &str) -> Result<(), Error> {
    let mut client = StorageServiceClient::new(context.peers.storage.clone());
    let deadline = tokio::time::Instant::now() + PROJECTION_WAIT;
    loop {
        let request = ListChatsRequest { consistency_token: Some(chatvault_proto::common::v1::ConsistencyToken { value: token.to_owned() }) };
        match client.list_chats(context.peers.request(request)).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::DeadlineExceeded && tokio::time::Instant::now() < deadline => continue,
            Err(status) => return Err(Error::remote("storage")(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_media_come_back_from_storage_json() {
        let entities = entities_of_json(
            r#"[{"kind":"text_link","offset":3,"length":4,"extra":{"href":"https://example.com"}},{"kind":"bold","offset":0,"length":1}]"#,
        )
        .expect("parses");
        assert_eq!(entities.len(), 2);
        assert_eq!(entities[0].extra_json, r#"{"href":"https://example.com"}"#);
        assert_eq!((entities[1].kind.as_str(), entities[1].offset, entities[1].length, entities[1].extra_json.as_str()), ("bold", 0, 1, ""));
        let media = media_of_json(r#"{"kind":"photo","path":"photos/a.jpg","file_size":12,"width":3,"height":null,"file_id":"f1"}"#).expect("parses");
        assert_eq!(media.kind, "photo");
        assert_eq!(media.path.as_deref(), Some("photos/a.jpg"));
        assert_eq!(media.file_size, Some(12));
        assert_eq!(media.height, None);
        assert_eq!(media.file_id.as_deref(), Some("f1"));
        assert!(entities_of_json("{}").is_err());
    }
}
