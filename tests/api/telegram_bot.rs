//! The two-way Telegram bot against the Bot API emulator and the real app:
//! commands from listed chats act with their key's scopes, strangers get
//! nothing, review buttons decide once through the review gate, a 429 is
//! waited out, one process polls at a time, and webhook deliveries need the
//! secret token.

use std::time::Duration;

use clipforge::app::Roles;
use clipforge::domain::JobState;
use serde_json::{Value, json};

use crate::auth::{create_key, key_id};
use crate::emulators::telegram::{self, Telegram};
use crate::support::{QueueKind, TestApp, eventually, holds, serve_process, spawn_app_with, stored_bytes};

/// A chat listed in `telegram.chats`.
const CHAT: i64 = -1009876543210;
/// A second listed chat, bound to a key of fewer scopes.
const OTHER_CHAT: i64 = 424242;
/// A chat nobody listed.
const STRANGER: i64 = 777000111222;
const WEBHOOK_SECRET: &str = "hook_Secret-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// The settings that point the app at the emulator.
fn bot_env(tg: &Telegram) -> Vec<(String, String)> {
    [
        ("CLIPFORGE__TELEGRAM__BOT_TOKEN", telegram::TOKEN.to_string()),
        ("CLIPFORGE__TELEGRAM__API_URL", tg.url.clone()),
        ("CLIPFORGE__TELEGRAM__TIMEOUT_SECS", "5".into()),
        ("CLIPFORGE__TELEGRAM__POLL_TIMEOUT_SECS", "1".into()),
        ("CLIPFORGE__NOTIFY__POLL_MS", "100".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// An API-only app on fresh stores with the emulator's bot (mode off), for
/// making keys; then `bound` makes one key per (chat, scopes).
async fn stores_with_keys(tg: &Telegram, bound: &[(i64, &str)]) -> (TestApp, String) {
    let env = bot_env(tg);
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let base = spawn_app_with(QueueKind::Sqlite, Roles { api: true, stages: vec![] }, &extra).await;
    let mut chats = Vec::new();
    for (chat, scopes) in bound {
        let key = create_key(&base, &format!("telegram {chat}"), scopes).await;
        chats.push(format!("{chat}={}", key_id(&key)));
    }
    (base, chats.join(","))
}

/// A whole clipforge on `base`'s stores whose bot runs in `mode` for `chats`.
async fn bot_app(base: &TestApp, mode: &str, chats: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("CLIPFORGE__TELEGRAM__MODE", mode),
        ("CLIPFORGE__TELEGRAM__CHATS", chats),
        ("CLIPFORGE__TELEGRAM__WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    env.extend_from_slice(extra);
    base.sibling(Roles::all(), &env).await
}

/// Waits for the `n`th message (1-based) the bot sent to `chat`, and returns it.
async fn nth_reply(tg: &Telegram, chat: i64, n: usize) -> telegram::Received {
    eventually(WAIT, || async {
        let sent = tg.sent_to(chat);
        sent.get(n - 1).cloned().ok_or_else(|| format!("{} messages to chat {chat}: {sent:#?}", sent.len()))
    })
    .await
}

/// The job id in a "Job <id> is queued" reply.
fn job_id_in(text: &str) -> String {
    let id = text.strip_prefix("Job ").and_then(|t| t.split_whitespace().next()).unwrap_or_default();
    assert_eq!(id.len(), 36, "a job id in {text:?}");
    id.to_string()
}

async fn job_ids(app: &TestApp) -> Vec<String> {
    let page: Value = app.get("/v1/jobs?limit=200").await.json().await.unwrap();
    page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn new_from_a_listed_chat_makes_a_job_and_a_stranger_gets_nothing_and_leaves_nothing() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write")]).await;
    let app = bot_app(&base, "polling", &chats, &[]).await;

    tg.say(STRANGER, "/new why dogs bark").await;
    tg.say(STRANGER, "/list").await;
    tg.say(CHAT, "/new why cats purr").await;

    let reply = nth_reply(&tg, CHAT, 1).await;
    assert!(reply.text.ends_with("is queued (topic). I will tell you here how it goes."), "{reply:?}");
    let id = job_id_in(&reply.text);
    let job = app.job(&id).await;
    assert_eq!(job["spec"]["topic"], "why cats purr");
    assert_eq!(job["spec"]["notify"]["telegram_chat_id"], CHAT.to_string(), "its events come back to the chat");
    // Every update was confirmed: the stranger's were ignored on purpose.
    eventually(WAIT, || async { if tg.pending() == 0 { Ok(()) } else { Err(format!("{} pending", tg.pending())) } })
        .await;

    assert_eq!(job_ids(&app).await, [id.clone()], "exactly one job, the listed chat's");
    assert!(tg.sent_to(STRANGER).is_empty(), "no answer to a stranger: {:?}", tg.sent_to(STRANGER));
    let records = app.raw_records();
    assert!(!holds(&records, &STRANGER.to_string()), "the stranger's chat id is stored nowhere");
    assert!(!holds(&records, "why dogs bark"), "nor what the stranger wrote");
    assert!(!holds(&records, telegram::TOKEN.split(':').nth(1).unwrap()), "nor the bot token");
    app.stop().await;
}

#[tokio::test]
async fn new_in_reply_to_a_csv_file_makes_one_job_per_line_once_and_refuses_other_files() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write")]).await;
    let app = bot_app(&base, "polling", &chats, &[]).await;

    let csv = "topic,voice\nwhy cats purr,\nwhy owls hoot,\n,\n";
    let file = tg.send_file(CHAT, "ideas.csv", csv.as_bytes()).await;
    let command = tg.reply(CHAT, &file, "/new").await;
    let reply = nth_reply(&tg, CHAT, 1).await;
    assert!(
        reply.text.starts_with("Batch ") && reply.text.contains("2 of 3 lines queued as jobs, 1 refused"),
        "{reply:?}"
    );
    assert!(
        reply.text.contains("Line 4: script: give a `script` or a `topic`"),
        "the refused line (the file's 4th) is named: {reply:?}"
    );
    let ids = job_ids(&app).await;
    assert_eq!(ids.len(), 2, "one job per good line");
    let mut topics = Vec::new();
    for id in &ids {
        topics.push(app.job(id).await["spec"]["topic"].as_str().unwrap().to_string());
    }
    topics.sort();
    assert_eq!(topics, ["why cats purr", "why owls hoot"]);

    // The same command delivered again (a redelivered update) makes the same batch, no new job.
    tg.push(command).await;
    let again = nth_reply(&tg, CHAT, 2).await;
    let batch = |t: &str| t.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string();
    assert_eq!(batch(&again.text), batch(&reply.text), "{again:?}");
    assert_eq!(job_ids(&app).await.len(), 2, "no job twice");

    // A file of another kind is refused without downloading it.
    let downloads = tg.state.downloads.load(std::sync::atomic::Ordering::SeqCst);
    let png = tg.send_file(CHAT, "cat.png", b"\x89PNG").await;
    tg.reply(CHAT, &png, "/new").await;
    let refused = nth_reply(&tg, CHAT, 3).await;
    assert!(refused.text.contains("is not a batch file"), "{refused:?}");
    assert_eq!(tg.state.downloads.load(std::sync::atomic::Ordering::SeqCst), downloads);
    app.stop().await;
}

#[tokio::test]
async fn approve_acts_once_however_often_it_is_pressed_or_delivered_and_every_press_is_answered() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write,jobs:review")]).await;
    let app = bot_app(&base, "polling", &chats, &[("CLIPFORGE__REVIEW__DEFAULT", "script")]).await;

    tg.say(CHAT, "/new Cats purr when they are content. They also purr when hurt.").await;
    let id = job_id_in(&nth_reply(&tg, CHAT, 1).await.text);
    // The review message: the job's in_review event, with the two buttons.
    let review = eventually(WAIT, || async {
        tg.sent_to(CHAT).into_iter().find(|m| m.keyboard.is_some()).ok_or("no review message yet".to_string())
    })
    .await;
    assert!(review.text.contains(&format!("Job {id} waits for script review")), "{}", review.text);
    let row = review.keyboard.as_ref().unwrap()["inline_keyboard"][0].clone();
    assert_eq!((row[0]["text"].as_str(), row[1]["text"].as_str()), (Some("Approve"), Some("Send back")));
    let approve = row[0]["callback_data"].as_str().unwrap().to_string();
    assert!(approve.len() <= 64);

    let (press, _) = tg.press(CHAT, review.message_id, &approve).await;
    eventually(WAIT, || async { if tg.answers().len() == 1 { Ok(()) } else { Err("no answer yet".to_string()) } })
        .await;
    // The same press delivered again, then a second press.
    tg.push(press).await;
    tg.press(CHAT, review.message_id, &approve).await;
    let answers = eventually(WAIT, || async {
        let a = tg.answers();
        if a.len() == 3 { Ok(a) } else { Err(format!("{} answers: {a:?}", a.len())) }
    })
    .await;
    assert!(answers[0].text.starts_with(&format!("Approved: job {id} is queued")), "{answers:?}");
    for repeat in &answers[1..] {
        assert!(repeat.text.starts_with("Already decided: job is "), "{answers:?}");
    }
    assert_eq!(answers[0].query_id, answers[1].query_id, "the second delivery was of the same press");

    let job = app.wait_for(&id, &[JobState::Staged, JobState::Failed], Duration::from_secs(240)).await;
    let approvals: Vec<&Value> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["note"].as_str().is_some_and(|n| n.starts_with("approved by")))
        .collect();
    assert_eq!(approvals.len(), 1, "exactly one approval event: {job:#}");
    assert_eq!(job["review"]["decisions"].as_array().unwrap().len(), 1, "{job:#}");
    assert_eq!(job["review"]["decisions"][0]["by"], chats.split('=').nth(1).unwrap(), "decided with the chat's key");
    assert_eq!(tg.state.edits.load(std::sync::atomic::Ordering::SeqCst), 1, "the buttons came off once");
    let message = tg.sent_to(CHAT).into_iter().find(|m| m.message_id == review.message_id).unwrap();
    assert!(message.keyboard.is_none(), "no buttons left under the decided message");
    app.stop().await;
}

#[tokio::test]
async fn the_bot_waits_out_a_429_and_carries_on() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read")]).await;
    let app = bot_app(&base, "polling", &chats, &[]).await;
    // The bot polls; its next call is refused 429 with retry_after 1.
    eventually(WAIT, || async {
        if tg.calls_of("getupdates").is_empty() { Err("not polling".to_string()) } else { Ok(()) }
    })
    .await;
    tg.state.throttle_next.store(1, std::sync::atomic::Ordering::SeqCst);
    tg.say(CHAT, "/list").await;

    let reply = nth_reply(&tg, CHAT, 1).await;
    assert_eq!(reply.text, "No jobs yet.");
    let throttled = tg.state.throttled_at.lock().unwrap()[0];
    let calls = tg.calls();
    let next = calls.iter().find(|t| **t > throttled).expect("a call after the 429");
    let waited = next.duration_since(throttled);
    assert!(waited >= Duration::from_millis(950), "the next call came {waited:?} after the 429, before retry_after");
    app.stop().await;
}

