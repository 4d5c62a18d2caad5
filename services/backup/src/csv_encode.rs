//! Writes record batches as CSV, byte for byte as `arrow_csv::Writer` does with the backup's
//! options (a header row before the first batch, `,` between fields, `\n` after each row,
//! a field quoted only when it holds `,`, `"`, `\r` or `\n`, quotes doubled inside, NULL as
//! an empty field, timestamps as `%Y-%m-%dT%H:%M:%S%.6f%:z`, dates as `%Y-%m-%d`), but
//! formatting each value straight into one buffer per batch instead of going through a
//! string per value and a record per row, which made CSV writing most of a CSV backup's
//! time.

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, BooleanArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use chrono::{Datelike, Timelike};

use crate::copy_binary::UTC_OFFSET;
use crate::Error;

/// The timestamp format of CSV files: RFC 3339 with microseconds, which PostgreSQL,
/// pandas and DuckDB all read.
pub const CSV_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f%:z";
/// The buffer is handed to the file once it holds this much.
const FLUSH_BYTES: usize = 1 << 20;

/// A CSV file being written batch by batch.
pub struct CsvWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
    header_written: bool,
}

impl<W: Write> std::fmt::Debug for CsvWriter<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("CsvWriter").field("buffered", &self.buffer.len()).field("header_written", &self.header_written).finish()
    }
}

