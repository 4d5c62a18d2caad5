//! Feeds arbitrary bytes to `JsonExportReader` as a `result.json` and reads events until
//! the end or the first error. Any panic, hang or out-of-memory is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_export::{JsonExportReader, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let mut reader = JsonExportReader::new(data, "fuzz.json", ParseOptions::default());
    while let Ok(Some(_event)) = reader.next_event() {}
    // A finished reader must stay finished.
    assert!(matches!(reader.next_event(), Ok(None)));
});
