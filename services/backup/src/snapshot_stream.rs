//! Reads one service's `ExportSnapshot` stream: each table's binary COPY bytes go to a
//! thread of its own that decodes them into batches and hands them to a sink (the backup's
//! files, or a set of keys), so tables are decoded in parallel while the stream flows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use chatvault_proto::backup::v1::Progress;
use chatvault_proto::snapshot::v1::{export_snapshot_response, ExportSnapshotResponse};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::copy_binary::{ColumnSpec, CopyDecoder, PgType};
use crate::manifest::{FileEntry, Position, TableEntry};
use crate::table_files::BATCH_ROWS;
use crate::Error;

/// Where a table's decoded batches go.
pub trait TableSink: Send {
    fn batch(&mut self, batch: &RecordBatch) -> Result<(), Error>;
    /// Called once the table is complete; returns the files written, if any.
    fn finish(self: Box<Self>) -> Result<Vec<FileEntry>, Error>;
}

/// What a consumed snapshot held.
#[derive(Debug, Default)]
pub struct ConsumedSnapshot {
    pub positions: Vec<Position>,
    pub tables: Vec<TableEntry>,
    pub files: Vec<FileEntry>,
}

struct TableTask {
    chunks: Option<mpsc::Sender<Bytes>>,
    worker: JoinHandle<Result<(u64, Vec<FileEntry>), Error>>,
    rows: Arc<AtomicU64>,
    entry: TableEntry,
}

/// Consumes `stream` from `service`. `make_sink` is called once per table, after the
/// header, with the table's name, columns and the snapshot's positions.
pub async fn consume_snapshot<S, F>(
    service: &'static str,
    mut stream: S,
    mut make_sink: F,
    progress: Option<&mpsc::Sender<Progress>>,
) -> Result<ConsumedSnapshot, Error>
where
    S: futures::Stream<Item = Result<ExportSnapshotResponse, tonic::Status>> + Unpin,
    F: FnMut(&str, &[ColumnSpec], &[Position]) -> Result<Box<dyn TableSink>, Error>,
{
    use futures::StreamExt;
    let mut consumed = ConsumedSnapshot::default();
    let mut tasks: HashMap<String, TableTask> = HashMap::new();
    let mut header_seen = false;
    let mut last_report = Instant::now();
    let outcome: Result<(), Error> = async {
        while let Some(message) = stream.next().await {
            let message = message.map_err(Error::remote(service))?.message;
            match message {
                Some(export_snapshot_response::Message::Header(header)) => {
                    header_seen = true;
                    consumed.positions = header
                        .positions
                        .iter()
                        .map(|position| Position {
                            service: service.to_owned(),
                            topic: position.topic.clone(),
                            partition: position.partition,
                            next_offset: position.next_offset,
                        })
                        .collect();
                    for table in header.tables {
                        let columns = table
                            .columns
                            .iter()
                            .map(|column| {
                                Ok(ColumnSpec { name: column.name.clone(), pg_type: PgType::parse(&column.pg_type)?, nullable: column.nullable })
                            })
                            .collect::<Result<Vec<_>, Error>>()?;
                        let sink = make_sink(&table.name, &columns, &consumed.positions)?;
                        let rows = Arc::new(AtomicU64::new(0));
                        let (sender, receiver) = mpsc::channel(16);
                        let worker = spawn_table_worker(table.name.clone(), columns.clone(), sink, receiver, rows.clone());
                        let entry = TableEntry { name: table.name.clone(), service: service.to_owned(), rows: 0, columns };
                        tasks.insert(table.name, TableTask { chunks: Some(sender), worker, rows, entry });
                    }
                }
                Some(export_snapshot_response::Message::Data(data)) => {
                    let task = tasks
                        .get_mut(&data.table)
                        .ok_or_else(|| Error::Internal(format!("{service} sent rows of unannounced table {:?}", data.table)))?;
                    let sender =
                        task.chunks.as_ref().ok_or_else(|| Error::Internal(format!("{service} sent rows of {} after its end", data.table)))?;
                    if sender.send(data.copy_data).await.is_err() {
                        // The worker stopped on an error; its result says which.
                        task.chunks = None;
                    }
                }
                Some(export_snapshot_response::Message::End(end)) => {
                    let task =
                        tasks.get_mut(&end.table).ok_or_else(|| Error::Internal(format!("{service} ended unannounced table {:?}", end.table)))?;
                    task.chunks = None;
                    task.entry.rows = end.rows;
                }
                None => {}
            }
            if let Some(progress) = progress {
                if last_report.elapsed() > Duration::from_millis(250) {
                    last_report = Instant::now();
                    for (name, task) in &tasks {
                        let _ = progress.try_send(Progress {
                            phase: "export".into(),
                            item: format!("{service}/{name}"),
                            done: task.rows.load(Ordering::Relaxed),
                            total: 0,
                            unit: "rows".into(),
                        });
                    }
                }
            }
        }
        if !header_seen {
            return Err(Error::Internal(format!("{service} ended its snapshot without a header")));
        }
        Ok(())
    }
    .await;
    // Every worker is joined, also after an error, so no thread outlives the call.
    let mut first_error = outcome.err();
    let mut names: Vec<String> = tasks.keys().cloned().collect();
    names.sort();
    for name in names {
        let Some(mut task) = tasks.remove(&name) else { continue };
        let ended = task.chunks.is_none();
        task.chunks = None;
        let result = task.worker.await.map_err(|error| Error::Internal(format!("table {name} worker: {error}"))).and_then(|result| result);
        match result {
            Ok((rows, files)) if first_error.is_none() => {
                if !ended || rows != task.entry.rows {
                    first_error = Some(Error::Internal(format!("{service} table {name}: {rows} rows decoded, {} announced", task.entry.rows)));
                    continue;
                }
                consumed.tables.push(task.entry);
                consumed.files.extend(files);
            }
            Ok(_) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(consumed),
    }
}

fn spawn_table_worker(
    table: String,
    columns: Vec<ColumnSpec>,
    mut sink: Box<dyn TableSink>,
    mut chunks: mpsc::Receiver<Bytes>,
    rows: Arc<AtomicU64>,
) -> JoinHandle<Result<(u64, Vec<FileEntry>), Error>> {
    tokio::task::spawn_blocking(move || {
        let mut decoder = CopyDecoder::new(&table, columns, BATCH_ROWS);
        while let Some(chunk) = chunks.blocking_recv() {
            decoder.push(&chunk, &mut |batch| {
                rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                sink.batch(&batch)
            })?;
        }
        let total = decoder.rows();
        if let Some(batch) = decoder.finish()? {
            sink.batch(&batch)?;
        }
        rows.store(total, Ordering::Relaxed);
        Ok((total, sink.finish()?))
    })
}
