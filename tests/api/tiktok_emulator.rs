//! The TikTok emulator against the contract (spec sections 1–3), driven
//! directly with reqwest: if the emulator let a wrong client through, the
//! app's TikTok tests would prove nothing.

use std::sync::atomic::Ordering;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::emulators::tiktok::{CLIENT_KEY, CLIENT_SECRET, Counts, DISPLAY_NAME, OPEN_ID, TikTok, UserStats};
use crate::support::eventually;

const VERIFIER: &str = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG";
const REDIRECT: &str = "http://127.0.0.1:8765/callback/";

/// A client that shows redirects instead of following them.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// application/x-www-form-urlencoded (reqwest's `form` feature is not enabled).
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn hex_challenge(verifier: &str) -> String {
    hex::encode(Sha256::digest(verifier.as_bytes()))
}

/// GET the authorize page; the response is the 302 (or the 400).
async fn authorize(tt: &TikTok, scope: &str, challenge: &str) -> reqwest::Response {
    let query = [
        ("client_key", CLIENT_KEY),
        ("scope", scope),
        ("redirect_uri", REDIRECT),
        ("state", "csrf-42"),
        ("response_type", "code"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    http().get(format!("{}/v2/auth/authorize/", tt.url)).query(&query).send().await.unwrap()
}

/// The `code` from a 302's Location.
fn code_of(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().unwrap();
    let query = location.strip_prefix(&format!("{REDIRECT}?")).unwrap();
    query.split('&').find_map(|kv| kv.strip_prefix("code=")).unwrap().to_string()
}

/// POST the token endpoint; returns the HTTP status and the body.
async fn token(tt: &TikTok, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut all = vec![("client_key", CLIENT_KEY), ("client_secret", CLIENT_SECRET)];
    all.extend_from_slice(fields);
    let resp = http()
        .post(format!("{}/v2/oauth/token/", tt.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&all))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn exchange(tt: &TikTok, code: &str, verifier: &str) -> (StatusCode, Value) {
    let fields =
        [("code", code), ("grant_type", "authorization_code"), ("redirect_uri", REDIRECT), ("code_verifier", verifier)];
    token(tt, &fields).await
}

/// A full login with PKCE; returns the token response.
async fn login(tt: &TikTok, scope: &str) -> Value {
    let code = code_of(&authorize(tt, scope, &hex_challenge(VERIFIER)).await);
    let (status, body) = exchange(tt, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A bearer JSON POST to a v2 endpoint; returns the HTTP status and the envelope.
async fn api_post(tt: &TikTok, path: &str, access_token: &str, body: Value) -> (StatusCode, Value) {
    let resp = http().post(format!("{}{path}", tt.url)).bearer_auth(access_token).json(&body).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn init(tt: &TikTok, access_token: &str, video_size: u64, chunk_size: u64, chunks: u64) -> (StatusCode, Value) {
    let body = json!({ "source_info": { "source": "FILE_UPLOAD", "video_size": video_size, "chunk_size": chunk_size, "total_chunk_count": chunks } });
    api_post(tt, "/v2/post/publish/inbox/video/init/", access_token, body).await
}

async fn user_info(tt: &TikTok, access_token: &str, fields: &str) -> (StatusCode, Value) {
    let url = format!("{}/v2/user/info/", tt.url);
    let resp = http().get(url).query(&[("fields", fields)]).bearer_auth(access_token).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap()
}

/// TikTok desktop PKCE wants hex(SHA-256(verifier)), not RFC 7636's
/// base64url; a client that sends base64url must fail here as it would live.
/// Codes are single use and bound to their verifier.
#[tokio::test]
async fn pkce_takes_a_hex_challenge_and_codes_are_single_use() {
    let tt = TikTok::start().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let refused = authorize(&tt, "user.info.basic,video.upload", &b64).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let approved = authorize(&tt, "user.info.basic,video.upload", &hex_challenge(VERIFIER)).await;
    let location = approved.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(location.contains("&scopes=user.info.basic%2Cvideo.upload&state=csrf-42"), "{location}");
    let code = code_of(&approved);

    // A wrong verifier: invalid_grant, on HTTP 200.
    let wrong = "x".repeat(43);
    let (status, body) = exchange(&tt, &code, &wrong).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::OK, Some("invalid_grant")));
    assert_eq!(body["error_description"], "Code verifier or code challenge is invalid");

    let (status, body) = exchange(&tt, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["access_token"].as_str().unwrap().starts_with("act."));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rft."));
    assert_eq!(
        (&body["open_id"], &body["scope"], &body["expires_in"], &body["token_type"]),
        (&json!(OPEN_ID), &json!("user.info.basic,video.upload"), &json!(86400), &json!("Bearer"))
    );

    // The same code again.
    let (status, again) = exchange(&tt, &code, VERIFIER).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::OK, Some("invalid_grant")));
    assert_eq!(tt.state.code_grants.load(Ordering::SeqCst), 1);
    let secrets = tt.state.secrets();
    assert!(secrets.contains(&code) && secrets.iter().any(|s| s == body["access_token"].as_str().unwrap()));

    let (status, info) = user_info(&tt, body["access_token"].as_str().unwrap(), "open_id,display_name").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["data"]["user"], json!({ "open_id": OPEN_ID, "display_name": DISPLAY_NAME }));
}

/// Refresh rotates: the new refresh token replaces the old one, which then
/// answers invalid_grant with HTTP 200; earlier access tokens keep working.
#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let tt = TikTok::start().await;
    let first = login(&tt, "user.info.basic").await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = token(&tt, &[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(tt.state.current_refresh_token(OPEN_ID).as_deref(), Some(new));

    let (status, body) = token(&tt, &[("grant_type", "refresh_token"), ("refresh_token", old)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::OK, Some("invalid_grant")));
    assert_eq!(tt.state.refresh_calls.load(Ordering::SeqCst), 2);

    let (status, _) = user_info(&tt, first["access_token"].as_str().unwrap(), "open_id").await;
    assert_eq!(status, StatusCode::OK);

    // A user who removed the app: no refresh token works any more.
    tt.state.revoke_refresh_tokens();
    let (status, body) = token(&tt, &[("grant_type", "refresh_token"), ("refresh_token", new)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::OK, Some("invalid_grant")));
    assert_eq!(tt.state.current_refresh_token(OPEN_ID), None);

    // The token endpoint takes a form, not JSON.
    let body = json!({ "client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET, "grant_type": "refresh_token" });
    let resp = http().post(format!("{}/v2/oauth/token/", tt.url)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    assert_eq!(tt.state.refresh_calls.load(Ordering::SeqCst), 4, "every refresh request counts");

    // A wrong client secret is invalid_client, with a real 401.
    let (status, body) = token(&tt, &[("client_secret", "nope"), ("grant_type", "refresh_token")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
}

/// 12,000,000 bytes in two 6,000,000-byte chunks (floor(12e6/6e6) = 2). The
/// PUT checks the plan from init, the order of chunks and the headers; the
/// finished upload becomes exactly one draft with the bytes' hash.
#[tokio::test]
async fn chunked_upload_becomes_one_draft() {
    let tt = TikTok::start().await;
    let access = login(&tt, "video.upload").await["access_token"].as_str().unwrap().to_string();

    let (status, body) = init(&tt, &access, 12_000_000, 6_000_000, 3).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_param"));
    assert!(body["error"]["message"].as_str().unwrap().contains("floor"));

    let (status, body) = init(&tt, &access, 12_000_000, 6_000_000, 2).await;
    assert_eq!((status, error_code(&body)), (StatusCode::OK, "ok"), "{body}");
    let publish_id = body["data"]["publish_id"].as_str().unwrap().to_string();
    let upload_url = body["data"]["upload_url"].as_str().unwrap().to_string();
    assert!(publish_id.starts_with("v_inbox_file~v2."));

    let video: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let put = |first: usize, last: usize, range: Option<String>| {
        let mut req = http().put(&upload_url).header(CONTENT_TYPE, "video/mp4").body(video[first..=last].to_vec());
        if let Some(range) = range {
            req = req.header(CONTENT_RANGE, range);
        }
        req.send()
    };
    let range = |first: usize, last: usize| Some(format!("bytes {first}-{last}/12000000"));

    // Second chunk first: 416, and the header says nothing arrived yet.
    let resp = put(6_000_000, 11_999_999, range(6_000_000, 11_999_999)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()[CONTENT_RANGE], "bytes */12000000");

    let resp = put(0, 5_999_999, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "missing Content-Range");

    let resp = put(0, 5_999_999, range(0, 5_999_999)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.headers()[CONTENT_RANGE], "bytes 0-5999999/12000000");

    let status_of = || api_post(&tt, "/v2/post/publish/status/fetch/", &access, json!({ "publish_id": publish_id }));
    let (_, body) = status_of().await;
    assert_eq!(body["data"], json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": 6_000_000 }));

    let resp = put(6_000_000, 11_999_999, range(6_000_000, 11_999_999)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Processed after the emulator's inbox delay (200 ms); a handful of looks.
    let processing = json!({ "status": "PROCESSING_UPLOAD", "uploaded_bytes": 12_000_000 });
    let data = eventually(std::time::Duration::from_secs(5), || async {
        let (_, body) = status_of().await;
        if body["data"] == processing { Err(format!("still {body}")) } else { Ok(body["data"].clone()) }
    })
    .await;
    assert_eq!(data, json!({ "status": "SEND_TO_USER_INBOX", "uploaded_bytes": 12_000_000 }));

    let drafts = tt.state.drafts_for(OPEN_ID);
    assert_eq!(drafts.len(), 1);
    assert_eq!((drafts[0].publish_id.as_str(), drafts[0].bytes), (publish_id.as_str(), 12_000_000));
    assert_eq!(drafts[0].sha256, hex::encode(Sha256::digest(&video)));
    assert_eq!(tt.state.put_calls.load(Ordering::SeqCst), 4);
}

/// Init allows 6 calls a minute per token (the 7th is 429) and 5 drafts a
/// day per user (the 6th is 403 spam_risk_too_many_pending_share).
#[tokio::test]
async fn init_is_rate_limited_and_drafts_are_capped() {
    let tt = TikTok::start().await;
    let access = login(&tt, "video.upload").await["access_token"].as_str().unwrap().to_string();
    tt.state.pending_cap.store(100, Ordering::SeqCst);
    for _ in 0..6 {
        assert_eq!(init(&tt, &access, 1000, 1000, 1).await.0, StatusCode::OK);
    }
    let (status, body) = init(&tt, &access, 1000, 1000, 1).await;
    assert_eq!((status, error_code(&body)), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
    assert_eq!(tt.state.rate_limited.load(Ordering::SeqCst), 1);

    let tt = TikTok::start().await;
    let access = login(&tt, "video.upload").await["access_token"].as_str().unwrap().to_string();
    tt.state.init_per_minute.store(100, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(init(&tt, &access, 1000, 1000, 1).await.0, StatusCode::OK);
    }
    let (status, body) = init(&tt, &access, 1000, 1000, 1).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "spam_risk_too_many_pending_share"));
    assert_eq!(tt.state.inits_for(OPEN_ID), 5);
}

/// Expired access tokens and missing scopes are 401s in the v2 envelope.
#[tokio::test]
async fn expired_token_and_missing_scope_are_refused() {
    let tt = TikTok::start().await;
    let access = login(&tt, "user.info.basic").await["access_token"].as_str().unwrap().to_string();

    let (status, body) = init(&tt, &access, 1000, 1000, 1).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "scope_not_authorized"));
    let (status, body) = user_info(&tt, &access, "open_id,bio_description").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "scope_permission_missed"));
    let (status, body) = user_info(&tt, &access, "open_id,follower_count").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "scope_not_authorized"));

    tt.state.expire_access_tokens();
    let (status, body) = user_info(&tt, &access, "open_id").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "access_token_invalid"));
    assert_eq!(body["data"], json!({}));
}

