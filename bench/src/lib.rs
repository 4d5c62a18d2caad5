//! Shared parts of chatvault's benchmarks, used by the `chatvault-bench` and `files`
//! binaries: the services of one run as child processes with their own database, topics and
//! storage nodes ([`platform`]); `dd` and the page cache ([`disk`]); peak memory of
//! processes ([`process`]); and result rows, written as JSON lines and printed as one
//! summary table at the end of `task bench` ([`results`]).

pub mod args;
pub mod disk;
pub mod platform;
pub mod process;
pub mod results;
