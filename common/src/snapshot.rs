//! The server side of `chatvault.snapshot.v1.SnapshotService`: streams a service's tables
//! from one consistent PostgreSQL snapshot, for the backup service.
//!
//! A service describes what it exports as [`ExportTable`]s and serves requests through a
//! [`SnapshotExporter`]. One export runs like this:
//!
//! 1. A *holder* connection opens a `REPEATABLE READ, READ ONLY` transaction, exports its
//!    snapshot (`pg_export_snapshot()`) and reads the projections' Kafka positions in it, so
//!    the positions describe exactly the rows that follow. They go out in the header.
//! 2. Up to [`DEFAULT_PARALLEL_CONNECTIONS`] worker connections each adopt that snapshot
//!    (`SET TRANSACTION SNAPSHOT`) and run `COPY (SELECT …) TO STDOUT (FORMAT binary)` for
//!    one table at a time. The bytes are forwarded as `TableData` (coalesced to about
//!    [`TARGET_MESSAGE_BYTES`]), followed by a `TableEnd` whose row count comes from
//!    parsing the tuple headers of exactly the bytes sent ([`BinaryCopyRowCounter`]).
//! 3. The holder keeps its transaction open until every table is done: an exported
//!    snapshot only lives as long as the transaction that exported it.
//!
//! Messages travel through a bounded channel, so a slow client slows the COPYs down rather
//! than filling memory. At most [`DEFAULT_CONCURRENT_EXPORTS`] exports run at once; later
//! ones wait for a turn before taking their snapshot.
//!
//! When the client goes away (or one table fails), the connections of the export are taken
//! out of the pool, their queries cancelled and the connections closed: a connection in
//! the middle of a COPY or inside the snapshot transaction must never be handed to another
//! caller.
//!
//! Checking that the caller is an admin is the handler's job
//! ([`crate::auth::require_admin`]).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chatvault_proto::snapshot::v1::export_snapshot_response::Message;
use chatvault_proto::snapshot::v1::{
    Column, ExportSnapshotRequest, ExportSnapshotResponse, SnapshotHeader, TableData, TableEnd, TableSchema, TopicPosition,
};
use deadpool_postgres::{Object, Pool};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::config::KafkaConfig;

/// Worker connections copying tables at once, besides the connection holding the snapshot.
pub const DEFAULT_PARALLEL_CONNECTIONS: usize = 2;
/// Exports one exporter runs at once; more wait their turn. Each holds one connection for
/// its snapshot while it waits for workers, so unbounded exports could take the whole pool
/// with holders and wait forever (with the defaults, two exports use 6 connections).
pub const DEFAULT_CONCURRENT_EXPORTS: usize = 2;
/// Size a `TableData` message is filled to before it is sent (PostgreSQL sends one small
/// CopyData message per row; one gRPC message per row would be mostly overhead).
pub const TARGET_MESSAGE_BYTES: usize = 256 * 1024;
/// Messages buffered between the COPYs and the client: with full messages, about 2 MiB.
const CHANNEL_CAPACITY: usize = 8;

/// The stream of one export, as a handler returns it.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<ExportSnapshotResponse, Status>> + Send>>;

/// Reads the Kafka positions of the named projections. Two projections of one service
/// reading the same partition would report the smaller offset: replaying from there is
/// safe for both, as projections are idempotent.
const POSITIONS_SQL: &str = "SELECT topic, partition, min(next_offset) FROM projection_offsets
     WHERE projection = ANY($1) GROUP BY topic, partition ORDER BY topic, partition";

/// One exported column: its name in the backup, its type as sent in binary COPY and the
/// SQL expression producing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportColumn {
    pub name: &'static str,
    /// `int8`, `int4`, `int2`, `bool`, `text`, `timestamptz`, `date` or `json` (JSON text,
    /// sent as `text`).
    pub pg_type: &'static str,
    pub nullable: bool,
    /// What the `SELECT` list computes, like `messages.entities::text`; usually the name.
    pub expression: &'static str,
}

impl ExportColumn {
    /// Returns a column exported as stored, under its own name.
    pub const fn new(name: &'static str, pg_type: &'static str, nullable: bool) -> Self {
        Self { name, pg_type, nullable, expression: name }
    }

