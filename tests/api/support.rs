//! The test harness: an app on a free port with its own data folder, and
//! helpers that look at what a user would see.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clipforge::app::{Application, Roles};
use clipforge::domain::{JobState, Stage};
use clipforge::settings::Settings;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Where the stage queues live in a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueueKind {
    /// The embedded SQLite queue.
    Sqlite,
    /// The machine's Redis on 127.0.0.1:6379, under a namespace of the test's own.
    Redis,
}

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Settings for a test: its own data folder and queue namespace, the fastest
/// encoder preset, and a short orphan window.
pub fn test_env(data_dir: &Path, queue: QueueKind, namespace: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("CLIPFORGE__DATA__DIR", data_dir.display().to_string()),
        ("CLIPFORGE__SERVER__LISTEN", "127.0.0.1:0".into()),
        ("CLIPFORGE__QUEUE__NAMESPACE", namespace.into()),
        ("CLIPFORGE__QUEUE__HEARTBEAT_SECS", "1".into()),
        ("CLIPFORGE__QUEUE__MISSED_HEARTBEATS", "3".into()),
        ("CLIPFORGE__MEDIA__PRESET", "ultrafast".into()),
        // The bare fastest preset: the default options over a preset are
        // measured in `render_speed`, not paid for in every render of the suite.
        ("CLIPFORGE__MEDIA__X264_PARAMS", String::new()),
        ("CLIPFORGE__RETRY__INITIAL_BACKOFF_MS", "100".into()),
    ];
    if queue == QueueKind::Redis {
        env.push(("CLIPFORGE__QUEUE__URL", REDIS_URL.into()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A fresh PostgreSQL database per test, made the way the unit tests make
/// theirs: [`fresh_postgres`] gives its URL, or None after printing why the
/// test skips (a failure instead on CI or in the PostgreSQL pass).
#[path = "../../src/store/testing.rs"]
mod postgres_fixture;
pub(crate) use postgres_fixture::fresh_postgres;

/// With `CLIPFORGE_TEST_RECORDS=postgres`, every test app keeps its records in
/// a fresh PostgreSQL database (server from `CLIPFORGE_TEST_POSTGRES`), so the
/// whole suite runs against both record stores.
pub async fn test_records_url() -> Option<String> {
    if std::env::var("CLIPFORGE_TEST_RECORDS").ok()? != "postgres" {
        return None;
    }
    // In this pass a missing server fails inside `fresh_postgres`.
    fresh_postgres().await
}

/// True in the suite's PostgreSQL pass. Tests that measure minutes of
/// rendered frames or audio and keep only a handful of records run in the
/// SQLite pass alone: the second pass tests the record store, not ffmpeg again.
pub fn media_measured_in_the_sqlite_pass() -> bool {
    let skip = std::env::var("CLIPFORGE_TEST_RECORDS").is_ok_and(|v| v == "postgres");
    if skip {
        eprintln!("measured in the SQLite pass; skipped in the PostgreSQL pass");
    }
    skip
}

/// Polls `check` until it answers `Ok`, and returns that. The first looks
/// come quickly (10 ms apart, doubling), later ones every 200 ms, so a
/// condition that is met soon costs no fixed wait and a slow one no busy
/// polling. After `timeout`, panics with the last `Err`: what was seen instead.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => panic!("not within {timeout:?}: {seen}"),
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `clipforge serve` as a process of its own, with `env` and `RUST_LOG=debug`,
/// its log in `log`; answers once `/healthz` does, with its base URL (the
/// env must set `CLIPFORGE__SERVER__LISTEN` to `127.0.0.1:<port>`).
pub async fn serve_process(env: &[(String, String)], log: &Path) -> (std::process::Child, String) {
    let listen = env.iter().rev().find(|(k, _)| k == "CLIPFORGE__SERVER__LISTEN").expect("a listen address").1.clone();
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (serve, base)
}

/// Every byte a `clipforge serve` process kept: the files under its data
/// folder but its `log`, and a dump of its PostgreSQL records when it had
/// some (for tests that look for secrets in clear).
pub fn stored_bytes(data: &Path, log: &Path, records_url: Option<&str>) -> Vec<u8> {
    let mut stored = Vec::new();
    for f in files_under(data) {
        if f != log {
            stored.extend(std::fs::read(&f).unwrap());
        }
    }
    if let Some(url) = records_url {
        let out = std::process::Command::new("pg_dump").arg(url).output().expect("pg_dump runs");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        assert!(holds(&out.stdout, "CREATE TABLE"), "the dump holds the records");
        stored.extend(out.stdout);
    }
    stored
}

/// A running clipforge for one test.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub data: tempfile::TempDir,
    pub namespace: String,
    pub env: Vec<(String, String)>,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(queue: QueueKind) -> TestApp {
    spawn_app_with(queue, Roles::all(), &[]).await
}

/// Starts an app running `roles`, with extra settings overrides.
pub async fn spawn_app_with(queue: QueueKind, roles: Roles, extra: &[(&str, &str)]) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let mut env = test_env(data.path(), queue, &namespace);
    if let Some(url) = test_records_url().await {
        env.push(("CLIPFORGE__RECORDS__URL".into(), url));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::load_with_env(None, Some(env.clone())).expect("test settings");
    let app = Application::build(settings, roles).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port().expect("api runs"));
    let shutdown = app.shutdown_handle();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp { address, http: reqwest::Client::new(), data, namespace, env, shutdown, handle: Some(handle) }
}

impl TestApp {
    pub async fn post_job_raw(&self, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/jobs", self.address))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Submits a job that must be accepted; returns its id.
    pub async fn submit(&self, spec: Value) -> String {
        let resp = self.post_job_raw(&spec.to_string()).await;
        assert_eq!(resp.status(), 202, "submission refused: {}", resp.text().await.unwrap());
        resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string()
    }

    /// The job's view; its error codes, if any, must be catalogued.
    pub async fn job(&self, id: &str) -> Value {
        let job = self.http.get(format!("{}/v1/jobs/{id}", self.address)).send().await.unwrap().json().await.unwrap();
        assert_catalogued(&job);
        job
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.address)).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.address)).send().await.unwrap()
    }

    /// Polls until the job is in one of `states`; panics with the job after `timeout`.
    pub async fn wait_for(&self, id: &str, states: &[JobState], timeout: Duration) -> Value {
        eventually(timeout, || async {
            let job = self.job(id).await;
            let state: JobState = serde_json::from_value(job["state"].clone()).unwrap();
            if states.contains(&state) { Ok(job) } else { Err(format!("job {id} did not reach {states:?}: {job:#}")) }
        })
        .await
    }

    /// Waits until the job ends; panics unless it ended `staged`.
    pub async fn wait_staged(&self, id: &str) -> Value {
        let job = self
            .wait_for(id, &[JobState::Staged, JobState::Failed, JobState::Cancelled], Duration::from_secs(240))
            .await;
        assert_eq!(job["state"], "staged", "job did not stage: {job:#}");
        job
    }

    /// Another process's worth of clipforge on this app's stores (records,
    /// queue, data folder), running `roles`.
    pub async fn sibling(&self, roles: Roles, extra: &[(&str, &str)]) -> TestApp {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings = Settings::load_with_env(None, Some(env.clone())).expect("test settings");
        let app = Application::build(settings, roles).await.expect("app builds");
        let address = app.port().map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
        let shutdown = app.shutdown_handle();
        let handle = tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            http: reqwest::Client::new(),
            data: tempfile::tempdir().unwrap(),
            namespace: self.namespace.clone(),
            env,
            shutdown,
            handle: Some(handle),
        }
    }

    /// The app's record store URL, as its settings resolve it.
    pub fn records_url(&self) -> String {
        Settings::load_with_env(None, Some(self.env.clone())).expect("test settings").records_url()
    }

    /// The app's record store, opened beside it.
    pub async fn records(&self) -> std::sync::Arc<dyn clipforge::store::records::RecordStore> {
        clipforge::store::records::connect(&self.records_url()).await.unwrap()
    }

    /// Every byte the record store keeps: the SQLite files, or a dump of the
    /// PostgreSQL database (for tests that look for secrets in clear).
    pub fn raw_records(&self) -> Vec<u8> {
        let url = self.records_url();
        if url.starts_with("postgres") {
            let out = std::process::Command::new("pg_dump").arg(&url).output().expect("pg_dump runs");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
            return out.stdout;
        }
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            bytes.extend(std::fs::read(self.data.path().join(format!("clipforge.db{suffix}"))).unwrap_or_default());
        }
        bytes
    }

    /// Every byte the stage queue keeps: the SQLite queue's files, or every
    /// key and value under the app's Redis namespace (for tests that look for
    /// a job's traces).
    pub async fn raw_queue(&self) -> Vec<u8> {
        if !self.env.iter().any(|(k, v)| k == "CLIPFORGE__QUEUE__URL" && v.starts_with("redis://")) {
            return ["", "-wal"]
                .iter()
                .flat_map(|s| std::fs::read(self.data.path().join(format!("queue.db{s}"))).unwrap_or_default())
                .collect();
        }
        let client = redis::Client::open(REDIS_URL).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.namespace)).query_async(&mut conn).await.unwrap();
        let mut dump = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut conn).await.unwrap(),
                "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
                "string" => vec![redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap()],
                _ => vec![],
            };
            dump.extend_from_slice(key.as_bytes());
            for v in values {
                dump.push(b' ');
                dump.extend(v);
            }
            dump.push(b'\n');
        }
        dump
    }

    pub fn scratch_dir(&self) -> PathBuf {
        self.data.path().join("scratch")
    }

    /// Stops the app and waits for its workers to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
    }
}