#[tokio::test]
async fn status_and_list_answer_what_the_api_would_for_the_chats_key() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read"), (OTHER_CHAT, "jobs:write")]).await;
    let app = bot_app(&base, "polling", &chats, &[]).await;
    let first = app.submit(json!({ "script": "The first one." })).await;
    let second = app.submit(json!({ "topic": "the second one" })).await;

    tg.say(CHAT, "/list").await;
    let list = nth_reply(&tg, CHAT, 1).await.text;
    let api_ids = job_ids(&app).await;
    assert_eq!(api_ids, [second.clone(), first.clone()]);
    assert!(list.starts_with("The 2 newest jobs:\n"), "{list}");
    let listed: Vec<&str> = list.lines().skip(1).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(listed, api_ids, "the API's order: {list}");

    tg.say(CHAT, &format!("/status {first}")).await;
    let status = nth_reply(&tg, CHAT, 2).await.text;
    assert!(status.starts_with(&format!("{first} — ")) && status.contains("The first one."), "{status}");
    let shown_state = status.split(" — ").nth(1).unwrap_or_default();
    assert!(shown_state.parse::<JobState>().is_ok(), "a job state: {status}");

    tg.say(CHAT, "/status 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").await;
    let missing = nth_reply(&tg, CHAT, 3).await.text;
    assert!(missing.contains("(job_not_found)"), "{missing}");
    tg.say(CHAT, "/new a job a reader may not make").await;
    let refused = nth_reply(&tg, CHAT, 4).await.text;
    assert!(refused.contains("lacks the `jobs:write` scope"), "{refused}");

    // A key without jobs:read sees no job, as GET /v1/jobs would refuse it.
    tg.say(OTHER_CHAT, "/list").await;
    let other = nth_reply(&tg, OTHER_CHAT, 1).await.text;
    assert!(other.contains("lacks the `jobs:read` scope"), "{other}");
    tg.say(OTHER_CHAT, &format!("/status {first}")).await;
    let other = nth_reply(&tg, OTHER_CHAT, 2).await.text;
    assert!(other.contains("lacks the `jobs:read` scope") && !other.contains("The first one."), "{other}");
    assert_eq!(job_ids(&app).await.len(), 2, "nothing was made");
    app.stop().await;
}

