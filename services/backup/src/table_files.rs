//! A table's files in a backup: written from record batches as Parquet (zstd, row groups
//! of a configured size, the positions and schema version in the key-value metadata) and
//! CSV (RFC 4180, UTF-8, a header row), hashed while they are written; and read back,
//! whoever wrote them, as batches of the table's own schema.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use crate::copy_binary::{arrow_schema, ColumnSpec};
use crate::manifest::FileEntry;
use crate::Error;

/// Rows per batch while decoding and reading.
pub const BATCH_ROWS: usize = 8192;
/// The timestamp format of CSV files: RFC 3339 with microseconds, which PostgreSQL,
/// pandas and DuckDB all read.
const CSV_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f%:z";

/// Which copies of a table to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    pub csv: bool,
    pub parquet: bool,
}

impl Formats {
    pub fn names(self) -> Vec<String> {
        let mut names = Vec::new();
        if self.parquet {
            names.push("parquet".to_owned());
        }
        if self.csv {
            names.push("csv".to_owned());
        }
        names
    }
}

/// Relative path of a table's file of `kind` in a backup.
pub fn table_path(table: &str, kind: &str) -> String {
    format!("{kind}/{table}.{kind}")
}

/// A file writer that hashes and counts what passes through.
struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    fn create(path: &Path) -> Result<Self, Error> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(Self { inner: BufWriter::with_capacity(1 << 20, File::create(path)?), hasher: Sha256::new(), bytes: 0 })
    }

    /// Flushes and fsyncs; returns the SHA-256 (hex) and size.
    fn finish(self) -> Result<(String, u64), Error> {
        let file = self.inner.into_inner().map_err(|error| Error::Io(error.into_error()))?;
        file.sync_all()?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one table's copies while its batches arrive.
pub struct TableWriter {
    table: String,
    parquet: Option<(String, ArrowWriter<HashingWriter>)>,
    csv: Option<(String, arrow_csv::Writer<HashingWriter>)>,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TableWriter").field("table", &self.table).field("rows", &self.rows).finish()
    }
}

