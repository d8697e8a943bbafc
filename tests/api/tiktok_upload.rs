//! The inbox uploader on its own, against the emulator, with a 30 MB file in
//! three chunks: a server error resends the same chunk, an interrupted upload
//! resumes at TikTok's progress (learnt from a 416), an expired upload URL
//! starts a new upload, and every case leaves exactly one draft whose bytes
//! are the file's. An upload TikTok did not keep gives its draft slot back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use clipforge::domain::{JobId, JobRequest, JobSpec, SpecLimits};
use clipforge::providers::tiktok::upload::{Delivered, PostTarget};
use clipforge::providers::tiktok::{Accounts, InboxUploader, UploadError, UploadLimits};
use clipforge::settings::Settings;
use clipforge::store::records::{AccountRecord, Created, RecordStore, UploadStatus};
use sha2::{Digest, Sha256};

use crate::emulators::tiktok::{self, TikTok};
use crate::tiktok::{location, no_redirects, tiktok_env};

/// 3 chunks of the preferred 10,000,000 bytes, the last one byte longer.
const SIZE: usize = 30_000_001;

struct Rig {
    emu: TikTok,
    records: Arc<dyn RecordStore>,
    uploader: InboxUploader,
    account: AccountRecord,
    file: std::path::PathBuf,
    sha256: String,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    rig_with(&[]).await
}

