//! The gRPC API of the backup service, its events on `backup.events`, and the schedule.
//! Every call needs the admin role: a backup holds every account's data.
//! Where a bucket is configured, a new backup is copied to it once complete on disk, and a
//! verify or restore of an id that is only in the bucket fetches it first.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use chatvault_common::caller::caller_of_metadata;
use chatvault_common::envelope::Envelope;
use chatvault_common::topics::BACKUP_EVENTS;
use chatvault_proto::backup::v1::backup_service_server::BackupService;
use chatvault_proto::backup::v1::{
    backup_event, create_backup_response, restore_backup_response, upload_backup_request, verify_backup_response, BackupCreated, BackupDeleted,
    BackupEvent, BackupFormat, BackupRestored, BackupUploaded, CreateBackupRequest, CreateBackupResponse, ListBackupsRequest, ListBackupsResponse,
    Progress, RestoreBackupRequest, RestoreBackupResponse, UploadBackupRequest, UploadBackupResponse, VerifyBackupRequest, VerifyBackupResponse,
};
use futures::Stream;
use prost::Message;
use rdkafka::producer::FutureRecord;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::create::{create_backup, BackupOrder};
use crate::manifest::{relative_path, Manifest};
use crate::remote::RemoteStore;
use crate::table_files::Formats;
use crate::{catalog, Context, Error};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The formats named `csv`, `parquet` or `both`.
pub fn formats_of_name(name: &str) -> Result<Formats, Error> {
    match name {
        "csv" => Ok(Formats { csv: true, parquet: false }),
        "parquet" => Ok(Formats { csv: false, parquet: true }),
        "both" => Ok(Formats { csv: true, parquet: true }),
        other => Err(Error::InvalidArgument(format!("unknown backup format {other:?}: use csv, parquet or both"))),
    }
}

fn formats_of_request(format: i32) -> Result<Formats, Error> {
    match BackupFormat::try_from(format) {
        Ok(BackupFormat::Csv) => Ok(Formats { csv: true, parquet: false }),
        Ok(BackupFormat::Parquet) => Ok(Formats { csv: false, parquet: true }),
        Ok(BackupFormat::Both) => Ok(Formats { csv: true, parquet: true }),
        Ok(BackupFormat::Unspecified) => Err(Error::InvalidArgument("choose a format: csv, parquet or both".into())),
        Err(_) => Err(Error::InvalidArgument(format!("unknown backup format {format}"))),
    }
}

#[derive(Clone, Debug)]
pub struct BackupApi {
    context: Context,
}

impl BackupApi {
    pub fn new(context: Context) -> Self {
        Self { context }
    }
}

/// Runs `work` in a task and streams its progress, then its result, to the caller.
fn progress_stream<T, F, Fut>(wrap_progress: fn(Progress) -> T, work: F) -> ResponseStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<Progress>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
{
    let (progress_sender, mut progress_receiver) = mpsc::channel::<Progress>(64);
    let (sender, receiver) = mpsc::channel::<Result<T, Status>>(64);
    tokio::spawn(async move {
        let forward_sender = sender.clone();
        let forward = tokio::spawn(async move {
            while let Some(progress) = progress_receiver.recv().await {
                if forward_sender.send(Ok(wrap_progress(progress))).await.is_err() {
                    break;
                }
            }
        });
        let result = work(progress_sender).await;
        let _ = forward.await;
        let _ = sender.send(result.map_err(Status::from)).await;
    });
    Box::pin(ReceiverStream::new(receiver))
}

/// Publishes a backup event; failures are logged, the backup itself is done.
async fn publish_event(context: &Context, backup_id: &str, actor: &str, event: backup_event::Event) {
    let event_type = match &event {
        backup_event::Event::BackupCreated(_) => "chatvault.backup.v1.BackupCreated",
        backup_event::Event::BackupRestored(_) => "chatvault.backup.v1.BackupRestored",
        backup_event::Event::BackupUploaded(_) => "chatvault.backup.v1.BackupUploaded",
        backup_event::Event::BackupDeleted(_) => "chatvault.backup.v1.BackupDeleted",
    };
    let payload = BackupEvent { event: Some(event) }.encode_to_vec();
    let topic = context.kafka.topic(BACKUP_EVENTS);
    let envelope = Envelope::new(event_type, "backup", chatvault_common::telemetry::traceparent_of(&tracing::Span::current()));
    let headers = chatvault_common::caller::act_as(actor.to_owned(), async move { envelope.to_headers() }).await;
    let record = FutureRecord::to(&topic).key(backup_id).payload(&payload).headers(headers);
    if let Err((error, _)) = context.events.send(record, Duration::from_secs(10)).await {
        tracing::warn!(%error, backup_id, event_type, "publishing the backup event failed");
    }
}

