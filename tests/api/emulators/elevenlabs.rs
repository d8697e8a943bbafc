//! ElevenLabs text-to-speech with timestamps (spec section 4). Real audio:
//! espeak-ng speaks the text and ffmpeg encodes it as the asked format; the
//! alignment spreads the characters over the spoken span. It speaks at 2.5
//! words a second (espeak-ng `-s 126`), the pace clipforge assumes of
//! ElevenLabs' voices. `GET /v1/voices` and `GET /v1/models` list an English
//! and a Hindi voice and the multilingual model's languages, in the shapes
//! of the public API reference (labels, verified_languages, languages).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::{Fault, Faults, SLOW, serve};

pub const KEY: &str = "xi-emulated-secret-abcdef0123456789";
pub const VOICE: &str = "voiceAlpha01";
/// A voice verified for Hindi only.
pub const HINDI_VOICE: &str = "voiceHindi02";
/// The espeak-ng speed that makes 2.5 words a second (it speaks 1.19 times its `-s`).
const ESPEAK_SPEED: &str = "126";
/// Characters per request for eleven_multilingual_v2.
pub const MODEL_LIMIT: usize = 10_000;
/// Requests served at once before 429 too_many_concurrent_requests.
pub const MAX_CONCURRENT: u32 = 3;

#[derive(Default)]
pub struct ElevenLabsState {
    pub calls: AtomicU32,
    pub characters: AtomicU64,
    pub in_flight: AtomicU32,
    /// `GET /v1/voices` and `GET /v1/models` calls.
    pub list_calls: AtomicU32,
    pub faults: Faults,
    /// (text, alignment) of every successful answer.
    pub answered: Mutex<Vec<(String, Value)>>,
}

pub struct ElevenLabs {
    pub url: String,
    pub state: Arc<ElevenLabsState>,
}

impl ElevenLabs {
    pub async fn start() -> Self {
        let state = Arc::new(ElevenLabsState::default());
        let router = axum::Router::new()
            .route("/v1/text-to-speech/{voice}/with-timestamps", post(speak))
            .route("/v1/voices", get(voices))
            .route("/v1/models", get(models))
            .with_state(state.clone());
        Self { url: serve(router).await, state }
    }

    pub fn calls(&self) -> u32 {
        self.state.calls.load(Ordering::SeqCst)
    }
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "detail": { "status": code, "message": message } }))).into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("xi-api-key").and_then(|v| v.to_str().ok()) == Some(KEY)
}