/// Revoking the access token ends the session: the token is refused and the
/// user's refresh token is dead too.
#[tokio::test]
async fn revoke_ends_the_session() {
    let tt = TikTok::start().await;
    let tokens = login(&tt, "user.info.basic").await;
    let access = tokens["access_token"].as_str().unwrap();
    let resp = http()
        .post(format!("{}/v2/oauth/revoke/", tt.url))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("client_key", CLIENT_KEY), ("client_secret", CLIENT_SECRET), ("token", access)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, body) = user_info(&tt, access, "open_id").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "access_token_invalid"));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = token(&tt, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::OK, Some("invalid_grant")));
}

async fn creator_info(tt: &TikTok, access: &str) -> (StatusCode, Value) {
    let resp = http()
        .post(format!("{}/v2/post/publish/creator_info/query/", tt.url))
        .bearer_auth(access)
        .header(CONTENT_TYPE, "application/json; charset=UTF-8")
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// creator_info/query answers the creator's maximum and options only to a
/// valid token granted video.publish, 20 times a minute, in the v2 envelope.
#[tokio::test]
async fn creator_info_needs_a_valid_token_with_video_publish_and_is_limited_to_20_a_minute() {
    let tt = TikTok::start().await;
    let (status, body) = creator_info(&tt, "act.not-a-token").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "access_token_invalid"));
    assert!(body["error"]["log_id"].as_str().is_some_and(|l| !l.is_empty()), "{body}");

    let upload_only = login(&tt, "user.info.basic,video.upload").await["access_token"].as_str().unwrap().to_string();
    let (status, body) = creator_info(&tt, &upload_only).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "scope_not_authorized"));

    tt.state.set_creator(
        OPEN_ID,
        crate::emulators::tiktok::Creator {
            max_video_post_duration_sec: 60,
            privacy_level_options: vec!["FOLLOWER_OF_CREATOR".into(), "SELF_ONLY".into()],
            comment_disabled: true,
            duet_disabled: false,
            stitch_disabled: true,
        },
    );
    let access = login(&tt, "user.info.basic,video.publish").await["access_token"].as_str().unwrap().to_string();
    let (status, body) = creator_info(&tt, &access).await;
    assert_eq!((status, error_code(&body)), (StatusCode::OK, "ok"), "{body}");
    let data = &body["data"];
    assert_eq!(data["max_video_post_duration_sec"], 60);
    assert_eq!(data["privacy_level_options"], json!(["FOLLOWER_OF_CREATOR", "SELF_ONLY"]));
    assert_eq!((data["comment_disabled"].as_bool(), data["stitch_disabled"].as_bool()), (Some(true), Some(true)));
    assert_eq!(data["creator_nickname"], DISPLAY_NAME);

    for _ in 1..20 {
        assert_eq!(creator_info(&tt, &access).await.0, StatusCode::OK);
    }
    let (status, body) = creator_info(&tt, &access).await;
    assert_eq!((status, error_code(&body)), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
    assert_eq!(tt.state.creator_info_calls.load(Ordering::SeqCst), 23);
}

