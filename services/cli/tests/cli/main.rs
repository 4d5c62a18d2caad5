//! Tests of the built `chatvault` binary: how it ends on a closed pipe, its `--json` error
//! codes, `topics tail` and `dlq` against the local Kafka (`bash scripts/stack.sh up`), and
//! the file console and account listing against stand-in services. Each test has its own
//! topic prefix.

mod broken_pipe;
mod dlq;
mod file_console;
mod helpers;
mod json_errors;
mod topics_tail;
