//! `clipforge submit FILE.csv|jsonl|ndjson [--wait]`: a batch file posted to
//! `/v1/batches` as it is, rejected lines on stderr, and with `--wait` one
//! progress bar over the whole batch and a final table of jobs by state.
//!
//! Exit codes: 0 when every accepted job ended staged or in the inbox (or, without
//! `--wait`, when any line was accepted); 1 when a job failed or was cancelled;
//! 2 when lines were rejected and none accepted.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::client::{Client, ClientError};
use super::exit;
use crate::api::batches::{BatchAccepted, BatchView};
use crate::domain::{BatchFormat, JobState};

/// The batch format of `file`: by extension (`.csv`, `.jsonl`, `.ndjson`),
/// or a `.json` file holding an array. None for a single job.
pub fn format_of(file: &Path, body: &[u8]) -> Option<BatchFormat> {
    let format = BatchFormat::from_extension(file.extension()?.to_str()?)?;
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    (format != BatchFormat::JsonArray || is_array).then_some(format)
}

pub async fn submit(client: &Client, body: Vec<u8>, format: BatchFormat, wait: bool) -> ExitCode {
    let answer = match client.submit_batch(body, format.content_type()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    report_lines(&answer);
    if answer.counts.accepted == 0 {
        return ExitCode::from(exit::USAGE);
    }
    if !wait {
        println!("{}", answer.batch_id);
        return ExitCode::SUCCESS;
    }
    match follow(client, &answer.batch_id).await {
        Ok(view) => {
            print_table(&view);
            outcome(&view)
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Rejected lines (`line N: reason`) and the counts, on stderr.
fn report_lines(answer: &BatchAccepted) {
    for r in &answer.rejected {
        eprintln!("line {}: {} ({})", r.line, r.message, r.code);
    }
    let c = &answer.counts;
    eprintln!(
        "batch {}: {} lines, {} new jobs, {} already submitted, {} rejected",
        answer.batch_id, c.lines, c.new, c.duplicates, c.rejected
    );
}

/// Polls the batch until every job has ended or waits for a reviewer, with
/// one bar: jobs ended / jobs.
async fn follow(client: &Client, id: &str) -> Result<BatchView, ClientError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} jobs ended  {msg}")
            .expect("valid template"),
    );
    loop {
        let view = client.batch(id).await?;
        let (jobs, ended) = view.jobs_by_state.iter().fold((0, 0), |(jobs, ended), (state, n)| {
            let is_end = state.parse::<JobState>().is_ok_and(JobState::is_terminal);
            (jobs + n, if is_end { ended + n } else { ended })
        });
        let settled = view
            .jobs_by_state
            .keys()
            .all(|s| s.parse::<JobState>().is_ok_and(|s| s.is_terminal() || s.awaits_person()));
        bar.set_length(jobs);
        bar.set_position(ended);
        bar.set_message(view.jobs_by_state.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "));
        if view.done || settled {
            bar.finish();
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The batch's jobs by state, on stdout.
fn print_table(view: &BatchView) {
    println!("{:<12} {:>7}", "state", "jobs");
    for (state, n) in &view.jobs_by_state {
        println!("{state:<12} {n:>7}");
    }
    println!("{:<12} {:>7}", "total", view.jobs_by_state.values().sum::<u64>());
}

/// 0 when every job ended staged or in the inbox, else 1.
fn outcome(view: &BatchView) -> ExitCode {
    let good = [JobState::Staged.as_str(), JobState::InInbox.as_str(), JobState::Posted.as_str()];
    if view.jobs_by_state.keys().all(|s| good.contains(&s.as_str())) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::JOB_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_files_are_told_apart_from_single_jobs() {
        assert_eq!(format_of(Path::new("jobs.csv"), b"script\n"), Some(BatchFormat::Csv));
        assert_eq!(format_of(Path::new("jobs.NDJSON"), b"{}"), Some(BatchFormat::JsonLines));
        assert_eq!(format_of(Path::new("jobs.jsonl"), b"{}"), Some(BatchFormat::JsonLines));
        assert_eq!(format_of(Path::new("jobs.json"), b"  [{}]"), Some(BatchFormat::JsonArray));
        assert_eq!(format_of(Path::new("job.json"), b"{\"script\": \"Hi.\"}"), None);
        assert_eq!(format_of(Path::new("job"), b"[]"), None);
    }
}
