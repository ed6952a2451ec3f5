//! The `chatnode` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    chatnode_server::cli::main()
}
