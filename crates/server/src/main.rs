//! The `chatnode` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: see docs/benchmarks.md ("Idle connections").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chatnode_server::cli::main()
}
