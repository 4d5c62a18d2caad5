//! chatvault's benchmarks. Each figure is printed beside a limit measured in the same run
//! on the same machine, as a ratio, so the numbers mean something on a shared, noisy host.
//!
//! `chatvault-bench import [--format json|html] [--messages N]`: generates an N-message
//! Telegram export (cached under `bench/out/`), measures the parser alone against plainly reading the file, then the
//! end-to-end import (CLI start until the storage projection has applied every message)
//! against PostgreSQL `COPY FROM` of the same rows into an identical table, with the peak
//! RSS of ingest and storage.
//!
//! `chatvault-bench backup [--messages N]`: Parquet and CSV backups of N messages against
//! `COPY … TO STDOUT (FORMAT csv)` and pyarrow, and their restore against `COPY FROM`.

mod backup;
mod import;
mod process;

use anyhow::bail;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("import") | None => {
            let messages = flag_value(&arguments, "--messages").unwrap_or(1_000_000);
            let format = match arguments.iter().position(|argument| argument == "--format").and_then(|index| arguments.get(index + 1)) {
                None => import::ExportFormat::Json,
                Some(name) if name == "json" => import::ExportFormat::Json,
                Some(name) if name == "html" => import::ExportFormat::Html,
                Some(other) => bail!("--format is json or html, not {other:?}"),
            };
            import::run(format, messages).await
        }
        Some("backup") => backup::run(flag_value(&arguments, "--messages").unwrap_or(1_000_000)).await,
        Some(other) => bail!("unknown benchmark {other:?}; known: import [--format json|html] [--messages N], backup [--messages N]"),
    }
}

fn flag_value(arguments: &[String], flag: &str) -> Option<u64> {
    arguments.iter().position(|argument| argument == flag).and_then(|index| arguments.get(index + 1)).and_then(|value| value.parse().ok())
}
