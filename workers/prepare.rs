//! The prepare worker role as its own binary: `clipforge worker --role prepare`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clipforge::cli::worker_main(clipforge::cli::Role::Prepare).await
}