#[tokio::test]
async fn two_processes_poll_one_at_a_time_and_each_update_is_acted_on_once() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write")]).await;
    let one = bot_app(&base, "polling", &chats, &[]).await;
    let two = bot_app(&base, "polling", &chats, &[]).await;
    for topic in ["owls", "bees", "moles"] {
        tg.say(CHAT, &format!("/new why {topic} matter")).await;
    }
    nth_reply(&tg, CHAT, 3).await;
    eventually(WAIT, || async { if tg.pending() == 0 { Ok(()) } else { Err(format!("{} pending", tg.pending())) } })
        .await;
    let answers = tg.sent_to(CHAT).into_iter().filter(|m| m.text.contains("is queued (topic)")).count();
    assert_eq!(answers, 3, "one answer per command: {:#?}", tg.sent_to(CHAT));
    assert_eq!(job_ids(&one).await.len(), 3);
    assert_eq!(tg.state.conflicts.load(std::sync::atomic::Ordering::SeqCst), 0, "never two pollers at once");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_webhook_delivery_needs_the_secret_token_and_then_acts() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write")]).await;
    let app = bot_app(&base, "webhook", &chats, &[]).await;
    let hook = format!("{}/telegram/webhook", app.address);
    let update = json!({ "update_id": 1, "message": {
        "message_id": 9, "chat": { "id": CHAT, "type": "private" }, "date": 0, "text": "/new why frogs sing" } });

    for secret in [None, Some("wrong"), Some(&WEBHOOK_SECRET[1..])] {
        let mut post = app.http.post(&hook).json(&update);
        if let Some(secret) = secret {
            post = post.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let resp = post.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, crate::support::error_code(&body)), (401, "telegram_secret_mismatch"), "{secret:?}");
    }
    assert!(job_ids(&app).await.is_empty(), "refused deliveries act on nothing");
    assert!(tg.messages().is_empty());

    // Registered as Telegram would have it: deliveries carry the secret.
    let set = json!({ "url": hook, "secret_token": WEBHOOK_SECRET });
    let resp = app.http.post(format!("{}/bot{}/setWebhook", tg.url, telegram::TOKEN)).json(&set).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(tg.say(CHAT, "/new why frogs sing").await, Some(200));
    let reply = nth_reply(&tg, CHAT, 1).await;
    let id = job_id_in(&reply.text);
    assert_eq!(job_ids(&app).await, [id]);
    assert_eq!(tg.say(STRANGER, "/new why toads sing").await, Some(200), "a stranger's update is taken and ignored");
    assert_eq!(job_ids(&app).await.len(), 1);
    assert!(tg.calls_of("getupdates").is_empty(), "webhook mode never polls");
    app.stop().await;
}

