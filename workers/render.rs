//! The render worker role as its own binary: `clipforge worker --role render`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    clipforge::cli::worker_main(clipforge::cli::Role::Render).await
}
