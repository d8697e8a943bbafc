//! The studio in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver), against the real app. What a person sees: the
//! form's per-field errors, the progress bar moving without a reload, a video
//! that plays, the review gate, sign-in, and the refusals a forged page meets.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clipforge::app::Roles;

use clipforge::domain::JobState;
use clipforge::store::records::{NewApiKey, Scope};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::emulators::tiktok::TikTok;
use crate::support::{QueueKind, TestApp, spawn_app_with};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A free port on loopback (bound, read, released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An app whose `server.url` is its real address, as a browser sees it (the
/// Origin the browser sends must be the server's own).
async fn studio_app(roles: Roles, extra: &[(&str, &str)]) -> TestApp {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}");
    let mut pairs: Vec<(&str, &str)> = vec![("CLIPFORGE__SERVER__LISTEN", &listen), ("CLIPFORGE__SERVER__URL", &url)];
    pairs.extend_from_slice(extra);
    spawn_app_with(QueueKind::Sqlite, roles, &pairs).await
}

/// Headless Chromium behind its own chromedriver; both stop when dropped.
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    /// None (after saying why) where the browser is not installed, except on
    /// CI, where the test command installs it and its absence is a failure.
    pub(crate) async fn start(width: u32, height: u32) -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have chromium and chromium-driver (tests/run.sh installs them)"
            );
            eprintln!(
                "SKIPPED: no {CHROMIUM} / {CHROMEDRIVER}; `apt-get install chromium chromium-driver` to run the browser tests"
            );
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        let mut options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--mute-audio", format!("--window-size={width},{height}")],
        });
        // A window is never narrower than about 500 px; a phone's screen is
        // emulated instead (its viewport, touch and user agent).
        if width < 500 {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1 } });
        }
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not take a session within 30 s: {e}"),
            }
        };
        Some(Browser { client: Some(client), driver })
    }

    pub(crate) fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub(crate) async fn open(&self, url: &str) {
        self.c().goto(url).await.unwrap();
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap()
    }

    /// Waits until `script` (a JavaScript expression) is truthy; answers its last value.
    pub(crate) async fn until(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.c().execute(&format!("return ({script});"), vec![]).await.unwrap_or(Value::Null);
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return v;
            }
            if started.elapsed() > timeout {
                let body = self.js("return document.body.innerText").await;
                panic!("{what}: not seen within {timeout:?}; the page says:\n{}", body.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self.c().find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.c().find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.c().find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    pub(crate) async fn path(&self) -> String {
        let url = self.c().current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Saves what the window shows as a PNG (under docs/screenshots with
    /// CLIPFORGE_SCREENSHOTS=1, else in a temporary folder) and checks it is one.
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2_000, "{name}: not a picture");
        let dir = if std::env::var_os("CLIPFORGE_SCREENSHOTS").is_some() {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
        } else {
            std::env::temp_dir().join("clipforge-screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group of
        // their own: end them all, also when a test fails half-way.
        drop(self.client.take());
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

async fn job_count(app: &TestApp) -> usize {
    let page: Value = app.get("/v1/jobs?limit=200").await.json().await.unwrap();
    page["jobs"].as_array().unwrap().len()
}

#[tokio::test]
async fn bad_input_in_the_form_shows_the_apis_messages_beside_the_fields_and_stores_nothing() {
    let app = studio_app(Roles { api: true, stages: vec![] }, &[]).await;
    let Some(b) = Browser::start(390, 844).await else { return };
    b.open(&format!("{}/", app.address)).await;
    b.until("the form", Duration::from_secs(10), "document.getElementById('new-job')").await;
    // "Hear it" narrates the first sentence with the narrator the jobs use.
    b.type_into("#script", "Hear this first sentence. Not this one.").await;
    b.click("#hear-voice").await;
    let heard = b
        .until(
            "the voice sample",
            Duration::from_secs(30),
            "(() => { const a = document.getElementById('voice-sample'); return !a.hidden && a.duration > 0 ? a.duration : null })()",
        )
        .await;
    assert!(heard.as_f64().unwrap() > 0.5, "a sentence takes more than half a second: {heard}");
    b.type_into("#script", "").await;
    b.type_into("#voice", "not a voice!").await;
    b.type_into("#music_track", "../../etc/passwd").await;
    b.click("#submit-job").await;
    b.until("the voice's error", Duration::from_secs(10), "!document.getElementById('err-voice').hidden").await;

    // The messages are the API's own, for the same request.
    let api: Value = app
        .post_job_raw(r#"{"script":"","voice":"not a voice!","music":{"track":"../../etc/passwd"},"captions":true}"#)
        .await
        .json()
        .await
        .unwrap();
    let details = api["error"]["details"].as_array().unwrap().clone();
    for field in ["script", "voice"] {
        let want = details.iter().find(|d| d["field"] == field).unwrap_or_else(|| panic!("no {field} in {api}"));
        let shown = b.text(&format!("#err-{field}")).await;
        assert!(shown.contains(want["message"].as_str().unwrap()), "{field}: shows `{shown}`, API says {want}");
        let invalid = b.js(&format!("return document.getElementById('{field}').getAttribute('aria-invalid')")).await;
        assert_eq!(invalid, "true", "{field} is marked invalid for screen readers");
    }
    assert_eq!(b.path().await, "/", "still on the form");
    assert_eq!(job_count(&app).await, 0, "nothing was stored");
    b.screenshot("new-video-errors-390x844").await;
}

#[tokio::test]
async fn a_new_user_submits_a_script_sees_the_progress_move_without_a_reload_and_plays_the_video() {
    let app = studio_app(Roles::all(), &[]).await;
    let Some(b) = Browser::start(1280, 800).await else { return };
    b.open(&format!("{}/", app.address)).await;
    b.until("the form", Duration::from_secs(10), "document.getElementById('script')").await;
    b.type_into("#script", "The studio makes this video. It plays in the page. Then it is staged.").await;
    // The caption style select lists GET /v1/styles; choosing one shows its still.
    b.until(
        "the caption styles",
        Duration::from_secs(10),
        "document.querySelectorAll('#caption_style option').length >= 6",
    )
    .await;
    let still = b
        .js("const s = document.getElementById('caption_style'); s.value = 'highlight'; \
             s.dispatchEvent(new Event('change')); return document.getElementById('caption-style-preview').src")
        .await;
    assert!(still.as_str().unwrap().ends_with("/v1/styles/preview.png?style=highlight"), "{still}");
    b.click("#submit-job").await;
    b.until("the job page", Duration::from_secs(15), "location.pathname.startsWith('/jobs/')").await;
    let id = b.path().await.trim_start_matches("/jobs/").to_string();
    // A marker that a reload would wipe, and every progress value the bar shows.
    b.js("window.__sameDocument = true; window.__seen = []; \
          setInterval(() => { const p = document.getElementById('job-progress'); \
            const s = document.getElementById('job-stage').textContent + ':' + p.value; \
            if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s); }, 50); return 1;")
        .await;
    b.until("the staged state", Duration::from_secs(240), "document.querySelector('#job-state[data-state=staged]')")
        .await;
    let seen = b.js("return window.__seen").await;
    let moved: Vec<&str> = seen.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        moved.iter().any(|s| {
            let (_, v) = s.rsplit_once(':').unwrap();
            v != "0" && v != "100"
        }) || moved.len() >= 3,
        "the bar moved while the job ran: {moved:?}"
    );
    assert_eq!(b.js("return window.__sameDocument === true").await, true, "no reload happened");

    let ready = b
        .until(
            "the video to load",
            Duration::from_secs(30),
            "(() => { const v = document.getElementById('job-video'); \
              return v.readyState >= 2 && v.duration > 0 ? [v.readyState, v.duration, v.videoWidth, v.videoHeight] : null })()",
        )
        .await;
    let duration = ready[1].as_f64().unwrap();
    assert_eq!((ready[2].as_u64(), ready[3].as_u64()), (Some(1080), Some(1920)), "{ready}");
    let job = app.job(&id).await;
    assert_eq!(job["state"], "staged");
    assert_eq!(
        job["spec"]["caption_style"],
        serde_json::json!({ "preset": "highlight" }),
        "the chosen style went with the job"
    );
    let staged = job["outputs"]["video"]["duration_s"].as_f64().unwrap();
    assert!((duration - staged).abs() < 0.2, "the player's duration {duration} is the staged video's {staged}");
    // Seeking works: the server answers ranges.
    let part = app
        .http
        .get(format!("{}/v1/jobs/{id}/video", app.address))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    b.screenshot("job-1280x800").await;
}

/// Waits for the job to reach `state` through the API.
async fn wait_state(app: &TestApp, id: &str, state: JobState) -> Value {
    let job = app.wait_for(id, &[state, JobState::Failed, JobState::Cancelled], Duration::from_secs(240)).await;
    assert_eq!(job["state"], state.as_str(), "{job:#}");
    job
}

#[tokio::test]
async fn a_video_review_stops_before_tiktok_and_an_approval_in_the_studio_makes_exactly_one_draft() {
    let emu = TikTok::start().await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}");
    let extra = [("CLIPFORGE__SERVER__LISTEN", listen.as_str()), ("CLIPFORGE__SERVER__URL", url.as_str())];
    let app = crate::tiktok::app_with_tiktok(&emu, QueueKind::Sqlite, Roles::all(), &extra).await;
    let account = crate::tiktok::connect_account(&app).await;
    let Some(b) = Browser::start(1280, 800).await else { return };

    let id =
        app.submit(json!({ "script": "Approve me before TikTok.", "account": account["id"], "review": "video" })).await;
    wait_state(&app, &id, JobState::InReview).await;
    assert!(emu.state.drafts().is_empty(), "nothing reached TikTok before the approval");

    // The page a reviewer link opens, pictured at this size while the job waits.
    let link: Value =
        app.http.post(format!("{}/v1/jobs/{id}/review-link", app.address)).send().await.unwrap().json().await.unwrap();
    b.open(link["url"].as_str().unwrap()).await;
    b.until("the reviewer's video", Duration::from_secs(20), "document.getElementById('job-video').readyState >= 1")
        .await;
    b.screenshot("reviewer-1280x800").await;

    b.open(&format!("{}/review", app.address)).await;
    b.until(
        "the job in the review queue",
        Duration::from_secs(10),
        &format!("document.querySelector('#review-list [data-job=\"{id}\"] a')"),
    )
    .await;
    b.screenshot("review-1280x800").await;
    b.click(&format!("#review-list [data-job=\"{id}\"] a")).await;
    b.until("the review box", Duration::from_secs(10), "!document.getElementById('review-box').hidden").await;
    b.click("#act-approve").await;
    b.until("in the inbox", Duration::from_secs(240), "document.querySelector('#job-state[data-state=in_inbox]')")
        .await;
    assert_eq!(emu.state.drafts().len(), 1, "exactly one draft");
    b.open(&format!("{}/accounts", app.address)).await;
    let drafts = b
        .until("the account's drafts", Duration::from_secs(10), "document.querySelector('.drafts')?.textContent")
        .await;
    assert!(drafts.as_str().unwrap().contains(": 1 of "), "{drafts}");
    b.screenshot("accounts-1280x800").await;

    // Sent back with a note, edited, rendered again, approved.
    let second = app.submit(json!({ "script": "First take.", "review": "video" })).await;
    wait_state(&app, &second, JobState::InReview).await;
    b.open(&format!("{}/jobs/{second}", app.address)).await;
    b.until("the review box", Duration::from_secs(10), "!document.getElementById('review-box').hidden").await;
    b.click("#act-reject").await;
    b.until("the note is asked for", Duration::from_secs(10), "!document.getElementById('err-note').hidden").await;
    assert_eq!(app.job(&second).await["state"], "in_review", "no note, no rejection");
    b.type_into("#review-note", "Say it shorter.").await;
    b.click("#act-reject").await;
    b.until("sent back", Duration::from_secs(10), "document.querySelector('#job-state[data-state=changes_requested]')")
        .await;
    b.until("the revise form", Duration::from_secs(10), "!document.getElementById('revise-box').hidden").await;
    assert!(b.text("#revise-note").await.contains("Say it shorter."));
    b.type_into("#revise-script", "Second take, shorter.").await;
    b.c().find(Locator::Css("#revise-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_state(&app, &second, JobState::InReview).await;
    let job = app.job(&second).await;
    let sentences = job["manifest"]["script"]["sentences"].to_string();
    assert!(sentences.contains("Second take"), "the new script was narrated: {sentences}");
    b.open(&format!("{}/jobs/{second}", app.address)).await;
    b.until("the review box", Duration::from_secs(10), "!document.getElementById('review-box').hidden").await;
    b.click("#act-approve").await;
    wait_state(&app, &second, JobState::Staged).await;
}

/// Makes a key in the app's records; returns (key, id).
async fn make_key(app: &TestApp, name: &str, scopes: Vec<Scope>) -> (String, String) {
    let (key, new) = NewApiKey::generate(name, scopes);
    app.records().await.create_api_key(&new).await.unwrap();
    (key.expose_secret().to_string(), new.id)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A page of another site, which posts a job form to the app as soon as it loads.
async fn forging_site(target: &str) -> String {
    let page = format!(
        "<!doctype html><title>win a prize</title><form id=f method=post action=\"{target}/v1/jobs\" enctype=text/plain>\
         <input name='{{\"script\":\"forged\",\"x\":\"' value='\"}}'></form><script>document.getElementById('f').submit()</script>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // `localhost` and `127.0.0.1` are different sites to a browser.
    format!("http://localhost:{port}/")
}

#[tokio::test]
async fn with_keys_on_pages_need_a_sign_in_forged_requests_are_refused_and_a_revoked_key_ends_its_session() {
    let app = studio_app(Roles { api: true, stages: vec![] }, &[("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")]).await;
    let (admin, _) = make_key(&app, "operator", vec![Scope::Admin]).await;
    let (writer, writer_id) = make_key(&app, "writer", vec![Scope::JobsRead, Scope::JobsWrite]).await;
    let http = no_redirects();
    let some_job = uuid::Uuid::now_v7();
    for path in ["/", "/jobs", "/review", "/batches", "/accounts", "/keys", "/system", &format!("/jobs/{some_job}")] {
        let resp = http.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path} without a session");
        let to = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/signin?next=/"), "{path} → {to}");
    }
    assert_eq!(http.get(format!("{}/v1/jobs", app.address)).send().await.unwrap().status(), 401);

    // The cookie a sign-in sets.
    let signin = http
        .post(format!("{}/signin", app.address))
        .header("origin", &app.address)
        .form(&[("key", writer.as_str()), ("next", "/jobs")])
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), 303);
    let cookie = signin.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not Secure on plain http: {cookie}");
    assert!(!cookie.contains(&writer), "the cookie is not the key");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", app.address)).header("cookie", &session)
    };
    assert_eq!(with_cookie(reqwest::Method::GET, "/v1/jobs").send().await.unwrap().status(), 200);
    let scripted =
        with_cookie(reqwest::Method::POST, "/v1/jobs").json(&json!({"script": "No browser."})).send().await.unwrap();
    assert_eq!(scripted.status(), 403, "a cookie without Origin or Sec-Fetch-Site is no page of ours");
    let body: Value = scripted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request");
    let foreign = with_cookie(reqwest::Method::POST, "/v1/jobs")
        .header("origin", "http://evil.example")
        .json(&json!({"script": "Forged."}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let rebound = with_cookie(reqwest::Method::GET, "/jobs").header("host", "evil.example").send().await.unwrap();
    assert_eq!(rebound.status(), 421, "a wrong Host is refused, pages included");

    // In the browser: signing in, then a forged form from another site.
    let Some(b) = Browser::start(1280, 800).await else { return };
    b.open(&format!("{}/jobs", app.address)).await;
    b.until("the sign-in page", Duration::from_secs(10), "location.pathname === '/signin'").await;
    b.screenshot("signin-1280x800").await;
    b.type_into("#key", "cfk_wrong_key").await;
    b.click("form[action='/signin'] button").await;
    b.until("the refusal", Duration::from_secs(10), "document.getElementById('signin-error')").await;
    b.type_into("#key", &writer).await;
    b.click("form[action='/signin'] button").await;
    b.until(
        "the jobs page",
        Duration::from_secs(10),
        "location.pathname === '/jobs' && document.getElementById('job-table')",
    )
    .await;
    assert_eq!(
        b.js("return document.cookie.includes('clipforge_session')").await,
        false,
        "scripts cannot read the session"
    );
    let nav = b.text("header nav").await;
    assert!(
        nav.contains("Jobs") && !nav.contains("Keys") && !nav.contains("System"),
        "the nav follows the scopes: {nav}"
    );

    let phone = Browser::start(390, 844).await.expect("the browser started above");
    phone.open(&format!("{}/jobs", app.address)).await;
    phone.until("the sign-in page", Duration::from_secs(10), "location.pathname === '/signin'").await;
    phone.screenshot("signin-390x844").await;
    drop(phone);

    b.open(&forging_site(&app.address).await).await;
    // The forged form posts on load; the browser then shows the app's answer.
    let answered = format!("location.href.startsWith('{}/v1/jobs')", app.address);
    b.until("the forged post's answer", Duration::from_secs(10), &answered).await;
    let shown = b.js("return document.body.innerText").await;
    assert!(shown.as_str().unwrap().contains("cross_site_request"), "refused at the door: {shown}");
    let jobs: Value =
        http.get(format!("{}/v1/jobs", app.address)).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "the forged post stored nothing");

    // Revoking the key ends its session at the next request.
    let revoked = http.delete(format!("{}/v1/keys/{writer_id}", app.address)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(with_cookie(reqwest::Method::GET, "/v1/jobs").send().await.unwrap().status(), 401);
    b.open(&format!("{}/jobs", app.address)).await;
    b.until("the sign-in page again", Duration::from_secs(10), "location.pathname === '/signin'").await;
}

#[tokio::test]
async fn a_reviewer_link_opens_its_one_job_until_it_expires_and_refuses_any_change() {
    let app = studio_app(Roles::all(), &[("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")]).await;
    let (key, _) = make_key(&app, "team", vec![Scope::JobsRead, Scope::JobsWrite, Scope::JobsReview]).await;
    let http = no_redirects();
    let submit = |script: &'static str| {
        http.post(format!("{}/v1/jobs", app.address))
            .bearer_auth(&key)
            .json(&json!({"script": script, "review": "video"}))
    };
    let a: Value = submit("Review me by link.").send().await.unwrap().json().await.unwrap();
    let b_job: Value = submit("The other job.").send().await.unwrap().json().await.unwrap();
    let (a, other) = (a["job_id"].as_str().unwrap().to_string(), b_job["job_id"].as_str().unwrap().to_string());
    let in_review = |id: String| {
        let http = http.clone();
        let (address, key) = (app.address.clone(), key.clone());
        async move {
            crate::support::eventually(Duration::from_secs(240), || {
                let (http, address, key, id) = (http.clone(), address.clone(), key.clone(), id.clone());
                async move {
                    let job: Value = http
                        .get(format!("{address}/v1/jobs/{id}"))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .json()
                        .await
                        .map_err(|e| e.to_string())?;
                    assert!(!["failed", "cancelled", "staged"].contains(&job["state"].as_str().unwrap()), "{job}");
                    if job["state"] == "in_review" { Ok(()) } else { Err(format!("{job}")) }
                }
            })
            .await
        }
    };
    in_review(a.clone()).await;
    in_review(other.clone()).await;

    let made = http.post(format!("{}/v1/jobs/{a}/review-link", app.address)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let url = made["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/r/{a}.", app.address)), "{url}");
    let token = url.rsplit('/').next().unwrap().to_string();

    // Without any key: the page and the job's view.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let view: Value = http.get(format!("{url}/job")).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["id"], a.as_str());
    assert!(view["outputs"]["video"]["path"].is_null(), "no server path for an outsider");
    assert_eq!(
        http.get(format!("{}/v1/jobs/{other}", app.address)).send().await.unwrap().status(),
        401,
        "the link is no key"
    );

    let refused = |token: String| {
        let http = http.clone();
        let address = app.address.clone();
        async move {
            let resp = http.get(format!("{address}/r/{token}/job")).send().await.unwrap();
            assert_eq!(resp.status(), 403, "{token}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "review_link_invalid");
            body["error"]["message"].as_str().unwrap().to_string()
        }
    };
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    refused(String::from_utf8(tampered).unwrap()).await;
    refused(token.replacen(&a, &other, 1)).await;
    let records = app.records().await;
    let secret = records.shared_secret("review_links", "unused").await.unwrap();
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let stale = clipforge::studio::links::sign(secret.as_bytes(), &clipforge::domain::JobId::parse(&a).unwrap(), past);
    assert!(refused(stale).await.contains("expired"));
    let page = http.get(format!("{}/r/{}x", app.address, token)).send().await.unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("not one this server made"));

    // The reviewer approves in the browser.
    let Some(b) = Browser::start(390, 844).await else { return };
    b.open(&url).await;
    b.until("the video", Duration::from_secs(20), "document.getElementById('job-video').readyState >= 1").await;
    b.screenshot("reviewer-390x844").await;
    b.click("#act-approve").await;
    b.until("approved", Duration::from_secs(10), "document.getElementById('act-message').textContent === 'Approved.'")
        .await;
    crate::support::eventually(Duration::from_secs(240), || async {
        let state = job_state(&http, &app, &key, &a).await;
        assert!(!["failed", "cancelled"].contains(&state.as_str()), "{state}");
        if state == "staged" { Ok(()) } else { Err(state) }
    })
    .await;
    let decisions = job_view(&http, &app, &key, &a).await["review"]["decisions"].clone();
    assert_eq!(decisions[0]["by"], "reviewer link", "{decisions}");
    assert_eq!(job_state(&http, &app, &key, &other).await, "in_review", "the other job is untouched");
}

async fn job_view(http: &reqwest::Client, app: &TestApp, key: &str, id: &str) -> Value {
    http.get(format!("{}/v1/jobs/{id}", app.address)).bearer_auth(key).send().await.unwrap().json().await.unwrap()
}

async fn job_state(http: &reqwest::Client, app: &TestApp, key: &str, id: &str) -> String {
    job_view(http, app, key, id).await["state"].as_str().unwrap().to_string()
}

/// Checks every page at a desktop and a phone size: nothing wider than the
/// screen, every control labelled, one h1; and saves a screenshot of each.
#[tokio::test]
async fn every_page_fits_a_phone_labels_its_controls_and_is_pictured() {
    let app = studio_app(Roles::all(), &[]).await;
    let id = app.submit(json!({ "script": "A job to show on every page." })).await;
    app.wait_staged(&id).await;
    let pages = [
        ("new-video", "/".to_string()),
        ("ideas", "/ideas".to_string()),
        ("jobs", "/jobs".to_string()),
        ("job", format!("/jobs/{id}")),
        ("review", "/review".to_string()),
        ("batches", "/batches".to_string()),
        ("accounts", "/accounts".to_string()),
        ("keys", "/keys".to_string()),
        ("system", "/system".to_string()),
        ("performance", "/performance?group_by=topic".to_string()),
    ];
    for (width, height) in [(1280, 800), (390, 844)] {
        let Some(b) = Browser::start(width, height).await else { return };
        for (name, path) in &pages {
            b.open(&format!("{}{path}", app.address)).await;
            b.until(name, Duration::from_secs(10), "document.readyState === 'complete'").await;
            // What the page script fills in has arrived (a row, a player, a part).
            let filled = match *name {
                "new-video" => "document.querySelector('figure.preview img').naturalWidth === 270",
                "jobs" => "document.querySelector('#job-table tbody tr')",
                "job" => "document.getElementById('job-video').readyState >= 1",
                "system" => "document.querySelector('#system-table tbody tr')",
                _ => "true",
            };
            b.until(name, Duration::from_secs(20), filled).await;
            let facts = b
                .js("const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]\
                       .filter(e => !e.hidden && e.offsetParent !== null)\
                       .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())\
                       .map(e => e.id || e.outerHTML.slice(0, 60));\
                     const over = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)                       .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8);                     return { over, inner: innerWidth, wide: document.documentElement.scrollWidth, h1: document.querySelectorAll('h1').length, unlabelled };")
                .await;
            assert!(
                facts["wide"].as_u64().unwrap() <= width as u64,
                "{name} at {width}px is wider than the screen: {facts}"
            );
            assert_eq!(facts["h1"], 1, "{name}: one h1");
            assert_eq!(facts["unlabelled"], json!([]), "{name}: every control has a label");
            b.screenshot(&format!("{name}-{width}x{height}")).await;
        }
    }
}

/// On a phone: a page's URL, a count and a key of one's own give the ideas
/// as a list of checkboxes; two ticked and one button make two jobs with
/// those topics. The key field is a password field that the page never
/// fills back in.
#[tokio::test]
async fn on_a_phone_two_ideas_from_a_page_become_two_jobs_with_one_button() {
    let site = crate::ideas::PageServer::start(None).await;
    let entry = site.entry();
    let app =
        studio_app(Roles { api: true, stages: vec![] }, &[("CLIPFORGE__IDEAS__ALLOWED_PRIVATE_HOSTS", &entry)]).await;
    let Some(b) = Browser::start(390, 844).await else { return };
    b.open(&format!("{}/ideas", app.address)).await;
    b.until("the ideas form", Duration::from_secs(10), "document.getElementById('ideas-form')").await;
    let nav = b.js("return [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))").await;
    assert!(nav.as_array().unwrap().contains(&json!("/ideas")), "the navigation links the page: {nav}");
    let key_field = b
        .js("const k = document.getElementById('ideas-llm_key'); return [k.type, k.getAttribute('autocomplete'), k.labels.length]")
        .await;
    assert_eq!(key_field, json!(["password", "off", 1]));
    b.type_into("#ideas-url", &site.url("/article")).await;
    b.type_into("#ideas-count", "3").await;
    b.click("#ideas-submit").await;
    b.until(
        "three ideas",
        Duration::from_secs(20),
        "document.querySelectorAll('#ideas-list input[type=checkbox]').length === 3",
    )
    .await;
    let topics =
        b.js("return [...document.querySelectorAll('#ideas-list label')].map(l => l.textContent.trim())").await;
    assert_eq!(topics, json!(["Life in a tide pool", "Why anemones close", "How to visit without harm"]));
    b.click("#idea-0").await;
    b.click("#idea-2").await;
    b.click("#ideas-make").await;
    b.until(
        "the jobs made",
        Duration::from_secs(20),
        "document.querySelectorAll('#ideas-made a[href^=\"/jobs/\"]').length === 2",
    )
    .await;
    let wide = b.js("return document.documentElement.scrollWidth").await;
    assert!(wide.as_u64().unwrap() <= 390, "the page fits the phone: {wide}");
    b.screenshot("ideas-chosen-390x844").await;
    let page: Value = app.get("/v1/jobs").await.json().await.unwrap();
    let mut made: Vec<String> =
        page["jobs"].as_array().unwrap().iter().map(|j| j["spec"]["topic"].as_str().unwrap().to_string()).collect();
    made.sort();
    assert_eq!(made, ["How to visit without harm", "Life in a tide pool"]);
}
