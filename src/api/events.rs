//! `GET /v1/events`: the jobs' history and progress as server-sent events,
//! live, for the studio's pages (the browser's `EventSource`) and
//! `clipforge submit --wait`.
//!
//! # What is sent
//!
//! - `state`, one per job event (a row of `job_events`), with `id:` the
//!   event's row id and as data [`StateData`]: `job_id`, `state`, `stage`,
//!   `attempt`, `note`, `error`, `at`, `retry_at` (absent fields are `null`).
//! - `progress`, without an id, whenever a watched job's running stage or
//!   its percentage changed since the stream last said it, with
//!   [`ProgressData`]: `job_id`, `stage`, `percent`.
//! - First, a `retry:` hint ([`RECONNECT_AFTER`]); a comment (`: …`) every
//!   15 s so that proxies keep the connection open, and one when the record
//!   store cannot be reached.
//!
//! # Which events, from where
//!
//! `?job_id=` follows one job, `?batch_id=` the jobs of one batch, neither
//! every job; an unknown job or batch is answered 404 before the stream
//! starts. The stream resumes after the event named by the `Last-Event-ID`
//! header (which `EventSource` sends when it reconnects) or, failing that,
//! the `last_event_id` query parameter. Without either it starts from now;
//! a single job's stream starts from the job's first event, so a client sees
//! the job's whole history. Event ids become visible in order on both record
//! stores (see `store::records::jobs`), so a resumed stream repeats nothing
//! and misses nothing.
//!
//! # How long it lasts
//!
//! A stream stays open until the client leaves or the server shuts down,
//! also after a job reached a terminal state: a failed job may be retried,
//! and its stream then goes on. Clients close it when they have seen what
//! they wait for (`clipforge submit --wait` does at a terminal state, or
//! when the job waits for a reviewer).
//!
//! Each stream asks the record store every `server.events_poll_ms` for at
//! most [`EVENTS_PER_POLL`] events (asking again at once while there are
//! more) and the watched jobs' progress. A record store that cannot be
//! reached does not end the stream: it says so in a comment and keeps asking.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::domain::{JobError, JobId, JobState, Stage};
use crate::error_code as codes;
use crate::store::records::{EventScope, JobProgress, RecordStore, StoreError, StoredEvent};

/// Most job events one poll of one stream reads; a poll that reads this many
/// is followed by another at once.
pub const EVENTS_PER_POLL: u32 = 200;

/// The `retry:` hint: how long a browser waits before reconnecting.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// How far back a poll looks for progress changes, beyond its previous
/// poll: progress times are written by the workers' clocks, which may run a
/// little behind this one. Changes seen twice are sent once.
const CLOCK_SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this job's events, from its first one.
    pub job_id: Option<String>,
    /// Only the events of this batch's jobs.
    pub batch_id: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are sent).
    pub last_event_id: Option<String>,
}

/// The data of a `state` event: one transition of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateData {
    pub job_id: JobId,
    pub state: JobState,
    pub stage: Option<Stage>,
    /// Which delivery of the stage this was (1 for the first).
    pub attempt: Option<u32>,
    pub note: Option<String>,
    pub error: Option<JobError>,
    pub at: DateTime<Utc>,
    /// When a `waiting` job tries again.
    pub retry_at: Option<DateTime<Utc>>,
}

impl From<&StoredEvent> for StateData {
    fn from(e: &StoredEvent) -> Self {
        let ev = &e.event;
        Self {
            job_id: e.job_id.clone(),
            state: ev.state,
            stage: ev.stage,
            attempt: ev.attempt,
            note: ev.note.clone(),
            error: ev.error.clone(),
            at: ev.at,
            retry_at: ev.retry_at,
        }
    }
}

/// The data of a `progress` event: where a job's running stage is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgressData {
    pub job_id: JobId,
    pub stage: Stage,
    /// 0-100 within `stage`.
    pub percent: u8,
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this event id.
    After(i64),
    /// After the newest event at the time the stream first reaches the store.
    Now,
}

/// Where a stream of `scope` starts, from the `Last-Event-ID` header and the
/// `last_event_id` parameter (the header wins: a browser reconnecting to a
/// URL that carries the parameter sends a newer id in the header).
pub fn start_of(header: Option<&str>, param: Option<&str>, scope: &EventScope) -> Result<Start, String> {
    let given = [header, param].into_iter().flatten().map(str::trim).find(|v| !v.is_empty());
    match given {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .map(Start::After)
            .ok_or_else(|| format!("last event id `{}` is not an event id", crate::domain::echo(v))),
        None if matches!(scope, EventScope::Job(_)) => Ok(Start::After(0)),
        None => Ok(Start::Now),
    }
}