    /// Returns a column computed by `expression` (a cast to text of `jsonb` or `uuid`, or a
    /// qualified name in a join).
    pub const fn computed(name: &'static str, pg_type: &'static str, nullable: bool, expression: &'static str) -> Self {
        Self { name, pg_type, nullable, expression }
    }
}

/// How a request's chat ids restrict a table's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFilter {
    /// The table has no chat; every row is exported whatever the request asks.
    Ignored,
    /// Rows whose column (an `int8` chat id) is one of the requested chats.
    Column(&'static str),
    /// Rows matching a condition in which `{chat_ids}` stands for the requested chat ids as
    /// an `int8[]`, like `author_id IN (SELECT … WHERE chat_id = ANY({chat_ids}))`.
    Condition(&'static str),
}

/// One table a service exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportTable {
    /// The name clients ask for and the backup stores.
    pub name: &'static str,
    pub columns: &'static [ExportColumn],
    /// The `FROM` clause: a table, or a join.
    pub from: &'static str,
    /// A condition every exported row meets (`files.deleted_at IS NULL`), if any.
    pub condition: Option<&'static str>,
    pub chat_filter: ChatFilter,
    /// Whether a request naming no tables gets this one.
    pub exported_by_default: bool,
}

impl ExportTable {
    /// Returns the table's columns as the snapshot header lists them.
    pub fn schema(&self) -> TableSchema {
        let columns = self
            .columns
            .iter()
            .map(|column| Column { name: column.name.to_owned(), pg_type: column.pg_type.to_owned(), nullable: column.nullable })
            .collect();
        TableSchema { name: self.name.to_owned(), columns }
    }

    /// Returns the `COPY … TO STDOUT (FORMAT binary)` statement of this table, restricted
    /// to `chat_ids` when there are any and the table has a chat.
    ///
    /// COPY takes no bind parameters, so the chat ids are written into the statement; they
    /// are integers formatted by Rust, which leaves nothing to inject.
    pub fn copy_statement(&self, chat_ids: &[i64]) -> String {
        let select_list = self.columns.iter().map(|column| format!("{} AS \"{}\"", column.expression, column.name)).collect::<Vec<_>>().join(", ");
        let mut conditions: Vec<String> = self.condition.iter().map(|condition| format!("({condition})")).collect();
        if !chat_ids.is_empty() {
            let chat_id_array = int8_array_literal(chat_ids);
            match self.chat_filter {
                ChatFilter::Ignored => {}
                ChatFilter::Column(column) => conditions.push(format!("{column} = ANY({chat_id_array})")),
                ChatFilter::Condition(template) => conditions.push(format!("({})", template.replace("{chat_ids}", &chat_id_array))),
            }
        }
        let where_clause = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        format!("COPY (SELECT {select_list} FROM {}{where_clause}) TO STDOUT (FORMAT binary)", self.from)
    }
}

/// Returns `ARRAY[1,2,3]::int8[]`.
fn int8_array_literal(values: &[i64]) -> String {
    let elements = values.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!("ARRAY[{elements}]::int8[]")
}

/// Serves snapshot exports of one service's tables; see the module docs.
#[derive(Clone, Debug)]
pub struct SnapshotExporter {
    pool: Pool,
    service: &'static str,
    projections: &'static [&'static str],
    topic_prefix: String,
    tables: &'static [ExportTable],
    parallel_connections: usize,
    export_permits: Arc<Semaphore>,
}

