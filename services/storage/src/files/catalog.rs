//! The file commands and queries of the storage service, shared by the gRPC and REST
//! handlers: manifests for downloads, date folders, delete, share links, and the node
//! registry. Commands publish their event, then wait until the projection has applied it,
//! so the next query sees the change.
//!
//! A file of another account answers exactly like a file that does not exist (NOT_FOUND),
//! so nobody learns which ids are taken; admins reach every file where a command says so.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatvault_common::consistency::{AppliedPositions, Positions};
use chatvault_common::topics::{FILES_EVENTS, STORAGE_NODES};
use chatvault_file_store::node_client::NodeClients;
use chatvault_proto::files::v1::{file_event, FileDeleted, FileEvent, FileRenamed, ShareLinkCreated, ShareLinkRevoked};
use chatvault_proto::storage::v1::{node_event, FileDate, FileInfo, NodeEvent, NodeInfo, NodeRegistered, ShareLinkInfo};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use prost::Message as _;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::Notify;

use super::download::{FileManifest, PartLocation};
use super::share_password_guard::{SharePasswordGuard, SharePasswordSettings};
use super::{file_name, share_link, sql};
use crate::Error;

/// The longest a share link may live.
const MAX_SHARE_LINK_SECONDS: u64 = 366 * 24 * 3600;

/// A created share link.
#[derive(Clone, Debug)]
pub struct CreatedShareLink {
    pub token: String,
    pub expires_at_unix_ms: i64,
    pub positions: Positions,
}

/// A share link that works now.
#[derive(Clone, Debug)]
pub struct LiveShareLink {
    /// The live file it leads to.
    pub file: FileInfo,
    /// The Argon2 PHC string of its password; `None` for a link without one.
    pub password_hash: Option<String>,
    /// The hex SHA-256 of its token, the key under which its password attempts are counted.
    pub token_sha256: String,
    pub expires_at_unix_ms: i64,
}

/// The files side of the storage service.
#[derive(Clone)]
pub struct FileCatalog {
    pool: Pool,
    producer: FutureProducer,
    files_topic: String,
    nodes_topic: String,
    clients: NodeClients,
    applied: AppliedPositions,
    consistency_wait: Duration,
    purge_wakeup: Arc<Notify>,
    /// The one guard of share-link password checks, shared by every clone, so the HTTP route
    /// and the gRPC calls count failures per link together and share the verification slots.
    share_passwords: Arc<OnceLock<SharePasswordGuard>>,
}

impl std::fmt::Debug for FileCatalog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FileCatalog").field("files_topic", &self.files_topic).finish_non_exhaustive()
    }
}

impl FileCatalog {
    /// Returns the catalog; `clients` reach the storage nodes with the service credential.
    pub fn new(
        pool: Pool,
        kafka: &chatvault_common::config::KafkaConfig,
        applied: AppliedPositions,
        consistency_wait: Duration,
        clients: NodeClients,
    ) -> Result<Self, Error> {
        let producer = chatvault_common::kafka::idempotent_producer(kafka, "chatvault-storage-files")?;
        Ok(Self {
            pool,
            producer,
            files_topic: kafka.topic(FILES_EVENTS),
            nodes_topic: kafka.topic(STORAGE_NODES),
            clients,
            applied,
            consistency_wait,
            purge_wakeup: Arc::new(Notify::new()),
            share_passwords: Arc::new(OnceLock::new()),
        })
    }

    /// Sets how share-link passwords are checked, once at start-up, before the first request
    /// (the download routes do it with the service's settings); returns the guard. A second
    /// call keeps the first guard: its counts and slots must stay the only ones.
    pub fn configure_share_passwords(&self, settings: SharePasswordSettings) -> SharePasswordGuard {
        let mut configured_now = false;
        let guard = self.share_passwords.get_or_init(|| {
            configured_now = true;
            SharePasswordGuard::new(settings)
        });
        if !configured_now && guard.settings() != settings {
            tracing::warn!(?settings, kept = ?guard.settings(), "share link password settings were configured already; the first ones stay");
        }
        guard.clone()
    }