/// The progress a stream has told its client, so that it tells only changes.
#[derive(Debug, Default)]
pub struct ProgressSeen {
    /// Per job: the last (stage, percent) sent and the poll it was last read in.
    told: HashMap<JobId, ((Stage, u8), u64)>,
    polls: u64,
}

/// Polls after which a job no longer read is forgotten: it stopped changing.
const FORGET_AFTER_POLLS: u64 = 1000;

impl ProgressSeen {
    /// Of one poll's progress rows, those that differ from what was told.
    pub fn changes(&mut self, rows: Vec<JobProgress>) -> Vec<JobProgress> {
        self.polls += 1;
        let poll = self.polls;
        let changed = rows
            .into_iter()
            .filter(|p| {
                let now = (p.stage, p.percent);
                match self.told.insert(p.job_id.clone(), (now, poll)) {
                    Some((before, _)) => before != now,
                    None => true,
                }
            })
            .collect();
        if poll.is_multiple_of(FORGET_AFTER_POLLS) {
            self.told.retain(|_, (_, last)| poll - *last < FORGET_AFTER_POLLS);
        }
        changed
    }
}

/// One stream's reader of the record store.
struct Watch {
    records: Arc<dyn RecordStore>,
    scope: EventScope,
    /// The last event id sent; None until "now" was looked up.
    cursor: Option<i64>,
    progress: ProgressSeen,
    /// Progress changed at or after this is read next (None: all of it).
    progress_since: Option<DateTime<Utc>>,
    pending: VecDeque<Event>,
    /// Whether the last poll read a full page (poll again at once).
    more: bool,
    /// Whether the store is out; said once per outage.
    out: bool,
}

impl Watch {
    /// Reads what is new into `pending`.
    async fn poll(&mut self) -> Result<(), StoreError> {
        let cursor = match self.cursor {
            Some(c) => c,
            None => self.records.last_event_id().await?,
        };
        let asked_at = Utc::now();
        let events = self.records.events_after(&self.scope, cursor, EVENTS_PER_POLL).await?;
        let progress = self.records.progress_of(&self.scope, self.progress_since).await?;
        // Both reads succeeded: only now does the stream move on.
        self.cursor = Some(events.last().map_or(cursor, |e| e.id));
        self.more = events.len() == EVENTS_PER_POLL as usize;
        if !matches!(self.scope, EventScope::Job(_)) {
            self.progress_since = Some(before(asked_at));
        }
        for e in &events {
            let data = serde_json::to_string(&StateData::from(e)).expect("event data serialises");
            self.pending.push_back(Event::default().event("state").id(e.id.to_string()).data(data));
        }
        for p in self.progress.changes(progress) {
            let data = ProgressData { job_id: p.job_id, stage: p.stage, percent: p.percent };
            let data = serde_json::to_string(&data).expect("progress data serialises");
            self.pending.push_back(Event::default().event("progress").data(data));
        }
        Ok(())
    }
}

/// The stream of one request: the retry hint, then what each poll finds,
/// until `stop` (server shutdown) or the client leaves (the stream is dropped).
fn stream_of(watch: Watch, every: Duration, stop: CancellationToken) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut first = VecDeque::new();
    first.push_back(Event::default().retry(RECONNECT_AFTER));
    let watch = Watch { pending: first, ..watch };
    futures::stream::unfold((watch, true), move |(mut w, mut due)| {
        let stop = stop.clone();
        async move {
            loop {
                if let Some(event) = w.pending.pop_front() {
                    return Some((Ok(event), (w, due)));
                }
                if !due {
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(every) => {}
                    }
                }
                if stop.is_cancelled() {
                    return None;
                }
                match w.poll().await {
                    Ok(()) => {
                        w.out = false;
                        due = w.more;
                    }
                    Err(e) => {
                        due = false;
                        if !w.out {
                            w.out = true;
                            tracing::warn!(error = %e, "event stream: record store unavailable; trying again");
                            w.pending.push_back(Event::default().comment("record store unavailable; trying again"));
                        }
                    }
                }
            }
        }
    })
}

