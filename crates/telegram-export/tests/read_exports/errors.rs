//! Structural errors: truncation at any byte, invalid UTF-8, wrong types, trailing
//! garbage, and mutated inputs that must never panic.

use std::io::BufReader;

use telegram_export::{ExportError, JsonExportReader, ParseOptions};

use crate::{fixture_bytes, read_error};

#[test]
fn truncated_files_fail_with_the_end_offset_at_every_cut() {
    let bytes = fixture_bytes("single_chat_2025.json");
    let whole_end = bytes.iter().rposition(|byte| !byte.is_ascii_whitespace()).unwrap_or(0);
    for cut in (0..=whole_end).step_by(97) {
        let error = read_error(&bytes[..cut]);
        assert!(matches!(error, ExportError::Truncated { byte_offset, .. } if byte_offset == cut as u64), "cut at {cut}: {error}");
        assert!(error.to_string().contains(&format!("unexpected end of file at byte {cut} ")), "{error}");
    }
}

#[test]
fn invalid_utf8_fails_with_its_offset() {
    let mut bytes = fixture_bytes("single_chat_2019.json");
    let position = bytes.windows(5).position(|window| window == b"hello").expect("fixture text");
    bytes[position + 1] = 0xFF;
    let error = read_error(&bytes);
    assert!(matches!(error, ExportError::InvalidUtf8 { byte_offset, .. } if byte_offset == position as u64 + 1), "{error}");
}

#[test]
fn wrong_types_and_trailing_garbage_fail_with_readable_errors() {
    let error = read_error(b"{\n \"name\": \"A\",\n \"type\": \"personal_chat\",\n \"id\": 1,\n \"messages\": \"x\"\n}\n");
    assert_eq!(error.to_string(), "result.json: at byte 65 (line 5): expected an array for \"messages\", found a string");
    let error = read_error(b"[\n {\"id\": 1}\n]\n");
    assert_eq!(error.to_string(), "result.json: at byte 0 (line 1): expected an object at the top level, found an array");
    let mut bytes = fixture_bytes("empty_messages.json");
    bytes.extend_from_slice(b"{\"more\": 1}\n");
    let error = read_error(&bytes);
    assert!(matches!(error, ExportError::MalformedJson { .. }), "{error}");
    assert!(error.to_string().contains("expected the end of the file after the top-level object, found an object"), "{error}");
}

#[test]
fn mutated_inputs_end_in_events_or_errors_never_in_panics() {
    let original = fixture_bytes("single_chat_2025.json");
    let interesting_bytes = *b"\"\\{}[]:,0-9.eEx\n \xff\xd0\x80tfnu";
    let mut random_state: u64 = 0x5eed;
    let mut next_random = move |bound: usize| {
        random_state ^= random_state << 13;
        random_state ^= random_state >> 7;
        random_state ^= random_state << 17;
        (random_state % bound.max(1) as u64) as usize
    };
    for _ in 0..3000 {
        let mut mutated = original.clone();
        for _ in 0..1 + next_random(4) {
            let position = next_random(mutated.len());
            let replacement = interesting_bytes[next_random(interesting_bytes.len())];
            match next_random(3) {
                0 => mutated[position] = replacement,
                1 => mutated.insert(position, replacement),
                _ => {
                    mutated.remove(position);
                }
            }
        }
        let reader = JsonExportReader::new(BufReader::with_capacity(1 + next_random(200), &mutated[..]), "fuzz.json", ParseOptions::default());
        let mut event_count = 0;
        for result in reader {
            event_count += 1;
            if let Err(error) = result {
                assert!(error.byte_offset() <= mutated.len() as u64, "{error}");
                assert!(error.to_string().starts_with("fuzz.json: "), "{error}");
            }
        }
        assert!(event_count <= 64);
    }
}