/// A rig whose settings add `extra`.
async fn rig_with(extra: &[(&str, &str)]) -> Rig {
    let emu = TikTok::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = tiktok_env(&emu);
    env.push(("CLIPFORGE__DATA__DIR".into(), dir.path().display().to_string()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if let Some(url) = crate::support::test_records_url().await {
        env.push(("CLIPFORGE__RECORDS__URL".into(), url));
    }
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let records = clipforge::store::records::connect(&settings.records_url()).await.unwrap();
    let accounts = Accounts::from_settings(&settings, records.clone()).unwrap();
    // Consent at the emulator; the code comes back on the redirect.
    let redirect = "http://127.0.0.1:9/callback/";
    let consent = no_redirects().get(accounts.api.authorize_url("st", redirect, None)).send().await.unwrap();
    let back = reqwest::Url::parse(&location(&consent)).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let account = accounts.connect(&code, redirect, None).await.unwrap();
    let uploader =
        InboxUploader::new(accounts, records.clone(), records.clone(), UploadLimits::from_settings(&settings.tiktok));

    let bytes: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("video.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Rig { emu, records, uploader, account, file, sha256, _dir: dir }
}

impl Rig {
    async fn job(&self) -> JobId {
        let req: JobRequest = serde_json::from_value(serde_json::json!({ "script": "Upload me." })).unwrap();
        let limits = SpecLimits::default();
        match self.records.create_job(&JobSpec::parse(req, &limits).unwrap()).await.unwrap() {
            Created::New(job) => job.id,
            other => panic!("{other:?}"),
        }
    }

    async fn deliver(&self, job: &JobId) -> String {
        self.uploader
            .deliver(job, &self.account.id, &self.file, SIZE as u64, &PostTarget::Inbox, &|_| {})
            .await
            .unwrap()
            .publish_id
    }

    /// Starts a delivery and drops it once the first chunk was accepted,
    /// while the second is still on its way (as a killed worker would).
    async fn interrupt_after_first_chunk(&self, job: &JobId) {
        self.emu.state.put_delay_ms.store(800, Ordering::SeqCst);
        let progress = Arc::new(AtomicU8::new(0));
        let seen = progress.clone();
        let (uploader, job, account, file) =
            (self.uploader.clone(), job.clone(), self.account.id.clone(), self.file.clone());
        let task = tokio::spawn(async move {
            let report = move |p: u8| seen.store(p, Ordering::SeqCst);
            uploader.deliver(&job, &account, &file, SIZE as u64, &PostTarget::Inbox, &report).await
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while progress.load(Ordering::SeqCst) < 30 {
            assert!(Instant::now() < deadline, "the first chunk was never accepted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let _ = task.await;
    }

    fn one_draft_of_the_file(&self) -> String {
        let drafts = self.emu.state.drafts();
        assert_eq!(drafts.len(), 1, "exactly one draft");
        assert_eq!(drafts[0].sha256, self.sha256, "the draft's bytes are the file's");
        assert_eq!(drafts[0].bytes, SIZE as u64);
        drafts[0].publish_id.clone()
    }
}

#[tokio::test]
async fn server_errors_resend_the_same_chunk() {
    let rig = rig().await;
    let job = rig.job().await;
    rig.emu.state.fail_puts.store(2, Ordering::SeqCst);
    let publish_id = rig.deliver(&job).await;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.put_calls.load(Ordering::SeqCst), 3 + 2, "three chunks, two of them twice");
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 1);
    let upload = rig.records.upload(&job).await.unwrap().unwrap();
    assert_eq!(upload.status, UploadStatus::InInbox);
    assert!(upload.upload_url.is_none(), "the upload URL is not kept once it is used up");
}

#[tokio::test]
async fn an_interrupted_upload_resumes_at_tiktoks_progress_learnt_from_a_416() {
    let rig = rig().await;
    // Status answers carry no progress: only a 416 can tell where TikTok is.
    rig.emu.state.status_without_progress.store(true, Ordering::SeqCst);
    let job = rig.job().await;
    rig.interrupt_after_first_chunk(&job).await;
    assert_eq!(rig.records.upload(&job).await.unwrap().unwrap().status, UploadStatus::Initialised);

    rig.emu.state.put_delay_ms.store(0, Ordering::SeqCst);
    let publish_id = rig.deliver(&job).await;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 1, "resumed, not started again");

    // Delivering again finds the draft and does nothing.
    let puts = rig.emu.state.put_calls.load(Ordering::SeqCst);
    assert_eq!(rig.deliver(&job).await, publish_id);
    assert_eq!(rig.emu.state.put_calls.load(Ordering::SeqCst), puts);
    assert_eq!(rig.emu.state.drafts().len(), 1);
}

#[tokio::test]
async fn an_expired_upload_url_starts_a_new_upload_and_still_one_draft() {
    let rig = rig().await;
    let job = rig.job().await;
    rig.emu.state.put_delay_ms.store(800, Ordering::SeqCst);
    let delivery = {
        let (uploader, job, account, file) =
            (rig.uploader.clone(), job.clone(), rig.account.id.clone(), rig.file.clone());
        tokio::spawn(
            async move { uploader.deliver(&job, &account, &file, SIZE as u64, &PostTarget::Inbox, &|_| {}).await },
        )
    };
    // Once the first chunk is in, the hour is up for that URL.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.emu.state.put_calls.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rig.emu.state.expire_upload_urls();
    rig.emu.state.put_delay_ms.store(0, Ordering::SeqCst);
    let publish_id = delivery.await.unwrap().unwrap().publish_id;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 2, "a second upload, because the first can never finish");
    assert_eq!(rig.records.upload(&job).await.unwrap().unwrap().publish_id, publish_id);
}

#[tokio::test]
async fn a_failed_publish_maps_its_reason_and_a_retry_starts_a_new_upload() {
    let rig = rig().await;
    let job = rig.job().await;
    *rig.emu.state.fail_next_publish.lock().unwrap() = Some("internal".into());
    let err = rig
        .uploader
        .deliver(&job, &rig.account.id, &rig.file, SIZE as u64, &PostTarget::Inbox, &|_| {})
        .await
        .unwrap_err();
    match err {
        clipforge::providers::tiktok::UploadError::Failed(e) => {
            assert_eq!((e.code.as_str(), e.retryable), ("tiktok_internal", true), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rig.emu.state.drafts().is_empty());
    let publish_id = rig.deliver(&job).await;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 2);
}

#[tokio::test]
async fn an_upload_tiktok_forgot_is_started_again_not_failed() {
    let rig = rig().await;
    let job = rig.job().await;
    rig.interrupt_after_first_chunk(&job).await;
    rig.emu.state.forget_unfinished_uploads();
    rig.emu.state.put_delay_ms.store(0, Ordering::SeqCst);
    let publish_id = rig.deliver(&job).await;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 2, "the forgotten upload could never finish");
}

/// The wait a refused delivery got, or a panic naming what it got instead.
fn wait_until(result: Result<Delivered, UploadError>) -> (&'static str, chrono::DateTime<chrono::Utc>) {
    match result {
        Err(UploadError::Wait { code, until: Some(until), .. }) => (code.as_str(), until),
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[tokio::test]
async fn with_one_draft_slot_uploads_tiktok_dropped_or_let_expire_give_it_back() {
    let rig = rig_with(&[("CLIPFORGE__TIKTOK__MAX_PENDING_DRAFTS", "1")]).await;
    let job = rig.job().await;
    // Dropped by TikTok: the new upload of the same job needs the slot again.
    rig.interrupt_after_first_chunk(&job).await;
    rig.emu.state.forget_unfinished_uploads();
    rig.emu.state.put_delay_ms.store(0, Ordering::SeqCst);
    let publish_id = rig.deliver(&job).await;
    assert_eq!(rig.one_draft_of_the_file(), publish_id);
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 2);

    // The draft in the inbox keeps the slot for the whole window.
    let other = rig.job().await;
    let before = chrono::Utc::now();
    let (code, until) = wait_until(
        rig.uploader.deliver(&other, &rig.account.id, &rig.file, SIZE as u64, &PostTarget::Inbox, &|_| {}).await,
    );
    assert_eq!(code, "pending_drafts_cap");
    assert!(until > before + chrono::Duration::hours(23), "{until}: a delivered draft counts for 24 h");
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 2, "no init was tried over the cap");
}

#[tokio::test]
async fn an_init_whose_answer_was_lost_holds_its_slot_for_the_upload_urls_hour_only() {
    let rig =
        rig_with(&[("CLIPFORGE__TIKTOK__MAX_PENDING_DRAFTS", "1"), ("CLIPFORGE__TIKTOK__TIMEOUT_SECS", "1")]).await;
    let job = rig.job().await;
    rig.emu.state.slow_next_init_ms.store(2500, Ordering::SeqCst);
    let lost = rig.uploader.deliver(&job, &rig.account.id, &rig.file, SIZE as u64, &PostTarget::Inbox, &|_| {}).await;
    match lost {
        Err(UploadError::Failed(e)) => assert_eq!((e.code.as_str(), e.retryable), ("timeout", true), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 1, "TikTok began an upload we never heard of");

    let other = rig.job().await;
    let before = chrono::Utc::now();
    let (code, until) = wait_until(
        rig.uploader.deliver(&other, &rig.account.id, &rig.file, SIZE as u64, &PostTarget::Inbox, &|_| {}).await,
    );
    assert_eq!(code, "pending_drafts_cap");
    let hour = chrono::Duration::hours(1);
    assert!(
        until > before + hour - chrono::Duration::minutes(1) && until <= chrono::Utc::now() + hour,
        "{until}: the lost start counts only while TikTok can hold it, not {}",
        before + chrono::Duration::hours(24)
    );
}

#[tokio::test]
async fn upload_urls_that_keep_expiring_back_off_then_fail_retryably_saying_so() {
    let rig = rig_with(&[
        ("CLIPFORGE__TIKTOK__UPLOAD_RESTARTS", "2"),
        ("CLIPFORGE__TIKTOK__RESTART_BACKOFF_INITIAL_MS", "300"),
        ("CLIPFORGE__TIKTOK__RESTART_BACKOFF_MAX_MS", "1000"),
        ("CLIPFORGE__TIKTOK__INIT_PER_MINUTE", "60"),
    ])
    .await;
    rig.emu.state.init_per_minute.store(100, Ordering::SeqCst);
    // Every upload URL is dead on arrival.
    rig.emu.state.upload_url_ttl_ms.store(0, Ordering::SeqCst);
    let job = rig.job().await;
    let started = Instant::now();
    let err = rig
        .uploader
        .deliver(&job, &rig.account.id, &rig.file, SIZE as u64, &PostTarget::Inbox, &|_| {})
        .await
        .unwrap_err();
    let took = started.elapsed();
    match err {
        UploadError::Failed(e) => {
            assert_eq!((e.code.as_str(), e.retryable), ("upload_url_expired", true), "{e}");
            assert!(e.message.contains("within its upload URL's hour"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.emu.state.inits_for(tiktok::OPEN_ID), 3, "the first upload and two new ones");
    assert!(took >= Duration::from_millis(300 + 600), "waited 300 ms, then 600 ms: {took:?}");
    assert!(rig.emu.state.drafts().is_empty());
    assert_eq!(rig.emu.state.pending_shares(tiktok::OPEN_ID), 0, "TikTok holds none of them");

    // None of the three kept a draft slot: five more deliveries all fit.
    // (The emulator's ttl applies at each check: mark those three expired for good.)
    rig.emu.state.expire_upload_urls();
    rig.emu.state.upload_url_ttl_ms.store(3_600_000, Ordering::SeqCst);
    for _ in 0..5 {
        let job = rig.job().await;
        rig.deliver(&job).await;
    }
    assert_eq!(rig.emu.state.drafts().len(), 5);
}
