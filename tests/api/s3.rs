//! Staging on a real S3-compatible server (Garage): the pipeline end to end,
//! presigned links, the lifecycle rule, multipart memory, refused rights.

use clipforge::app::{Application, Roles};
use clipforge::settings::Settings;
use serde_json::{Value, json};

use crate::garage::garage;
use crate::support::{QueueKind, error_code, spawn_app_with, test_env};

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_job_is_staged_in_the_bucket_and_downloads_through_a_signed_link() {
    let g = garage().await;
    let bucket = g.bucket();
    let env = g.env(&bucket);
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &pairs(&env)).await;
    let id = app.submit(json!({ "script": "Stored in a bucket, fetched by a link." })).await;
    let job = app.wait_staged(&id).await;
    let video = &job["outputs"]["video"];
    assert!(video["path"].is_null(), "an S3 store has no local path");
    let bytes = video["bytes"].as_u64().unwrap();

    // The API hands out a redirect to a signed link, never the link in JSON.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp =
        no_redirects.get(format!("{}{}", app.address, video["download"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(resp.status(), 307);
    let link = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(link.contains("X-Amz-Signature="), "{link}");
    assert!(!job.to_string().contains("X-Amz-"), "a signed query is in the job's JSON");

    let body = reqwest::get(&link).await.unwrap();
    assert_eq!(body.status(), 200);
    let downloaded = body.bytes().await.unwrap();
    assert_eq!(downloaded.len() as u64, bytes);
    let file = app.data.path().join("downloaded.mp4");
    std::fs::write(&file, &downloaded).unwrap();
    let p = crate::support::probe(file.to_str().unwrap());
    assert_eq!((p.width, p.height, p.video_codec.as_str()), (1080, 1920, "h264"));

    // A link whose signature was changed is refused.
    let sig_at = link.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = link.clone();
    let flipped = if &link[sig_at..sig_at + 1] == "a" { "b" } else { "a" };
    tampered.replace_range(sig_at..sig_at + 1, flipped);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);

    // Nothing was left in the hand-off prefix, and the video is under renders/.
    let client = s3_client(g).await;
    let work = client.list_objects_v2().bucket(&bucket).prefix("work/").send().await.unwrap();
    assert_eq!(work.key_count(), Some(0));
    let staged = client.get_object().bucket(&bucket).key(format!("renders/{id}.mp4")).send().await.unwrap();
    let stored = staged.body.collect().await.unwrap().into_bytes();
    assert!(stored.as_ref() == downloaded.as_ref(), "the signed link served other bytes than the bucket holds");
}

async fn s3_client(g: &crate::garage::Garage) -> aws_sdk_s3::Client {
    let settings = Settings::load_with_env(None, Some(g.env("unused"))).unwrap();
    let store = clipforge::store::s3::S3Store::connect(&settings.storage).await;
    aws_sdk_s3::Client::from_conf(store.client_config().clone())
}

#[tokio::test]
async fn the_lifecycle_rule_expires_renders_after_the_retention_and_reads_back() {
    let g = garage().await;
    let bucket = g.bucket();
    let mut env = g.env(&bucket);
    env.push(("CLIPFORGE__STORAGE__RETENTION_DAYS".into(), "14".into()));
    let _app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &pairs(&env)).await;
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    let store = clipforge::store::s3::S3Store::connect(&settings.storage).await;
    let rules = store.lifecycle_rules().await.unwrap();
    assert!(rules.contains(&("renders/".to_string(), Some(14))), "{rules:?}");
}

#[tokio::test]
async fn credentials_that_cannot_set_the_lifecycle_stop_the_start_with_advice() {
    let g = garage().await;
    let bucket = g.bucket();
    let (id, secret) = g.limited_key(&bucket);
    let data = tempfile::tempdir().unwrap();
    let mut env = test_env(data.path(), QueueKind::Sqlite, "lifecycle");
    env.extend(g.env(&bucket));
    env.push(("CLIPFORGE__STORAGE__ACCESS_KEY_ID".into(), id));
    env.push(("CLIPFORGE__STORAGE__SECRET_ACCESS_KEY".into(), secret.clone()));
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    let err = Application::build(settings, Roles { api: true, stages: vec![] }).await.err().expect("start refused");
    let msg = err.to_string();
    assert!(msg.contains("s3:PutLifecycleConfiguration") && msg.contains("manage_lifecycle"), "{msg}");
    assert!(!msg.contains(&secret), "the secret key is in the error");
}

#[tokio::test]
async fn a_gib_is_staged_in_multipart_with_flat_memory() {
    let g = garage().await;
    let bucket = g.bucket();
    let data = tempfile::tempdir().unwrap();
    let mut env = test_env(data.path(), QueueKind::Sqlite, "bench");
    env.extend(g.env(&bucket));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_clipforge"))
            .args(["bench", "stage", "--size-mb", "1024"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TMPDIR", data.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("staged 1073741824 bytes"), "{stdout}");
    let peak: u64 = stdout.lines().find_map(|l| l.strip_prefix("peak_rss_bytes=")).unwrap().parse().unwrap();
    eprintln!("{stdout}");
    assert!(peak < 100 * 1024 * 1024, "peak RSS {} MB", peak / (1024 * 1024));
}

#[tokio::test]
async fn a_job_without_a_staged_video_has_nothing_to_download() {
    let app = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &[]).await;
    let id = app.submit(json!({ "script": "Never rendered." })).await;
    let resp = app.get(&format!("/v1/jobs/{id}/video")).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "no_video");
}