/// Takes one backup and records it; shared by the API and the schedule.
async fn take_backup(
    context: &Context,
    order: BackupOrder,
    actor: &str,
    progress: Option<mpsc::Sender<Progress>>,
) -> Result<chatvault_proto::backup::v1::Backup, Error> {
    let started = std::time::Instant::now();
    let upload_progress = progress.clone();
    let (manifest, folder) = create_backup(context, order, progress).await?;
    catalog::record(&context.pool, &manifest, &folder).await?;
    let view = catalog::view(&manifest, &folder);
    tracing::info!(backup_id = %manifest.backup_id, bytes = view.total_bytes, seconds = started.elapsed().as_secs_f64(), "backup created");
    let event = BackupCreated {
        backup_id: manifest.backup_id.clone(),
        formats: manifest.formats.clone(),
        tables: view.tables.clone(),
        total_bytes: view.total_bytes,
        origin: manifest.origin.clone(),
        actor: actor.to_owned(),
    };
    publish_event(context, &manifest.backup_id, actor, backup_event::Event::BackupCreated(event)).await;
    if let Some(remote) = &context.remote {
        copy_to_bucket(context, remote, &manifest, &folder, upload_progress.as_ref()).await?;
    }
    Ok(view)
}

/// Copies a backup that is complete on disk to the bucket and records where it went. A
/// failure leaves the local backup as it is (complete and catalogued) and is UNAVAILABLE.
async fn copy_to_bucket(
    context: &Context,
    remote: &RemoteStore,
    manifest: &Manifest,
    folder: &Path,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<(), Error> {
    let remote_url = remote.url_of(&manifest.backup_id);
    let total = manifest.total_bytes();
    if let Some(progress) = progress {
        let _ = progress.try_send(Progress { phase: "upload".into(), item: remote_url.clone(), done: 0, total, unit: "bytes".into() });
    }
    if let Err(error) = remote.upload_backup(folder, manifest).await {
        tracing::error!(backup_id = %manifest.backup_id, bucket = remote.bucket(), folder = %folder.display(), %error, "copying the backup to the bucket failed; the local backup is complete");
        return Err(Error::Unavailable(format!(
            "backup {} is complete in {}, but copying it to s3 bucket {} failed: {error}",
            manifest.backup_id,
            folder.display(),
            remote.bucket()
        )));
    }
    catalog::set_remote_url(&context.pool, &manifest.backup_id, &remote_url).await?;
    if let Some(progress) = progress {
        let _ = progress.try_send(Progress { phase: "upload".into(), item: remote_url, done: total, total, unit: "bytes".into() });
    }
    Ok(())
}

#[tonic::async_trait]
impl BackupService for BackupApi {
    type CreateBackupStream = ResponseStream<CreateBackupResponse>;
    type VerifyBackupStream = ResponseStream<VerifyBackupResponse>;
    type RestoreBackupStream = ResponseStream<RestoreBackupResponse>;

    #[tracing::instrument(skip_all)]
    async fn create_backup(&self, request: Request<CreateBackupRequest>) -> Result<Response<Self::CreateBackupStream>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "taking a backup")?;
        let actor = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        let order = BackupOrder {
            formats: formats_of_request(request.format)?,
            chat_ids: request.chat_ids,
            with_files: request.with_files,
            origin: "manual".into(),
        };
        let context = self.context.clone();
        let stream = progress_stream(
            |progress| CreateBackupResponse { message: Some(create_backup_response::Message::Progress(progress)) },
            move |progress| async move {
                let backup = take_backup(&context, order, &actor, Some(progress)).await?;
                Ok(CreateBackupResponse { message: Some(create_backup_response::Message::Backup(backup)) })
            },
        );
        Ok(Response::new(stream))
    }

    async fn list_backups(&self, request: Request<ListBackupsRequest>) -> Result<Response<ListBackupsResponse>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "listing backups")?;
        Ok(Response::new(ListBackupsResponse { backups: catalog::list(&self.context.pool).await? }))
    }

    #[tracing::instrument(skip_all, fields(backup_id = %request.get_ref().backup_id))]
    async fn verify_backup(&self, request: Request<VerifyBackupRequest>) -> Result<Response<Self::VerifyBackupStream>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "verifying a backup")?;
        let backup_id = request.into_inner().backup_id;
        if self.context.remote.is_none() {
            // Without a bucket to look in, an unknown id fails the call itself.
            catalog::folder_of(&self.context.pool, &backup_id).await?;
        }
        let context = self.context.clone();
        let stream = progress_stream(
            |progress| VerifyBackupResponse { message: Some(verify_backup_response::Message::Progress(progress)) },
            move |progress| async move {
                let folder = catalog::folder_of_or_fetch(&context, &backup_id).await?;
                let mut result = tokio::task::spawn_blocking(move || crate::verify::verify_folder(&folder, Some(&progress)))
                    .await
                    .map_err(|error| Error::Internal(format!("verify task: {error}")))?;
                if !result.ok {
                    tracing::warn!(backup_id = %result.backup_id, problems = ?result.problems, "backup failed verification");
                }
                result.ok = result.problems.is_empty();
                Ok(VerifyBackupResponse { message: Some(verify_backup_response::Message::Result(result)) })
            },
        );
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all, fields(backup_id = %request.get_ref().backup_id))]
    async fn restore_backup(&self, request: Request<RestoreBackupRequest>) -> Result<Response<Self::RestoreBackupStream>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "restoring a backup")?;
        let actor = caller_of_metadata(request.metadata());
        let request = request.into_inner();
        let kind = match BackupFormat::try_from(request.format) {
            Ok(BackupFormat::Unspecified) => None,
            Ok(BackupFormat::Csv) => Some("csv"),
            Ok(BackupFormat::Parquet) => Some("parquet"),
            _ => return Err(Status::invalid_argument("restore reads one format: csv or parquet")),
        };
        if self.context.remote.is_none() {
            // Without a bucket to look in, an unknown id fails the call itself.
            catalog::folder_of(&self.context.pool, &request.backup_id).await?;
        }
        let context = self.context.clone();
        let stream = progress_stream(
            |progress| RestoreBackupResponse { message: Some(restore_backup_response::Message::Progress(progress)) },
            move |progress| async move {
                let folder = catalog::folder_of_or_fetch(&context, &request.backup_id).await?;
                let summary = crate::restore::restore_folder(&context, &folder, kind, &actor, Some(progress)).await?;
                tracing::info!(backup_id = %summary.backup_id, tables = ?summary.tables, "backup restored");
                let event = BackupRestored { backup_id: summary.backup_id.clone(), tables: summary.tables.clone(), actor: actor.clone() };
                publish_event(&context, &summary.backup_id, &actor, backup_event::Event::BackupRestored(event)).await;
                Ok(RestoreBackupResponse { message: Some(restore_backup_response::Message::Summary(summary)) })
            },
        );
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all)]
    async fn upload_backup(&self, request: Request<Streaming<UploadBackupRequest>>) -> Result<Response<UploadBackupResponse>, Status> {
        chatvault_common::auth::require_admin(request.metadata(), "uploading a backup")?;
        let actor = caller_of_metadata(request.metadata());
        let root = self.context.settings.folder.clone();
        let staging = root.join(format!(".upload-{}.partial", uuid::Uuid::now_v7().simple()));
        let received = receive_upload(&staging, request.into_inner()).await;
        let result = match received {
            Ok(()) => adopt_upload(&self.context, &staging).await,
            Err(error) => Err(error),
        };
        if staging.exists() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        let backup = result?;
        let event = BackupUploaded { backup_id: backup.id.clone(), total_bytes: backup.total_bytes, actor: actor.clone() };
        publish_event(&self.context, &backup.id, &actor, backup_event::Event::BackupUploaded(event)).await;
        Ok(Response::new(UploadBackupResponse { backup: Some(backup) }))
    }
}