impl SnapshotExporter {
    /// Returns the exporter of `service`'s `tables`, reporting the positions of
    /// `projections` (names as in `projection_offsets`) without `kafka`'s topic prefix.
    pub fn new(pool: Pool, service: &'static str, kafka: &KafkaConfig, projections: &'static [&'static str], tables: &'static [ExportTable]) -> Self {
        Self {
            pool,
            service,
            projections,
            topic_prefix: kafka.topic_prefix.clone(),
            tables,
            parallel_connections: DEFAULT_PARALLEL_CONNECTIONS,
            export_permits: Arc::new(Semaphore::new(DEFAULT_CONCURRENT_EXPORTS)),
        }
    }

    /// Returns this exporter copying up to `connections` tables at once (at least one).
    pub fn with_parallel_connections(mut self, connections: usize) -> Self {
        self.parallel_connections = connections.max(1);
        self
    }

    /// Returns this exporter running up to `exports` exports at once (at least one).
    pub fn with_concurrent_exports(mut self, exports: usize) -> Self {
        self.export_permits = Arc::new(Semaphore::new(exports.max(1)));
        self
    }

    /// Returns the tables `request` asks for, in its order without repeats, or every
    /// default table when it names none; INVALID_ARGUMENT for a table this service lacks.
    pub fn requested_tables(&self, request: &ExportSnapshotRequest) -> Result<Vec<ExportTable>, Status> {
        if request.tables.is_empty() {
            return Ok(self.tables.iter().filter(|table| table.exported_by_default).copied().collect());
        }
        let mut seen = HashSet::new();
        let mut selected = Vec::new();
        for name in &request.tables {
            let Some(table) = self.tables.iter().find(|table| table.name == name.as_str()) else {
                let known = self.tables.iter().map(|table| table.name).collect::<Vec<_>>().join(", ");
                return Err(Status::invalid_argument(format!("unknown table {name:?}; {} exports {known}", self.service)));
            };
            if seen.insert(table.name) {
                selected.push(*table);
            }
        }
        Ok(selected)
    }

    /// Starts exporting what `request` asks for and returns the stream of messages: the
    /// header, then the tables' data and ends. Fails at once for an unknown table; later
    /// failures end the stream with their status.
    pub fn export(&self, request: ExportSnapshotRequest) -> Result<SnapshotStream, Status> {
        let tables = self.requested_tables(&request)?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let export = Export {
            pool: self.pool.clone(),
            service: self.service,
            projections: self.projections,
            topic_prefix: self.topic_prefix.clone(),
            tables,
            chat_ids: request.chat_ids,
            parallel_connections: self.parallel_connections,
        };
        tokio::spawn(export.run(self.export_permits.clone(), sender));
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }
}

/// Why an export stopped early.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    /// The client cancelled or disconnected; nobody is left to tell.
    #[error("the client went away")]
    ClientGone,
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("binary copy of table {table}: {cause}")]
    CopyFormat { table: &'static str, cause: CopyFormatError },
    #[error("unexpected snapshot id {0:?}")]
    SnapshotId(String),
}

impl From<ExportError> for Status {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Pool(cause) => {
                tracing::error!(error = ?cause, "snapshot export: database unavailable");
                Status::unavailable("the database is not reachable; try again later")
            }
            other => {
                tracing::error!(error = ?other, "snapshot export failed");
                Status::internal("the snapshot export failed; see the service log")
            }
        }
    }
}

type ResponseSender = mpsc::Sender<Result<ExportSnapshotResponse, Status>>;

/// One export in progress, owned by its task.
struct Export {
    pool: Pool,
    service: &'static str,
    projections: &'static [&'static str],
    topic_prefix: String,
    tables: Vec<ExportTable>,
    chat_ids: Vec<i64>,
    parallel_connections: usize,
}

