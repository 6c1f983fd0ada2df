//! vigil-snapshot: parse the arguments, run the command. The commands are
//! in `cmd.rs`, the work in the library.

use clap::Parser;
use std::process::ExitCode;

mod cmd;

fn main() -> ExitCode {
    // Helper modes of the restore proof (its tied scratch etcd, its janitor).
    vigil_restore::guard::hook();
    if let Some(code) = vigil_cli::generate::<cmd::Cli>() {
        return code;
    }
    cmd::run_cli(cmd::Cli::parse(), vigil_snapshot::Deps::live())
}
