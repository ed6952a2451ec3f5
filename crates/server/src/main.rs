//! The `chatnode` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: see docs/benchmarks.md ("Idle connections").
/// The `system-alloc` feature keeps the system's malloc, for heap profilers that intercept it
/// (heaptrack; docs/bench-scale.md, "Idle connections on clustered nodes").
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chatnode_server::cli::main()
}
