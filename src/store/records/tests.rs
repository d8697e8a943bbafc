//! The records' contract, run against both engines.

use std::sync::Arc;

use super::*;
use crate::domain::{JobError, JobId, JobRequest, JobSpec, JobState, Manifest, SpecLimits, Stage};
use chrono::{DateTime, Utc};

/// Every test runs against both stores: SQLite in a temporary file, and
/// PostgreSQL (on 127.0.0.1:5432, or `CLIPFORGE_TEST_POSTGRES`) in a fresh database.
async fn stores() -> Vec<(Option<tempfile::TempDir>, Arc<dyn RecordStore>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = connect(&format!("sqlite://{}", dir.path().join("r.db").display())).await.unwrap();
    let mut stores = vec![(Some(dir), sqlite)];
    if let Some(url) = crate::store::testing::fresh_postgres().await {
        stores.push((None, connect(&url).await.unwrap()));
    }
    stores
}

fn spec(script: &str, key: Option<&str>) -> JobSpec {
    let req = JobRequest { script: Some(script.into()), idempotency_key: key.map(Into::into), ..Default::default() };
    JobSpec::parse(req, &SpecLimits::default()).unwrap()
}

#[tokio::test]
async fn a_new_job_is_queued_with_one_event() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(s.events(&job.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_same_key_finds_the_same_job_and_a_different_spec_conflicts() {
    for (_d, s) in stores().await {
        let Created::New(first) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
        let Created::Existing(again) = s.create_job(&spec("Hello.", Some("k1"))).await.unwrap() else { panic!() };
        assert_eq!(again.id, first.id);
        assert!(
            matches!(s.create_job(&spec("Other.", Some("k1"))).await.unwrap(), Created::KeyConflict(id) if id == first.id)
        );
    }
}

#[tokio::test]
async fn a_group_of_jobs_is_stored_at_once_as_a_read_gives_it_and_keys_decide_as_one_by_one() {
    for (_d, s) in stores().await {
        let Created::New(earlier) = s.create_job(&spec("Earlier.", Some("k0"))).await.unwrap() else { panic!() };
        let group = [
            spec("One.", None),
            spec("Two.", Some("k1")),
            spec("Two.", Some("k1")),
            spec("Earlier.", Some("k0")),
            spec("Not the earlier one.", Some("k0")),
        ];
        let created = s.create_jobs(&group).await.unwrap();
        let Created::New(one) = &created[0] else { panic!("{:?}", created[0]) };
        let Created::New(two) = &created[1] else { panic!("{:?}", created[1]) };
        assert!(matches!(&created[2], Created::Existing(j) if j.id == two.id), "{:?}", created[2]);
        assert!(matches!(&created[3], Created::Existing(j) if j.id == earlier.id), "{:?}", created[3]);
        assert!(matches!(&created[4], Created::KeyConflict(id) if *id == earlier.id), "{:?}", created[4]);
        for job in [one, two] {
            let read = s.job(&job.id).await.unwrap().expect("stored");
            assert_eq!((read.state, read.spec.clone(), read.created_at), (job.state, job.spec.clone(), job.created_at));
            let event = |e: &crate::domain::JobEvent| serde_json::to_value(e).unwrap();
            assert_eq!(event(&read.last_event), event(&job.last_event));
            assert_eq!(s.events(&job.id).await.unwrap().len(), 1);
        }
        assert!(s.create_jobs(&[]).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn racing_submissions_with_one_key_agree_on_one_job_and_distinct_keys_all_get_one() {
    for (_d, s) in stores().await {
        let racers = (0..20).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.create_job(&spec("Raced.", Some("one-key"))).await })
        });
        let mut new = Vec::new();
        let mut existing = Vec::new();
        for r in futures::future::join_all(racers).await {
            match r.unwrap().expect("no store error under contention") {
                Created::New(j) => new.push(j.id),
                Created::Existing(j) => existing.push(j.id),
                Created::KeyConflict(id) => panic!("same spec, yet a conflict with {id}"),
            }
        }
        assert_eq!((new.len(), existing.len()), (1, 19));
        assert!(existing.iter().all(|id| *id == new[0]), "every answer names the one job");

        let racers = (0..50).map(|n| {
            let s = s.clone();
            tokio::spawn(async move { s.create_job(&spec("Raced.", Some(&format!("key-{n}")))).await })
        });
        for r in futures::future::join_all(racers).await {
            assert!(matches!(r.unwrap().expect("no store error under contention"), Created::New(_)));
        }
        let all =
            s.list_jobs(&JobFilter { state: None, limit: 500, before: None, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 51);
    }
}

#[tokio::test]
async fn transitions_apply_only_from_allowed_states_and_state_is_derived() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        let to_preparing = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
        assert!(s.transition(&job.id, to_preparing.clone()).await.unwrap());
        assert!(!s.transition(&job.id, to_preparing).await.unwrap(), "queued is no longer the state");
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().state, JobState::Preparing);
        assert_eq!(s.stage_starts(&job.id, Stage::Prepare).await.unwrap(), 1);
        let cancelled = s
            .list_jobs(&JobFilter { state: Some(JobState::Cancelled), limit: 10, before: None, ..Default::default() })
            .await
            .unwrap();
        assert!(cancelled.is_empty());
        let preparing = s
            .list_jobs(&JobFilter { state: Some(JobState::Preparing), limit: 10, before: None, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(preparing.len(), 1);
    }
}

#[tokio::test]
async fn a_revision_replaces_spec_and_manifest_with_its_event_or_not_at_all() {
    use crate::domain::{ReviewDecision, ReviewPoint, Verdict};
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("First words.", Some("rev-1"))).await.unwrap() else { panic!() };
        let decided = Manifest {
            reviews: vec![ReviewDecision {
                point: ReviewPoint::Script,
                verdict: Verdict::ChangesRequested,
                by: "k1".into(),
                at: Utc::now(),
                note: Some("shorter".into()),
            }],
            ..Default::default()
        };
        let sent_back = Transition::new(&[JobState::Queued], JobState::ChangesRequested)
            .stage(Stage::Prepare)
            .manifest(decided.clone());
        assert!(s.transition(&job.id, sent_back).await.unwrap());
        let stored = s.job(&job.id).await.unwrap().unwrap();
        assert_eq!((stored.state, &stored.manifest), (JobState::ChangesRequested, &decided), "one change");

        let revised = spec("Second words.", Some("rev-1"));
        let wrong_state = Transition::new(&[JobState::InReview], JobState::Queued).manifest(Manifest::default());
        assert!(!s.revise_spec(&job.id, &revised, wrong_state).await.unwrap());
        let untouched = s.job(&job.id).await.unwrap().unwrap();
        assert_eq!(untouched.spec, stored.spec, "a refused revision changes nothing");
        assert_eq!(untouched.manifest, decided);

        let again = Transition::new(&[JobState::ChangesRequested], JobState::Queued)
            .stage(Stage::Prepare)
            .note("revised")
            .manifest(Manifest::default());
        assert!(s.revise_spec(&job.id, &revised, again).await.unwrap());
        let now = s.job(&job.id).await.unwrap().unwrap();
        assert_eq!((now.state, now.spec.clone(), now.manifest), (JobState::Queued, revised, Manifest::default()));
        assert_eq!(now.last_event.note.as_deref(), Some("revised"));
        // The key still names the submission: re-sending it finds this job.
        let Created::Existing(same) = s.create_job(&spec("First words.", Some("rev-1"))).await.unwrap() else {
            panic!("the original request is no conflict")
        };
        assert_eq!(same.id, job.id);
        // A decision on what was read does not land once the job was touched since.
        let seen = s.job(&job.id).await.unwrap().unwrap().updated_at;
        s.save_manifest(&job.id, &Manifest::default()).await.unwrap();
        let stale = Transition::new(&[JobState::Queued], JobState::Preparing).unchanged_since(seen);
        assert!(!s.transition(&job.id, stale).await.unwrap(), "touched after it was read");
        let fresh = s.job(&job.id).await.unwrap().unwrap().updated_at;
        let plain = Transition::new(&[JobState::Queued], JobState::Preparing).unchanged_since(fresh);
        assert!(s.transition(&job.id, plain).await.unwrap());
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().spec, now.spec, "a transition without a spec keeps it");
    }
}

