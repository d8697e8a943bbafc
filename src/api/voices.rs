//! The narrator's voices: the list with each voice's languages, a spoken
//! sample of one voice (the studio's "hear it"), and the check at submission
//! that a job's voice can speak its language.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::domain::{FieldError, JobSpec, Voice};
use crate::error_code as codes;
use crate::providers::voice::VoiceInfo;
use crate::providers::{CostMeter, ProviderError};
use crate::store::objects::ObjectKey;

/// The configured narrator's voices.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceList {
    /// The narrator (`providers.voice.type`).
    pub narrator: &'static str,
    /// The voice of jobs that name none (and whose language it speaks).
    pub default_voice: String,
    pub voices: Vec<VoiceInfo>,
}

/// What a voice sample says; every field may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleText {
    /// 1-300 characters; default: a short sentence in the voice's first language.
    pub text: Option<String>,
}

/// The sentence a voice says when asked for no text, by language subtag; a
/// language without one here hears the English sentence.
pub const SAMPLE_SENTENCES: &[(&str, &str)] = &[
    ("en", "Hello! This is how I sound in your next video."),
    ("hi", "नमस्ते! आपके अगले वीडियो में मेरी आवाज़ ऐसी सुनाई देगी।"),
    ("ja", "こんにちは。次の動画では、私はこんな声で話します。"),
    ("zh", "你好！这就是我在你下一个视频里的声音。"),
    ("cmn", "你好！这就是我在你下一个视频里的声音。"),
    ("ko", "안녕하세요! 다음 영상에서 제 목소리는 이렇게 들립니다."),
    ("es", "¡Hola! Así sonaré en tu próximo vídeo."),
    ("fr", "Bonjour ! Voici ma voix dans votre prochaine vidéo."),
    ("de", "Hallo! So klinge ich in deinem nächsten Video."),
    ("pt", "Olá! É assim que eu soo no seu próximo vídeo."),
    ("it", "Ciao! Ecco come suonerò nel tuo prossimo video."),
    ("ru", "Привет! Так я буду звучать в вашем следующем видео."),
    ("ar", "مرحبا! هكذا سيبدو صوتي في الفيديو القادم."),
    ("th", "สวัสดี นี่คือเสียงของฉันในวิดีโอถัดไปของคุณ"),
];

/// The sample sentence for a voice's languages.
pub fn sample_sentence(languages: &[String]) -> &'static str {
    let primary = |tag: &str| tag.split(['-', '_']).next().unwrap_or(tag).to_ascii_lowercase();
    languages
        .iter()
        .find_map(|l| SAMPLE_SENTENCES.iter().find(|(lang, _)| *lang == primary(l)).map(|(_, s)| *s))
        .unwrap_or(SAMPLE_SENTENCES[0].1)
}

fn provider_answer(e: ProviderError) -> ApiError {
    let status = if e.retryable { StatusCode::BAD_GATEWAY } else { StatusCode::UNPROCESSABLE_ENTITY };
    ApiError::relayed(status, e.code, e.to_string())
}

/// The voices of the configured narrator, each with its languages, and the default.
#[utoipa::path(get, path = "/v1/voices", tag = "studio",
    responses((status = 200, body = VoiceList),
              (status = 502, description = "The narrator's vendor could not list them", body = ErrorBody)))]
pub async fn list_voices(State(state): State<ApiState>) -> Result<Json<VoiceList>, ApiError> {
    let narrator = &state.pipeline.providers.voice;
    let voices = narrator.voices().await.map_err(provider_answer)?;
    Ok(Json(VoiceList {
        narrator: narrator.name(),
        default_voice: narrator.default_voice().as_str().to_string(),
        voices: voices.as_ref().clone(),
    }))
}