async fn video_query(tt: &TikTok, access_token: &str, fields: Option<&str>, ids: &[String]) -> (StatusCode, Value) {
    let mut req = http().post(format!("{}/v2/video/query/", tt.url)).bearer_auth(access_token);
    if let Some(fields) = fields {
        req = req.query(&[("fields", fields)]);
    }
    let resp = req.json(&json!({ "filters": { "video_ids": ids } })).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// video/query: scope video.list, `fields` required, 1-20 ids, only the
/// caller's videos, a per-token per-minute limit; errors in the envelope.
#[tokio::test]
async fn video_query_enforces_scope_fields_twenty_ids_ownership_and_its_rate() {
    let tt = TikTok::start().await;
    let listed = login(&tt, "user.info.basic,video.list").await["access_token"].as_str().unwrap().to_string();
    let mine = "7100000000000000001".to_string();
    tt.state.add_video(OPEN_ID, &mine, Counts { views: 10, likes: 2, comments: 1, shares: 0 });
    tt.state.add_video("someone-else", "7100000000000000002", Counts::default());
    let fields = Some("id,view_count,like_count,comment_count,share_count");

    let (status, body) = video_query(&tt, &listed, fields, &[mine.clone(), "7100000000000000002".into()]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["videos"],
        json!([{ "id": mine, "view_count": 10, "like_count": 2, "comment_count": 1, "share_count": 0 }]),
        "only the caller's video comes back"
    );
    tt.state.set_counts(&mine, Counts { views: 99, likes: 3, comments: 1, shares: 1 });
    let (_, body) = video_query(&tt, &listed, fields, std::slice::from_ref(&mine)).await;
    assert_eq!(body["data"]["videos"][0]["view_count"], 99);

    let (status, body) = video_query(&tt, &listed, None, std::slice::from_ref(&mine)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_params"), "fields is required");
    let many: Vec<String> = (0..21).map(|i| format!("71{i:017}")).collect();
    let (status, body) = video_query(&tt, &listed, fields, &many).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_params"), "at most 20 ids");
    assert_eq!(body["data"], json!({}));

    let upload_only = login(&tt, "user.info.basic,video.upload").await["access_token"].as_str().unwrap().to_string();
    let (status, body) = video_query(&tt, &upload_only, fields, std::slice::from_ref(&mine)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "scope_not_authorized"));

    tt.state.video_query_per_minute.store(4, Ordering::SeqCst);
    let (status, body) = video_query(&tt, &listed, fields, std::slice::from_ref(&mine)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"), "{body}");
    assert_eq!(tt.state.video_query_calls.load(Ordering::SeqCst), 6);
}

/// The creator posting a draft publicly: status/fetch then names the post
/// (TikTok's misspelled field), and user/info tells the totals set.
#[tokio::test]
async fn a_draft_posted_publicly_is_named_by_status_and_totals_need_user_info_stats() {
    let tt = TikTok::start().await;
    let access =
        login(&tt, "user.info.basic,video.upload,user.info.stats").await["access_token"].as_str().unwrap().to_string();
    let (status, started) = init(&tt, &access, 1000, 1000, 1).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let publish_id = started["data"]["publish_id"].as_str().unwrap().to_string();
    let url = started["data"]["upload_url"].as_str().unwrap().to_string();
    let put = http()
        .put(url)
        .header(CONTENT_TYPE, "video/mp4")
        .header(CONTENT_RANGE, "bytes 0-999/1000")
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let status_of = || api_post(&tt, "/v2/post/publish/status/fetch/", &access, json!({ "publish_id": publish_id }));
    let inbox = eventually(std::time::Duration::from_secs(5), || async {
        let (_, body) = status_of().await;
        if body["data"]["status"] == "SEND_TO_USER_INBOX" { Ok(body) } else { Err(body.to_string()) }
    })
    .await;
    assert!(inbox["data"].get("publicaly_available_post_id").is_none(), "a draft has no post id: {inbox}");
    tt.state.post_publicly(&publish_id, "7200000000000000001");
    let (_, body) = status_of().await;
    assert_eq!(body["data"]["status"], "PUBLISH_COMPLETE");
    assert_eq!(body["data"]["publicaly_available_post_id"], json!([7_200_000_000_000_000_001u64]));

    tt.state.set_user_stats(OPEN_ID, UserStats { followers: 5, following: 6, likes: 7, videos: 8 });
    let (status, body) =
        user_info(&tt, &access, "open_id,follower_count,following_count,likes_count,video_count").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["user"],
        json!({ "open_id": OPEN_ID, "follower_count": 5, "following_count": 6, "likes_count": 7, "video_count": 8 })
    );
}