impl Export {
    #[tracing::instrument(skip_all, fields(service = self.service, tables = self.tables.len(), chats = self.chat_ids.len()))]
    async fn run(self, export_permits: Arc<Semaphore>, sender: ResponseSender) {
        let _permit = tokio::select! {
            permit = export_permits.acquire_owned() => permit.expect("the semaphore is never closed"),
            () = sender.closed() => return,
        };
        let started = std::time::Instant::now();
        match self.stream_tables(&sender).await {
            Ok(rows) => tracing::info!(rows, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot exported"),
            Err(ExportError::ClientGone) => tracing::info!("snapshot export stopped: the client went away"),
            Err(error) => {
                let _ = sender.send(Err(Status::from(error))).await;
            }
        }
    }

    /// Sends the header and every table; returns the rows sent.
    async fn stream_tables(&self, sender: &ResponseSender) -> Result<u64, ExportError> {
        let holder = SnapshotConnection::begin(self.pool.get().await?).await?;
        let snapshot_id: String = holder.client().query_one("SELECT pg_export_snapshot()", &[]).await?.get(0);
        // The id is PostgreSQL's own (`00000003-0000001B-1`); checked anyway, as it is
        // written into a statement below.
        if snapshot_id.is_empty() || !snapshot_id.chars().all(|character| character.is_ascii_hexdigit() || character == '-') {
            return Err(ExportError::SnapshotId(snapshot_id));
        }
        let projections: Vec<&str> = self.projections.to_vec();
        let positions = holder
            .client()
            .query(POSITIONS_SQL, &[&projections])
            .await?
            .iter()
            .map(|row| {
                let topic: String = row.get(0);
                TopicPosition {
                    topic: topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(&topic).to_owned(),
                    partition: row.get(1),
                    next_offset: row.get(2),
                }
            })
            .collect();
        let header = SnapshotHeader {
            service: self.service.to_owned(),
            positions,
            tables: self.tables.iter().map(ExportTable::schema).collect(),
            taken_at_unix_ms: chrono::Utc::now().timestamp_millis(),
        };
        send(sender, Message::Header(header)).await?;

        let rows_per_table: Vec<u64> = futures::stream::iter(self.tables.iter().copied())
            .map(|table| self.copy_table(table, &snapshot_id, sender))
            .buffer_unordered(self.parallel_connections)
            .try_collect()
            .await?;
        // The snapshot had to live until here; the transaction only read.
        holder.finish().await?;
        Ok(rows_per_table.iter().sum())
    }

    /// Copies `table` in the snapshot `snapshot_id`, sending its data and end; returns its rows.
    #[tracing::instrument(skip_all, fields(table = table.name))]
    async fn copy_table(&self, table: ExportTable, snapshot_id: &str, sender: &ResponseSender) -> Result<u64, ExportError> {
        let worker = SnapshotConnection::begin(self.pool.get().await?).await?;
        worker.client().batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'")).await?;
        let copy = worker.client().copy_out(table.copy_statement(&self.chat_ids).as_str()).await?;
        let mut copy = std::pin::pin!(copy);
        let mut counter = BinaryCopyRowCounter::new(table.columns.len());
        let mut pending = BytesMut::with_capacity(TARGET_MESSAGE_BYTES);
        while let Some(chunk) = copy.try_next().await? {
            counter.feed(&chunk).map_err(|cause| ExportError::CopyFormat { table: table.name, cause })?;
            if pending.is_empty() && chunk.len() >= TARGET_MESSAGE_BYTES {
                send(sender, table_data(table.name, chunk)).await?;
                continue;
            }
            pending.extend_from_slice(&chunk);
            if pending.len() >= TARGET_MESSAGE_BYTES {
                send(sender, table_data(table.name, pending.split().freeze())).await?;
            }
        }
        let rows = counter.finish().map_err(|cause| ExportError::CopyFormat { table: table.name, cause })?;
        if !pending.is_empty() {
            send(sender, table_data(table.name, pending.freeze())).await?;
        }
        worker.finish().await?;
        send(sender, Message::End(TableEnd { table: table.name.to_owned(), rows })).await?;
        tracing::debug!(rows, "table exported");
        Ok(rows)
    }
}

fn table_data(table: &str, copy_data: Bytes) -> Message {
    Message::Data(TableData { table: table.to_owned(), copy_data })
}

async fn send(sender: &ResponseSender, message: Message) -> Result<(), ExportError> {
    sender.send(Ok(ExportSnapshotResponse { message: Some(message) })).await.map_err(|_| ExportError::ClientGone)
}

/// A pooled connection inside a `REPEATABLE READ, READ ONLY` transaction.
///
/// [`Self::finish`] commits and returns the connection to the pool. Dropped before that
/// (the client went away, another table failed), it takes the connection out of the pool,
/// cancels whatever it runs and closes it: returned as it is, the next caller would find
/// itself inside this transaction, or behind the rest of a COPY.
struct SnapshotConnection {
    connection: Option<Object>,
}

impl SnapshotConnection {
    async fn begin(connection: Object) -> Result<Self, tokio_postgres::Error> {
        let this = Self { connection: Some(connection) };
        this.client().batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        Ok(this)
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.connection.as_ref().expect("the connection is held until finish or drop")
    }

