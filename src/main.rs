//! The `asbru` command: see `asbru --help`.

fn main() -> std::process::ExitCode {
    asbru::cli::main()
}
