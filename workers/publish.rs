//! The publish worker role as its own binary: `clipforge worker --role publish`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clipforge::cli::worker_main(clipforge::cli::Role::Publish).await
}