    async fn finish(mut self) -> Result<(), tokio_postgres::Error> {
        let result = self.client().batch_execute("COMMIT").await;
        if result.is_ok() {
            // Back to the pool, outside any transaction.
            drop(self.connection.take());
        }
        result
    }
}

impl Drop for SnapshotConnection {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let client = Object::take(connection);
        let cancel_token = client.cancel_token();
        drop(client);
        // Closing our end alone does not stop the server until it next writes; the cancel
        // request stops a running COPY at once. The connection is ours alone now, so a late
        // cancel cannot hit anyone else's query.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = cancel_token.cancel_query(tokio_postgres::NoTls).await {
                    tracing::debug!(%error, "cancelling an abandoned snapshot query failed");
                }
            });
        }
    }
}

/// Why a binary COPY stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyFormatError {
    #[error("the stream does not start with the binary COPY signature")]
    BadSignature,
    #[error("a tuple has {found} fields, the table {expected}")]
    FieldCount { expected: usize, found: i16 },
    #[error("a field has the negative length {0}")]
    NegativeLength(i32),
    #[error("data after the trailer")]
    DataAfterTrailer,
    #[error("the stream ended before its trailer")]
    Truncated,
}

/// The 11-byte signature opening every binary COPY stream.
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags field and header extension length.
const COPY_HEADER_BYTES: usize = 19;

/// Counts the tuples of a binary COPY stream fed in arbitrary pieces, checking its framing:
/// header, tuples (field count, then each field's length and bytes), trailer (`-1`).
#[derive(Debug)]
pub struct BinaryCopyRowCounter {
    expected_fields: usize,
    state: CopyParseState,
    /// Bytes of a fixed-size item (header, field count, field length) seen so far.
    partial: [u8; COPY_HEADER_BYTES],
    partial_len: usize,
    rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyParseState {
    Header,
    SkippingHeaderExtension { remaining: usize },
    TupleFieldCount,
    FieldLength { fields_left: usize },
    SkippingFieldData { fields_left: usize, remaining: usize },
    Done,
}

impl BinaryCopyRowCounter {
    /// Returns a counter for tuples of `expected_fields` fields.
    pub fn new(expected_fields: usize) -> Self {
        Self { expected_fields, state: CopyParseState::Header, partial: [0; COPY_HEADER_BYTES], partial_len: 0, rows: 0 }
    }

