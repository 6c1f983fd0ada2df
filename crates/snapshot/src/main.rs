//! vigil-snapshot: parse the arguments, run the command. The commands are
//! in `cmd.rs`, the work in the library.

use std::process::ExitCode;

mod cmd;

fn main() -> ExitCode {
    // Helper modes of the restore proof (its tied scratch etcd, its janitor).
    vigil_restore::guard::hook();
    vigil_cli::main(|cli: cmd::Cli| cmd::run_cli(cli, vigil_snapshot::Deps::live()))
}
