//! `GET /metrics` in the Prometheus text format.
//!
//! Everything is read from the record store and the queue, which every
//! process shares, so one scrape of any API replica describes the whole
//! deployment rather than one process.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::domain::{JobState, Stage};
use crate::error_code as codes;
use crate::store::records::RecordMetrics;

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// The exposition text for `records` and the queue depths.
pub fn render(records: &RecordMetrics, depths: &[(Stage, u64)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP clipforge_jobs Jobs by current state.\n# TYPE clipforge_jobs gauge");
    for state in JobState::ALL {
        let n = records.jobs_by_state.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "clipforge_jobs{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP clipforge_job_failures Failed jobs by the stage and error code they failed with.");
    let _ = writeln!(out, "# TYPE clipforge_job_failures gauge");
    for (stage, code, n) in &records.failures {
        let _ = writeln!(out, "clipforge_job_failures{{stage=\"{stage}\",code=\"{}\"}} {n}", label(code));
    }
    let _ = writeln!(
        out,
        "# HELP clipforge_queue_depth Tasks waiting in each stage queue.\n# TYPE clipforge_queue_depth gauge"
    );
    for (stage, n) in depths {
        let _ = writeln!(out, "clipforge_queue_depth{{queue=\"{stage}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP clipforge_stage_seconds Time jobs spent in each stage.\n# TYPE clipforge_stage_seconds summary"
    );
    for (stage, sum, count) in &records.stage_seconds {
        let _ = writeln!(out, "clipforge_stage_seconds_sum{{stage=\"{stage}\"}} {sum:.3}");
        let _ = writeln!(out, "clipforge_stage_seconds_count{{stage=\"{stage}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP clipforge_provider_errors_total Failed outside calls, retried or not, by provider and code.\n\
         # TYPE clipforge_provider_errors_total counter"
    );
    for (provider, code, n) in &records.provider_errors {
        let _ = writeln!(
            out,
            "clipforge_provider_errors_total{{provider=\"{}\",code=\"{}\"}} {n}",
            label(provider),
            label(code)
        );
    }
    let _ = writeln!(
        out,
        "# HELP clipforge_staged_bytes Bytes of the staged videos on record.\n# TYPE clipforge_staged_bytes gauge"
    );
    let _ = writeln!(out, "clipforge_staged_bytes {}", records.staged_bytes);
    out
}

pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let p = &state.pipeline;
    let records = p.records.metrics().await.map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    let mut depths = Vec::new();
    for stage in Stage::ALL {
        depths.push((
            stage,
            p.queues.depth(stage).await.map_err(|e| ApiError::unavailable(codes::QUEUE_UNAVAILABLE, e))?,
        ));
    }
    let body = render(&records, &depths);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_reported_and_labels_are_escaped() {
        let records = RecordMetrics {
            jobs_by_state: vec![(JobState::Staged, 3)],
            failures: vec![(Stage::Render, "odd\"code".into(), 1)],
            staged_bytes: 42,
            stage_seconds: vec![(Stage::Render, 12.5, 2)],
            provider_errors: vec![("pexels".into(), "rate_limited".into(), 4)],
        };
        let text = render(&records, &[(Stage::Prepare, 7)]);
        assert!(text.contains("clipforge_jobs{state=\"staged\"} 3\n"));
        assert!(text.contains("clipforge_jobs{state=\"waiting\"} 0\n"), "absent states are 0, not missing");
        assert!(text.contains("clipforge_job_failures{stage=\"render\",code=\"odd\\\"code\"} 1\n"));
        assert!(text.contains("clipforge_queue_depth{queue=\"prepare\"} 7\n"));
        assert!(text.contains("clipforge_stage_seconds_sum{stage=\"render\"} 12.500\n"));
        assert!(text.contains("clipforge_staged_bytes 42\n"));
        assert!(text.contains("clipforge_provider_errors_total{provider=\"pexels\",code=\"rate_limited\"} 4\n"));
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("clipforge_")));
    }
}