#[tokio::test]
async fn the_emulator_holds_the_bot_apis_contract() {
    let tg = Telegram::start().await;
    let http = reqwest::Client::new();
    let call = |method: &str, body: Value| {
        let req = http.post(format!("{}/bot{}/{method}", tg.url, telegram::TOKEN)).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // An offset confirms every update below it.
    tg.say(CHAT, "/list").await;
    tg.say(CHAT, "/help").await;
    let (_, got) = call("getUpdates", json!({})).await;
    let ids: Vec<i64> = got["result"].as_array().unwrap().iter().map(|u| u["update_id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let (_, got) = call("getUpdates", json!({ "offset": ids[1] })).await;
    assert_eq!(got["result"].as_array().unwrap().len(), 1);
    assert_eq!(tg.pending(), 1);

    // A second poller ends the first with 409.
    let long = call("getUpdates", json!({ "offset": ids[1] + 1, "timeout": 5 }));
    let (first, second) = tokio::join!(long, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call("getUpdates", json!({ "offset": ids[1] + 1 })).await
    });
    assert_eq!(first.0, 409, "{first:?}");
    assert_eq!(first.1["ok"], false);
    assert!(first.1["description"].as_str().unwrap().starts_with("Conflict: terminated by other getUpdates"));
    assert_eq!(second.0, 200);

    // A webhook set: getUpdates is 409; a bad secret_token is refused.
    let (status, _) =
        call("setWebhook", json!({ "url": "https://example.com/hook", "secret_token": "no spaces" })).await;
    assert_eq!(status, 400);
    assert_eq!(call("setWebhook", json!({ "url": "https://example.com/hook", "secret_token": "ok_1" })).await.0, 200);
    let (status, body) = call("getUpdates", json!({})).await;
    assert_eq!((status, body["error_code"].as_i64()), (409, Some(409)));
    assert_eq!(call("deleteWebhook", json!({})).await.0, 200);

    // Buttons: callback_data of 1-64 bytes only.
    let button = |data: String| {
        json!({ "chat_id": CHAT, "text": "x", "reply_markup":
        { "inline_keyboard": [[{ "text": "Go", "callback_data": data }]] } })
    };
    assert_eq!(call("sendMessage", button("a".repeat(64))).await.0, 200);
    let (status, body) = call("sendMessage", button("a".repeat(65))).await;
    assert_eq!((status, body["description"].as_str()), (400, Some("Bad Request: BUTTON_DATA_INVALID")));
    // Only a press's query can be answered.
    assert_eq!(call("answerCallbackQuery", json!({ "callback_query_id": "made-up" })).await.0, 400);
    // 429 with parameters.retry_after.
    tg.state.throttle_next.store(3, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = call("getUpdates", json!({})).await;
    assert_eq!((status, body["parameters"]["retry_after"].as_u64()), (429, Some(3)));
    assert_eq!(body["ok"], false);
}

#[tokio::test]
async fn the_bot_token_is_in_no_log_line_record_or_answer() {
    let tg = Telegram::start().await;
    let (base, chats) = stores_with_keys(&tg, &[(CHAT, "jobs:read,jobs:write")]).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env = base.env.clone();
    for (k, v) in [
        ("CLIPFORGE__SERVER__LISTEN", format!("127.0.0.1:{port}")),
        ("CLIPFORGE__TELEGRAM__MODE", "polling".into()),
        ("CLIPFORGE__TELEGRAM__CHATS", chats),
    ] {
        env.push((k.to_string(), v));
    }
    let log = base.data.path().join("serve.log");
    let (mut serve, _) = serve_process(&env, &log).await;
    tg.say(CHAT, "/new why cats purr").await;
    tg.say(CHAT, "/list").await;
    let listed = nth_reply(&tg, CHAT, 2).await;
    tg.state.throttle_next.store(1, std::sync::atomic::Ordering::SeqCst);
    tg.say(CHAT, "/status nope").await;
    nth_reply(&tg, CHAT, 3).await;
    serve.kill().unwrap();
    serve.wait().unwrap();

    let secret = telegram::TOKEN.split(':').nth(1).unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("job submitted from Telegram"), "the log is the process's");
    assert!(log_text.contains("polling Telegram for updates"));
    assert!(!log_text.contains(secret), "the token is in the log");
    let records_url = base.records_url();
    let stored =
        stored_bytes(base.data.path(), &log, records_url.starts_with("postgres").then_some(records_url.as_str()));
    assert!(!holds(&stored, secret), "the token is stored");
    for m in tg.messages() {
        assert!(!m.text.contains(secret), "an answer holds the token: {}", m.text);
    }
    assert!(listed.text.starts_with("The 1 newest jobs:"), "{}", listed.text);
}
