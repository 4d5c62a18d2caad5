//! Feeds arbitrary bytes to `HtmlPageReader` as one HTML export page: reads the header
//! name, then messages until the end of the page or the first error. Any panic, hang or
//! out-of-memory is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_export::{HtmlPageReader, HtmlParseOptions};

fuzz_target!(|data: &[u8]| {
    let mut reader = HtmlPageReader::new(data, "messages.html", 1, HtmlParseOptions::default());
    if reader.chat_name().is_err() {
        return;
    }
    while let Ok(Some(_message)) = reader.next_message() {}
    assert!(matches!(reader.next_message(), Ok(None)));
});
