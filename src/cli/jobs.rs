//! `clipforge submit FILE`, `clipforge jobs …` and `clipforge export`: the
//! job commands, each a few calls through the HTTP [`Client`]. A batch file
//! given to `submit` is handed to [`super::batch`].

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use reqwest::StatusCode;

use super::client::{Client, ClientError};
use super::sse::{SseEvent, SseParser};
use super::{JobsCommand, batch, exit};
use crate::api::events::{ProgressData, StateData};
use crate::api::jobs::JobView;
use crate::domain::{JobState, Stage};

/// What a finished job means for the exit code; prints the outcome.
pub fn report_outcome(job: &JobView) -> ExitCode {
    match job.state {
        JobState::Staged | JobState::InInbox | JobState::Posted => {
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

/// Follows the job until it ends or stops for a person (review), drawing a
/// progress bar on stderr: through `GET /v1/events?job_id=` (see
/// [`follow_events`]), or, from a server that has no event stream, by
/// polling the job. Returns the job as it was then.
pub async fn follow(client: &Client, id: &str) -> Result<JobView, ClientError> {
    let bar = ProgressBar::new(300);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}").expect("valid template"),
    );
    if !follow_events(client, id, &bar).await? {
        return poll(client, id, &bar).await;
    }
    let job = client.job(id).await?;
    bar.finish_with_message(job.state.to_string());
    Ok(job)
}

/// What the bar shows of a job: its state, stage and progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    pub state: Option<JobState>,
    pub stage: Option<Stage>,
    pub percent: u8,
    /// Why a `waiting` job waits, and until when.
    pub waiting: Option<(String, Option<chrono::DateTime<chrono::Utc>>)>,
}