impl TableWriter {
    /// Creates the table's files under `folder`. `metadata` goes into the Parquet footer.
    pub fn create(
        folder: &Path,
        table: &str,
        schema: SchemaRef,
        formats: Formats,
        row_group_rows: usize,
        metadata: Vec<(String, String)>,
    ) -> Result<Self, Error> {
        let parquet = if formats.parquet {
            let path = table_path(table, "parquet");
            let properties = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|error| Error::Internal(error.to_string()))?))
                .set_max_row_group_row_count(Some(row_group_rows.max(1)))
                .set_created_by(format!("chatvault-backup {}", env!("CARGO_PKG_VERSION")))
                .set_key_value_metadata(Some(metadata.into_iter().map(|(key, value)| KeyValue::new(key, value)).collect()))
                .build();
            let writer = ArrowWriter::try_new(HashingWriter::create(&folder.join(&path))?, schema.clone(), Some(properties))
                .map_err(|error| Error::Internal(format!("parquet writer for {table}: {error}")))?;
            Some((path, writer))
        } else {
            None
        };
        let csv = if formats.csv {
            let path = table_path(table, "csv");
            let writer = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format(CSV_TIMESTAMP_FORMAT.to_owned())
                .build(HashingWriter::create(&folder.join(&path))?);
            Some((path, writer))
        } else {
            None
        };
        Ok(Self { table: table.to_owned(), parquet, csv, rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if let Some((_, writer)) = &mut self.parquet {
            writer.write(batch).map_err(|error| Error::Internal(format!("writing {} as parquet: {error}", self.table)))?;
        }
        if let Some((_, writer)) = &mut self.csv {
            writer.write(batch).map_err(|error| Error::Internal(format!("writing {} as csv: {error}", self.table)))?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the files; returns their manifest entries.
    pub fn finish(self) -> Result<Vec<FileEntry>, Error> {
        let mut entries = Vec::new();
        if let Some((path, writer)) = self.parquet {
            let inner = writer.into_inner().map_err(|error| Error::Internal(format!("closing {path}: {error}")))?;
            let (sha256, bytes) = inner.finish()?;
            entries.push(FileEntry { path, kind: "parquet".into(), table: Some(self.table.clone()), rows: Some(self.rows), bytes, sha256 });
        }
        if let Some((path, writer)) = self.csv {
            let (sha256, bytes) = writer.into_inner().finish()?;
            entries.push(FileEntry { path, kind: "csv".into(), table: Some(self.table.clone()), rows: Some(self.rows), bytes, sha256 });
        }
        Ok(entries)
    }
}

/// Reads a table's file back as batches of the table's schema. Columns are found by name
/// and cast to the table's types, so files written by other tools (pyarrow's nanosecond
/// timestamps or large strings) read the same.
pub struct TableReader {
    schema: SchemaRef,
    path: PathBuf,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>> + Send>,
    row_groups: usize,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TableReader").field("path", &self.path).finish()
    }
}

impl TableReader {
    pub fn open(folder: &Path, entry: &FileEntry, columns: &[ColumnSpec]) -> Result<Self, Error> {
        let path = folder.join(crate::manifest::relative_path(&entry.path)?);
        let schema = arrow_schema(columns);
        let file = File::open(&path).map_err(|error| Error::Damaged(format!("{} cannot be opened: {error}", entry.path)))?;
        let damaged = |error: &dyn std::fmt::Display| Error::Damaged(format!("{}: {error}", entry.path));
        let (batches, row_groups): (Box<dyn Iterator<Item = _> + Send>, usize) = match entry.kind.as_str() {
            "parquet" => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| damaged(&error))?;
                let row_groups = builder.metadata().num_row_groups();
                (Box::new(builder.with_batch_size(BATCH_ROWS).build().map_err(|error| damaged(&error))?), row_groups)
            }
            "csv" => {
                // CSV writes NULL and the empty string alike; read every column as nullable
                // and let `conform` put empty strings back into text columns that forbid NULL.
                let fields: Vec<arrow_schema::Field> = schema.fields().iter().map(|field| field.as_ref().clone().with_nullable(true)).collect();
                let reader = arrow_csv::ReaderBuilder::new(std::sync::Arc::new(arrow_schema::Schema::new(fields)))
                    .with_header(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(std::io::BufReader::with_capacity(1 << 20, file))
                    .map_err(|error| damaged(&error))?;
                (Box::new(reader), 0)
            }
            other => return Err(Error::Damaged(format!("{} has unknown kind {other:?}", entry.path))),
        };
        Ok(Self { schema, path, batches, row_groups })
    }

    /// Row groups in the file (Parquet; 0 for CSV).
    pub fn row_groups(&self) -> usize {
        self.row_groups
    }

    fn conform(&self, batch: RecordBatch) -> Result<RecordBatch, Error> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let Some(column) = batch.column_by_name(field.name()) else {
                if field.is_nullable() {
                    columns.push(arrow_array::new_null_array(field.data_type(), batch.num_rows()));
                    continue;
                }
                return Err(Error::Damaged(format!("{} has no column {}", self.path.display(), field.name())));
            };
            let column = if column.data_type() == field.data_type() {
                column.clone()
            } else {
                arrow_cast::cast(column, field.data_type()).map_err(|error| {
                    Error::Damaged(format!("{}: column {} cannot be read as {}: {error}", self.path.display(), field.name(), field.data_type()))
                })?
            };
            let column = if !field.is_nullable() && column.null_count() > 0 && field.data_type() == &arrow_schema::DataType::Utf8 {
                let text = column.as_any().downcast_ref::<arrow_array::StringArray>().ok_or_else(|| Error::Internal("text column".into()))?;
                std::sync::Arc::new(text.iter().map(|value| Some(value.unwrap_or_default())).collect::<arrow_array::StringArray>()) as ArrayRef
            } else {
                column
            };
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(Error::Damaged(format!("{}: column {} holds NULLs", self.path.display(), field.name())));
            }
            columns.push(column);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|error| Error::Damaged(format!("{}: {error}", self.path.display())))
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.batches.next()?;
        Some(batch.map_err(|error| Error::Damaged(format!("{}: {error}", self.path.display()))).and_then(|batch| self.conform(batch)))
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};

    use std::sync::Arc;

    use super::*;
    use crate::copy_binary::PgType;

    fn columns() -> Vec<ColumnSpec> {
        vec![
            ColumnSpec { name: "id".into(), pg_type: PgType::Int8, nullable: false },
            ColumnSpec { name: "text".into(), pg_type: PgType::Text, nullable: true },
            ColumnSpec { name: "at".into(), pg_type: PgType::Timestamptz, nullable: true },
        ]
    }

    #[test]
    fn both_formats_read_back_equal_rows_with_many_row_groups() {
        let folder = tempfile::tempdir().expect("temp dir");
        let schema = arrow_schema(&columns());
        let mut writer =
            TableWriter::create(folder.path(), "t", schema.clone(), Formats { csv: true, parquet: true }, 100, vec![("k".into(), "v".into())])
                .expect("create");
        let ids: Vec<i64> = (0..1000).collect();
        let texts: Vec<Option<String>> = ids.iter().map(|id| (id % 5 != 0).then(|| format!("line \"{id}\",\nsecond line"))).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(texts.clone())),
                Arc::new(
                    TimestampMicrosecondArray::from(ids.iter().map(|id| Some(id * 1_000_001)).collect::<Vec<_>>())
                        .with_timezone(crate::copy_binary::UTC_OFFSET),
                ),
            ],
        )
        .expect("batch");
        writer.write(&batch).expect("write");
        let entries = writer.finish().expect("finish");
        assert_eq!(entries.len(), 2);
        for entry in &entries {
            assert_eq!(crate::manifest::file_checksum(&folder.path().join(&entry.path)).expect("hash"), (entry.sha256.clone(), entry.bytes));
            let reader = TableReader::open(folder.path(), entry, &columns()).expect("open");
            if entry.kind == "parquet" {
                assert_eq!(reader.row_groups(), 10);
            }
            let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("reads");
            let read_ids: Vec<i64> = batches.iter().flat_map(|batch| batch.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
            assert_eq!(read_ids, ids, "{}", entry.kind);
            let read_texts: Vec<Option<String>> = batches
                .iter()
                .flat_map(|batch| batch.column(1).as_string::<i32>().iter().map(|text| text.map(str::to_owned)).collect::<Vec<_>>())
                .collect();
            let expected: Vec<Option<String>> = texts.clone();
            assert_eq!(read_texts, expected, "{}", entry.kind);
            let read_at: Vec<i64> = batches
                .iter()
                .flat_map(|batch| batch.column(2).as_primitive::<arrow_array::types::TimestampMicrosecondType>().values().to_vec())
                .collect();
            assert_eq!(read_at, ids.iter().map(|id| id * 1_000_001).collect::<Vec<_>>(), "{}", entry.kind);
        }
    }
}