/// The `error.code` of an error answer or of a job, after checking that it
/// and every other code in `body` is in clipforge's catalogue.
pub fn error_code(body: &Value) -> &str {
    assert_catalogued(body);
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error.code in {body}"))
}

/// Panics unless every error code in `body` (an `error.code`, each
/// `details[].code`, a rejected batch line's `code`) is one of
/// [`clipforge::error_code::ALL`]: the API emits no code it does not list.
pub fn assert_catalogued(body: &Value) {
    fn walk(v: &Value, coded: bool, path: &str) {
        match v {
            Value::Object(o) => {
                if let (true, Some(Value::String(code))) = (coded, o.get("code")) {
                    assert!(
                        clipforge::error_code::find(code).is_some(),
                        "`{code}` at {path} is not in clipforge::error_code::ALL"
                    );
                }
                for (key, child) in o {
                    walk(child, matches!(key.as_str(), "error" | "details" | "rejected"), &format!("{path}.{key}"));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, coded, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    walk(body, false, "$");
}

/// Each `(field, code)` of an error answer's `details`, in order.
pub fn field_codes(body: &Value) -> Vec<(&str, &str)> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no error.details in {body}"))
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["code"].as_str().unwrap()))
        .collect()
}

/// The states a job went through, in order.
pub fn history(job: &Value) -> Vec<String> {
    job["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap().to_string()).collect()
}

/// What ffprobe says of a file, as a user would check it.
#[derive(Debug)]
pub struct Probe {
    pub width: u64,
    pub height: u64,
    pub video_codec: String,
    pub pix_fmt: String,
    pub fps: String,
    pub audio_codec: String,
    pub duration_s: f64,
}

pub fn probe(path: &str) -> Probe {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams", path])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {path}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("an audio stream");
    Probe {
        width: video["width"].as_u64().unwrap(),
        height: video["height"].as_u64().unwrap(),
        video_codec: video["codec_name"].as_str().unwrap().into(),
        pix_fmt: video["pix_fmt"].as_str().unwrap().into(),
        fps: video["avg_frame_rate"].as_str().unwrap().into(),
        audio_codec: audio["codec_name"].as_str().unwrap().into(),
        duration_s: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
    }
}

/// One frame at `at_s`, cropped to rows `y..y+h`, as 8-bit grey pixels.
pub fn grey_band(path: &str, at_s: f64, y: u32, h: u32) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i", path, "-frames:v", "1"])
        .args(["-vf", &format!("crop=1080:{h}:0:{y}"), "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "frame extraction failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 1080 * h as usize);
    out.stdout
}

/// Mean absolute difference of two equal-sized grey images.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (i16::from(*x) - i16::from(*y)).unsigned_abs() as f64).sum::<f64>() / a.len() as f64
}

/// Frames in the video stream, counted by decoding them.
pub fn frame_count(path: &Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "default=nokey=1:noprint_wrappers=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// An ffmpeg that notes each time it is started, then runs the real one.
pub fn counting_ffmpeg(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("ffmpeg-runs.log");
    let wrapper = dir.join("ffmpeg");
    let real = String::from_utf8(std::process::Command::new("which").arg("ffmpeg").output().unwrap().stdout).unwrap();
    std::fs::write(&wrapper, format!("#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n", log.display(), real.trim()))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, log)
}

/// Files (not folders) anywhere under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Rows of the caption band in the output frame.
pub fn caption_band() -> (u32, u32) {
    clipforge::pipeline::render_caption_style("DejaVu Sans", 84).band()
}

pub fn stage_of(job: &Value) -> Option<Stage> {
    serde_json::from_value(job["stage"].clone()).ok()
}

/// Whether `needle` occurs in `haystack`'s bytes.
pub fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}