impl Shown {
    /// Takes in one event of the stream; true when the job ended or waits for a person.
    pub fn take(&mut self, event: &SseEvent) -> Result<bool, ClientError> {
        let bad = |e: serde_json::Error| ClientError::Decode(format!("a `{}` event: {e}", event.event));
        match event.event.as_str() {
            "state" => {
                let data: StateData = serde_json::from_str(&event.data).map_err(bad)?;
                if data.stage.is_some() && data.stage != self.stage {
                    self.stage = data.stage;
                    self.percent = 0;
                }
                self.state = Some(data.state);
                self.waiting =
                    (data.state == JobState::Waiting).then(|| (data.note.clone().unwrap_or_default(), data.retry_at));
                Ok(data.state.is_terminal() || data.state.awaits_person())
            }
            "progress" => {
                let data: ProgressData = serde_json::from_str(&event.data).map_err(bad)?;
                (self.stage, self.percent) = (Some(data.stage), data.percent);
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Where the bar stands: three stages of 0-100 each make one bar of 0-300.
    pub fn position(&self) -> u64 {
        let stage_base = match self.stage {
            Some(Stage::Render) => 100,
            Some(Stage::Publish) => 200,
            _ => 0,
        };
        stage_base + u64::from(self.percent)
    }

    /// The bar's message, as polling showed it.
    pub fn message(&self) -> String {
        match (&self.waiting, self.state) {
            (Some((why, until)), _) => {
                let until = until.map_or("the account is connected again".to_string(), |t| t.to_rfc3339());
                format!("waiting until {until}: {why}")
            }
            (None, Some(state)) => format!("{state} {}%", self.percent),
            (None, None) => String::new(),
        }
    }
}

/// How many times in a row [`follow_events`] reconnects after the stream
/// broke or could not be opened.
pub const RECONNECTS: u32 = 5;

/// Reads the job's event stream until the job ends or waits for a person,
/// drawing each state and progress on `bar`. A dropped connection is opened
/// again with `Last-Event-ID`, so nothing is shown twice or missed, at most
/// [`RECONNECTS`] times in a row. False when the server has no event stream.
async fn follow_events(client: &Client, id: &str, bar: &ProgressBar) -> Result<bool, ClientError> {
    let mut shown = Shown::default();
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let broke = match client.job_events(id, last_id.as_deref()).await {
            Ok(mut resp) => {
                let mut parser = SseParser::default();
                loop {
                    match resp.chunk().await {
                        Ok(Some(bytes)) => {
                            for event in parser.feed(&bytes) {
                                failures = 0;
                                let ended = shown.take(&event)?;
                                bar.set_position(shown.position());
                                bar.set_message(shown.message());
                                if ended {
                                    return Ok(true);
                                }
                            }
                            last_id = parser.last_event_id().map(str::to_string).or(last_id);
                        }
                        Ok(None) => break "the server closed the event stream".to_string(),
                        Err(e) => break format!("the event stream broke: {e}"),
                    }
                }
            }
            // An older server: no such route (a missing job is `job_not_found`).
            Err(ClientError::Api { status, code, .. }) if status == StatusCode::NOT_FOUND && code == "not_found" => {
                return Ok(false);
            }
            Err(e @ ClientError::Unreachable { .. }) => e.to_string(),
            Err(e) => return Err(e),
        };
        failures += 1;
        if failures > RECONNECTS {
            return Err(ClientError::Decode(format!("{broke}; gave up after {RECONNECTS} reconnects in a row")));
        }
        tokio::time::sleep(Duration::from_millis(250) * 2u32.pow(failures.min(4))).await;
    }
}

/// Polls the job until it ends (servers without `GET /v1/events`).
async fn poll(client: &Client, id: &str, bar: &ProgressBar) -> Result<JobView, ClientError> {
    loop {
        let job = client.job(id).await?;
        let shown = Shown {
            state: Some(job.state),
            stage: job.stage,
            percent: job.progress,
            waiting: (job.state == JobState::Waiting).then(|| (job.waiting.clone().unwrap_or_default(), job.retry_at)),
        };
        bar.set_position(shown.position());
        bar.set_message(shown.message());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into(), id: None }
    }

    #[test]
    fn the_bar_follows_states_and_progress_as_polling_showed_them() {
        let job = crate::domain::JobId::new();
        let state = |state: &str, stage: &str| {
            sse(
                "state",
                &format!(
                    r#"{{"job_id":"{job}","state":"{state}","stage":{stage},"attempt":null,"note":null,"error":null,"at":"2026-12-02T13:00:00Z","retry_at":null}}"#
                ),
            )
        };
        let mut shown = Shown::default();
        assert!(!shown.take(&state("queued", "null")).unwrap());
        assert_eq!((shown.position(), shown.message()), (0, "queued 0%".to_string()));
        assert!(!shown.take(&state("rendering", r#""render""#)).unwrap());
        let progress = format!(r#"{{"job_id":"{job}","stage":"render","percent":40}}"#);
        assert!(!shown.take(&sse("progress", &progress)).unwrap());
        assert_eq!((shown.position(), shown.message()), (140, "rendering 40%".to_string()));
        assert!(!shown.take(&sse("something-new", "{}")).unwrap(), "unknown events are skipped");
        assert!(shown.take(&state("staged", r#""publish""#)).unwrap(), "a terminal state ends it");
        assert_eq!(shown.position(), 200);
        assert!(matches!(shown.take(&sse("state", "not json")), Err(ClientError::Decode(_))));
    }

    #[test]
    fn a_waiting_job_says_why_and_until_when() {
        let job = crate::domain::JobId::new();
        let waiting = format!(
            r#"{{"job_id":"{job}","state":"waiting","stage":"publish","attempt":null,"note":"draft cap","error":null,"at":"2026-12-02T13:00:00Z","retry_at":"2026-12-03T13:00:00Z"}}"#
        );
        let mut shown = Shown::default();
        shown.take(&sse("state", &waiting)).unwrap();
        assert_eq!(shown.message(), "waiting until 2026-12-03T13:00:00+00:00: draft cap");
    }
}
