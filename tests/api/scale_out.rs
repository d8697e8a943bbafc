//! Production layout: every role its own OS process, sharing Redis and
//! PostgreSQL (and, on one machine, the local object store).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{QueueKind, files_under, fresh_postgres, test_env};

struct Cluster {
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    base: String,
    children: Vec<(String, Child)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// A cluster's settings on a fresh PostgreSQL database; None (the test
    /// skips, saying so) without a PostgreSQL.
    async fn new() -> Option<Self> {
        // Records always live in PostgreSQL here: it is what production shares.
        let records = fresh_postgres().await?;
        let data = tempfile::tempdir().unwrap();
        let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut env = test_env(data.path(), QueueKind::Redis, &namespace);
        env.push(("CLIPFORGE__RECORDS__URL".into(), records));
        env.push(("CLIPFORGE__SERVER__LISTEN".into(), format!("127.0.0.1:{port}")));
        Some(Self { data, env, base: format!("http://127.0.0.1:{port}"), children: Vec::new() })
    }

    /// Starts `program args…` with the cluster's settings; its stderr goes to `<name>.log`.
    fn start(&mut self, name: &str, program: &str, args: &[&str]) {
        let log = std::fs::File::create(self.data.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_string(), child));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    async fn wait_for_api(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", self.base)).await.is_err() {
            assert!(Instant::now() < deadline, "api did not start: {}", self.log("api"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn twenty_jobs_across_separate_worker_processes_are_each_rendered_once() {
    let Some(mut cluster) = Cluster::new().await else { return };
    let clipforge = env!("CARGO_BIN_EXE_clipforge");
    cluster.start("api", clipforge, &["api"]);
    cluster.start("prepare", clipforge, &["worker", "--role", "prepare"]);
    cluster.start("render-1", clipforge, &["worker", "--role", "render"]);
    // The per-role binary is the same worker, started another way.
    cluster.start("render-2", env!("CARGO_BIN_EXE_clipforge-render"), &[]);
    cluster.start("publish", env!("CARGO_BIN_EXE_clipforge-publish"), &[]);
    cluster.wait_for_api().await;

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 1..=20 {
        let resp = http
            .post(format!("{}/v1/jobs", cluster.base))
            .json(&json!({ "script": format!("Clip number {n} of twenty."), "captions": n % 2 == 0 }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        ids.push(resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string());
    }

    let deadline = Instant::now() + Duration::from_secs(400);
    let mut done = Vec::new();
    for id in &ids {
        loop {
            let job: Value =
                http.get(format!("{}/v1/jobs/{id}", cluster.base)).send().await.unwrap().json().await.unwrap();
            if job["state"] == "staged" || job["state"] == "failed" {
                done.push(job);
                break;
            }
            assert!(Instant::now() < deadline, "job {id} stuck: {job:#}\nrender-1: {}", cluster.log("render-1"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for job in &done {
        assert_eq!(job["state"], "staged", "{job:#}");
        let renders = job["events"].as_array().unwrap().iter().filter(|e| e["state"] == "rendering").count();
        assert_eq!(renders, 1, "job {} rendered {renders} times", job["id"]);
    }
    // Both render processes took a share of the work.
    for worker in ["render-1", "render-2"] {
        let rendered = cluster.log(worker).matches("rendered").count();
        assert!(rendered > 0, "{worker} rendered nothing:\n{}", cluster.log(worker));
    }
    assert!(files_under(&cluster.data.path().join("scratch")).is_empty());
}

#[tokio::test]
async fn sigterm_lets_a_render_worker_finish_the_job_in_hand() {
    let Some(mut cluster) = Cluster::new().await else { return };
    let clipforge = env!("CARGO_BIN_EXE_clipforge");
    cluster.start("api", clipforge, &["api"]);
    cluster.start("prepare", clipforge, &["worker", "--role", "prepare"]);
    cluster.start("publish", clipforge, &["worker", "--role", "publish"]);
    cluster.start("render", clipforge, &["worker", "--role", "render"]);
    cluster.wait_for_api().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/jobs", cluster.base))
        .json(&json!({ "script": "This render is asked to stop politely. ".repeat(6) }))
        .send()
        .await
        .unwrap();
    let id = resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();
    let job_url = format!("{}/v1/jobs/{id}", cluster.base);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job: Value = http.get(&job_url).send().await.unwrap().json().await.unwrap();
        if job["state"] == "rendering" && job["progress"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "render never started: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let render = &mut cluster.children.iter_mut().find(|(n, _)| n == "render").unwrap().1;
    let pid = render.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = render.wait().unwrap(); // the other roles are separate processes; blocking here is fine
    assert!(status.success(), "the worker did not exit cleanly: {status:?}\n{}", cluster.log("render"));
    // The render in hand was finished before the process left, and the job went on.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = http.get(&job_url).send().await.unwrap().json().await.unwrap();
        if job["state"] == "staged" {
            let renders = job["events"].as_array().unwrap().iter().filter(|e| e["state"] == "rendering").count();
            assert_eq!(renders, 1);
            break;
        }
        assert!(Instant::now() < deadline, "job did not finish after SIGTERM: {job:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