/// Speaks a short sentence in one voice, as a WAV file: the studio's "hear
/// it". Without a body (or without `text`) the voice says a sentence in its
/// own language. Each sample is kept in the provider cache by voice and
/// text, so asking again costs nothing.
#[utoipa::path(post, path = "/v1/voices/{id}/preview", tag = "studio", request_body(content = SampleText, description = "Optional"),
    params(("id" = String, Path, description = "A voice id from `GET /v1/voices`")),
    responses((status = 200, description = "The sample", content_type = "audio/wav"),
              (status = 404, description = "The narrator has no such voice", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn voice_preview(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sample: SampleText = if body.iter().all(u8::is_ascii_whitespace) {
        SampleText::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::UNPROCESSABLE,
                format!("the body is not a sample: {e}"),
            )
        })?
    };
    let Ok(voice) = Voice::parse(&id) else {
        return Err(no_such_voice(&state, &id));
    };
    let narrator = &state.pipeline.providers.voice;
    let voices = narrator.voices().await.map_err(provider_answer)?;
    let info = voices.iter().find(|v| v.id == voice.as_str());
    if info.is_none() && !voices.is_empty() {
        return Err(no_such_voice(&state, &id));
    }
    let text = match sample.text {
        Some(text) => text,
        None => sample_sentence(info.map(|i| i.languages.as_slice()).unwrap_or_default()).to_string(),
    };
    speak_sample(&state, &voice, &text).await
}

fn no_such_voice(state: &ApiState, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::VOICE_NOT_FOUND,
        format!(
            "{} has no voice `{}`; GET /v1/voices lists them",
            state.pipeline.providers.voice.name(),
            crate::domain::echo(id)
        ),
    )
}

/// Longest text a voice sample narrates, in characters.
pub const MAX_SAMPLE_CHARS: usize = 300;

/// `text` spoken in `voice` as WAV bytes, from the cache when said before.
pub async fn speak_sample(state: &ApiState, voice: &Voice, text: &str) -> Result<Response, ApiError> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_SAMPLE_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::invalid_spec(vec![FieldError::new(
            "text",
            codes::INVALID_SAMPLE_TEXT,
            format!(
                "the sample text must be 1-{MAX_SAMPLE_CHARS} characters without control characters; it is {chars}"
            ),
        )]));
    }
    let narrator = &state.pipeline.providers.voice;
    let address = crate::pipeline::content_address(&[narrator.name(), &narrator.cache_identity(voice), text]);
    let unavailable = |e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e);
    let key = ObjectKey::parse(&format!("cache/voice-sample/{address}.wav")).map_err(unavailable)?;
    let objects = &state.pipeline.objects;
    let bytes = match objects.get_bytes(&key).await.map_err(unavailable)? {
        Some(bytes) => bytes,
        None => {
            let dir = tempfile::tempdir().map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?;
            let spoken = narrator
                .narrate(&[text.to_string()], voice, dir.path(), &CostMeter::default())
                .await
                .map_err(provider_answer)?;
            objects.put_file(&key, &spoken.wav).await.map_err(unavailable)?;
            tokio::fs::read(&spoken.wav).await.map_err(|e| ApiError::unavailable(codes::OBJECT_STORE_UNAVAILABLE, e))?
        }
    };
    Ok(([(header::CONTENT_TYPE, "audio/wav"), (header::CACHE_CONTROL, "private, max-age=3600")], bytes).into_response())
}

/// How long a submission waits for the narrator's voice list before it
/// leaves the check to prepare.
const LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// At submission: a job whose voice cannot speak its language (given, or
/// detected from the script or topic) is refused, naming both; see
/// `providers::voice::catalogue` for the rule.
pub async fn check_job_voice(state: &ApiState, spec: &JobSpec) -> Result<(), ApiError> {
    if spec.media.as_ref().is_some_and(|m| m.voiceover.is_some()) {
        // The team's own voice-over speaks; the narrator is never asked.
        return Ok(());
    }
    let language = crate::pipeline::job_language(spec, None);
    let narrator = state.pipeline.providers.voice.as_ref();
    let language = language.as_ref().map(|(l, s)| (l, *s));
    crate::providers::voice::voice_for(narrator, spec.voice.as_ref(), language, Some(LIST_WAIT))
        .await
        .map(|_| ())
        .map_err(|e| ApiError::invalid_spec(vec![e]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voice_says_its_own_language_or_english() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(sample_sentence(&l(&["hi"])).starts_with("नमस्ते"));
        assert!(sample_sentence(&l(&["pt-br", "pt"])).starts_with("Olá"));
        assert!(sample_sentence(&l(&["cmn", "zh-cmn", "zh"])).starts_with("你好"));
        assert!(sample_sentence(&l(&["xx"])).starts_with("Hello"));
        assert!(sample_sentence(&[]).starts_with("Hello"));
        assert!(SAMPLE_SENTENCES.iter().all(|(_, s)| s.chars().count() <= MAX_SAMPLE_CHARS));
    }
}
