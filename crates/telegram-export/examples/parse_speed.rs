//! Measures how fast `JsonExportReader` and `HtmlExportReader` parse the same synthetic
//! chat, each compared with plainly reading the same files.
//!
//! Usage: `cargo run --release -p telegram-export --example parse_speed [MESSAGE_COUNT]`
//! (default 300000). The exports are generated into the system temp folder and removed
//! afterwards.

use std::fs::File;
use std::io::{BufReader, Read};
use std::time::Instant;

use std::path::Path;

use telegram_export::{
    write_synthetic_export, write_synthetic_html_export, ExportEvent, HtmlExportReader, HtmlParseOptions, JsonExportReader, ParseOptions,
};

fn megabytes_per_second(byte_count: u64, seconds: f64) -> f64 {
    byte_count as f64 / 1_000_000.0 / seconds.max(1e-9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message_count: u64 = match std::env::args().nth(1) {
        Some(argument) => argument.parse()?,
        None => 300_000,
    };
    let export_path = std::env::temp_dir().join(format!("telegram-export-parse-speed-{}.json", std::process::id()));

    let generation_started = Instant::now();
    write_synthetic_export(File::create(&export_path)?, 1, message_count, 42)?;
    let generation_seconds = generation_started.elapsed().as_secs_f64();
    let file_size = std::fs::metadata(&export_path)?.len();
    println!(
        "generated {message_count} messages, {:.1} MB in {generation_seconds:.2} s ({:.0} MB/s)",
        file_size as f64 / 1_000_000.0,
        megabytes_per_second(file_size, generation_seconds)
    );

    plain_read(&[export_path.as_path()])?;

    let parse_started = Instant::now();
    let file_reader = BufReader::with_capacity(256 * 1024, File::open(&export_path)?);
    let mut export_reader = JsonExportReader::new(file_reader, export_path.display().to_string(), ParseOptions::default());
    let mut parsed_messages: u64 = 0;
    let mut text_bytes: u64 = 0;
    while let Some(event) = export_reader.next_event()? {
        if let ExportEvent::Message(message) = event {
            parsed_messages += 1;
            text_bytes += message.text.len() as u64;
        }
    }
    let parse_seconds = parse_started.elapsed().as_secs_f64();
    println!(
        "parsed: {parsed_messages} messages ({text_bytes} bytes of text) in {parse_seconds:.3} s ({:.0} MB/s, {:.0} messages/s)",
        megabytes_per_second(export_reader.bytes_read(), parse_seconds),
        parsed_messages as f64 / parse_seconds.max(1e-9)
    );

    std::fs::remove_file(&export_path)?;
    measure_html(message_count)
}

/// Reads the files without parsing and prints the speed.
fn plain_read(paths: &[&Path]) -> Result<(), Box<dyn std::error::Error>> {
    let plain_read_started = Instant::now();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut plain_bytes: u64 = 0;
    for path in paths {
        let mut plain_reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
        loop {
            let read_count = plain_reader.read(&mut chunk)?;
            if read_count == 0 {
                break;
            }
            plain_bytes += read_count as u64;
        }
    }
    let plain_read_seconds = plain_read_started.elapsed().as_secs_f64();
    println!("plain read: {plain_bytes} bytes in {plain_read_seconds:.3} s ({:.0} MB/s)", megabytes_per_second(plain_bytes, plain_read_seconds));
    Ok(())
}

fn measure_html(message_count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::temp_dir().join(format!("telegram-export-parse-speed-html-{}", std::process::id()));
    let generation_started = Instant::now();
    write_synthetic_html_export(&folder, 1, message_count, 42)?;
    let generation_seconds = generation_started.elapsed().as_secs_f64();
    let pages: Vec<_> = std::fs::read_dir(&folder)?.map(|entry| entry.map(|entry| entry.path())).collect::<Result<_, _>>()?;
    let total_size: u64 = pages.iter().map(|page| std::fs::metadata(page).map_or(0, |metadata| metadata.len())).sum();
    println!(
        "html: generated {message_count} messages in {} pages, {:.1} MB in {generation_seconds:.2} s",
        pages.len(),
        total_size as f64 / 1_000_000.0
    );
    let page_paths: Vec<&Path> = pages.iter().map(|page| page.as_path()).collect();
    plain_read(&page_paths)?;

    let parse_started = Instant::now();
    let mut reader = HtmlExportReader::open(&folder, Some(1), HtmlParseOptions::default())?;
    let mut parsed_messages: u64 = 0;
    while let Some(event) = reader.next_event()? {
        if let ExportEvent::Message(_) = event {
            parsed_messages += 1;
        }
    }
    let parse_seconds = parse_started.elapsed().as_secs_f64();
    println!(
        "html parsed: {parsed_messages} messages in {parse_seconds:.3} s ({:.0} MB/s, {:.0} messages/s)",
        megabytes_per_second(reader.bytes_read(), parse_seconds),
        parsed_messages as f64 / parse_seconds.max(1e-9)
    );
    std::fs::remove_dir_all(&folder)?;
    Ok(())
}