    /// Returns the guard of share-link password checks (with the default settings when
    /// [`Self::configure_share_passwords`] was never called).
    pub fn share_passwords(&self) -> SharePasswordGuard {
        self.share_passwords.get_or_init(|| SharePasswordGuard::new(SharePasswordSettings::default())).clone()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn clients(&self) -> &NodeClients {
        &self.clients
    }

    /// Woken when a file is deleted, so its parts go at once.
    pub fn purge_wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.purge_wakeup)
    }

    /// Waits until the events behind `token` are applied (empty: at once).
    pub async fn wait_for_token(&self, token: Option<&str>) -> Result<(), Error> {
        let Some(token) = token.filter(|token| !token.is_empty()) else { return Ok(()) };
        let required = Positions::from_token(token)?;
        self.wait_for_positions(&required).await
    }

    async fn wait_for_positions(&self, required: &Positions) -> Result<(), Error> {
        self.applied.wait_for(required, self.consistency_wait).await.map_err(|error| match error {
            chatvault_common::Error::Timeout(message) => Error::DeadlineExceeded(message),
            other => Error::Common(other),
        })
    }

    async fn publish_file_event(&self, file_id: &str, event_type: &str, event: file_event::Event) -> Result<Positions, Error> {
        let positions = self.publish_without_waiting(file_id, event_type, event).await?;
        self.wait_for_positions(&positions).await?;
        Ok(positions)
    }

    /// Publishes a file event; returns its position without waiting for the projection.
    pub async fn publish_without_waiting(&self, file_id: &str, event_type: &str, event: file_event::Event) -> Result<Positions, Error> {
        let payload = FileEvent { event: Some(event) }.encode_to_vec();
        chatvault_file_store::events::publish_event(&self.producer, &self.files_topic, file_id, event_type, crate::SERVICE_NAME, payload)
            .await
            .map_err(|error| Error::Unavailable(format!("the event log (Kafka) is not reachable: {error}")))
    }

    /// Waits (at most a few seconds) until the projection has applied everything already
    /// on `files.events`. Commands answer once their own event is applied, but an upload
    /// goes through ingest: a download, listing or share issued right after it would
    /// otherwise miss the file for a moment. Called on a miss, so hits cost nothing.
    pub async fn catch_up_with_file_events(&self) {
        let producer = self.producer.clone();
        let topic = self.files_topic.clone();
        let ends = tokio::task::spawn_blocking(move || -> Result<Positions, rdkafka::error::KafkaError> {
            let timeout = Duration::from_secs(5);
            let metadata = producer.client().fetch_metadata(Some(&topic), timeout)?;
            let mut ends = Positions::default();
            for partition in metadata.topics().iter().flat_map(|described| described.partitions()) {
                let (_, high) = producer.client().fetch_watermarks(&topic, partition.id(), timeout)?;
                if high > 0 {
                    ends.0.insert((topic.clone(), partition.id()), high);
                }
            }
            Ok(ends)
        })
        .await;
        match ends {
            Ok(Ok(ends)) => {
                let limit = self.consistency_wait.min(Duration::from_secs(5));
                if let Err(error) = self.applied.wait_for(&ends, limit).await {
                    tracing::warn!(%error, "the files projection did not catch up in time");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the end of files.events"),
            Err(error) => tracing::warn!(%error, "watermark task failed"),
        }
    }

    /// Waits until the projection has applied `positions`.
    pub async fn wait_for_applied(&self, positions: &Positions) -> Result<(), Error> {
        self.wait_for_positions(positions).await
    }

    /// Returns the live file `file_id` when `owner` may see it.
    pub async fn file_of_owner(&self, file_id: &str, owner: &str) -> Result<FileInfo, Error> {
        self.file_of_caller(file_id, owner, false).await
    }

    /// Returns the live file `file_id` when it is `caller`'s, or whoever's with `any_owner`
    /// (admins). Another account's file is NOT_FOUND exactly like a missing one.
    pub async fn file_of_caller(&self, file_id: &str, caller: &str, any_owner: bool) -> Result<FileInfo, Error> {
        let mut row = self.live_file_row(file_id).await?;
        if row.is_none() {
            self.catch_up_with_file_events().await;
            row = self.live_file_row(file_id).await?;
        }
        match row.map(|row| file_info_of_row(&row)) {
            Some((info, _)) if any_owner || info.owner == caller => Ok(info),
            _ => Err(Error::NotFound(format!("no file with id {file_id}"))),
        }
    }

    async fn live_file_row(&self, file_id: &str) -> Result<Option<tokio_postgres::Row>, Error> {
        let client = self.pool.get().await?;
        Ok(client.query_opt(&sql::live_file_by_id(), &[&file_id]).await?)
    }

    /// Returns what is needed to read the live file `file_id`, whoever owns it.
    pub async fn manifest(&self, file_id: &str) -> Result<FileManifest, Error> {
        let mut row = self.live_file_row(file_id).await?;
        if row.is_none() {
            self.catch_up_with_file_events().await;
            row = self.live_file_row(file_id).await?;
        }
        let client = self.pool.get().await?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("no file with id {file_id}")));
        };
        let (info, block_size) = file_info_of_row(&row);
        let parts = client
            .query(sql::PARTS_OF_FILE, &[&file_id])
            .await?
            .iter()
            .map(|row| PartLocation {
                index: row.get::<_, i32>(0) as usize,
                node_id: row.get(1),
                address: row.get(2),
                size: row.get::<_, i64>(3) as u64,
                sha256: row.get(4),
            })
            .collect();
        Ok(FileManifest { info, block_size, parts })
    }

    /// Lists `owner`'s files uploaded on `date` (YYYY-MM-DD).
    pub async fn list_files(&self, owner: &str, date: &str) -> Result<Vec<FileInfo>, Error> {
        let date = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
            .map_err(|_| Error::InvalidArgument(format!("date {date:?} is not a date like 2026-11-22")))?;
        // A listing right after an upload through ingest should show it.
        self.catch_up_with_file_events().await;
        let client = self.pool.get().await?;
        let rows = client.query(&sql::live_files_of_owner_on_date(), &[&owner, &date]).await?;
        Ok(rows.iter().map(|row| file_info_of_row(row).0).collect())
    }

    /// Lists `owner`'s date folders: each upload date with live files, with their count and
    /// bytes, newest first.
    pub async fn list_file_dates(&self, owner: &str) -> Result<Vec<FileDate>, Error> {
        // As for a listing: an upload through ingest right before should be counted.
        self.catch_up_with_file_events().await;
        let client = self.pool.get().await?;
        let rows = client.query(sql::FILE_DATES_OF_OWNER, &[&owner]).await?;
        Ok(rows
            .iter()
            .map(|row| FileDate {
                date: row.get::<_, NaiveDate>(0).format("%Y-%m-%d").to_string(),
                file_count: row.get::<_, i64>(1) as u64,
                total_bytes: row.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    /// Renames the live file `file_id` of `caller` (any owner's with `any_owner`) to
    /// `new_name`; returns the file as the catalog holds it once the rename is applied. A
    /// name equal to the current one publishes nothing.
    pub async fn rename_file(&self, caller: &str, any_owner: bool, file_id: &str, new_name: &str) -> Result<(FileInfo, Positions), Error> {
        let new_name = file_name::validated_new_file_name(new_name)?;
        let current = self.file_of_caller(file_id, caller, any_owner).await?;
        if current.name == new_name {
            return Ok((current, Positions::default()));
        }
        let event = file_event::Event::FileRenamed(FileRenamed {
            file_id: file_id.to_owned(),
            owner: current.owner.clone(),
            name: new_name,
            renamed_at_unix_ms: Utc::now().timestamp_millis(),
            renamed_by: caller.to_owned(),
        });
        let positions = self.publish_file_event(file_id, "chatvault.files.v1.FileRenamed", event).await?;
        // Deleted meanwhile: the rename was applied to a file that is gone.
        let renamed = self.live_file_row(file_id).await?.map(|row| file_info_of_row(&row).0);
        let renamed = renamed.ok_or_else(|| Error::NotFound(format!("no file with id {file_id}")))?;
        tracing::info!(%file_id, owner = %renamed.owner, renamed_by = %caller, "file renamed");
        Ok((renamed, positions))
    }

    /// Deletes a file of `owner`: gone from the catalog on return, parts purged after.
    pub async fn delete_file(&self, owner: &str, file_id: &str) -> Result<Positions, Error> {
        self.file_of_owner(file_id, owner).await?;
        let event = file_event::Event::FileDeleted(FileDeleted {
            file_id: file_id.to_owned(),
            owner: owner.to_owned(),
            deleted_at_unix_ms: Utc::now().timestamp_millis(),
        });
        let positions = self.publish_file_event(file_id, "chatvault.files.v1.FileDeleted", event).await?;
        self.purge_wakeup.notify_one();
        Ok(positions)
    }

    /// Creates a share link to a file of `owner`.
    pub async fn create_share_link(&self, owner: &str, file_id: &str, expires_in_seconds: u64, password: &str) -> Result<CreatedShareLink, Error> {
        if expires_in_seconds == 0 || expires_in_seconds > MAX_SHARE_LINK_SECONDS {
            return Err(Error::InvalidArgument(format!("expires_in_seconds must be between 1 and {MAX_SHARE_LINK_SECONDS}")));
        }
        self.file_of_owner(file_id, owner).await?;
        let password_hash = if password.is_empty() {
            String::new()
        } else {
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || share_link::hash_password(&password))
                .await
                .map_err(|error| Error::Internal(format!("password task: {error}")))??
        };
        let token = share_link::new_token();
        let created_at = Utc::now().timestamp_millis();
        let expires_at_unix_ms = created_at + (expires_in_seconds as i64) * 1000;
        let event = file_event::Event::ShareLinkCreated(ShareLinkCreated {
            file_id: file_id.to_owned(),
            token_sha256: share_link::token_hash(&token),
            created_at_unix_ms: created_at,
            expires_at_unix_ms,
            password_hash,
            created_by: owner.to_owned(),
        });
        let positions = self.publish_file_event(file_id, "chatvault.files.v1.ShareLinkCreated", event).await?;
        Ok(CreatedShareLink { token, expires_at_unix_ms, positions })
    }

    /// Revokes a share link of a file of `owner`, named by its token or by its id (exactly
    /// one of them; see [`share_link::link_id_of_request`]).
    pub async fn revoke_share_link(&self, owner: &str, token: &str, link_id: &str) -> Result<Positions, Error> {
        let token_sha256 = share_link::link_id_of_request(token, link_id)?;
        let client = self.pool.get().await?;
        let row = client.query_opt(sql::SHARE_LINK_FOR_REVOKE, &[&token_sha256]).await?;
        let Some(row) = row.filter(|row| row.get::<_, String>(1) == owner || row.get::<_, String>(2) == owner) else {
            return Err(Error::NotFound("no such share link".to_owned()));
        };
        let file_id: String = row.get(0);
        let event = file_event::Event::ShareLinkRevoked(ShareLinkRevoked {
            file_id: file_id.clone(),
            token_sha256,
            revoked_at_unix_ms: Utc::now().timestamp_millis(),
        });
        self.publish_file_event(&file_id, "chatvault.files.v1.ShareLinkRevoked", event).await
    }

    /// Lists share links, newest first, with their state: those of `caller`'s files, or
    /// only those of `file_id` when it is not empty. With `any_owner` (admins) the links of
    /// `file_id` are listed whoever owns it. Links of deleted files are left out.
    pub async fn list_share_links(&self, caller: &str, any_owner: bool, file_id: &str) -> Result<Vec<ShareLinkInfo>, Error> {
        let file_id = file_id.trim();
        let (owner, file) = if file_id.is_empty() {
            (Some(caller), None)
        } else {
            self.file_of_caller(file_id, caller, any_owner).await?;
            (if any_owner { None } else { Some(caller) }, Some(file_id))
        };
        let client = self.pool.get().await?;
        let rows = client.query(sql::SHARE_LINKS, &[&owner, &file]).await?;
        Ok(rows
            .iter()
            .map(|row| ShareLinkInfo {
                link_id: row.get(0),
                file_id: row.get(1),
                file_name: chatvault_common::text::text(row, 2),
                created_at_unix_ms: row.get::<_, DateTime<Utc>>(3).timestamp_millis(),
                expires_at_unix_ms: row.get::<_, DateTime<Utc>>(4).timestamp_millis(),
                has_password: row.get(5),
                state: row.get(6),
            })
            .collect())
    }

    /// Returns the share link `token` names when it works now (known, not expired, not
    /// revoked, its file not deleted), or `None` for any other, so those failures look the
    /// same. Its password, if any, is for the caller to check (see `share_link_access`).
    pub async fn live_share_link(&self, token: &str) -> Result<Option<LiveShareLink>, Error> {
        if !share_link::token_is_well_formed(token) {
            return Ok(None);
        }
        let token_sha256 = share_link::token_hash(token);
        let client = self.pool.get().await?;
        let Some(row) = client.query_opt(&sql::file_of_valid_share_link(), &[&token_sha256]).await? else {
            return Ok(None);
        };
        let (file, _) = file_info_of_row(&row);
        Ok(Some(LiveShareLink {
            file,
            password_hash: row.get(10),
            token_sha256,
            expires_at_unix_ms: row.get::<_, DateTime<Utc>>(11).timestamp_millis(),
        }))
    }

    /// Returns the manifest of a shared file, or `None` when it was deleted meanwhile.
    pub async fn manifest_of_shared_file(&self, file_id: &str) -> Result<Option<FileManifest>, Error> {
        match self.manifest(file_id).await {
            Ok(manifest) => Ok(Some(manifest)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Registers the node at `address` under the id it reports; returns the id and
    /// whether it is new. Registering again at the same address publishes nothing.
    pub async fn register_node(&self, address: &str) -> Result<(String, bool, Positions), Error> {
        let address = address.trim().trim_start_matches("http://").trim_end_matches('/').to_owned();
        if address.is_empty() || !address.contains(':') {
            return Err(Error::InvalidArgument(format!("node address {address:?} must be host:port")));
        }
        let stats = self
            .clients
            .stats(&address)
            .await
            .map_err(|error| Error::Unavailable(format!("the storage node at {address} does not answer: {error}")))?;
        let client = self.pool.get().await?;
        let known = client.query_opt(sql::STORAGE_NODE_BY_ID, &[&stats.node_id]).await?;
        if known.is_some_and(|row| row.get::<_, String>(0) == address) {
            return Ok((stats.node_id, false, Positions::default()));
        }
        let event = NodeEvent {
            event: Some(node_event::Event::NodeRegistered(NodeRegistered {
                node_id: stats.node_id.clone(),
                address: address.clone(),
                registered_at_unix_ms: Utc::now().timestamp_millis(),
            })),
        };
        let positions = chatvault_file_store::events::publish_event(
            &self.producer,
            &self.nodes_topic,
            &stats.node_id,
            "chatvault.storage.v1.NodeRegistered",
            crate::SERVICE_NAME,
            event.encode_to_vec(),
        )
        .await
        .map_err(|error| Error::Unavailable(format!("the event log (Kafka) is not reachable: {error}")))?;
        self.wait_for_positions(&positions).await?;
        tracing::info!(node_id = %stats.node_id, %address, "storage node registered");
        Ok((stats.node_id, true, positions))
    }

    /// Lists every registered node with its fill; unreachable nodes are `down`.
    pub async fn list_nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        let client = self.pool.get().await?;
        let rows = client.query(sql::LIST_STORAGE_NODES, &[]).await?;
        let mut nodes: Vec<NodeInfo> = rows
            .iter()
            .map(|row| NodeInfo {
                node_id: row.get(0),
                address: row.get(1),
                registered_at_unix_ms: row.get::<_, DateTime<Utc>>(2).timestamp_millis(),
                state: "down".to_owned(),
                catalog_bytes: row.get::<_, i64>(3) as u64,
                ..NodeInfo::default()
            })
            .collect();
        let stats = futures::future::join_all(nodes.iter().map(|node| self.clients.stats(&node.address))).await;
        for (node, stats) in nodes.iter_mut().zip(stats) {
            if let Ok(stats) = stats.as_ref().map_err(|error| tracing::debug!(node_id = %node.node_id, %error, "node down")) {
                if stats.node_id == node.node_id {
                    node.state = "up".to_owned();
                    node.used_bytes = stats.used_bytes;
                    node.free_bytes = stats.free_bytes;
                    node.part_count = stats.part_count;
                }
            }
        }
        Ok(nodes)
    }
}

/// Returns the `FileInfo` and block size of a row selected with `sql::FILE_COLUMNS`.
fn file_info_of_row(row: &tokio_postgres::Row) -> (FileInfo, u64) {
    let info = FileInfo {
        file_id: row.get(0),
        name: chatvault_common::text::text(row, 1),
        content_type: chatvault_common::text::text(row, 2),
        size: row.get::<_, i64>(3) as u64,
        sha256: row.get(4),
        upload_date: row.get::<_, NaiveDate>(5).format("%Y-%m-%d").to_string(),
        uploaded_at_unix_ms: row.get::<_, DateTime<Utc>>(6).timestamp_millis(),
        fault_tolerance: row.get::<_, i32>(7) as u32,
        owner: row.get(8),
    };
    (info, row.get::<_, i64>(9) as u64)
}
