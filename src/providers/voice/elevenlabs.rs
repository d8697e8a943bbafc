//! ElevenLabs text-to-speech with timestamps.
//!
//! Long scripts are split at sentence ends into requests under the configured
//! character limit; their audio is joined and each request's word times are
//! shifted by the audio before it. ElevenLabs limits concurrent requests, not
//! requests per minute, so a semaphore bounds the requests in flight.
//!
//! A voice's languages come from `GET /v1/voices` (its `verified_languages`
//! for the configured model, and its `labels.language`), within the languages
//! of the model (`GET /v1/models`); a voice that lists none speaks every
//! language of the model. Both lists are read once per process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::alignment::{Alignment, words_from_alignment};
use super::catalogue::VoiceInfo;
use super::settings::ElevenLabsSettings;
use super::{Narrator, SpokenNarration, write_narration};
use crate::domain::{SentenceTiming, Voice, WordTiming};
use crate::error_code as codes;
use crate::media::process::{self, Invocation};
use crate::media::wav::{Pcm, PcmFormat};
use crate::providers::http::HttpSettings;
use crate::providers::http::{self, CallPolicy, ErrorTally};
use crate::providers::{CostMeter, ProviderError};

const NAME: &str = "elevenlabs";
/// Sample rate narration is decoded to.
const DECODE_RATE: u32 = 44_100;

/// The ElevenLabs narrator.
pub struct ElevenLabsNarrator {
    base_url: String,
    api_key: SecretString,
    model_id: String,
    default_voice: Voice,
    output_format: String,
    max_chars: usize,
    slots: Arc<Semaphore>,
    client: reqwest::Client,
    policy: CallPolicy,
    ffmpeg: PathBuf,
    languages: BTreeMap<String, String>,
    voices: tokio::sync::OnceCell<Arc<Vec<VoiceInfo>>>,
}

impl ElevenLabsNarrator {
    pub fn new(s: &ElevenLabsSettings, http: &HttpSettings, tally: Arc<ErrorTally>, ffmpeg: PathBuf) -> Self {
        Self {
            base_url: s.base_url.trim_end_matches('/').to_string(),
            api_key: s.api_key.clone().expect("checked in settings"),
            model_id: s.model_id.clone(),
            default_voice: Voice::parse(&s.default_voice).expect("checked in settings"),
            output_format: s.output_format.clone(),
            max_chars: s.max_chars_per_request,
            slots: Arc::new(Semaphore::new(s.concurrency)),
            client: http::client(s.timeout()),
            policy: CallPolicy::new(http, tally),
            ffmpeg,
            languages: s.languages.clone(),
            voices: tokio::sync::OnceCell::new(),
        }
    }
}

/// Groups consecutive sentences into requests of at most `max_chars` characters
/// (joined with spaces). A sentence longer than that goes alone.
pub fn chunk_sentences(sentences: &[String], max_chars: usize) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut len = 0;
    for (i, s) in sentences.iter().enumerate() {
        let n = s.chars().count();
        match chunks.last_mut() {
            Some(chunk) if len + 1 + n <= max_chars => {
                chunk.push(i);
                len += 1 + n;
            }
            _ => {
                chunks.push(vec![i]);
                len = n;
            }
        }
    }
    chunks
}

#[derive(Deserialize)]
struct WithTimestamps {
    audio_base64: String,
    alignment: Option<Alignment>,
}

#[derive(Deserialize)]
struct VoiceList {
    voices: Vec<ListedVoice>,
}

#[derive(Deserialize)]
struct ListedVoice {
    voice_id: String,
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
    #[serde(default)]
    verified_languages: Option<Vec<VerifiedLanguage>>,
}

#[derive(Deserialize)]
struct VerifiedLanguage {
    language: String,
    model_id: Option<String>,
    locale: Option<String>,
}

#[derive(Deserialize)]
struct ListedModel {
    model_id: String,
    #[serde(default)]
    languages: Vec<ModelLanguage>,
}

#[derive(Deserialize)]
struct ModelLanguage {
    language_id: String,
}

