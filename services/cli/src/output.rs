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

/// Writes `line` and a newline to stdout; use it through [`outln!`]. Control characters
/// in it are shown escaped ([`terminal_safe`]): archived texts and names are other people's
/// words, and an escape sequence in them must not drive the reader's terminal.
pub(crate) fn write_stdout_line(line: std::fmt::Arguments<'_>) {
    let line = line.to_string();
    let mut stdout = std::io::stdout().lock();
    // Stdout is line-buffered: the newline flushes, so a gone reader shows up on this line.
    let written = stdout.write_all(terminal_safe(&line).as_bytes()).and_then(|()| stdout.write_all(b"\n"));
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
    let _ = writeln!(std::io::stderr(), "{}", terminal_safe(&text));
}

/// Returns `text` with every control character but newline and tab shown as `\u{…}`
/// (ESC as `\u{1b}`, NUL as `\u{0}`): C0 controls, DEL and the C1 range U+0080–U+009F,
/// which terminals read as commands. JSON output is unaffected: serde_json already escapes
/// them.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let is_command = |character: char| character.is_control() && character != '\n' && character != '\t';
    if !text.chars().any(is_command) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars().map(|character| if is_command(character) { character.escape_unicode().to_string() } else { character.to_string() }).collect(),
    )
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn format_unix(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map(|date| date.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| seconds.to_string())
}

/// Prints one JSON value on its own line.
pub(crate) fn print_json(value: &serde_json::Value) {
    outln!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_commands_in_archived_text_are_shown_escaped() {
        assert!(matches!(terminal_safe("plain\ttext\nnext line, emoji 👋"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(terminal_safe("Esc\u{1b}[2JName\u{7}\u{0}\u{9b}31m\r"), "Esc\\u{1b}[2JName\\u{7}\\u{0}\\u{9b}31m\\u{d}");
        let json = serde_json::json!({ "text": "a\u{1b}[31mred" }).to_string();
        assert_eq!(terminal_safe(&json), json, "JSON already escapes control characters");
    }
}