/// Job events and progress as server-sent events (see the module docs of
/// `api::events` for the event names and fields).
///
/// Events: `state` (with `id:` the event id; data `StateData`) and
/// `progress` (data `ProgressData`). Send `Last-Event-ID` (or
/// `last_event_id`) to resume after an event; without it the stream starts
/// from now, or with `job_id` from the job's first event. The stream stays
/// open after a job ends.
#[utoipa::path(get, path = "/v1/events", tag = "jobs", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "A stream of `state` and `progress` events", content_type = "text/event-stream",
         body = String),
        (status = 400, description = "Both `job_id` and `batch_id`, or a last event id that is not one", body = ErrorBody),
        (status = 404, description = "No such job (`job_not_found`) or batch (`batch_not_found`)", body = ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_QUERY, msg);
    let scope = match (&q.job_id, &q.batch_id) {
        (Some(_), Some(_)) => return Err(bad("give `job_id` or `batch_id`, not both".into())),
        (Some(id), None) => EventScope::Job(JobId::parse(id).ok_or_else(|| ApiError::not_found(id))?),
        (None, Some(id)) => {
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(batch_not_found(id));
            }
            EventScope::Batch(id.clone())
        }
        (None, None) => EventScope::AllJobs,
    };
    let header = headers.get("last-event-id").map(|v| v.to_str().unwrap_or("?"));
    let start = start_of(header, q.last_event_id.as_deref(), &scope).map_err(bad)?;
    let records = state.pipeline.records.clone();
    // An unknown job or batch is a 404; a store that cannot be reached now is
    // ridden out by the stream like any later outage.
    let known = match &scope {
        EventScope::AllJobs => Ok(true),
        EventScope::Job(id) => records.job(id).await.map(|j| j.is_some()),
        EventScope::Batch(id) => records.batch(id).await.map(|b| b.is_some()),
    };
    match (known, &scope) {
        (Ok(false), EventScope::Batch(id)) => return Err(batch_not_found(id)),
        (Ok(false), _) => return Err(ApiError::not_found(q.job_id.as_deref().unwrap_or_default())),
        (Err(e), _) if !e.is_outage() => return Err(ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e)),
        _ => {}
    }
    let progress_since = match scope {
        EventScope::Job(_) => None,
        _ => Some(before(Utc::now())),
    };
    let watch = Watch {
        records,
        scope,
        cursor: match start {
            Start::After(id) => Some(id),
            Start::Now => None,
        },
        progress: ProgressSeen::default(),
        progress_since,
        pending: VecDeque::new(),
        more: false,
        out: false,
    };
    let stream = stream_of(watch, state.events_poll, state.shutdown.clone());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `t` less [`CLOCK_SLACK`].
fn before(t: DateTime<Utc>) -> DateTime<Utc> {
    t - chrono::Duration::from_std(CLOCK_SLACK).expect("a few seconds")
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::BATCH_NOT_FOUND,
        format!("no batch with id `{}`", crate::domain::echo(id)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_parameter_and_without_either_a_job_starts_at_its_first_event() {
        let job = EventScope::Job(JobId::new());
        assert_eq!(start_of(Some("42"), Some("7"), &EventScope::AllJobs), Ok(Start::After(42)));
        assert_eq!(start_of(None, Some("7"), &job), Ok(Start::After(7)));
        assert_eq!(start_of(Some(" "), Some("7"), &job), Ok(Start::After(7)), "an empty header is no header");
        assert_eq!(start_of(None, None, &job), Ok(Start::After(0)));
        assert_eq!(start_of(None, None, &EventScope::AllJobs), Ok(Start::Now));
        assert_eq!(start_of(None, None, &EventScope::Batch("b".into())), Ok(Start::Now));
        assert!(start_of(Some("abc"), None, &job).unwrap_err().contains("abc"));
        assert!(start_of(None, Some("-3"), &job).is_err());
    }

    #[test]
    fn progress_is_told_once_per_change() {
        let (a, b) = (JobId::new(), JobId::new());
        let p = |job: &JobId, stage, percent| JobProgress { job_id: job.clone(), stage, percent };
        let mut seen = ProgressSeen::default();
        assert_eq!(seen.changes(vec![p(&a, Stage::Render, 10), p(&b, Stage::Prepare, 0)]).len(), 2);
        assert_eq!(seen.changes(vec![p(&a, Stage::Render, 10), p(&b, Stage::Prepare, 0)]), []);
        assert_eq!(seen.changes(vec![p(&a, Stage::Render, 55)]), [p(&a, Stage::Render, 55)]);
        assert_eq!(seen.changes(vec![p(&a, Stage::Publish, 55)]), [p(&a, Stage::Publish, 55)], "a new stage");
    }

    #[test]
    fn event_data_has_every_field_named_even_when_empty() {
        let e = StoredEvent {
            id: 9,
            job_id: JobId::new(),
            event: crate::domain::JobEvent {
                state: JobState::Queued,
                stage: None,
                at: Utc::now(),
                attempt: None,
                error: None,
                note: None,
                retry_at: None,
            },
        };
        let v = serde_json::to_value(StateData::from(&e)).unwrap();
        for key in ["job_id", "state", "stage", "attempt", "note", "error", "at", "retry_at"] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["state"], "queued");
    }
}