/// The voices of `GET /v1/voices` with their languages for `model_id`, as
/// the module docs say, given the model list of `GET /v1/models`.
fn voices_for_model(list: VoiceList, models: &[ListedModel], model_id: &str) -> Vec<VoiceInfo> {
    let model: Vec<String> = models
        .iter()
        .find(|m| m.model_id == model_id)
        .map(|m| m.languages.iter().map(|l| l.language_id.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let in_model = |tag: &str| {
        let primary = tag.split(['-', '_']).next().unwrap_or(tag).to_ascii_lowercase();
        model.is_empty() || model.iter().any(|m| m.split(['-', '_']).next() == Some(primary.as_str()))
    };
    list.voices
        .into_iter()
        .map(|v| {
            let mut languages: Vec<String> = Vec::new();
            let mut add = |tag: &str| {
                if !tag.is_empty() && in_model(tag) && !languages.iter().any(|l| l.eq_ignore_ascii_case(tag)) {
                    languages.push(tag.to_string());
                }
            };
            for verified in v.verified_languages.iter().flatten() {
                if verified.model_id.as_deref().is_none_or(|m| m == model_id) {
                    add(verified.locale.as_deref().unwrap_or(&verified.language));
                    add(&verified.language);
                }
            }
            if let Some(label) = v.labels.get("language").and_then(Value::as_str) {
                add(label);
            }
            if languages.is_empty() {
                languages = model.clone();
            }
            VoiceInfo { name: v.name.unwrap_or_else(|| v.voice_id.clone()), id: v.voice_id, languages }
        })
        .collect()
}

/// Maps an error answer (`{"detail": {"status", "message"}}`) to ours.
fn classify(status: reqwest::StatusCode, body: &Value) -> ProviderError {
    let detail_status = body["detail"]["status"].as_str().unwrap_or_default();
    let message = body["detail"]["message"].as_str().map(str::to_string).unwrap_or_else(|| body["detail"].to_string());
    let (code, retryable) = match (status.as_u16(), detail_status) {
        (401, "quota_exceeded") => (codes::QUOTA_EXCEEDED, false),
        (401, _) => (codes::INVALID_API_KEY, false),
        (400 | 404, "voice_not_found") | (404, _) => (codes::VOICE_NOT_FOUND, false),
        (400, "max_character_limit_exceeded") => (codes::TEXT_TOO_LONG, false),
        (429, _) => (codes::RATE_LIMITED, true),
        (s, _) if s >= 500 => (codes::UPSTREAM_ERROR, true),
        _ => (codes::BAD_REQUEST, false),
    };
    ProviderError::new(NAME, code, format!("ElevenLabs said {status}: {detail_status} {message}"), retryable)
}

/// ffmpeg arguments that decode `input` to 16-bit mono WAV at `rate`.
pub fn decode_args(input: &Path, output: &Path, rate: u32) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i"].map(OsString::from).to_vec();
    args.push(input.into());
    args.extend(["-ac", "1", "-ar"].map(OsString::from));
    args.push(rate.to_string().into());
    args.extend(["-c:a", "pcm_s16le"].map(OsString::from));
    args.push(output.into());
    args
}

impl ElevenLabsNarrator {
    /// A GET of a list, with the retry policy of every call.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        self.policy
            .run(|| async {
                let resp = self
                    .client
                    .get(&url)
                    .header("xi-api-key", self.api_key.expose_secret())
                    .send()
                    .await
                    .map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                let wait = http::retry_after(resp.headers());
                if !status.is_success() {
                    let value: Value = resp.json().await.unwrap_or(Value::Null);
                    return Err(classify(status, &value).after(wait));
                }
                resp.json::<T>().await.map_err(|e| {
                    ProviderError::new(NAME, codes::BAD_ANSWER, format!("unreadable {path}: {}", e.without_url()), true)
                })
            })
            .await
    }

    /// One request: the chunk's audio as PCM and its alignment.
    async fn speak(
        &self,
        index: usize,
        texts: [&str; 3],
        voice: &Voice,
        dir: &Path,
    ) -> Result<(Pcm, Alignment), ProviderError> {
        let [previous, text, next] = texts;
        let url = format!("{}/v1/text-to-speech/{}/with-timestamps", self.base_url, voice.as_str());
        let mut body = json!({ "text": text, "model_id": self.model_id });
        if !previous.is_empty() {
            body["previous_text"] = json!(previous);
        }
        if !next.is_empty() {
            body["next_text"] = json!(next);
        }
        let answer: WithTimestamps = self
            .policy
            .run(|| async {
                let _slot = self.slots.acquire().await.expect("semaphore is never closed");
                let resp = self
                    .client
                    .post(&url)
                    .query(&[("output_format", self.output_format.as_str())])
                    .header("xi-api-key", self.api_key.expose_secret())
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                let wait = http::retry_after(resp.headers());
                if !status.is_success() {
                    let value: Value = resp.json().await.unwrap_or(Value::Null);
                    return Err(classify(status, &value).after(wait));
                }
                resp.json::<WithTimestamps>().await.map_err(|e| {
                    ProviderError::new(NAME, codes::BAD_ANSWER, format!("unreadable answer: {}", e.without_url()), true)
                })
            })
            .await?;
        let audio = base64::engine::general_purpose::STANDARD
            .decode(answer.audio_base64.as_bytes())
            .map_err(|e| ProviderError::new(NAME, codes::BAD_ANSWER, format!("audio is not base64: {e}"), true))?;
        let pcm = self.decode(index, &audio, dir).await?;
        Ok((pcm, answer.alignment.unwrap_or_default()))
    }

    async fn decode(&self, index: usize, audio: &[u8], dir: &Path) -> Result<Pcm, ProviderError> {
        if let Some(rate) = self.output_format.strip_prefix("pcm_") {
            let sample_rate =
                rate.parse().map_err(|_| ProviderError::new(NAME, codes::BAD_FORMAT, "unknown pcm rate", false))?;
            let format = PcmFormat { channels: 1, sample_rate, bits_per_sample: 16 };
            return Ok(Pcm { format, data: audio[..audio.len() - audio.len() % 2].to_vec() });
        }
        let encoded = dir.join(format!("part-{index}.mp3"));
        let wav = dir.join(format!("part-{index}.wav"));
        tokio::fs::write(&encoded, audio).await.map_err(|e| ProviderError::io(NAME, e))?;
        let inv =
            Invocation::new(self.ffmpeg.clone(), decode_args(&encoded, &wav, DECODE_RATE), Duration::from_secs(120));
        process::run(&inv).await.map_err(|e| ProviderError::new(NAME, codes::BAD_AUDIO, e.to_string(), false))?;
        Pcm::read(&wav).await.map_err(|e| ProviderError::new(NAME, codes::BAD_AUDIO, e.to_string(), false))
    }
}