#[tokio::test]
async fn of_racing_transitions_out_of_one_state_exactly_one_wins() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Race.", None)).await.unwrap() else { panic!() };
        let racers = (0..8).map(|i| {
            let (s, id) = (s.clone(), job.id.clone());
            tokio::spawn(async move {
                let t = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(i);
                s.transition(&id, t).await.unwrap()
            })
        });
        let wins = futures::future::join_all(racers).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
        assert_eq!(wins, 1);
        assert_eq!(s.events(&job.id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn metrics_count_states_failures_and_stage_time() {
    for (_d, s) in stores().await {
        let Created::New(a) = s.create_job(&spec("A.", None)).await.unwrap() else { panic!() };
        let Created::New(_b) = s.create_job(&spec("B.", None)).await.unwrap() else { panic!() };
        let start = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
        s.transition(&a.id, start).await.unwrap();
        let error =
            JobError { stage: Stage::Prepare, code: "voice_not_found".into(), message: "m".into(), retryable: false };
        let fail = Transition::new(&[JobState::Preparing], JobState::Failed).stage(Stage::Prepare).error(error);
        s.transition(&a.id, fail).await.unwrap();
        let m = s.metrics().await.unwrap();
        let mut states = m.jobs_by_state.clone();
        states.sort_by_key(|(st, _)| st.as_str());
        assert_eq!(states, [(JobState::Failed, 1), (JobState::Queued, 1)]);
        assert_eq!(m.failures, [(Stage::Prepare, "voice_not_found".to_string(), 1)]);
        assert_eq!(m.stage_seconds.len(), 1);
        assert_eq!((m.stage_seconds[0].0, m.stage_seconds[0].2), (Stage::Prepare, 1));
        s.add_provider_errors(&[("pexels", "rate_limited", 2)]).await.unwrap();
        s.add_provider_errors(&[("pexels", "rate_limited", 3), ("elevenlabs", "upstream_error", 1)]).await.unwrap();
        let m = s.metrics().await.unwrap();
        assert_eq!(
            m.provider_errors,
            [("elevenlabs".into(), "upstream_error".into(), 1), ("pexels".into(), "rate_limited".into(), 5)]
        );
    }
}

#[tokio::test]
async fn progress_never_goes_back_within_a_stage() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        s.reset_progress(&job.id, Stage::Render).await.unwrap();
        s.set_progress(&job.id, Stage::Render, 100).await.unwrap();
        s.set_progress(&job.id, Stage::Render, 40).await.unwrap(); // a late, stale write
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 100);
        s.reset_progress(&job.id, Stage::Publish).await.unwrap();
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().progress, 0, "a new stage starts afresh");
        s.set_progress(&job.id, Stage::Render, 100).await.unwrap(); // the old stage, too late
        let job = s.job(&job.id).await.unwrap().unwrap();
        assert_eq!((job.progress_stage, job.progress), (Some(Stage::Publish), 0));
    }
}

fn tokens(tag: &str) -> SealedTokens {
    // A fixed time, so two calls compare equal (2030-01-01T00:00:00Z).
    let at = DateTime::from_timestamp(1_893_456_000, 0).unwrap();
    SealedTokens {
        access: format!("sealed-access-{tag}"),
        refresh: format!("sealed-refresh-{tag}"),
        access_expires_at: at,
        refresh_expires_at: at + chrono::Duration::days(364),
    }
}

fn new_account(open_id: &str, tag: &str) -> NewAccount {
    NewAccount {
        platform: "tiktok".into(),
        open_id: open_id.into(),
        display_name: format!("Creator {tag}"),
        avatar_url: Some(format!("https://example.com/{tag}.jpg")),
        scopes: "user.info.basic,video.upload".into(),
        tokens: tokens(tag),
    }
}

#[tokio::test]
async fn connecting_twice_keeps_one_account_and_bumps_its_token_version() {
    for (_d, s) in stores().await {
        let first = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert_eq!((first.status, first.token_version), (AccountStatus::Connected, 1));
        assert_eq!(first.tokens, Some(tokens("a")));
        s.set_account_status(&first.id, AccountStatus::NeedsReconnect).await.unwrap();
        assert!(s.lock_refresh(&first.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
        let again = s.upsert_account(&new_account("open-1", "b")).await.unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(again.created_at, first.created_at);
        assert_eq!((again.status, again.token_version), (AccountStatus::Connected, 2));
        assert_eq!((again.display_name.as_str(), again.tokens), ("Creator b", Some(tokens("b"))));
        assert!(
            s.lock_refresh(&first.id, "worker-2", std::time::Duration::from_secs(60)).await.unwrap(),
            "connecting again clears the refresh lock"
        );
        let other = s.upsert_account(&new_account("open-2", "c")).await.unwrap();
        let all = s.list_accounts().await.unwrap();
        assert_eq!(all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), [first.id.clone(), other.id.clone()]);
    }
}

#[tokio::test]
async fn an_account_is_found_by_our_id_or_its_open_id() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert_eq!(s.account(&a.id).await.unwrap().unwrap().open_id, "open-1");
        assert_eq!(s.account("open-1").await.unwrap().unwrap().id, a.id);
        assert!(s.account("nobody").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn forgetting_tokens_disconnects_and_stops_a_refresh_in_flight() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert!(s.lock_refresh(&a.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
        s.forget_tokens(&a.id).await.unwrap();
        let gone = s.account(&a.id).await.unwrap().unwrap();
        assert_eq!((gone.status, gone.tokens, gone.token_version), (AccountStatus::Disconnected, None, 2));
        assert!(!s.finish_refresh(&a.id, "worker-1", Some(&tokens("late"))).await.unwrap());
        assert!(s.account(&a.id).await.unwrap().unwrap().tokens.is_none(), "the late refresh stored nothing");
    }
}

#[tokio::test]
async fn creator_info_is_kept_with_its_time_and_dropped_on_reconnect_or_disconnect() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert_eq!(s.creator_info(&a.id).await.unwrap(), None, "never asked");
        let at = DateTime::from_timestamp(1_893_456_000, 123_456_000).unwrap();
        s.save_creator_info(&a.id, r#"{"max_video_post_duration_sec":60}"#, at).await.unwrap();
        assert_eq!(
            s.creator_info(&a.id).await.unwrap(),
            Some((r#"{"max_video_post_duration_sec":60}"#.to_string(), at)),
            "the answer and its time, to the microsecond"
        );
        s.upsert_account(&new_account("open-1", "b")).await.unwrap();
        assert_eq!(s.creator_info(&a.id).await.unwrap(), None, "a reconnect may change the creator's grant");
        s.save_creator_info(&a.id, "{}", at).await.unwrap();
        s.forget_tokens(&a.id).await.unwrap();
        assert_eq!(s.creator_info(&a.id).await.unwrap(), None, "a disconnect forgets it");
    }
}

#[tokio::test]
async fn direct_post_is_off_until_turned_on_and_stays_through_a_reconnect() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert!(!a.direct_post, "opt-in: off at first connect");
        assert!(s.set_direct_post(&a.id, true).await.unwrap());
        assert!(s.account(&a.id).await.unwrap().unwrap().direct_post);
        let again = s.upsert_account(&new_account("open-1", "b")).await.unwrap();
        assert!(again.direct_post, "the operator's choice is the account's, not the grant's");
        assert!(s.set_direct_post(&a.id, false).await.unwrap());
        assert!(!s.account(&a.id).await.unwrap().unwrap().direct_post);
        assert!(!s.set_direct_post("no-such-account", true).await.unwrap());
    }
}

#[tokio::test]
async fn one_refresh_at_a_time_and_only_its_owner_stores_tokens() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        let racers = (0..8).map(|i| {
            let (s, id) = (s.clone(), a.id.clone());
            tokio::spawn(async move {
                let owner = format!("worker-{i}");
                s.lock_refresh(&id, &owner, std::time::Duration::from_secs(60)).await.unwrap().then_some(owner)
            })
        });
        let winners: Vec<String> =
            futures::future::join_all(racers).await.into_iter().filter_map(|r| r.unwrap()).collect();
        assert_eq!(winners.len(), 1);
        let owner = &winners[0];
        assert!(s.lock_refresh(&a.id, owner, std::time::Duration::from_secs(60)).await.unwrap(), "re-entrant");
        let thief = if owner == "worker-0" { "worker-1" } else { "worker-0" };
        assert!(!s.finish_refresh(&a.id, thief, Some(&tokens("thief"))).await.unwrap());
        let unchanged = s.account(&a.id).await.unwrap().unwrap();
        assert_eq!((unchanged.tokens, unchanged.token_version), (Some(tokens("a")), 1));
        s.set_account_status(&a.id, AccountStatus::NeedsReconnect).await.unwrap();
        assert!(s.finish_refresh(&a.id, owner, Some(&tokens("new"))).await.unwrap());
        let refreshed = s.account(&a.id).await.unwrap().unwrap();
        assert_eq!(refreshed.tokens, Some(tokens("new")));
        assert_eq!((refreshed.status, refreshed.token_version), (AccountStatus::Connected, 2));
        assert!(!s.finish_refresh(&a.id, owner, None).await.unwrap(), "the lock was released");
        assert!(s.lock_refresh(&a.id, thief, std::time::Duration::from_secs(60)).await.unwrap(), "and is free");
        assert!(s.finish_refresh(&a.id, thief, None).await.unwrap());
        assert_eq!(s.account(&a.id).await.unwrap().unwrap().token_version, 2, "releasing stores nothing");
    }
}

