//! The `stowaway` binary: all logic lives in the library crate.

fn main() -> std::process::ExitCode {
    stowaway::cli::main()
}
