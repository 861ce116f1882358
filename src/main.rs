//! The `guestvault` binary: parse the command line and dispatch (see `guestvault::cli`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    guestvault::cli::main()
}
