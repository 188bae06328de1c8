//! `COPY ... TO STDOUT` on the wire: rows are encoded by arrow-pg in PostgreSQL's
//! text (or binary) representation, then framed as COPY data. pgwire frames the
//! COPY messages but has no Arrow encoder; arrow-pg encodes DataRows but knows
//! nothing of COPY, so the re-framing from one to the other is ours.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::CopyResponse;
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;

use super::encode::encode_batches;
use super::text_columns::TextStyle;
use crate::session::QueryStream;
use crate::session::copy::{CopyFormat, CopyOptions, write_value};

/// PGCOPY signature, flags and header-extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Stream `query`'s rows as COPY data in `options`' format; one row per message,
/// one batch in memory.
pub fn encode_copy(
    query: QueryStream,
    options: CopyOptions,
    format_options: Arc<FormatOptions>,
) -> PgWireResult<CopyResponse> {
    let binary = options.format == CopyFormat::Binary;
    let wire_format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let style = TextStyle::of(&format_options);
    let fields = Arc::new(super::encode::pg_fields(
        &query.schema,
        &wire_format,
        Some(format_options),
    )?);
    let columns = fields.len();
    // The header goes in front of the first row so that the row count in the
    // COPY command tag stays right (pgwire counts messages).
    let mut header = Vec::new();
    if binary {
        header.extend_from_slice(BINARY_HEADER);
    } else if options.header {
        let names: Vec<Option<&[u8]>> = fields.iter().map(|f| Some(f.name().as_bytes())).collect();
        write_line(&mut header, &names, &options);
    }
    let options = Arc::new(options);
    let rows = encode_batches(query.batches, fields.clone(), style, query.record);
    // Shared by the row stream (first row takes it) and the tail (an empty
    // result still sends its header or binary signature, counted as one row).
    let header = Arc::new(std::sync::Mutex::new(
        Some(header).filter(|h| !h.is_empty()),
    ));
    let first = header.clone();
    let data = rows
        .map(move |row| {
            let row = row?;
            let mut out = take(&first).unwrap_or_default();
            if options.format == CopyFormat::Binary {
                // A binary COPY tuple is laid out exactly as a DataRow's body.
                out.put_i16(row.field_count);
                out.extend_from_slice(&row.data);
            } else {
                let values = row_values(&row);
                write_line(&mut out, &values, &options);
            }
            Ok(CopyData::new(Bytes::from(out)))
        })
        .chain(
            stream::once(async move { take(&header).map(|h| Ok(CopyData::new(Bytes::from(h)))) })
                .filter_map(futures::future::ready),
        );
    Ok(CopyResponse::new(i8::from(binary), columns, data))
}

fn take(header: &std::sync::Mutex<Option<Vec<u8>>>) -> Option<Vec<u8>> {
    header.lock().ok().and_then(|mut h| h.take())
}

fn write_line(out: &mut Vec<u8>, values: &[Option<&[u8]>], options: &CopyOptions) {
    let mut delimiter = [0u8; 4];
    let delimiter = options.delimiter.encode_utf8(&mut delimiter).as_bytes();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(delimiter);
        }
        write_value(out, *value, options);
    }
    out.push(b'\n');
}

/// The fields of a DataRow: a 4-byte length (-1 for NULL) before each value.
fn row_values(row: &DataRow) -> Vec<Option<&[u8]>> {
    let mut values = Vec::with_capacity(row.field_count as usize);
    let data: &BytesMut = &row.data;
    let mut at = 0;
    for _ in 0..row.field_count {
        let len = i32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        at += 4;
        if len < 0 {
            values.push(None);
        } else {
            let len = len as usize;
            values.push(Some(&data[at..at + len]));
            at += len;
        }
    }
    values
}
