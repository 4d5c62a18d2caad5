//! Tests of the built `chatvault` binary: how it ends on a closed pipe, its `--json` error
//! codes, `topics tail` and `dlq` against the local Kafka (`bash scripts/stack.sh up`). Each
//! test has its own topic prefix.

mod broken_pipe;
mod dlq;
mod helpers;
mod json_errors;
mod topics_tail;