async fn voices(State(state): State<Arc<ElevenLabsState>>, headers: HeaderMap) -> Response {
    state.list_calls.fetch_add(1, Ordering::SeqCst);
    if !authorised(&headers) {
        return detail(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key");
    }
    let voice = |id: &str, name: &str, lang: &str, accent: &str| {
        json!({
            "voice_id": id, "name": name, "category": "premade",
            "labels": { "accent": accent, "gender": "female", "language": lang },
            "verified_languages": [{ "language": lang, "model_id": "eleven_multilingual_v2", "accent": accent,
                                     "locale": null, "preview_url": null }],
            "preview_url": null
        })
    };
    Json(json!({ "voices": [voice(VOICE, "Alpha", "en", "american"), voice(HINDI_VOICE, "Priya", "hi", "standard")],
                 "has_more": false, "total_count": 2 }))
    .into_response()
}

async fn models(State(state): State<Arc<ElevenLabsState>>, headers: HeaderMap) -> Response {
    state.list_calls.fetch_add(1, Ordering::SeqCst);
    if !authorised(&headers) {
        return detail(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key");
    }
    let langs =
        |l: &[(&str, &str)]| l.iter().map(|(id, name)| json!({ "language_id": id, "name": name })).collect::<Vec<_>>();
    Json(json!([
        { "model_id": "eleven_multilingual_v2", "name": "Eleven Multilingual v2", "can_do_text_to_speech": true,
          "languages": langs(&[("en", "English"), ("hi", "Hindi"), ("ja", "Japanese"), ("zh", "Chinese"), ("es", "Spanish")]) },
        { "model_id": "eleven_flash_v2_5", "name": "Eleven Flash v2.5", "can_do_text_to_speech": true,
          "languages": langs(&[("en", "English"), ("vi", "Vietnamese")]) }
    ]))
    .into_response()
}

struct InFlight<'a>(&'a AtomicU32);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn speak(
    State(state): State<Arc<ElevenLabsState>>,
    Path(voice): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    if headers.get("xi-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return detail(StatusCode::UNAUTHORIZED, "invalid_api_key", "Invalid API key");
    }
    if voice != VOICE && voice != HINDI_VOICE {
        return detail(
            StatusCode::BAD_REQUEST,
            "voice_not_found",
            &format!("A voice with the voice_id {voice} was not found."),
        );
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "detail": [{ "loc": ["body"], "msg": "invalid JSON" }] })),
        )
            .into_response();
    };
    let Some(text) = req["text"].as_str() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "detail": [{ "loc": ["body", "text"], "msg": "field required" }] })),
        )
            .into_response();
    };
    if req["model_id"] != "eleven_multilingual_v2" {
        // Our contract: model_id is always sent explicitly.
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "detail": [{ "loc": ["body", "model_id"], "msg": "explicit eleven_multilingual_v2 expected" }] })))
            .into_response();
    }
    if text.chars().count() > MODEL_LIMIT {
        return detail(StatusCode::BAD_REQUEST, "max_character_limit_exceeded", "Text is too long");
    }
    let format = query.get("output_format").cloned().unwrap_or_else(|| "mp3_44100_128".into());
    if !format.starts_with("mp3_") {
        return detail(StatusCode::FORBIDDEN, "output_format_not_allowed", "pcm output needs a higher tier");
    }
    if state.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_CONCURRENT {
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
        return detail(StatusCode::TOO_MANY_REQUESTS, "too_many_concurrent_requests", "Too many concurrent requests");
    }
    let _guard = InFlight(&state.in_flight);
    match state.faults.next() {
        Some(Fault::TooManyRequests) => return detail(StatusCode::TOO_MANY_REQUESTS, "system_busy", "busy, retry"),
        Some(Fault::ServerError) => return detail(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "oops"),
        Some(Fault::Slow) => tokio::time::sleep(SLOW).await,
        None => {}
    }
    let (audio, duration) = synthesise(text, if voice == HINDI_VOICE { "hi" } else { "en" }).await;
    let alignment = align(text, duration);
    state.characters.fetch_add(text.chars().count() as u64, Ordering::SeqCst);
    state.answered.lock().unwrap().push((text.to_string(), alignment.clone()));
    Json(json!({
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(audio),
        "alignment": alignment,
        "normalized_alignment": alignment
    }))
    .into_response()
}

/// Real speech: espeak-ng to WAV, ffmpeg to MP3. Returns (mp3 bytes, seconds).
async fn synthesise(text: &str, espeak_voice: &str) -> (Vec<u8>, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (txt, wav, mp3) = (dir.path().join("t.txt"), dir.path().join("s.wav"), dir.path().join("s.mp3"));
    tokio::fs::write(&txt, text).await.unwrap();
    let ok = tokio::process::Command::new("espeak-ng")
        .args(["-s", ESPEAK_SPEED, "-v", espeak_voice])
        .arg("-w")
        .arg(&wav)
        .arg("-f")
        .arg(&txt)
        .status()
        .await
        .unwrap();
    assert!(ok.success());
    let ok = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "128k"])
        .arg(&mp3)
        .status()
        .await
        .unwrap();
    assert!(ok.success());
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(&wav)
        .output()
        .await
        .unwrap();
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap();
    (tokio::fs::read(&mp3).await.unwrap(), duration)
}

/// Characters spread evenly over 5%..95% of the audio, one item per character.
fn align(text: &str, duration: f64) -> Value {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let (start, span) = (duration * 0.05, duration * 0.9);
    let step = span / chars.len().max(1) as f64;
    let starts: Vec<f64> = (0..chars.len()).map(|i| start + step * i as f64).collect();
    let ends: Vec<f64> = starts.iter().map(|s| s + step).collect();
    json!({ "characters": chars, "character_start_times_seconds": starts, "character_end_times_seconds": ends })
}