#[tokio::test]
async fn an_expired_refresh_lock_can_be_taken_over() {
    for (_d, s) in stores().await {
        let a = s.upsert_account(&new_account("open-1", "a")).await.unwrap();
        assert!(s.lock_refresh(&a.id, "worker-1", std::time::Duration::ZERO).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(s.lock_refresh(&a.id, "worker-2", std::time::Duration::from_secs(60)).await.unwrap());
        assert!(!s.lock_refresh(&a.id, "worker-1", std::time::Duration::from_secs(60)).await.unwrap());
    }
}

#[tokio::test]
async fn an_oauth_state_is_taken_once_only() {
    for (_d, s) in stores().await {
        let expires = DateTime::from_timestamp(Utc::now().timestamp() + 600, 0).unwrap();
        s.put_oauth_state("hash-1", expires).await.unwrap();
        let stale = Utc::now() - chrono::Duration::days(2);
        s.put_oauth_state("hash-old", stale).await.unwrap();
        assert_eq!(s.take_oauth_state("hash-1").await.unwrap(), Some(expires));
        assert_eq!(s.take_oauth_state("hash-1").await.unwrap(), None);
        assert_eq!(s.take_oauth_state("unknown").await.unwrap(), None);
        assert_eq!(s.take_oauth_state("hash-old").await.unwrap(), None, "long expired states were cleared");
    }
}

/// The limit API keys use (three requests a minute here), stepped through
/// with explicit times: what was the in-process limiter's test.
#[tokio::test]
async fn a_window_counts_per_key_and_frees_a_slot_one_window_after_each_hit() {
    let minute = std::time::Duration::from_secs(60);
    for (_d, s) in stores().await {
        // Whole seconds: the store keeps microseconds.
        let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let at = |secs| start + chrono::Duration::seconds(secs);
        for _ in 0..3 {
            assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(0)).await.unwrap(), None);
        }
        assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(20)).await.unwrap(), Some(at(60)), "until then");
        assert_eq!(s.acquire_slot_at("api_key:b", None, 3, minute, at(20)).await.unwrap(), None, "a key of its own");
        assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(59)).await.unwrap(), Some(at(60)));
        assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(60)).await.unwrap(), None, "the first hits left");
        assert_eq!(
            s.acquire_slot_at("api_key:a", None, 3, minute, at(61)).await.unwrap(),
            None,
            "a sliding window: the other two hits at 0 s left too"
        );
        assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(62)).await.unwrap(), None);
        assert_eq!(s.acquire_slot_at("api_key:a", None, 3, minute, at(63)).await.unwrap(), Some(at(120)));
        assert_eq!(s.hits_counting("api_key:a", minute, at(63)).await.unwrap(), 3, "what the refusal weighed");
        assert_eq!(s.hits_counting("api_key:a", minute, at(121)).await.unwrap(), 1, "the hits at 60 and 61 s left");
        assert_eq!(s.hits_counting("api_key:none", minute, at(63)).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn of_concurrent_slot_requests_only_the_limit_get_one() {
    for (_d, s) in stores().await {
        let window = std::time::Duration::from_secs(60);
        let before = Utc::now();
        let racers = (0..20).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.acquire_slot("tiktok:init:acct", None, 5, window).await.unwrap() })
        });
        let results: Vec<_> = futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap()).collect();
        let after = Utc::now();
        assert_eq!(results.iter().filter(|r| r.is_none()).count(), 5);
        let window = chrono::Duration::from_std(window).unwrap();
        for until in results.into_iter().flatten() {
            assert!(
                until >= before + window - chrono::Duration::milliseconds(1) && until <= after + window,
                "{until} should be the oldest hit plus the window"
            );
        }
        assert!(s.acquire_slot("another key", None, 5, std::time::Duration::from_secs(60)).await.unwrap().is_none());
        // Hits older than the window no longer count.
        let short = std::time::Duration::from_millis(50);
        let (t0, ms) = (Utc::now(), chrono::Duration::milliseconds);
        assert!(s.acquire_slot_at("short", None, 1, short, t0).await.unwrap().is_none());
        assert!(s.acquire_slot_at("short", None, 1, short, t0 + ms(10)).await.unwrap().is_some());
        assert!(s.acquire_slot_at("short", None, 1, short, t0 + ms(80)).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_slot_is_given_back_or_cut_short_by_its_holder_alone() {
    for (_d, s) in stores().await {
        let day = std::time::Duration::from_secs(86_400);
        let key = "tiktok:drafts:acct";
        assert!(s.acquire_slot(key, Some("job-a"), 2, day).await.unwrap().is_none());
        assert!(s.acquire_slot(key, Some("job-b"), 2, day).await.unwrap().is_none());
        let full = s.acquire_slot(key, Some("job-c"), 2, day).await.unwrap().expect("two of two taken");
        assert!(full > Utc::now() + chrono::Duration::hours(23), "{full}: the first hit leaves after a day");

        // Giving back is by holder: job-a's slot, not the newest (job-b's).
        s.release_slot(key, "job-a").await.unwrap();
        s.release_slot(key, "nobody").await.unwrap();
        assert!(s.acquire_slot(key, Some("job-c"), 2, day).await.unwrap().is_none());
        assert!(s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().is_some(), "job-b and job-c hold both");

        // A slot cut short counts until then, and tells when it leaves.
        // A minute ahead, so that the wall-clock calls below stay before it
        // however slow the machine.
        let soon = Utc::now() + chrono::Duration::minutes(1);
        s.hold_slot_until(key, "job-b", soon).await.unwrap();
        let until = s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().expect("still counted");
        assert_eq!(until, DateTime::parse_from_rfc3339(&time_text(soon)).unwrap().with_timezone(&Utc));
        // ... and is no longer given back by its holder (it lapses by itself).
        s.release_slot(key, "job-b").await.unwrap();
        assert!(s.acquire_slot(key, Some("job-d"), 2, day).await.unwrap().is_some());
        let lapsed = soon + chrono::Duration::milliseconds(1);
        assert!(s.acquire_slot_at(key, Some("job-d"), 2, day, lapsed).await.unwrap().is_none(), "job-b's hit lapsed");
        assert!(s.acquire_slot(key, Some("job-e"), 2, day).await.unwrap().is_some(), "job-c and job-d");

        // Hits without a holder (the per-minute limits) count as before.
        assert!(s.acquire_slot("tiktok:init:acct", None, 1, day).await.unwrap().is_none());
        assert!(s.acquire_slot("tiktok:init:acct", None, 1, day).await.unwrap().is_some());
    }
}

fn upload_of(job: &JobId, publish_id: &str, status: UploadStatus) -> UploadRecord {
    UploadRecord {
        job_id: job.clone(),
        account_id: "acct-1".into(),
        publish_id: publish_id.into(),
        upload_url: Some("sealed-url".into()),
        video_size: 30_000_000,
        chunk_size: 10_000_000,
        status,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn uploads_round_trip_are_replaced_by_job_and_go_with_their_job() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        assert!(s.upload(&job.id).await.unwrap().is_none());
        s.save_upload(&upload_of(&job.id, "p-1", UploadStatus::Initialised)).await.unwrap();
        let first = s.upload(&job.id).await.unwrap().unwrap();
        assert_eq!((first.publish_id.as_str(), first.status), ("p-1", UploadStatus::Initialised));
        assert_eq!(
            (first.video_size, first.chunk_size, first.upload_url.as_deref()),
            (30_000_000, 10_000_000, Some("sealed-url"))
        );
        assert!(first.created_at > DateTime::UNIX_EPOCH, "the store sets the times");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let mut next = upload_of(&job.id, "p-1", UploadStatus::Uploaded);
        next.upload_url = None;
        s.save_upload(&next).await.unwrap();
        let same = s.upload(&job.id).await.unwrap().unwrap();
        assert_eq!((same.status, same.upload_url), (UploadStatus::Uploaded, None));
        assert_eq!(same.created_at, first.created_at, "kept from the first save");
        assert!(same.updated_at > first.updated_at);
        s.save_upload(&upload_of(&job.id, "p-2", UploadStatus::Initialised)).await.unwrap();
        let fresh = s.upload(&job.id).await.unwrap().unwrap();
        assert_eq!(fresh.publish_id, "p-2");
        assert!(fresh.created_at > first.created_at, "a new publish_id is a new upload");
        s.delete_job(&job.id).await.unwrap();
        assert!(s.upload(&job.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_waiting_job_shows_its_retry_time_and_account() {
    for (_d, s) in stores().await {
        let req = JobRequest { script: Some("Hi.".into()), account: Some("acct-1".into()), ..Default::default() };
        let Created::New(job) = s.create_job(&JobSpec::parse(req, &SpecLimits::default()).unwrap()).await.unwrap()
        else {
            panic!()
        };
        let Created::New(other) = s.create_job(&spec("Other.", None)).await.unwrap() else { panic!() };
        let retry_at = DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).unwrap();
        let wait = Transition::new(&[JobState::Queued], JobState::Waiting).stage(Stage::Publish).retry_at(retry_at);
        assert!(s.transition(&job.id, wait).await.unwrap());
        let no_time = Transition::new(&[JobState::Queued], JobState::Waiting).stage(Stage::Publish);
        assert!(s.transition(&other.id, no_time).await.unwrap());
        assert_eq!(s.events(&job.id).await.unwrap().last().unwrap().retry_at, Some(retry_at));
        assert_eq!(s.job(&job.id).await.unwrap().unwrap().last_event.retry_at, Some(retry_at));
        let waiting = s.waiting_jobs().await.unwrap();
        assert_eq!(waiting.len(), 2);
        assert_eq!(
            (&waiting[0].id, waiting[0].account.as_deref(), waiting[0].retry_at),
            (&job.id, Some("acct-1"), Some(retry_at))
        );
        assert_eq!((&waiting[1].id, waiting[1].account.as_deref(), waiting[1].retry_at), (&other.id, None, None));
        let wake = Transition::new(&[JobState::Waiting], JobState::Queued);
        assert!(s.transition(&job.id, wake).await.unwrap());
        assert_eq!(s.waiting_jobs().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn listing_pages_newest_first() {
    for (_d, s) in stores().await {
        let mut ids = Vec::new();
        for i in 0..5 {
            let Created::New(j) = s.create_job(&spec(&format!("Job {i}."), None)).await.unwrap() else { panic!() };
            ids.push(j.id);
        }
        let page1 =
            s.list_jobs(&JobFilter { state: None, limit: 2, before: None, ..Default::default() }).await.unwrap();
        assert_eq!(page1.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [ids[4].clone(), ids[3].clone()]);
        let page2 = s
            .list_jobs(&JobFilter { state: None, limit: 2, before: Some(ids[3].clone()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page2[0].id, ids[2]);
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_counted_listed_and_revoked() {
    use secrecy::ExposeSecret;
    for (_d, s) in stores().await {
        let (key, new) = NewApiKey::generate("ci", vec![Scope::JobsRead, Scope::JobsWrite]);
        let created = s.create_api_key(&new).await.unwrap();
        assert_eq!((created.id.as_str(), created.name.as_str()), (new.id.as_str(), "ci"));
        assert_eq!(created.scopes, [Scope::JobsRead, Scope::JobsWrite]);
        assert_eq!((created.requests, created.last_used_at, created.revoked_at), (0, None, None));
        let hash = crate::crypto::sha256_hex(key.expose_secret());
        assert_eq!(s.api_key_by_hash(&hash).await.unwrap().unwrap().id, new.id);
        assert!(s.api_key_by_hash(&crate::crypto::sha256_hex("cfk_other")).await.unwrap().is_none());

        s.count_api_key_use(&new.id).await.unwrap();
        s.count_api_key_use(&new.id).await.unwrap();
        let used = s.api_key_by_hash(&hash).await.unwrap().unwrap();
        assert_eq!(used.requests, 2);
        assert!(used.last_used_at.is_some_and(|t| t >= created.created_at));

        let (_, other) = NewApiKey::generate("ops", vec![Scope::Admin]);
        s.create_api_key(&other).await.unwrap();
        let listed: Vec<String> = s.list_api_keys().await.unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(listed, [new.id.clone(), other.id.clone()]);

        assert!(s.revoke_api_key(&new.id).await.unwrap());
        let revoked_at = s.api_key_by_hash(&hash).await.unwrap().unwrap().revoked_at.expect("revoked");
        assert!(s.revoke_api_key(&new.id).await.unwrap(), "revoking again is no error");
        assert_eq!(s.api_key_by_hash(&hash).await.unwrap().unwrap().revoked_at, Some(revoked_at), "kept");
        assert!(!s.revoke_api_key("no-such-key").await.unwrap());
        assert!(s.list_api_keys().await.unwrap()[1].revoked_at.is_none(), "only that key");
    }
}

#[tokio::test]
async fn a_batch_is_stored_whole_found_again_by_its_key_and_counted_by_state() {
    for (_d, s) in stores().await {
        let Created::New(earlier) = s.create_job(&spec("Taken.", Some("taken"))).await.unwrap() else { panic!() };
        let jobs = vec![
            (2, spec("One.", Some("b:2"))),
            (3, spec("Two.", Some("b:3"))),
            (4, spec("Other text.", Some("taken"))),
            (5, spec("Two.", Some("b:3"))),
        ];
        let batch = NewBatch { idempotency_key: "b", lines: 5, rejected: 1, jobs: &jobs };
        let first = s.create_batch(&batch).await.unwrap();
        assert!(first.is_new);
        let new = first.new_jobs();
        assert_eq!(new.len(), 2);
        assert_eq!(
            first.jobs.iter().map(|(l, o)| (*l, o.clone())).collect::<Vec<_>>(),
            [
                (2, LineOutcome::New(new[0].clone())),
                (3, LineOutcome::New(new[1].clone())),
                (4, LineOutcome::KeyConflict(earlier.id.clone())),
                (5, LineOutcome::Existing(new[1].clone())),
            ]
        );
        assert_eq!((first.batch.lines, first.batch.accepted, first.batch.rejected), (5, 3, 2));
        assert_eq!(s.batch(&first.batch.id).await.unwrap().unwrap(), first.batch);

        let again = s.create_batch(&batch).await.unwrap();
        assert!(!again.is_new && again.new_jobs().is_empty());
        assert_eq!(again.batch.id, first.batch.id);
        assert_eq!(again.jobs[0].1, LineOutcome::Existing(new[0].clone()));

        let start = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare);
        s.transition(&new[0], start).await.unwrap();
        let summary = s.batch_summary(&first.batch.id).await.unwrap();
        assert_eq!(summary, [(JobState::Preparing, 1), (JobState::Queued, 1)], "line 5 is line 3's job");

        // Undoing a re-sent batch keeps the batch; undoing a new one removes it and its jobs.
        s.undo_batch(&again).await.unwrap();
        assert!(s.batch(&first.batch.id).await.unwrap().is_some());
        s.undo_batch(&first).await.unwrap();
        assert!(s.batch(&first.batch.id).await.unwrap().is_none());
        assert!(s.job(&new[0]).await.unwrap().is_none() && s.job(&new[1]).await.unwrap().is_none());
        assert!(s.job(&earlier.id).await.unwrap().is_some(), "only the batch's new jobs go");
    }
}

#[tokio::test]
async fn a_notification_is_queued_once_claimed_once_and_reclaimed_after_its_lease() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Hello.", None)).await.unwrap() else { panic!() };
        let n = NewNotification {
            id: "event-1".into(),
            job_id: job.id.clone(),
            event: "staged".into(),
            event_at: Utc::now(),
            channel: Channel::Telegram,
            target: "42".into(),
            payload: serde_json::json!({"event": "staged"}),
        };
        assert!(s.enqueue_notification(&n).await.unwrap());
        assert!(!s.enqueue_notification(&n).await.unwrap(), "the same event is queued once");
        let later_event =
            NewNotification { id: "event-2".into(), event_at: n.event_at + chrono::Duration::seconds(1), ..n.clone() };
        assert!(s.enqueue_notification(&later_event).await.unwrap(), "a later event of the same kind is new");

        // The claims name their time: a lease and a retry are stepped past,
        // not slept through, so a busy machine cannot outrun them.
        let (t0, ms) = (Utc::now(), chrono::Duration::milliseconds);
        let lease = std::time::Duration::from_millis(300);
        let racers = (0..4).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_notifications_at(10, lease, t0).await.unwrap() })
        });
        let claimed: Vec<Notification> =
            futures::future::join_all(racers).await.into_iter().flat_map(|r| r.unwrap()).collect();
        assert_eq!(claimed.len(), 2, "each row goes to one sender");
        assert!(claimed.iter().all(|c| c.status == NotificationStatus::Sending && c.attempts == 1));
        assert!(s.claim_notifications_at(10, lease, t0 + ms(299)).await.unwrap().is_empty(), "leased rows are not due");

        // One sender finishes; the other dies, and its row is due again once the lease lapses.
        s.finish_notification(&claimed[0].id, &NotificationOutcome::Sent).await.unwrap();
        let again = s.claim_notifications_at(10, lease, t0 + ms(300)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id.as_str(), again[0].attempts), (claimed[1].id.as_str(), 2));

        let retry = NotificationOutcome::Retry { at: t0 + ms(800), error: "HTTP 502".into() };
        s.finish_notification(&again[0].id, &retry).await.unwrap();
        assert!(s.claim_notifications_at(10, lease, t0 + ms(799)).await.unwrap().is_empty(), "not before its time");
        let third = s.claim_notifications_at(10, lease, t0 + ms(800)).await.unwrap();
        assert_eq!(third.len(), 1);
        let gone = NotificationOutcome::Undeliverable { error: "gave up".into() };
        s.finish_notification(&third[0].id, &gone).await.unwrap();
        s.finish_notification(&claimed[0].id, &gone).await.unwrap();

        let listed = s.job_notifications(&job.id).await.unwrap();
        let states: Vec<_> = listed.iter().map(|n| (n.status, n.attempts, n.last_error.clone())).collect();
        assert!(states.contains(&(NotificationStatus::Sent, 1, None)), "a finished row is left alone: {states:?}");
        assert!(states.contains(&(NotificationStatus::Undeliverable, 3, Some("gave up".into()))), "{states:?}");
        assert!(listed.iter().any(|n| n.sent_at.is_some()));
        s.delete_job(&job.id).await.unwrap();
        assert!(s.job_notifications(&job.id).await.unwrap().is_empty(), "they go with their job");
    }
}

#[tokio::test]
async fn a_purge_erases_the_job_and_keys_named_by_other_jobs_are_reported_in_use() {
    for (_d, s) in stores().await {
        let Created::New(gone) = s.create_job(&spec("Purged.", None)).await.unwrap() else { panic!() };
        let Created::New(other) = s.create_job(&spec("Kept.", None)).await.unwrap() else { panic!() };
        let manifest = Manifest { cache: vec!["cache/shared.json".into()], ..Default::default() };
        s.save_manifest(&other.id, &manifest).await.unwrap();
        let keys = vec!["cache/shared.json".to_string(), "cache/only-mine.json".to_string()];
        assert_eq!(s.keys_used_elsewhere(&gone.id, &keys).await.unwrap(), vec!["cache/shared.json".to_string()]);
        assert!(s.keys_used_elsewhere(&other.id, &keys).await.unwrap().is_empty(), "a job's own names do not count");

        assert!(s.purge_job(&gone.id).await.unwrap());
        assert!(s.job(&gone.id).await.unwrap().is_none());
        assert!(s.events(&gone.id).await.unwrap().is_empty());
        assert!(!s.purge_job(&gone.id).await.unwrap(), "a second purge finds nothing");
        assert!(s.job(&other.id).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_session_lives_until_its_expiry_its_sign_out_or_its_keys_revocation() {
    for (_d, s) in stores().await {
        let (_key, new) = NewApiKey::generate("studio", vec![Scope::JobsRead]);
        s.create_api_key(&new).await.unwrap();
        // Whole seconds (the store keeps microseconds), and close to now: sign-out stamps the real time.
        let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let expires = t0 + chrono::Duration::hours(12);
        s.create_session("hash-a", &new.id, expires).await.unwrap();
        s.create_session("hash-b", &new.id, expires).await.unwrap();

        let (session, key) = s.live_session("hash-a", t0).await.unwrap().expect("live");
        assert_eq!((session.key_id.as_str(), key.id.as_str()), (new.id.as_str(), new.id.as_str()));
        assert!(s.live_session("hash-a", expires).await.unwrap().is_none(), "expired at its expiry");
        assert!(s.live_session("unknown", t0).await.unwrap().is_none());

        assert!(s.end_session("hash-a").await.unwrap());
        assert!(!s.end_session("hash-a").await.unwrap(), "signed out once");
        assert!(s.live_session("hash-a", t0).await.unwrap().is_none());

        assert!(s.live_session("hash-b", t0).await.unwrap().is_some());
        s.create_session("hash-c", &new.id, expires + chrono::Duration::hours(1)).await.unwrap();
        s.revoke_api_key(&new.id).await.unwrap();
        assert!(s.live_session("hash-b", t0).await.unwrap().is_none(), "a revoked key ends its sessions");

        // The sweep: hash-a was signed out (just now), hash-b expires at
        // `expires`, hash-c an hour later; nothing had ended by t0.
        assert_eq!(s.forget_ended_sessions(t0).await.unwrap(), 0);
        let later = expires + chrono::Duration::minutes(1);
        assert_eq!(s.forget_ended_sessions(later).await.unwrap(), 2, "the signed-out and the expired one");
        assert_eq!(s.forget_ended_sessions(later + chrono::Duration::hours(1)).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn every_process_gets_the_secret_stored_first() {
    for (_d, s) in stores().await {
        let racers = (0..8).map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.shared_secret("review_links", &format!("candidate-{i}")).await.unwrap() })
        });
        let got: Vec<String> = futures::future::join_all(racers).await.into_iter().map(Result::unwrap).collect();
        assert!(got.iter().all(|g| g == &got[0] && g.starts_with("candidate-")), "{got:?}");
        assert_eq!(s.shared_secret("review_links", "later").await.unwrap(), got[0]);
    }
}

#[tokio::test]
async fn jobs_are_found_by_text_in_their_request_whatever_the_case_and_wildcards_are_literal() {
    for (_d, s) in stores().await {
        for script in ["Cats sleep a lot.", "Dogs bark at 100% volume.", "Ünïcode café opens."] {
            s.create_job(&spec(script, None)).await.unwrap();
        }
        let find = |text: &str| {
            let s = s.clone();
            let filter = JobFilter { limit: 10, text: Some(text.into()), ..Default::default() };
            async move {
                s.list_jobs(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|j| j.spec.to_request().script.unwrap())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(find("CATS").await, ["Cats sleep a lot."]);
        assert_eq!(find("100%").await, ["Dogs bark at 100% volume."]);
        assert!(find("1_0").await.is_empty(), "`_` is not a wildcard");
        assert!(find("%").await.len() == 1, "`%` is literal");
        assert_eq!(find("café").await, ["Ünïcode café opens."]);
        assert!(find("horses").await.is_empty());
    }
}

#[tokio::test]
async fn events_after_a_cursor_come_oldest_first_bounded_and_scoped_to_a_job_or_a_batch() {
    for (_d, s) in stores().await {
        let start = s.last_event_id().await.unwrap();
        let Created::New(alone) = s.create_job(&spec("Alone.", None)).await.unwrap() else { panic!() };
        let jobs = vec![(1, spec("One.", Some("e:1"))), (2, spec("Two.", Some("e:2")))];
        let batch =
            s.create_batch(&NewBatch { idempotency_key: "e", lines: 2, rejected: 0, jobs: &jobs }).await.unwrap();
        let members = batch.new_jobs();
        let start_job = Transition::new(&[JobState::Queued], JobState::Preparing).stage(Stage::Prepare).attempt(1);
        s.transition(&alone.id, start_job.clone().note("first")).await.unwrap();
        s.transition(&members[1], start_job).await.unwrap();

        let all = s.events_after(&EventScope::AllJobs, start, 100).await.unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first: {all:?}");
        assert_eq!(s.last_event_id().await.unwrap(), all[4].id);
        assert_eq!((all[3].job_id.clone(), all[3].event.state), (alone.id.clone(), JobState::Preparing));
        assert_eq!(all[3].event.note.as_deref(), Some("first"));

        let page = s.events_after(&EventScope::AllJobs, start, 2).await.unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [all[0].id, all[1].id], "bounded by the limit");
        let rest = s.events_after(&EventScope::AllJobs, page[1].id, 100).await.unwrap();
        assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), all[2..].iter().map(|e| e.id).collect::<Vec<_>>());

        let one = s.events_after(&EventScope::Job(alone.id.clone()), 0, 100).await.unwrap();
        assert_eq!(one.iter().map(|e| e.event.state).collect::<Vec<_>>(), [JobState::Queued, JobState::Preparing]);
        assert!(one.iter().all(|e| e.job_id == alone.id));

        let of_batch = s.events_after(&EventScope::Batch(batch.batch.id.clone()), 0, 100).await.unwrap();
        assert_eq!(of_batch.len(), 3, "two queued events and one start: {of_batch:?}");
        assert!(of_batch.iter().all(|e| members.contains(&e.job_id)));
        assert!(s.events_after(&EventScope::Batch("no-such-batch".into()), 0, 100).await.unwrap().is_empty());
        assert!(s.events_after(&EventScope::AllJobs, s.last_event_id().await.unwrap(), 100).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn progress_of_shows_the_running_stage_of_the_scope_changed_since_a_time() {
    for (_d, s) in stores().await {
        let Created::New(a) = s.create_job(&spec("A.", None)).await.unwrap() else { panic!() };
        let Created::New(b) = s.create_job(&spec("B.", None)).await.unwrap() else { panic!() };
        assert!(s.progress_of(&EventScope::AllJobs, None).await.unwrap().is_empty(), "no stage started yet");
        s.reset_progress(&a.id, Stage::Render).await.unwrap();
        s.set_progress(&a.id, Stage::Render, 42).await.unwrap();
        let mid = Utc::now();
        s.reset_progress(&b.id, Stage::Prepare).await.unwrap();
        let of_a = s.progress_of(&EventScope::Job(a.id.clone()), None).await.unwrap();
        assert_eq!(of_a, [JobProgress { job_id: a.id.clone(), stage: Stage::Render, percent: 42 }]);
        assert_eq!(s.progress_of(&EventScope::AllJobs, None).await.unwrap().len(), 2);
        let since = s.progress_of(&EventScope::AllJobs, Some(mid)).await.unwrap();
        assert_eq!(since, [JobProgress { job_id: b.id.clone(), stage: Stage::Prepare, percent: 0 }]);
    }
}

/// A reader that always asks for the events after the last id it was given
/// must see every event exactly once, however many writers append at once:
/// on PostgreSQL that needs ids to become visible in order (`jobs`' module docs).
#[tokio::test]
async fn a_reader_following_the_cursor_misses_no_event_appended_by_concurrent_writers() {
    for (_d, s) in stores().await {
        let start = s.last_event_id().await.unwrap();
        let ids: Vec<JobId> = {
            let mut ids = Vec::new();
            for n in 0..8 {
                let Created::New(j) = s.create_job(&spec(&format!("Job {n}."), None)).await.unwrap() else { panic!() };
                ids.push(j.id);
            }
            ids
        };
        let writers: Vec<_> = ids
            .iter()
            .map(|id| {
                let (s, id) = (s.clone(), id.clone());
                tokio::spawn(async move {
                    for _ in 0..15 {
                        let t = Transition::new(&[JobState::Queued], JobState::Queued).note("again");
                        assert!(s.transition(&id, t).await.unwrap());
                    }
                })
            })
            .collect();
        let batches = {
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0..5 {
                    let jobs: Vec<_> =
                        (0..40).map(|l| (l, spec(&format!("Line {l}."), Some(&format!("r{n}:{l}"))))).collect();
                    let key = format!("race-{n}");
                    s.create_batch(&NewBatch { idempotency_key: &key, lines: 40, rejected: 0, jobs: &jobs })
                        .await
                        .unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        let mut cursor = start;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let expected = 8 + 8 * 15 + 5 * 40; // the creations, the transitions, the batches' lines
        while seen.len() < expected {
            assert!(std::time::Instant::now() < deadline, "only {} of {expected} events seen", seen.len());
            let page = s.events_after(&EventScope::AllJobs, cursor, 7).await.unwrap();
            if let Some(last) = page.last() {
                cursor = last.id;
            } else {
                tokio::task::yield_now().await;
            }
            seen.extend(page.into_iter().map(|e| e.id));
        }
        for w in writers {
            w.await.unwrap();
        }
        batches.await.unwrap();
        let all: Vec<i64> =
            s.events_after(&EventScope::AllJobs, start, 1000).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(seen, all, "the reader saw every event, in order, once");
    }
}

#[tokio::test]
async fn media_round_trips_pages_newest_first_and_deletes_once() {
    use crate::domain::{MediaId, MediaKind};
    for (_d, s) in stores().await {
        let item = |kind, duration_s, size: Option<u32>| {
            let id = MediaId::new();
            MediaRecord {
                object_key: format!("media/{id}.bin"),
                id,
                kind,
                name: "take 3".into(),
                content_type: "audio/mpeg".into(),
                bytes: 5_000_000_000,
                duration_s,
                width: size,
                height: size.map(|s| s * 2),
                origin: "https://cdn.example.com".into(),
                created_at: DateTime::parse_from_rfc3339("2026-12-06T10:00:00.123456Z").unwrap().with_timezone(&Utc),
            }
        };
        let audio = item(MediaKind::Audio, Some(12.5), None);
        let image = item(MediaKind::Image, None, Some(1080));
        let clip = item(MediaKind::Video, Some(3.0), Some(720));
        for m in [&audio, &image, &clip] {
            s.insert_media(m).await.unwrap();
        }
        assert_eq!(s.media(&image.id).await.unwrap().as_ref(), Some(&image), "every field as written");
        assert_eq!(s.media(&audio.id).await.unwrap().as_ref(), Some(&audio));
        let unknown = crate::domain::MediaId::new();
        let mut among = s.media_among(&[clip.id.clone(), unknown, audio.id.clone()]).await.unwrap();
        among.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(among, [audio.clone(), clip.clone()], "the known ones, in one read");
        assert!(s.media_among(&[]).await.unwrap().is_empty());
        let first = s.list_media(2, None).await.unwrap();
        assert_eq!(first.iter().map(|m| &m.id).collect::<Vec<_>>(), [&clip.id, &image.id], "newest first");
        let rest = s.list_media(2, Some(&image.id)).await.unwrap();
        assert_eq!(rest.iter().map(|m| &m.id).collect::<Vec<_>>(), [&audio.id]);
        assert!(s.delete_media(&image.id).await.unwrap());
        assert!(!s.delete_media(&image.id).await.unwrap(), "a second delete finds nothing");
        assert_eq!(s.media(&image.id).await.unwrap(), None);
    }
}

fn sample_of(post_id: &str, at: DateTime<Utc>, views: u64) -> Sample {
    Sample { post_id: post_id.into(), sampled_at: at, views, likes: views / 10, comments: 2, shares: 1 }
}

#[tokio::test]
async fn a_delivered_post_is_tracked_once_claimed_by_one_collector_and_due_again_on_its_schedule() {
    let lease = std::time::Duration::from_secs(300);
    for (_d, s) in stores().await {
        // Stored to the microsecond.
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        let hour = chrono::Duration::hours(1);
        let Created::New(job) = s.create_job(&spec("Measured.", None)).await.unwrap() else { panic!() };
        let Created::New(sending) = s.create_job(&spec("Still sending.", None)).await.unwrap() else { panic!() };
        s.save_upload(&upload_of(&job.id, "p-1", UploadStatus::InInbox)).await.unwrap();
        s.save_upload(&upload_of(&sending.id, "p-2", UploadStatus::Initialised)).await.unwrap();
        assert_eq!(s.track_new_posts(now, 100).await.unwrap(), 1, "only an upload TikTok kept");
        assert_eq!(s.track_new_posts(now, 100).await.unwrap(), 0, "tracked once");
        let claimed = s.claim_due_posts(now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let post = &claimed[0];
        assert_eq!(
            (post.job_id.clone(), post.publish_id.as_str(), post.post_id.clone()),
            (job.id.clone(), "p-1", None)
        );
        assert_eq!(post.account_id, "acct-1");
        assert!(s.claim_due_posts(now, lease, 10).await.unwrap().is_empty(), "claimed posts are not handed out twice");

        // What a pass learned: the post id and a sample; next due in an hour.
        s.finish_posts(&[PostUpdate {
            job_id: job.id.clone(),
            post_id: Some("7001".into()),
            posted_at: Some(now),
            checked_at: now,
            next_due_at: Some(now + hour),
            ended: None,
            sample: Some(sample_of("7001", now, 100)),
        }])
        .await
        .unwrap();
        let tracked = s.tracked_post(&job.id).await.unwrap().unwrap();
        assert_eq!(tracked.post_id.as_deref(), Some("7001"));
        assert_eq!(tracked.next_due_at.map(|t| t.timestamp_micros()), Some((now + hour).timestamp_micros()));
        assert!(s.claim_due_posts(now, lease, 10).await.unwrap().is_empty(), "not due yet");

        // A 429 holds the account's posts back until the back-off ends.
        s.back_off_account("acct-1", now + hour * 2).await.unwrap();
        assert!(s.claim_due_posts(now + hour, lease, 10).await.unwrap().is_empty());
        let again = s.claim_due_posts(now + hour * 2 + chrono::Duration::seconds(1), lease, 10).await.unwrap();
        assert_eq!(again.len(), 1, "nothing lost, only delayed");
        s.finish_posts(&[PostUpdate {
            job_id: job.id.clone(),
            post_id: None,
            posted_at: None,
            checked_at: now + hour * 2,
            next_due_at: None,
            ended: None,
            sample: Some(sample_of("7001", now + hour * 2, 250)),
        }])
        .await
        .unwrap();
        let tracked = s.tracked_post(&job.id).await.unwrap().unwrap();
        assert_eq!(tracked.post_id.as_deref(), Some("7001"), "an update without an id keeps the known one");
        assert_eq!(tracked.next_due_at, None);

        let samples = s.samples(&job.id).await.unwrap();
        assert_eq!(samples.iter().map(|x| x.views).collect::<Vec<_>>(), [250, 100], "newest first");
        let latest = s.latest_samples(now - hour).await.unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!((latest[0].job_id.clone(), latest[0].sample.views), (job.id.clone(), 250), "each post's latest");
        assert!(latest[0].spec.contains("Measured."));
        assert!(s.latest_samples(now + hour).await.unwrap().is_empty(), "posted before `since`");

        // Account totals: due once a post is known, claimed by one collector.
        assert!(!s.claim_account_stats("acct-1", now, lease).await.unwrap(), "not due before a post is known");
        s.account_stats_due("acct-1", now).await.unwrap();
        assert!(s.claim_account_stats("acct-1", now + hour * 3, lease).await.unwrap());
        assert!(!s.claim_account_stats("acct-1", now + hour * 3, lease).await.unwrap(), "claimed once");
        let totals = AccountTotals {
            account_id: "acct-1".into(),
            sampled_at: now + hour * 3,
            followers: 10,
            following: 2,
            likes: 300,
            videos: 4,
        };
        s.finish_account_stats("acct-1", Some(&totals), None).await.unwrap();
        assert_eq!(s.account_totals().await.unwrap(), [totals]);
        assert_eq!(
            s.newest_post_time("acct-1").await.unwrap().map(|t| t.timestamp_micros()),
            Some(now.timestamp_micros())
        );

        s.purge_job(&job.id).await.unwrap();
        assert!(s.samples(&job.id).await.unwrap().is_empty(), "a purge takes the samples");
        assert!(s.tracked_post(&job.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn concurrent_collectors_claim_different_posts() {
    let lease = std::time::Duration::from_secs(300);
    for (_d, s) in stores().await {
        let now = Utc::now();
        for i in 0..12 {
            let Created::New(job) = s.create_job(&spec(&format!("Post {i}."), None)).await.unwrap() else { panic!() };
            s.save_upload(&upload_of(&job.id, &format!("p-{i}"), UploadStatus::InInbox)).await.unwrap();
        }
        assert_eq!(s.track_new_posts(now, 100).await.unwrap(), 12);
        let claims = futures::future::join_all((0..4).map(|_| s.claim_due_posts(now, lease, 5))).await;
        let mut all: Vec<String> = Vec::new();
        for c in claims {
            all.extend(c.unwrap().into_iter().map(|p| p.job_id.to_string()));
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!((n, all.len()), (12, 12), "every post claimed exactly once");
        let ids: Vec<JobId> = all.iter().map(|id| JobId::parse(id).unwrap()).collect();
        s.release_posts(&ids).await.unwrap();
        assert_eq!(s.claim_due_posts(now, lease, 100).await.unwrap().len(), 12, "released: due again");
        assert_eq!(
            s.claim_due_posts(now + chrono::Duration::seconds(301), lease, 100).await.unwrap().len(),
            12,
            "a lapsed claim (its collector died) is due again"
        );
    }
}

#[tokio::test]
async fn a_target_upload_is_read_back_per_platform_and_keeps_its_first_save_while_the_session_stays() {
    use crate::store::records::{TargetStatus, TargetUpload};
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Targets.", None)).await.unwrap() else { panic!() };
        let job = job.id;
        let mut yt = TargetUpload {
            job_id: job.clone(),
            platform: "youtube".into(),
            account_id: "acct-yt".into(),
            session: "sealed-session-1".into(),
            status: TargetStatus::Started,
            remote_id: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        s.save_target_upload(&yt).await.unwrap();
        let first = s.target_upload(&job, "youtube").await.unwrap().unwrap();
        assert_eq!(
            (first.session.as_str(), first.status, first.remote_id.clone()),
            ("sealed-session-1", TargetStatus::Started, None)
        );
        assert!(s.target_upload(&job, "instagram").await.unwrap().is_none(), "one row per platform");

        yt.status = TargetStatus::Uploaded;
        yt.remote_id = Some("vid1".into());
        s.save_target_upload(&yt).await.unwrap();
        let later = s.target_upload(&job, "youtube").await.unwrap().unwrap();
        assert_eq!((later.status, later.remote_id.as_deref()), (TargetStatus::Uploaded, Some("vid1")));
        assert_eq!(later.created_at, first.created_at, "the same session keeps its first save");

        yt.session = "sealed-session-2".into();
        s.save_target_upload(&yt).await.unwrap();
        let fresh = s.target_upload(&job, "youtube").await.unwrap().unwrap();
        assert!(fresh.created_at >= first.created_at && fresh.session == "sealed-session-2");
    }
}

#[tokio::test]
async fn a_segmented_renders_parts_are_claimed_once_taken_over_when_silent_and_joined_once() {
    for (_d, s) in stores().await {
        let Created::New(job) = s.create_job(&spec("Long.", None)).await.unwrap() else { panic!() };
        let id = job.id;
        let seg = |k: u64| PlannedSegment { first_clip: k as u32 * 2, clips: 2, start_frame: k * 600, frames: 600 };
        let parts = s.plan_render_parts(&id, "plan-a", &[seg(0), seg(1), seg(2)]).await.unwrap();
        assert_eq!(parts.iter().map(|p| p.part).collect::<Vec<_>>(), [0, 1, 2, JOIN_PART]);
        assert_eq!(parts[3].segment.frames, 1800, "the join covers every frame");
        let window = std::time::Duration::from_secs(60);
        let now = Utc::now();

        let PartClaim::Taken(row) = s.claim_render_part(&id, 1, "w1", now, window).await.unwrap() else { panic!() };
        assert_eq!((row.attempts, row.segment), (1, seg(1)));
        assert_eq!(s.claim_render_part(&id, 1, "w2", now, window).await.unwrap(), PartClaim::Busy);
        assert_eq!(s.claim_render_part(&id, JOIN_PART, "w2", now, window).await.unwrap(), PartClaim::Gone);
        // w1 falls silent: after the window, w2 takes the segment over, and w1 has lost it.
        let later = now + chrono::Duration::seconds(61);
        let PartClaim::Taken(row) = s.claim_render_part(&id, 1, "w2", later, window).await.unwrap() else { panic!() };
        assert_eq!(row.attempts, 2);
        assert!(!s.touch_render_part(&id, 1, "w1").await.unwrap());
        assert!(!s.finish_render_part(&id, 1, "w1", 1.0).await.unwrap());
        assert!(s.finish_render_part(&id, 1, "w2", 2.5).await.unwrap());
        assert!(s.touch_render_part(&id, 1, "w2").await.unwrap(), "busy after finishing is still its own");
        assert_eq!(s.claim_render_part(&id, 1, "w3", later, window).await.unwrap(), PartClaim::Done);
        assert!(!s.queue_join_if_complete(&id).await.unwrap(), "two segments to go");

        for k in [0, 2] {
            let PartClaim::Taken(_) = s.claim_render_part(&id, k, "w1", now, window).await.unwrap() else { panic!() };
            assert!(s.finish_render_part(&id, k, "w1", 1.0).await.unwrap());
        }
        // Two workers finishing the last segments at once: one queues the join.
        let (a, b) = tokio::join!(s.queue_join_if_complete(&id), s.queue_join_if_complete(&id));
        assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
        let PartClaim::Taken(join) = s.claim_render_part(&id, JOIN_PART, "w3", now, window).await.unwrap() else {
            panic!()
        };
        assert_eq!(join.attempts, 1);
        assert!(s.finish_render_part(&id, JOIN_PART, "w3", 3.0).await.unwrap());
        assert_eq!(s.claim_render_part(&id, JOIN_PART, "w1", later, window).await.unwrap(), PartClaim::Done);

        // The same plan again (a retry) keeps the segments and waits to join again; another plan starts over.
        let kept = s.plan_render_parts(&id, "plan-a", &[seg(0), seg(1), seg(2)]).await.unwrap();
        assert!(kept[..3].iter().all(|p| p.state == PartState::Done));
        assert_eq!(kept[1].render_seconds, 2.5);
        assert_eq!(kept[3].state, PartState::Pending);
        s.redo_render_part(&id, 2).await.unwrap();
        assert!(!s.queue_join_if_complete(&id).await.unwrap(), "segment 2 must be rendered again first");
        let fresh = s.plan_render_parts(&id, "plan-b", &[seg(0), seg(1)]).await.unwrap();
        assert_eq!(fresh.len(), 3);
        assert!(fresh.iter().all(|p| p.state == PartState::Pending && p.attempts == 0));
    }
}
