//! Decodes PostgreSQL's binary COPY format into Arrow record batches, chunk by chunk, as the
//! owning services stream it: a tuple may straddle chunks, memory stays at one batch.

use chatvault_common::text;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Int16Builder, Int32Builder, Int64Builder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The signature that opens every binary COPY stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;
/// The time zone of timestamp columns: UTC, spelled as an offset so that every Arrow
/// reader and writer understands it without a time zone database.
pub const UTC_OFFSET: &str = "+00:00";
/// Field metadata naming JSON text columns (Arrow's canonical JSON extension type).
pub const JSON_EXTENSION: (&str, &str) = ("ARROW:extension:name", "arrow.json");

/// A column type as the owning services send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PgType {
    Int8,
    Int4,
    Int2,
    Bool,
    Text,
    Timestamptz,
    Date,
    Json,
}

impl PgType {
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "int8" => Self::Int8,
            "int4" => Self::Int4,
            "int2" => Self::Int2,
            "bool" => Self::Bool,
            "text" => Self::Text,
            "timestamptz" => Self::Timestamptz,
            "date" => Self::Date,
            "json" => Self::Json,
            other => return Err(Error::Internal(format!("unsupported column type {other:?} in a snapshot"))),
        })
    }

    /// The Arrow type a column of this type is stored as.
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::Int8 => DataType::Int64,
            Self::Int4 => DataType::Int32,
            Self::Int2 => DataType::Int16,
            Self::Bool => DataType::Boolean,
            Self::Text | Self::Json => DataType::Utf8,
            Self::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_OFFSET.into())),
            Self::Date => DataType::Date32,
        }
    }

    /// The fixed width of the binary value, where there is one.
    fn fixed_width(self) -> Option<usize> {
        match self {
            Self::Int8 | Self::Timestamptz => Some(8),
            Self::Int4 | Self::Date => Some(4),
            Self::Int2 => Some(2),
            Self::Bool => Some(1),
            Self::Text | Self::Json => None,
        }
    }
}

/// A column of an exported table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    pub pg_type: PgType,
    pub nullable: bool,
}

