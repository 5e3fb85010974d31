//! The persist-server binary; see `persist-server --help`.

fn main() -> std::process::ExitCode {
    persist_server::cli::main()
}
