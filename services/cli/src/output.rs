//! Printing results and errors for people (text) and scripts (`--json`).
//!
//! Every line of output goes through [`outln!`], the one place that decides what a failed
//! write to stdout means: a reader that went away (`chatvault … | head -1`) ends the process
//! quietly with status 141, as a tool killed by SIGPIPE would; any other failure (a full disk
//! behind `>`) is reported on stderr and ends it with status 1. `println!` would panic
//! instead (Rust ignores SIGPIPE, so the write fails with EPIPE), and `clippy.toml` forbids it
//! in this crate.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::error_code::{code_of, grpc_code_name};

/// The exit status of a process whose stdout reader went away: 128 + SIGPIPE (13), what a
/// shell reports for `yes | head -1` under `set -o pipefail`.
pub(crate) const BROKEN_PIPE_EXIT_STATUS: i32 = 141;

/// Whether errors are printed as JSON (`--json`); set once by `main` after parsing.
static ERRORS_AS_JSON: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout, like `println!`, ending the process as the module docs say
/// when stdout is gone.
macro_rules! outln {
    () => {
        $crate::output::write_stdout_line(format_args!(""))
    };
    ($($argument:tt)*) => {
        $crate::output::write_stdout_line(format_args!($($argument)*))
    };
}
pub(crate) use outln;

/// Makes [`print_error`]'s callers and the stdout failure path print JSON errors.
pub(crate) fn set_errors_as_json(json: bool) {
    ERRORS_AS_JSON.store(json, Ordering::Relaxed);
}

/// Writes `line` and a newline to stdout; use it through [`outln!`].
pub(crate) fn write_stdout_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    // Stdout is line-buffered: the newline flushes, so a gone reader shows up on this line.
    let written = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n"));
    if let Err(error) = written {
        drop(stdout);
        end_after_failed_stdout_write(&error);
    }
}

fn end_after_failed_stdout_write(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_EXIT_STATUS);
    }
    let error = anyhow::Error::msg(format!("cannot write to stdout: {error}"));
    print_error(&error, ERRORS_AS_JSON.load(Ordering::Relaxed));
    std::process::exit(1);
}

/// Prints `error` to stderr with its gRPC code name (see [`crate::error_code`]): the
/// status message when it came from a service, the whole cause chain otherwise. With `json`
/// it is one object, `{"error": "<message>", "code": "NOT_FOUND"}`.
pub(crate) fn print_error(error: &anyhow::Error, json: bool) {
    let code = grpc_code_name(code_of(error));
    let message = match error.downcast_ref::<tonic::Status>() {
        Some(status) => status.message().to_owned(),
        None => format!("{error:#}"),
    };
    print_error_message(&message, code, json);
}

/// Prints `message` with `code` (a gRPC code name) to stderr, as [`print_error`] does.
pub(crate) fn print_error_message(message: &str, code: &str, json: bool) {
    let text = if json { json!({ "error": message, "code": code }).to_string() } else { format!("error ({code}): {message}") };
    // A closed stderr leaves nowhere to report anything; the exit status still tells.
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn format_unix(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map(|date| date.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| seconds.to_string())
}

/// Prints one JSON value on its own line.
pub(crate) fn print_json(value: &serde_json::Value) {
    outln!("{value}");
}
