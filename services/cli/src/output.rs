//! Printing results and errors for people (text) and scripts (`--json`).

use serde_json::json;

/// Prints `error` to stderr: the gRPC status message and code when it came from a
/// service, the whole cause chain otherwise.
pub(crate) fn print_error(error: &anyhow::Error, json: bool) {
    let status = error.downcast_ref::<tonic::Status>();
    let code = status.map(|status| format!("{:?}", status.code()));
    let message = match status {
        Some(status) => status.message().to_owned(),
        None => format!("{error:#}"),
    };
    if json {
        eprintln!("{}", json!({ "error": message, "code": code }));
    } else {
        match code {
            Some(code) => eprintln!("error ({code}): {message}"),
            None => eprintln!("error: {message}"),
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn format_unix(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|date| date.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

/// Prints one JSON value on its own line.
pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