/// Writes the uploaded files into `staging`, each exactly as announced.
async fn receive_upload(staging: &Path, mut stream: Streaming<UploadBackupRequest>) -> Result<(), Error> {
    tokio::fs::create_dir_all(staging).await?;
    let mut current: Option<(String, u64, u64, tokio::fs::File)> = None;
    let finish = |current: Option<(String, u64, u64, tokio::fs::File)>| -> Result<Option<tokio::fs::File>, Error> {
        match current {
            Some((_, size, written, file)) if size == written => Ok(Some(file)),
            Some((path, size, written, _)) => Err(Error::InvalidArgument(format!("{path}: {written} bytes received, {size} announced"))),
            None => Ok(None),
        }
    };
    while let Some(message) = stream.message().await.map_err(|status| Error::InvalidArgument(format!("upload interrupted: {}", status.message())))? {
        match message.message {
            Some(upload_backup_request::Message::File(file)) => {
                if let Some(mut done) = finish(current.take())? {
                    done.flush().await?;
                }
                let relative = relative_path(&file.path)?;
                let path = staging.join(&relative);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let handle = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                    .map_err(|error| Error::InvalidArgument(format!("{}: {error}", file.path)))?;
                current = Some((file.path, file.size, 0, handle));
            }
            Some(upload_backup_request::Message::Chunk(chunk)) => {
                let Some((path, size, written, handle)) = current.as_mut() else {
                    return Err(Error::InvalidArgument("bytes arrived before a file was named".into()));
                };
                *written += chunk.len() as u64;
                if *written > *size {
                    return Err(Error::InvalidArgument(format!("{path}: more than the announced {size} bytes")));
                }
                handle.write_all(&chunk).await?;
            }
            None => {}
        }
    }
    if let Some(mut done) = finish(current.take())? {
        done.flush().await?;
    }
    Ok(())
}

