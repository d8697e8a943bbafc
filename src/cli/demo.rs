//! `clipforge demo`: the bundled sample job, end to end, in embedded mode.

use std::process::ExitCode;

use super::client::Client;
use super::exit;
use super::jobs::{follow, report_outcome};
use crate::app::{Application, Roles};
use crate::settings::Settings;

/// The sample job, shipped in the binary.
pub const DEMO_JOB: &str = include_str!("../../config/demo-job.json");

/// Starts the API and every role in this process on a free port, submits the
/// sample job over HTTP, follows it, and prints the MP4's path as the last line.
pub async fn run(mut settings: Settings) -> ExitCode {
    // Embedded mode whatever the environment says, on a port nobody else uses.
    settings.queue.url.clear();
    settings.records.url.clear();
    settings.server.listen = "127.0.0.1:0".parse().expect("valid address");
    let app = match Application::build(settings, Roles::all()).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    let port = app.port().expect("the demo runs the API");
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = Client::new(format!("http://127.0.0.1:{port}"));
    let outcome = async {
        let accepted = client.submit(DEMO_JOB.as_bytes().to_vec()).await?;
        eprintln!("demo job {} queued", accepted.job_id);
        follow(&client, accepted.job_id.as_str()).await
    }
    .await;
    stop.cancel();
    let _ = server.await;
    match outcome {
        Ok(job) => report_outcome(&job),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