    /// Returns the tuples seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Consumes the next piece of the stream.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), CopyFormatError> {
        while !input.is_empty() {
            match self.state {
                CopyParseState::SkippingHeaderExtension { remaining } => {
                    let skipped = remaining.min(input.len());
                    input = &input[skipped..];
                    self.state = if skipped == remaining {
                        CopyParseState::TupleFieldCount
                    } else {
                        CopyParseState::SkippingHeaderExtension { remaining: remaining - skipped }
                    };
                }
                CopyParseState::SkippingFieldData { fields_left, remaining } => {
                    let skipped = remaining.min(input.len());
                    input = &input[skipped..];
                    self.state = if skipped < remaining {
                        CopyParseState::SkippingFieldData { fields_left, remaining: remaining - skipped }
                    } else {
                        self.after_field(fields_left)
                    };
                }
                CopyParseState::Done => return Err(CopyFormatError::DataAfterTrailer),
                CopyParseState::Header | CopyParseState::TupleFieldCount | CopyParseState::FieldLength { .. } => {
                    let needed = match self.state {
                        CopyParseState::Header => COPY_HEADER_BYTES,
                        CopyParseState::TupleFieldCount => 2,
                        _ => 4,
                    };
                    let taken = (needed - self.partial_len).min(input.len());
                    self.partial[self.partial_len..self.partial_len + taken].copy_from_slice(&input[..taken]);
                    self.partial_len += taken;
                    input = &input[taken..];
                    if self.partial_len == needed {
                        self.partial_len = 0;
                        self.complete_fixed_item()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Returns the row count once the trailer has been read.
    pub fn finish(&self) -> Result<u64, CopyFormatError> {
        if self.state == CopyParseState::Done {
            Ok(self.rows)
        } else {
            Err(CopyFormatError::Truncated)
        }
    }

    fn after_field(&self, fields_left: usize) -> CopyParseState {
        if fields_left == 0 {
            CopyParseState::TupleFieldCount
        } else {
            CopyParseState::FieldLength { fields_left }
        }
    }

    /// Acts on a completely read header, field count or field length in `partial`.
    fn complete_fixed_item(&mut self) -> Result<(), CopyFormatError> {
        match self.state {
            CopyParseState::Header => {
                if &self.partial[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                    return Err(CopyFormatError::BadSignature);
                }
                // Bytes 11..15 are flags (bit 16: OIDs included; PostgreSQL 12+ never sends them).
                let extension_length = i32::from_be_bytes(self.partial[15..19].try_into().expect("4 bytes"));
                let extension_length = usize::try_from(extension_length).map_err(|_| CopyFormatError::NegativeLength(extension_length))?;
                self.state = if extension_length == 0 {
                    CopyParseState::TupleFieldCount
                } else {
                    CopyParseState::SkippingHeaderExtension { remaining: extension_length }
                };
            }
            CopyParseState::TupleFieldCount => {
                let field_count = i16::from_be_bytes([self.partial[0], self.partial[1]]);
                if field_count == -1 {
                    self.state = CopyParseState::Done;
                    return Ok(());
                }
                if usize::try_from(field_count).ok() != Some(self.expected_fields) {
                    return Err(CopyFormatError::FieldCount { expected: self.expected_fields, found: field_count });
                }
                self.rows += 1;
                self.state = if self.expected_fields == 0 {
                    CopyParseState::TupleFieldCount
                } else {
                    CopyParseState::FieldLength { fields_left: self.expected_fields }
                };
            }
            CopyParseState::FieldLength { fields_left } => {
                let length = i32::from_be_bytes(self.partial[..4].try_into().expect("4 bytes"));
                let fields_left = fields_left - 1;
                self.state = match length {
                    // NULL: no bytes follow.
                    -1 => self.after_field(fields_left),
                    0 => self.after_field(fields_left),
                    length if length < 0 => return Err(CopyFormatError::NegativeLength(length)),
                    length => CopyParseState::SkippingFieldData { fields_left, remaining: length as usize },
                };
            }
            CopyParseState::SkippingHeaderExtension { .. } | CopyParseState::SkippingFieldData { .. } | CopyParseState::Done => {
                debug_assert!(false, "complete_fixed_item called in state {:?}", self.state);
            }
        }
        Ok(())
    }
}

/// The gRPC service itself: every owning service serves its exporter as it is (admin only).
#[tonic::async_trait]
impl chatvault_proto::snapshot::v1::snapshot_service_server::SnapshotService for SnapshotExporter {
    type ExportSnapshotStream = SnapshotStream;

    #[tracing::instrument(skip_all, fields(service = self.service, tables = ?request.get_ref().tables, chats = request.get_ref().chat_ids.len()))]
    async fn export_snapshot(&self, request: tonic::Request<ExportSnapshotRequest>) -> Result<tonic::Response<SnapshotStream>, Status> {
        crate::auth::require_admin(request.metadata(), "exporting a snapshot")?;
        Ok(tonic::Response::new(self.export(request.into_inner())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes tuples (`None` = NULL) as a binary COPY stream.
    fn binary_copy(tuples: &[Vec<Option<&[u8]>>], header_extension: &[u8]) -> Vec<u8> {
        let mut stream = COPY_SIGNATURE.to_vec();
        stream.extend_from_slice(&0i32.to_be_bytes());
        stream.extend_from_slice(&(header_extension.len() as i32).to_be_bytes());
        stream.extend_from_slice(header_extension);
        for tuple in tuples {
            stream.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in tuple {
                match field {
                    None => stream.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        stream.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        stream.extend_from_slice(bytes);
                    }
                }
            }
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        stream
    }

    fn sample_tuples() -> Vec<Vec<Option<&'static [u8]>>> {
        vec![
            vec![Some(&[0, 0, 0, 0, 0, 0, 0, 42][..]), Some(b"hello"), None],
            vec![Some(&[0, 0, 0, 0, 0, 0, 0, 7][..]), Some(b""), Some(b"{\"a\":1}")],
            vec![Some(&[0xff; 8][..]), None, None],
        ]
    }

    #[test]
    fn counts_the_tuples_of_a_stream_fed_whole() {
        let stream = binary_copy(&sample_tuples(), &[]);
        let mut counter = BinaryCopyRowCounter::new(3);
        counter.feed(&stream).unwrap();
        assert_eq!(counter.finish(), Ok(3));
    }

    #[test]
    fn counts_the_same_whatever_the_chunk_boundaries() {
        let stream = binary_copy(&sample_tuples(), b"ext");
        for chunk_size in 1..=stream.len() {
            let mut counter = BinaryCopyRowCounter::new(3);
            for chunk in stream.chunks(chunk_size) {
                counter.feed(chunk).unwrap();
            }
            assert_eq!(counter.finish(), Ok(3), "chunk size {chunk_size}");
        }
    }

    #[test]
    fn an_empty_table_has_zero_rows() {
        let stream = binary_copy(&[], &[]);
        let mut counter = BinaryCopyRowCounter::new(5);
        counter.feed(&stream).unwrap();
        assert_eq!(counter.finish(), Ok(0));
    }

    #[test]
    fn a_stream_without_its_trailer_is_truncated() {
        let stream = binary_copy(&sample_tuples(), &[]);
        let mut counter = BinaryCopyRowCounter::new(3);
        counter.feed(&stream[..stream.len() - 2]).unwrap();
        assert_eq!(counter.rows(), 3);
        assert_eq!(counter.finish(), Err(CopyFormatError::Truncated));
        let mut cut_inside_a_field = BinaryCopyRowCounter::new(3);
        cut_inside_a_field.feed(&stream[..30]).unwrap();
        assert_eq!(cut_inside_a_field.finish(), Err(CopyFormatError::Truncated));
    }

    #[test]
    fn malformed_streams_are_refused() {
        let mut wrong_signature = binary_copy(&sample_tuples(), &[]);
        wrong_signature[0] = b'X';
        assert_eq!(BinaryCopyRowCounter::new(3).feed(&wrong_signature), Err(CopyFormatError::BadSignature));
        let stream = binary_copy(&sample_tuples(), &[]);
        assert_eq!(BinaryCopyRowCounter::new(2).feed(&stream), Err(CopyFormatError::FieldCount { expected: 2, found: 3 }));
        let mut trailing = stream.clone();
        trailing.push(0);
        assert_eq!(BinaryCopyRowCounter::new(3).feed(&trailing), Err(CopyFormatError::DataAfterTrailer));
    }

    const COLUMNS: &[ExportColumn] =
        &[ExportColumn::new("chat_id", "int8", false), ExportColumn::computed("entities", "json", true, "entities::text")];

    fn table(chat_filter: ChatFilter, condition: Option<&'static str>) -> ExportTable {
        ExportTable { name: "messages", columns: COLUMNS, from: "messages", condition, chat_filter, exported_by_default: true }
    }

    #[test]
    fn the_copy_statement_lists_columns_and_inlines_chat_ids() {
        assert_eq!(
            table(ChatFilter::Column("chat_id"), None).copy_statement(&[]),
            "COPY (SELECT chat_id AS \"chat_id\", entities::text AS \"entities\" FROM messages) TO STDOUT (FORMAT binary)"
        );
        assert_eq!(
            table(ChatFilter::Column("chat_id"), Some("kind = 1")).copy_statement(&[5, -100123]),
            "COPY (SELECT chat_id AS \"chat_id\", entities::text AS \"entities\" FROM messages \
             WHERE (kind = 1) AND chat_id = ANY(ARRAY[5,-100123]::int8[])) TO STDOUT (FORMAT binary)"
        );
        assert_eq!(
            table(ChatFilter::Condition("x IN (SELECT x FROM y WHERE chat_id = ANY({chat_ids}))"), None).copy_statement(&[1]),
            "COPY (SELECT chat_id AS \"chat_id\", entities::text AS \"entities\" FROM messages \
             WHERE (x IN (SELECT x FROM y WHERE chat_id = ANY(ARRAY[1]::int8[])))) TO STDOUT (FORMAT binary)"
        );
        assert_eq!(
            table(ChatFilter::Ignored, None).copy_statement(&[1]),
            "COPY (SELECT chat_id AS \"chat_id\", entities::text AS \"entities\" FROM messages) TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn the_schema_lists_names_types_and_nullability() {
        let schema = table(ChatFilter::Ignored, None).schema();
        assert_eq!(schema.name, "messages");
        assert_eq!(
            schema.columns,
            vec![
                Column { name: "chat_id".into(), pg_type: "int8".into(), nullable: false },
                Column { name: "entities".into(), pg_type: "json".into(), nullable: true },
            ]
        );
    }
}