impl<W: Write> CsvWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, buffer: Vec::with_capacity(FLUSH_BYTES + (64 << 10)), header_written: false }
    }

    /// Writes the batch's rows, after the header row when this is the first batch. A
    /// table without rows gets no file content at all, as with arrow_csv.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let schema = batch.schema();
        let single_column = batch.num_columns() == 1;
        if !self.header_written {
            for (index, field) in schema.fields().iter().enumerate() {
                if index > 0 {
                    self.buffer.push(b',');
                }
                push_text(&mut self.buffer, field.name().as_bytes());
            }
            if single_column && schema.field(0).name().is_empty() {
                self.buffer.extend_from_slice(b"\"\"");
            }
            self.buffer.push(b'\n');
            self.header_written = true;
        }
        let columns = batch.columns().iter().map(|column| Column::of(column.as_ref())).collect::<Result<Vec<_>, Error>>()?;
        for row in 0..batch.num_rows() {
            let start = self.buffer.len();
            for (index, column) in columns.iter().enumerate() {
                if index > 0 {
                    self.buffer.push(b',');
                }
                column
                    .write(row, &mut self.buffer)
                    .map_err(|message| Error::Internal(format!("Csv error: Error processing row {}, col {}: {message}", row + 1, index + 1)))?;
            }
            // The csv crate quotes an empty field that is the only one of its record, so
            // that the row is not read as a blank line.
            if single_column && self.buffer.len() == start {
                self.buffer.extend_from_slice(b"\"\"");
            }
            self.buffer.push(b'\n');
            if self.buffer.len() >= FLUSH_BYTES {
                self.flush_buffer()?;
            }
        }
        self.flush_buffer()
    }

    fn flush_buffer(&mut self) -> Result<(), Error> {
        self.inner.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Returns the writer the CSV went to; everything is written to it already.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// One column of a batch, typed.
enum Column<'a> {
    Int64(&'a PrimitiveArray<Int64Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int16(&'a PrimitiveArray<Int16Type>),
    Bool(&'a BooleanArray),
    Text(&'a StringArray),
    Timestamp(&'a PrimitiveArray<TimestampMicrosecondType>),
    Date(&'a PrimitiveArray<Date32Type>),
}

impl<'a> Column<'a> {
    fn of(array: &'a dyn Array) -> Result<Self, Error> {
        Ok(match array.data_type() {
            DataType::Int64 => Self::Int64(array.as_primitive()),
            DataType::Int32 => Self::Int32(array.as_primitive()),
            DataType::Int16 => Self::Int16(array.as_primitive()),
            DataType::Boolean => Self::Bool(array.as_boolean()),
            DataType::Utf8 => Self::Text(array.as_string()),
            DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if zone.as_ref() == UTC_OFFSET => Self::Timestamp(array.as_primitive()),
            DataType::Date32 => Self::Date(array.as_primitive()),
            other => return Err(Error::Internal(format!("no CSV encoding for column type {other}"))),
        })
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let array: &dyn Array = match self {
            Self::Int64(array) => *array,
            Self::Int32(array) => *array,
            Self::Int16(array) => *array,
            Self::Bool(array) => *array,
            Self::Text(array) => *array,
            Self::Timestamp(array) => *array,
            Self::Date(array) => *array,
        };
        if array.is_null(row) {
            return Ok(());
        }
        match self {
            Self::Int64(array) => push_integer(out, array.value(row)),
            Self::Int32(array) => push_integer(out, i64::from(array.value(row))),
            Self::Int16(array) => push_integer(out, i64::from(array.value(row))),
            Self::Bool(array) => out.extend_from_slice(if array.value(row) { b"true" } else { b"false" }),
            Self::Text(array) => push_text(out, array.value(row).as_bytes()),
            Self::Timestamp(array) => push_timestamp(out, array.value(row))?,
            Self::Date(array) => {
                let value = array.value(row);
                let date = chrono::DateTime::from_timestamp(i64::from(value) * 86_400, 0)
                    .ok_or_else(|| format!("Cast error: Failed to convert {value} to temporal for Date32"))?
                    .date_naive();
                // NaiveDate's Debug form is what arrow_cast writes for a date without a format.
                write!(out, "{date:?}").map_err(|error| error.to_string())?;
            }
        }
        Ok(())
    }
}

/// Whether a byte makes a field need quotes.
const fn special(byte: u8) -> bool {
    matches!(byte, b',' | b'"' | b'\r' | b'\n')
}

/// Appends a text field, quoted when it holds a special byte.
fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    if !text.iter().any(|&byte| special(byte)) {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    let mut rest = text;
    while let Some(position) = rest.iter().position(|&byte| byte == b'"') {
        out.extend_from_slice(&rest[..=position]);
        out.push(b'"');
        rest = &rest[position + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn push_integer(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut magnitude = value.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `value` (`width` digits, zero-padded).
fn push_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends a timestamp (microseconds since 1970 UTC) as `CSV_TIMESTAMP_FORMAT` does.
fn push_timestamp(out: &mut Vec<u8>, micros: i64) -> Result<(), String> {
    let moment = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("Cast error: Failed to convert {micros} to datetime for Timestamp(µs, \"{UTC_OFFSET}\")"))?;
    let naive = moment.naive_utc();
    let year = naive.year();
    if !(0..=9999).contains(&year) {
        // Years of other than four digits are written with their sign, as chrono does.
        let offset = chrono::FixedOffset::east_opt(0).ok_or("UTC offset")?;
        return write!(out, "{}", moment.with_timezone(&offset).format(CSV_TIMESTAMP_FORMAT)).map_err(|error| error.to_string());
    }
    push_padded(out, year as u32, 4);
    out.push(b'-');
    push_padded(out, naive.month(), 2);
    out.push(b'-');
    push_padded(out, naive.day(), 2);
    out.push(b'T');
    push_padded(out, naive.hour(), 2);
    out.push(b':');
    push_padded(out, naive.minute(), 2);
    out.push(b':');
    push_padded(out, naive.second(), 2);
    out.push(b'.');
    push_padded(out, naive.nanosecond() / 1000, 6);
    out.extend_from_slice(b"+00:00");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BooleanArray, Date32Array, Int16Array, Int32Array, Int64Array, TimestampMicrosecondArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn arrow_csv_bytes(batches: &[RecordBatch]) -> Vec<u8> {
        let mut writer =
            arrow_csv::WriterBuilder::new().with_header(true).with_timestamp_tz_format(CSV_TIMESTAMP_FORMAT.to_owned()).build(Vec::new());
        for batch in batches {
            writer.write(batch).expect("arrow_csv writes");
        }
        writer.into_inner()
    }

    fn our_bytes(batches: &[RecordBatch]) -> Vec<u8> {
        let mut writer = CsvWriter::new(Vec::new());
        for batch in batches {
            writer.write(batch).expect("writes");
        }
        writer.into_inner()
    }

    #[test]
    fn every_type_is_written_as_arrow_csv_writes_it() {
        let micros: Vec<Option<i64>> = vec![
            Some(0),
            Some(1_700_000_000_123_456),
            Some(-1),
            Some(-62_135_596_800_000_000),
            Some(-62_135_596_800_000_001),
            Some(253_402_300_799_999_999),
            Some(253_402_300_800_000_000),
            Some(-9_000_000_000_000_000),
            None,
        ];
        let rows = micros.len();
        let texts: Vec<Option<&str>> =
            vec![Some("plain"), Some("a,b"), Some("say \"hi\""), Some("two\nlines"), Some("cr\r"), Some(""), None, Some("съешь ещё"), Some("\"")];
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int16, true),
            Field::new("mid", DataType::Int32, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("text, \"quoted\"", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_OFFSET.into())), true),
            Field::new("day", DataType::Date32, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![0, -1, i64::MIN, i64::MAX, 42, 10, -10, 999_999_999_999, 7])),
            Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None, Some(0), Some(-5), Some(5), Some(1), Some(2), Some(3)])),
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), Some(0), None, Some(-5), Some(5), Some(1), Some(2), Some(3)])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true), Some(false), Some(true), None, Some(false), Some(true)])),
            Arc::new(StringArray::from(texts)),
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone(UTC_OFFSET)),
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(-1),
                Some(19_000),
                Some(-719_162),
                Some(2_932_896),
                Some(3_000_000),
                None,
                Some(-800_000),
                Some(1),
            ])),
        ];
        assert!(columns.iter().all(|column| column.len() == rows));
        let batch = RecordBatch::try_new(schema, columns).expect("batch");
        let second = batch.slice(2, 4);
        let ours = our_bytes(&[batch.clone(), second.clone()]);
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&arrow_csv_bytes(&[batch, second])));
    }

    #[test]
    fn out_of_range_timestamps_fail_like_arrow_csv() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_OFFSET.into())), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![1])), Arc::new(TimestampMicrosecondArray::from(vec![Some(i64::MAX)]).with_timezone(UTC_OFFSET))],
        )
        .expect("batch");
        let mut arrow_writer =
            arrow_csv::WriterBuilder::new().with_header(true).with_timestamp_tz_format(CSV_TIMESTAMP_FORMAT.to_owned()).build(Vec::new());
        assert!(arrow_writer.write(&batch).is_err());
        assert!(CsvWriter::new(Vec::new()).write(&batch).is_err());
    }

    #[test]
    fn a_single_empty_field_is_quoted_and_no_rows_write_nothing() {
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![Some(""), None, Some("x")]))]).expect("batch");
        assert_eq!(our_bytes(&[batch]), b"name\n\"\"\n\"\"\nx\n".to_vec());
        assert!(our_bytes(&[]).is_empty());
    }
}
