//! chatvault's benchmarks. Each figure is printed beside a limit measured in the same run
//! on the same machine, as a ratio, so the numbers mean something on a shared, noisy host;
//! each is also appended to the results file (see `chatvault_bench::results`).
//!
//! `chatvault-bench import [--format json|html] [--messages N]`: generates an N-message
//! Telegram export (cached under `bench/out/`; 1,000,000 messages for JSON and 200,000 for
//! HTML by default), measures the parser alone against plainly reading the files, then the
//! end-to-end import (CLI start until the storage projection has applied every message)
//! against PostgreSQL `COPY FROM` of the same rows into an identical table, with the peak
//! RSS of ingest and storage. After the JSON import, the web service's chat page: the
//! newest page and the 1,000th page back, rendered server side, against GetMessages.
//!
//! `chatvault-bench media [--media-bytes B]`: the import of an export whose messages carry
//! 20% media files (about B bytes of them, 2 GB by default) through six storage nodes:
//! messages against `COPY FROM`, media bytes against `dd` writing as many bytes, and ingest's
//! peak RSS on that export.
//!
//! `chatvault-bench backup [--messages N]`: Parquet and CSV backups of N messages against
//! `COPY … TO STDOUT (FORMAT csv)` and pyarrow, and their restore against `COPY FROM`.
//!
//! `chatvault-bench summary [--results PATH]`: the table of every row of the performance
//! table (README, "Performance") from the results file, measured or not.
//!
//! Every benchmark checks its outcome against its source (counts, sizes, hashes) before it
//! reports a figure, and fails otherwise.

mod backup;
mod import;
mod media;
mod web;

use anyhow::bail;
use chatvault_bench::args::{number_flag, reject_unknown, text_flag};
use chatvault_bench::results;

const USAGE: &str =
    "benchmarks: import [--format json|html] [--messages N], media [--media-bytes B], backup [--messages N], summary [--results PATH]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let flags = arguments.get(1..).unwrap_or_default();
    let known: &[&str] = match arguments.first().map(String::as_str) {
        Some("import") | None => &["--format", "--messages"],
        Some("media") => &["--media-bytes"],
        Some("backup") => &["--messages"],
        Some("summary") => &["--results"],
        _ => &[],
    };
    reject_unknown(flags, known)?;
    let outcome = match arguments.first().map(String::as_str) {
        Some("import") | None => {
            let format = match text_flag(&arguments, "--format") {
                None | Some("json") => import::ExportFormat::Json,
                Some("html") => import::ExportFormat::Html,
                Some(other) => bail!("--format is json or html, not {other:?}"),
            };
            let default_messages = match format {
                import::ExportFormat::Json => import::FULL_JSON_MESSAGES,
                import::ExportFormat::Html => import::FULL_HTML_MESSAGES,
            };
            match number_flag(&arguments, "--messages")? {
                Some(0) => bail!("--messages must be at least 1"),
                messages => import::run(format, messages.unwrap_or(default_messages)).await,
            }
        }
        Some("media") => match number_flag(&arguments, "--media-bytes")? {
            Some(0) => bail!("--media-bytes must be at least 1"),
            media_bytes => media::run(media_bytes.unwrap_or(media::FULL_MEDIA_BYTES)).await,
        },
        Some("backup") => match number_flag(&arguments, "--messages")? {
            Some(0) => bail!("--messages must be at least 1"),
            messages => backup::run(messages.unwrap_or(import::FULL_JSON_MESSAGES)).await,
        },
        Some("summary") => {
            let path = text_flag(&arguments, "--results").map(std::path::PathBuf::from).unwrap_or_else(results::results_path);
            print!("{}", results::summary(&results::read(&path)?));
            return Ok(());
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some(other) => bail!("unknown benchmark {other:?}; {USAGE}"),
    };
    // The databases go whether the benchmark succeeded or not (its services are stopped by now).
    let dropped = chatvault_bench::platform::drop_databases().await;
    outcome?;
    dropped
}