/// The Arrow schema of a table with `columns`.
pub fn arrow_schema(columns: &[ColumnSpec]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|column| {
            let field = Field::new(&column.name, column.pg_type.arrow_type(), column.nullable);
            if column.pg_type == PgType::Json {
                field.with_metadata(std::collections::HashMap::from([(JSON_EXTENSION.0.to_owned(), JSON_EXTENSION.1.to_owned())]))
            } else {
                field
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn utf8(value: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(value).map_err(|error| format!("text is not UTF-8: {error}"))
}

/// Whether stored text may hold [`text::ESCAPE`] (U+FFFF, bytes EF BF BF): a byte search,
/// so that the common text, which holds none, is copied without being looked at twice.
fn may_hold_escape(value: &[u8]) -> bool {
    value.contains(&0xEF)
}

enum ColumnBuilder {
    Int64(Int64Builder),
    Int32(Int32Builder),
    Int16(Int16Builder),
    Bool(BooleanBuilder),
    /// Text, gathered as bytes and checked to be UTF-8 once per batch, when it is finished.
    Text(BinaryBuilder),
    /// JSON text; kept apart from `Text` because its strings are decoded inside the JSON.
    Json(BinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

impl ColumnBuilder {
    fn new(pg_type: PgType, capacity: usize) -> Self {
        match pg_type {
            PgType::Int8 => Self::Int64(Int64Builder::with_capacity(capacity)),
            PgType::Int4 => Self::Int32(Int32Builder::with_capacity(capacity)),
            PgType::Int2 => Self::Int16(Int16Builder::with_capacity(capacity)),
            PgType::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            PgType::Text => Self::Text(BinaryBuilder::with_capacity(capacity, capacity * 32)),
            PgType::Json => Self::Json(BinaryBuilder::with_capacity(capacity, capacity * 32)),
            PgType::Timestamptz => Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC_OFFSET)),
            PgType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Int64(builder) => builder.append_null(),
            Self::Int32(builder) => builder.append_null(),
            Self::Int16(builder) => builder.append_null(),
            Self::Bool(builder) => builder.append_null(),
            Self::Text(builder) | Self::Json(builder) => builder.append_null(),
            Self::Timestamp(builder) => builder.append_null(),
            Self::Date(builder) => builder.append_null(),
        }
    }

    /// Appends one binary value; its width was checked by the caller.
    fn append(&mut self, value: &[u8]) -> Result<(), String> {
        match self {
            Self::Int64(builder) => builder.append_value(i64::from_be_bytes(fixed(value))),
            Self::Int32(builder) => builder.append_value(i32::from_be_bytes(fixed(value))),
            Self::Int16(builder) => builder.append_value(i16::from_be_bytes(fixed(value))),
            Self::Bool(builder) => builder.append_value(value[0] != 0),
            // Backups hold text exactly as the export did: the stored form of
            // chatvault_common::text (U+0000 escaped) is decoded here, once.
            Self::Text(builder) => {
                if may_hold_escape(value) {
                    builder.append_value(text::decode(utf8(value)?).as_bytes());
                } else {
                    builder.append_value(value);
                }
            }
            Self::Json(builder) => {
                if may_hold_escape(value) && utf8(value)?.contains(text::ESCAPE) {
                    let value: serde_json::Value = serde_json::from_slice(value).map_err(|error| format!("json column is not JSON: {error}"))?;
                    builder.append_value(text::decode_json(value).to_string());
                } else {
                    builder.append_value(value);
                }
            }
            Self::Timestamp(builder) => builder.append_value(i64::from_be_bytes(fixed(value)).saturating_add(POSTGRES_EPOCH_MICROS)),
            Self::Date(builder) => builder.append_value(i32::from_be_bytes(fixed(value)).saturating_add(POSTGRES_EPOCH_DAYS)),
        }
        Ok(())
    }

    /// Finishes the batch's array; fails when text is not UTF-8.
    fn finish(&mut self) -> Result<ArrayRef, String> {
        Ok(match self {
            Self::Int64(builder) => Arc::new(builder.finish()),
            Self::Int32(builder) => Arc::new(builder.finish()),
            Self::Int16(builder) => Arc::new(builder.finish()),
            Self::Bool(builder) => Arc::new(builder.finish()),
            Self::Text(builder) | Self::Json(builder) => {
                Arc::new(StringArray::try_from_binary(builder.finish()).map_err(|error| format!("text is not UTF-8: {error}"))?)
            }
            Self::Timestamp(builder) => Arc::new(builder.finish()),
            Self::Date(builder) => Arc::new(builder.finish()),
        })
    }

    fn len(&self) -> usize {
        match self {
            Self::Int64(builder) => builder.len(),
            Self::Int32(builder) => builder.len(),
            Self::Int16(builder) => builder.len(),
            Self::Bool(builder) => builder.len(),
            Self::Text(builder) | Self::Json(builder) => builder.len(),
            Self::Timestamp(builder) => builder.len(),
            Self::Date(builder) => builder.len(),
        }
    }
}

fn fixed<const N: usize>(value: &[u8]) -> [u8; N] {
    let mut bytes = [0u8; N];
    bytes.copy_from_slice(&value[..N]);
    bytes
}

/// Turns a table's binary COPY stream into record batches of `batch_rows` rows.
pub struct CopyDecoder {
    table: String,
    columns: Vec<ColumnSpec>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    batch_rows: usize,
    pending: Vec<u8>,
    position: usize,
    header_read: bool,
    trailer_read: bool,
    rows: u64,
}

impl std::fmt::Debug for CopyDecoder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("CopyDecoder").field("table", &self.table).field("rows", &self.rows).finish()
    }
}

impl CopyDecoder {
    pub fn new(table: &str, columns: Vec<ColumnSpec>, batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        let builders = columns.iter().map(|column| ColumnBuilder::new(column.pg_type, batch_rows)).collect();
        Self {
            table: table.to_owned(),
            schema: arrow_schema(&columns),
            columns,
            builders,
            batch_rows,
            pending: Vec::new(),
            position: 0,
            header_read: false,
            trailer_read: false,
            rows: 0,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::Internal(format!("table {}: malformed COPY data after {} rows: {what}", self.table, self.rows))
    }

    /// Decodes what `data` completes; calls `on_batch` for every full batch.
    pub fn push(&mut self, data: &[u8], on_batch: &mut dyn FnMut(RecordBatch) -> Result<(), Error>) -> Result<(), Error> {
        if self.position > 0 && self.position == self.pending.len() {
            self.pending.clear();
            self.position = 0;
        } else if self.position > (1 << 20) {
            self.pending.drain(..self.position);
            self.position = 0;
        }
        self.pending.extend_from_slice(data);
        if !self.header_read {
            let Some(header_len) = self.header_length()? else {
                return Ok(());
            };
            self.position += header_len;
            self.header_read = true;
        }
        while !self.trailer_read {
            let Some(tuple_len) = self.complete_tuple_length()? else {
                break;
            };
            let start = self.position;
            self.position += tuple_len;
            if tuple_len == 2 {
                self.trailer_read = true;
                break;
            }
            self.decode_tuple(start + 2)?;
            self.rows += 1;
            if self.builders[0].len() >= self.batch_rows {
                on_batch(self.take_batch()?)?;
            }
        }
        Ok(())
    }

    /// Ends the stream; returns the last, partial batch. The trailer must have been read.
    pub fn finish(mut self) -> Result<Option<RecordBatch>, Error> {
        if !self.trailer_read || self.position != self.pending.len() {
            return Err(self.malformed("the stream ended without its trailer"));
        }
        if self.builders.first().is_none_or(|builder| builder.len() == 0) {
            return Ok(None);
        }
        self.take_batch().map(Some)
    }

    fn take_batch(&mut self) -> Result<RecordBatch, Error> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.builders.len());
        for index in 0..self.builders.len() {
            match self.builders[index].finish() {
                Ok(array) => arrays.push(array),
                Err(message) => return Err(self.malformed(format!("column {}: {message}", self.columns[index].name))),
            }
        }
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|error| Error::Internal(format!("table {}: {error}", self.table)))
    }

    fn header_length(&self) -> Result<Option<usize>, Error> {
        let bytes = &self.pending[self.position..];
        if bytes.len() < 19 {
            return Ok(None);
        }
        if &bytes[..11] != SIGNATURE {
            return Err(self.malformed("missing PGCOPY signature"));
        }
        let extension = u32::from_be_bytes(fixed(&bytes[15..19])) as usize;
        Ok((bytes.len() >= 19 + extension).then_some(19 + extension))
    }

    /// The length of the tuple (or trailer) at the position, once all of it is buffered.
    fn complete_tuple_length(&self) -> Result<Option<usize>, Error> {
        let bytes = &self.pending[self.position..];
        if bytes.len() < 2 {
            return Ok(None);
        }
        let field_count = i16::from_be_bytes(fixed(bytes));
        if field_count == -1 {
            return Ok(Some(2));
        }
        if field_count as usize != self.columns.len() {
            return Err(self.malformed(format!("a tuple has {field_count} fields, the table has {}", self.columns.len())));
        }
        let mut offset = 2usize;
        for _ in 0..field_count {
            if bytes.len() < offset + 4 {
                return Ok(None);
            }
            let length = i32::from_be_bytes(fixed(&bytes[offset..]));
            offset += 4;
            if length > 0 {
                offset += length as usize;
            }
        }
        Ok((bytes.len() >= offset).then_some(offset))
    }

    fn decode_tuple(&mut self, mut offset: usize) -> Result<(), Error> {
        for index in 0..self.columns.len() {
            let length = i32::from_be_bytes(fixed(&self.pending[offset..]));
            offset += 4;
            if length < 0 {
                if !self.columns[index].nullable {
                    return Err(self.malformed(format!("column {} is NULL", self.columns[index].name)));
                }
                self.builders[index].append_null();
                continue;
            }
            let value = &self.pending[offset..offset + length as usize];
            offset += length as usize;
            if let Some(width) = self.columns[index].pg_type.fixed_width() {
                if value.len() != width {
                    let message = format!("column {} has {} bytes, expected {width}", self.columns[index].name, value.len());
                    return Err(self.malformed(message));
                }
            }
            if let Err(message) = self.builders[index].append(value) {
                return Err(self.malformed(format!("column {}: {message}", self.columns[index].name)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    use super::*;

    fn columns() -> Vec<ColumnSpec> {
        vec![
            ColumnSpec { name: "id".into(), pg_type: PgType::Int8, nullable: false },
            ColumnSpec { name: "name".into(), pg_type: PgType::Text, nullable: true },
            ColumnSpec { name: "at".into(), pg_type: PgType::Timestamptz, nullable: true },
        ]
    }

    fn stream(rows: &[(i64, Option<&str>, Option<i64>)]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        for (id, name, at) in rows {
            bytes.extend_from_slice(&3i16.to_be_bytes());
            bytes.extend_from_slice(&8i32.to_be_bytes());
            bytes.extend_from_slice(&id.to_be_bytes());
            match name {
                Some(name) => {
                    bytes.extend_from_slice(&(name.len() as i32).to_be_bytes());
                    bytes.extend_from_slice(name.as_bytes());
                }
                None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            match at {
                Some(at) => {
                    bytes.extend_from_slice(&8i32.to_be_bytes());
                    bytes.extend_from_slice(&at.to_be_bytes());
                }
                None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        bytes
    }

    fn decode_in_chunks(bytes: &[u8], chunk: usize, batch_rows: usize) -> Vec<RecordBatch> {
        let mut decoder = CopyDecoder::new("t", columns(), batch_rows);
        let mut batches = Vec::new();
        for piece in bytes.chunks(chunk) {
            decoder
                .push(piece, &mut |batch| {
                    batches.push(batch);
                    Ok(())
                })
                .expect("decodes");
        }
        batches.extend(decoder.finish().expect("complete"));
        batches
    }

    #[test]
    fn tuples_split_across_any_chunk_size_decode_the_same() {
        let rows: Vec<(i64, Option<&str>, Option<i64>)> = (0..50)
            .map(|index| {
                (index, if index % 3 == 0 { None } else { Some("привет, мир") }, if index % 4 == 0 { None } else { Some(index * 1_000_000) })
            })
            .collect();
        let bytes = stream(&rows);
        for chunk in [1, 2, 7, 64, bytes.len()] {
            let batches = decode_in_chunks(&bytes, chunk, 16);
            assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![16, 16, 16, 2], "chunk {chunk}");
            let ids: Vec<i64> = batches.iter().flat_map(|batch| batch.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
            assert_eq!(ids, (0..50).collect::<Vec<_>>());
            let names = batches[0].column(1).as_string::<i32>();
            assert!(names.is_null(0));
            assert_eq!(names.value(1), "привет, мир");
            let at = batches[0].column(2).as_primitive::<TimestampMicrosecondType>();
            assert!(at.is_null(0));
            assert_eq!(at.value(1), 1_000_000 + POSTGRES_EPOCH_MICROS);
        }
    }

    #[test]
    fn a_stream_without_its_trailer_is_an_error() {
        let bytes = stream(&[(1, Some("a"), None)]);
        let mut decoder = CopyDecoder::new("t", columns(), 8);
        decoder.push(&bytes[..bytes.len() - 2], &mut |_| Ok(())).expect("partial data is fine");
        assert!(decoder.finish().is_err());
    }

    #[test]
    fn a_wrong_field_count_is_an_error() {
        let mut bytes = stream(&[(1, Some("a"), None)]);
        bytes[19..21].copy_from_slice(&2i16.to_be_bytes());
        let mut decoder = CopyDecoder::new("t", columns(), 8);
        assert!(decoder.push(&bytes, &mut |_| Ok(())).is_err());
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error() {
        let mut bytes = stream(&[(1, Some("ok"), None), (2, Some("bad?"), None)]);
        let position = bytes.windows(4).position(|window| window == b"bad?").expect("value") + 3;
        bytes[position] = 0xC3;
        let mut decoder = CopyDecoder::new("t", columns(), 8);
        decoder.push(&bytes, &mut |_| Ok(())).expect("a batch is checked when it is finished");
        let error = decoder.finish().expect_err("not UTF-8").to_string();
        assert!(error.contains("column name") && error.contains("UTF-8"), "{error}");
    }

    #[test]
    fn null_in_a_non_null_column_is_an_error() {
        let mut columns = columns();
        columns[1].nullable = false;
        let mut decoder = CopyDecoder::new("t", columns, 8);
        assert!(decoder.push(&stream(&[(1, None, None)]), &mut |_| Ok(())).is_err());
    }

    #[test]
    fn stored_text_is_decoded_to_the_exact_text() {
        let original = "nul\0one\u{1}us\u{1f} and \u{FFFF}";
        let stored = chatvault_common::text::encode(original).into_owned();
        assert_ne!(stored, original, "U+0000 and U+FFFF are escaped in the database");
        let batches = decode_in_chunks(&stream(&[(1, Some(stored.as_str()), None)]), 5, 8);
        assert_eq!(batches[0].column(1).as_string::<i32>().value(0), original);
    }

    #[test]
    fn stored_json_strings_are_decoded_inside_the_json() {
        let original = serde_json::json!({"file_name": "a\0b", "kind": "photo"});
        let stored = chatvault_common::text::encode_json(original.clone()).to_string();
        let columns = vec![ColumnSpec { name: "media".into(), pg_type: PgType::Json, nullable: true }];
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&1i16.to_be_bytes());
        bytes.extend_from_slice(&(stored.len() as i32).to_be_bytes());
        bytes.extend_from_slice(stored.as_bytes());
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        let mut decoder = CopyDecoder::new("t", columns, 8);
        decoder.push(&bytes, &mut |_| Ok(())).expect("decodes");
        let batch = decoder.finish().expect("complete").expect("one batch");
        let json: serde_json::Value = serde_json::from_str(batch.column(0).as_string::<i32>().value(0)).expect("JSON");
        assert_eq!(json, original);
    }
}
