//! `clipforge submit FILE`, `clipforge jobs …` and `clipforge export`: the
//! job commands, each a few calls through the HTTP [`Client`]. A batch file
//! given to `submit` is handed to [`super::batch`].

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::client::{Client, ClientError};
use super::{JobsCommand, batch, exit};
use crate::api::jobs::JobView;
use crate::domain::JobState;

/// What a finished job means for the exit code; prints the outcome.
pub fn report_outcome(job: &JobView) -> ExitCode {
    match job.state {
        JobState::Staged | JobState::InInbox => {
            if let Some(v) = &job.outputs.video {
                eprintln!(
                    "job {} {}: {}x{}, {:.1}s, {} bytes",
                    job.id, job.state, v.width, v.height, v.duration_s, v.bytes
                );
                println!("{}", v.path.clone().unwrap_or_else(|| v.key.clone()));
            }
            ExitCode::SUCCESS
        }
        state if state.awaits_person() => {
            let at = job.review.waiting_at.map_or_else(String::new, |p| format!(" at the {p} review"));
            eprintln!("job {} is {state}{at}: a reviewer approves it, sends it back or revises it", job.id);
            ExitCode::from(exit::IN_REVIEW)
        }
        _ => {
            if let Some(e) = &job.error {
                eprintln!(
                    "job {} failed at {}: {} ({}){}",
                    job.id,
                    e.stage,
                    e.message,
                    e.code,
                    if e.retryable { "; retry may help" } else { "" }
                );
            } else {
                eprintln!("job {} {}", job.id, job.state);
            }
            ExitCode::from(exit::JOB_FAILED)
        }
    }
}

/// Polls the job until it ends or stops for a person (review), drawing a
/// progress bar on stderr.
pub async fn follow(client: &Client, id: &str) -> Result<JobView, ClientError> {
    let bar = ProgressBar::new(300);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}").expect("valid template"),
    );
    loop {
        let job = client.job(id).await?;
        // Three stages of 0-100 each make one bar of 0-300.
        let stage_base = match job.stage {
            Some(crate::domain::Stage::Render) => 100,
            Some(crate::domain::Stage::Publish) => 200,
            _ => 0,
        };
        bar.set_position(stage_base + u64::from(job.progress));
        if job.state == JobState::Waiting {
            let until = job.retry_at.map_or("the account is connected again".to_string(), |t| t.to_rfc3339());
            bar.set_message(format!("waiting until {until}: {}", job.waiting.clone().unwrap_or_default()));
        } else {
            bar.set_message(format!("{} {}%", job.state, job.progress));
        }
        if job.state.is_terminal() || job.state.awaits_person() {
            bar.finish_with_message(job.state.to_string());
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn submit_file(client: &Client, file: &Path, wait: bool) -> ExitCode {
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(exit::USAGE);
        }
    };
    if let Some(format) = batch::format_of(file, &body) {
        return batch::submit(client, body, format, wait).await;
    }
    let accepted = match client.submit(body).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    if accepted.duplicate {
        eprintln!("same idempotency key as job {}; following that job", accepted.job_id);
    }
    if !wait {
        println!("{}", accepted.job_id);
        return ExitCode::SUCCESS;
    }
    match follow(client, accepted.job_id.as_str()).await {
        Ok(job) => report_outcome(&job),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

pub async fn jobs(client: &Client, command: JobsCommand) -> ExitCode {
    let result = match command {
        JobsCommand::List { state, limit } => client.list(state.as_deref(), limit).await.map(|page| {
            println!("{:<38} {:<10} {:<8} {:>4}  created", "id", "state", "stage", "pct");
            for j in page.jobs {
                let stage = j.stage.map(|s| s.to_string()).unwrap_or_default();
                println!(
                    "{:<38} {:<10} {:<8} {:>3}%  {}",
                    j.id,
                    j.state,
                    stage,
                    j.progress,
                    j.created_at.format("%F %T")
                );
            }
        }),
        JobsCommand::Show { id } => {
            client.job(&id).await.map(|j| println!("{}", serde_json::to_string_pretty(&j).expect("serialises")))
        }
        JobsCommand::Retry { id } => client.retry(&id).await.map(|a| println!("{} {}", a.job_id, a.state)),
        JobsCommand::Cancel { id } => client.cancel(&id).await.map(|j| println!("{} {}", j.id, j.state)),
        JobsCommand::Purge { id, yes: false } => {
            eprintln!("error: purging erases job {id} for good; run again with --yes to confirm");
            return ExitCode::from(exit::USAGE);
        }
        JobsCommand::Purge { id, yes: true } => client.purge(&id).await.map(|r| {
            println!(
                "{} purged: {} objects deleted, {} cache objects kept (other jobs use them), {} queue tasks deleted",
                r.job_id, r.objects_deleted, r.cache_kept, r.queue_tasks_deleted
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Where an export to `out` is written until it is complete: `<out>.partial`.
fn partial(out: &Path) -> std::path::PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    name.into()
}

/// `clipforge export`: streams `GET /v1/export` to `out` (or stdout). A file
/// is written under a temporary name and renamed when complete, so a cut
/// stream never leaves a half export under the name asked for.
pub async fn export(client: &Client, out: Option<&Path>) -> ExitCode {
    use tokio::io::AsyncWriteExt;
    let result = async {
        let mut resp = client.export().await?;
        let tmp = out.map(partial);
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &tmp {
            Some(t) => Box::new(tokio::fs::File::create(t).await.map_err(|e| ClientError::Decode(e.to_string()))?),
            None => Box::new(tokio::io::stdout()),
        };
        let mut bytes = 0u64;
        let cut = |e: reqwest::Error| ClientError::Decode(format!("the export was cut short: {e}"));
        while let Some(chunk) = resp.chunk().await.map_err(cut)? {
            bytes += chunk.len() as u64;
            sink.write_all(&chunk).await.map_err(|e| ClientError::Decode(e.to_string()))?;
        }
        sink.flush().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        if let (Some(t), Some(o)) = (&tmp, out) {
            tokio::fs::rename(t, o).await.map_err(|e| ClientError::Decode(e.to_string()))?;
            eprintln!("exported {bytes} bytes to {}", o.display());
        }
        Ok::<(), ClientError>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(o) = out {
                let _ = std::fs::remove_file(partial(o));
            }
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