/// Checks an uploaded backup whole and moves it into the catalog under its own id.
async fn adopt_upload(context: &Context, staging: &Path) -> Result<chatvault_proto::backup::v1::Backup, Error> {
    let checking = staging.to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || crate::verify::checked_manifest(&checking))
        .await
        .map_err(|error| Error::Internal(format!("verify task: {error}")))??;
    let folder: PathBuf = context.settings.folder.join(relative_path(&manifest.backup_id)?);
    if let Ok(existing) = catalog::folder_of(&context.pool, &manifest.backup_id).await {
        let held = Manifest::read(&existing)?;
        if held == manifest {
            return Ok(catalog::view(&held, &existing));
        }
        return Err(Error::AlreadyExists(format!("another backup with id {} is in the catalog", manifest.backup_id)));
    }
    if folder.exists() {
        // The same backup already on disk (a restore after the database was wiped).
        if Manifest::read(&folder).is_ok_and(|held| held == manifest) {
            catalog::record(&context.pool, &manifest, &folder).await?;
            return Ok(catalog::view(&manifest, &folder));
        }
        return Err(Error::AlreadyExists(format!("{} exists and holds another backup", folder.display())));
    }
    tokio::fs::rename(staging, &folder).await?;
    catalog::record(&context.pool, &manifest, &folder).await?;
    Ok(catalog::view(&manifest, &folder))
}

/// Takes a backup every `interval` and keeps the newest scheduled ones.
pub async fn run_schedule(context: Context, interval: Duration, shutdown: CancellationToken) {
    let Ok(formats) = formats_of_name(&context.settings.schedule_format) else {
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let order = BackupOrder { formats, chat_ids: Vec::new(), with_files: context.settings.schedule_with_files, origin: "scheduled".into() };
        if let Err(error) = take_backup(&context, order, crate::peers::SERVICE_IDENTITY, None).await {
            tracing::error!(error = %error, "scheduled backup failed");
            continue;
        }
        match catalog::scheduled_beyond(&context.pool, context.settings.schedule_keep).await {
            Ok(expired) => {
                for (backup_id, folder) in expired {
                    if let Err(error) = tokio::fs::remove_dir_all(&folder).await {
                        if error.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(%error, backup_id, "removing an old scheduled backup failed");
                            continue;
                        }
                    }
                    if catalog::forget(&context.pool, &backup_id).await.is_ok() {
                        tracing::info!(backup_id, "old scheduled backup removed");
                        publish_event(
                            &context,
                            &backup_id,
                            crate::peers::SERVICE_IDENTITY,
                            backup_event::Event::BackupDeleted(BackupDeleted { backup_id: backup_id.clone() }),
                        )
                        .await;
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error, "listing old scheduled backups failed"),
        }
    }
}
