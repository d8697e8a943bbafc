//! The `clipforge` command line; all logic lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clipforge::cli::main().await
}