/// Sentence spans from the words: each sentence owns as many words as it has.
fn sentence_timings(sentences: &[&String], words: &[WordTiming], fallback: (f64, f64)) -> Vec<SentenceTiming> {
    let counts: Vec<usize> = sentences.iter().map(|s| crate::domain::caption_words(s).len()).collect();
    if counts.iter().sum::<usize>() != words.len() || words.is_empty() {
        return sentences
            .iter()
            .map(|s| SentenceTiming { text: (*s).clone(), start_s: fallback.0, end_s: fallback.1 })
            .collect();
    }
    let mut at = 0;
    sentences
        .iter()
        .zip(counts)
        .map(|(s, n)| {
            let own = &words[at..at + n];
            at += n;
            let (start_s, end_s) = match (own.first(), own.last()) {
                (Some(a), Some(b)) => (a.start_s, b.end_s),
                _ => (fallback.0, fallback.0),
            };
            SentenceTiming { text: (*s).clone(), start_s, end_s }
        })
        .collect()
}

#[async_trait]
impl Narrator for ElevenLabsNarrator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn default_voice(&self) -> Voice {
        self.default_voice.clone()
    }

    async fn voices(&self) -> Result<Arc<Vec<VoiceInfo>>, ProviderError> {
        self.voices
            .get_or_try_init(|| async {
                let list: VoiceList = self.get_json("/v1/voices").await?;
                let models: Vec<ListedModel> = self.get_json("/v1/models").await?;
                Ok(Arc::new(voices_for_model(list, &models, &self.model_id)))
            })
            .await
            .cloned()
    }

    fn configured_languages(&self) -> &BTreeMap<String, String> {
        &self.languages
    }

    fn cache_identity(&self, voice: &Voice) -> String {
        format!("elevenlabs/{}/{}/{}", voice.as_str(), self.model_id, self.output_format)
    }

    async fn narrate(
        &self,
        sentences: &[String],
        voice: &Voice,
        dir: &Path,
        meter: &CostMeter,
    ) -> Result<SpokenNarration, ProviderError> {
        let chunks = chunk_sentences(sentences, self.max_chars);
        let texts: Vec<String> =
            chunks.iter().map(|c| c.iter().map(|&i| sentences[i].as_str()).collect::<Vec<_>>().join(" ")).collect();
        let requests = texts.iter().enumerate().map(|(i, text)| {
            let previous = if i > 0 { texts[i - 1].as_str() } else { "" };
            let next = texts.get(i + 1).map_or("", String::as_str);
            self.speak(i, [previous, text, next], voice, dir)
        });
        let parts = futures::future::try_join_all(requests).await?;
        let characters: usize = texts.iter().map(|t| t.chars().count()).sum();
        CostMeter::add(&meter.tts_characters, characters as u64);

        let (wav, duration_s, offsets) = write_narration(NAME, parts.iter().map(|(pcm, _)| pcm), 0.0, dir).await?;
        let (mut words, mut timings) = (Vec::new(), Vec::new());
        for (((chunk, text), (pcm, alignment)), offset) in chunks.iter().zip(&texts).zip(&parts).zip(offsets) {
            let chunk_words = words_from_alignment(text, alignment, offset);
            let own: Vec<&String> = chunk.iter().map(|&i| &sentences[i]).collect();
            timings.extend(sentence_timings(&own, &chunk_words, (offset, offset + pcm.duration_s())));
            words.extend(chunk_words);
        }
        Ok(SpokenNarration { wav, duration_s, sentences: timings, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sentences_are_grouped_under_the_character_limit() {
        let sentences = s(&["aaaa", "bbbb", "cccc", "dddddddddddd"]);
        assert_eq!(chunk_sentences(&sentences, 9), vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(chunk_sentences(&sentences, 100), vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn error_details_map_to_stable_codes() {
        let body = |status: &str| json!({ "detail": { "status": status, "message": "m" } });
        let code = |st: u16, b: Value| {
            let e = classify(reqwest::StatusCode::from_u16(st).unwrap(), &b);
            (e.code.as_str(), e.retryable)
        };
        assert_eq!(code(401, body("invalid_api_key")), ("invalid_api_key", false));
        assert_eq!(code(401, body("quota_exceeded")), ("quota_exceeded", false));
        assert_eq!(code(400, body("voice_not_found")), ("voice_not_found", false));
        assert_eq!(code(429, body("system_busy")), ("rate_limited", true));
        assert_eq!(code(503, Value::Null), ("upstream_error", true));
    }

    #[test]
    fn voice_languages_are_the_verified_ones_within_the_model() {
        let list: VoiceList = serde_json::from_value(json!({ "voices": [
            { "voice_id": "a", "name": "Rachel", "labels": { "accent": "american", "language": "en" },
              "verified_languages": [{ "language": "en", "model_id": "eleven_multilingual_v2", "locale": "en-US" },
                                     { "language": "hi", "model_id": "eleven_flash_v2_5" }] },
            { "voice_id": "b", "name": "Priya", "labels": {},
              "verified_languages": [{ "language": "hi", "model_id": "eleven_multilingual_v2" }] },
            { "voice_id": "c", "labels": {} },
            { "voice_id": "d", "labels": { "language": "xx" } }
        ]}))
        .unwrap();
        let models: Vec<ListedModel> = serde_json::from_value(json!([
            { "model_id": "eleven_multilingual_v2", "languages": [{ "language_id": "en", "name": "English" }, { "language_id": "hi", "name": "Hindi" }] },
            { "model_id": "eleven_flash_v2_5", "languages": [{ "language_id": "ja", "name": "Japanese" }] }
        ]))
        .unwrap();
        let v = voices_for_model(list, &models, "eleven_multilingual_v2");
        let langs: Vec<(&str, Vec<&str>)> =
            v.iter().map(|v| (v.id.as_str(), v.languages.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            langs,
            [("a", vec!["en-US", "en"]), ("b", vec!["hi"]), ("c", vec!["en", "hi"]), ("d", vec!["en", "hi"])]
        );
        assert_eq!(v[2].name, "c");
    }

    #[test]
    fn sentence_spans_come_from_their_words() {
        let words: Vec<WordTiming> = [("One", 0.0, 0.3), ("two.", 0.4, 0.7), ("Three.", 1.0, 1.5)]
            .iter()
            .map(|(t, a, b)| WordTiming { text: t.to_string(), start_s: *a, end_s: *b })
            .collect();
        let sentences = s(&["One two.", "Three."]);
        let refs: Vec<&String> = sentences.iter().collect();
        let t = sentence_timings(&refs, &words, (0.0, 2.0));
        assert_eq!((t[0].start_s, t[0].end_s, t[1].start_s, t[1].end_s), (0.0, 0.7, 1.0, 1.5));
    }
}
