//! Reads the fixture exports in `tests/fixtures/` end to end and checks every mapped field
//! and structural error against the format reference (sections 2 and 4). One test binary;
//! the modules group the tests by concern.

mod errors;
mod fields;
mod html;
mod round_trip;

use std::fs;
use std::io::BufReader;
use std::path::PathBuf;

use telegram_export::{ChatHeader, ExportError, ExportEvent, JsonExportReader, Message, ParseOptions};

pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name].iter().collect();
    fs::read(&path).unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()))
}

pub(crate) fn read_events(bytes: &[u8], options: ParseOptions) -> Result<Vec<ExportEvent>, ExportError> {
    JsonExportReader::new(BufReader::with_capacity(64, bytes), "result.json", options).collect()
}

pub(crate) fn read_fixture(name: &str, options: ParseOptions) -> Vec<ExportEvent> {
    read_events(&fixture_bytes(name), options).unwrap_or_else(|error| panic!("fixture {name} must parse: {error}"))
}

pub(crate) fn messages_of(events: &[ExportEvent]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|event| match event {
            ExportEvent::Message(message) => Some(message),
            _ => None,
        })
        .collect()
}

pub(crate) fn headers_of(events: &[ExportEvent]) -> Vec<&ChatHeader> {
    events
        .iter()
        .filter_map(|event| match event {
            ExportEvent::ChatStarted(header) => Some(header),
            _ => None,
        })
        .collect()
}

pub(crate) fn message_with_id<'a>(messages: &[&'a Message], id: i64) -> &'a Message {
    messages.iter().copied().find(|message| message.id == id).unwrap_or_else(|| panic!("no message {id}"))
}

pub(crate) fn read_error(bytes: &[u8]) -> ExportError {
    match read_events(bytes, ParseOptions::default()) {
        Ok(events) => panic!("expected an error, read {} events", events.len()),
        Err(error) => error,
    }
}
