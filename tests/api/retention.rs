//! Staged videos are forgotten after the retention period, with nobody asking.

use std::time::{Duration, SystemTime};

use clipforge::app::Roles;
use clipforge::domain::Stage;

use serde_json::json;

use crate::support::{QueueKind, holds, spawn_app_with};

#[tokio::test]
async fn a_publishing_process_sweeps_renders_older_than_the_retention() {
    let app = spawn_app_with(
        QueueKind::Sqlite,
        Roles { api: true, stages: vec![Stage::Publish] },
        &[("CLIPFORGE__STORAGE__SWEEP_INTERVAL_SECS", "1"), ("CLIPFORGE__STORAGE__RETENTION_DAYS", "14")],
    )
    .await;
    let renders = app.data.path().join("objects/renders");
    std::fs::create_dir_all(&renders).unwrap();
    let (old, fresh) = (renders.join("old.mp4"), renders.join("fresh.mp4"));
    for f in [&old, &fresh] {
        std::fs::write(f, b"video").unwrap();
    }
    let fifteen_days_ago = SystemTime::now() - Duration::from_secs(15 * 86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(fifteen_days_ago).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while old.exists() {
        assert!(std::time::Instant::now() < deadline, "the expired render was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh.exists(), "a render inside the retention period was deleted");
}

#[tokio::test]
async fn finished_stage_tasks_leave_the_queue_after_keep_finished_secs_and_the_job_stays() {
    for queue in [QueueKind::Sqlite, QueueKind::Redis] {
        let app = spawn_app_with(
            queue,
            clipforge::app::Roles::all(),
            &[("CLIPFORGE__STORAGE__SWEEP_INTERVAL_SECS", "1"), ("CLIPFORGE__QUEUE__KEEP_FINISHED_SECS", "4")],
        )
        .await;
        let id = app.submit(json!({ "script": "Kept in the records, not in the queue." })).await;
        app.wait_staged(&id).await;
        assert!(holds(&app.raw_queue().await, &id), "{queue:?}: the just-finished publish task is still queued");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while holds(&app.raw_queue().await, &id) {
            assert!(std::time::Instant::now() < deadline, "{queue:?}: finished tasks were never pruned");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(app.job(&id).await["state"], "staged", "{queue:?}: the job itself stays");
        app.stop().await;
    }
}
