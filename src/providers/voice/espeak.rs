//! espeak-ng, offline narration.
//!
//! espeak-ng gives no word timings, so each sentence is synthesised on its own:
//! its speech starts and ends where its samples rise above silence, and its
//! words are spread inside that span. The sentences are joined with a short
//! pause into one WAV.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::catalogue::{VoiceInfo, parse_espeak_voices};
use super::{Narrator, SpokenNarration, spread_words, write_narration};
use crate::domain::{SentenceTiming, Voice};
use crate::error_code as codes;
use crate::media::process::{self, Invocation, ProcessError};
use crate::media::wav::Pcm;
use crate::providers::{CostMeter, ProviderError};

const NAME: &str = "espeak";
/// Silence between sentences, in seconds.
const PAUSE_S: f64 = 0.2;
/// A sample louder than this (of 32767) counts as speech.
const SPEECH_THRESHOLD: i16 = 300;
/// How much faster than its `-s` words per minute espeak-ng 1.51 really
/// speaks, measured: an English text of 113 words took 34.5 s at `-s 165`
/// (3.28 words/s against a nominal 2.75) and 32.3 s at `-s 175`. A narration
/// is spoken sentence by sentence with [`PAUSE_S`] between them, which the
/// budget leaves to the length check to correct.
pub const MEASURED_PACE: f64 = 1.19;

/// Narration by the espeak-ng program.
#[derive(Debug, Clone)]
pub struct EspeakNarrator {
    pub program: PathBuf,
    pub default_voice: Voice,
    pub words_per_minute: u32,
    /// `providers.voice.languages`.
    pub languages: BTreeMap<String, String>,
    /// `espeak-ng --voices`, read once.
    pub voices: Arc<tokio::sync::OnceCell<Arc<Vec<VoiceInfo>>>>,
}

impl EspeakNarrator {
    /// A narrator without language settings (benchmarks, tools).
    pub fn new(program: PathBuf, default_voice: Voice, words_per_minute: u32) -> Self {
        Self { program, default_voice, words_per_minute, languages: BTreeMap::new(), voices: Default::default() }
    }
}

/// The espeak-ng arguments that speak the text in `text_file` into `wav`.
/// The text goes through a file, never an argument, so no sentence can be
/// mistaken for an option.
pub fn espeak_args(voice: &Voice, words_per_minute: u32, text_file: &Path, wav: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        vec!["-v".into(), voice.as_str().into(), "-s".into(), words_per_minute.to_string().into()];
    args.extend(["-w".into(), wav.into(), "-f".into(), text_file.into()]);
    args
}

/// Where speech starts and ends in `pcm`, in seconds.
fn speech_span(pcm: &Pcm) -> (f64, f64) {
    let channels = usize::from(pcm.format.channels);
    let loud: Vec<usize> = pcm
        .data
        .chunks_exact(2)
        .enumerate()
        .filter(|(_, s)| i16::from_le_bytes([s[0], s[1]]).saturating_abs() > SPEECH_THRESHOLD)
        .map(|(i, _)| i / channels)
        .collect();
    let rate = f64::from(pcm.format.sample_rate);
    match (loud.first(), loud.last()) {
        (Some(&a), Some(&b)) => (a as f64 / rate, (b + 1) as f64 / rate),
        _ => (0.0, pcm.duration_s()),
    }
}

impl EspeakNarrator {
    async fn speak_one(&self, index: usize, sentence: &str, voice: &Voice, dir: &Path) -> Result<Pcm, ProviderError> {
        let text_file = dir.join(format!("sentence-{index}.txt"));
        let wav = dir.join(format!("sentence-{index}.wav"));
        tokio::fs::write(&text_file, sentence).await.map_err(|e| ProviderError::io(NAME, e))?;
        let inv = Invocation::new(
            self.program.clone(),
            espeak_args(voice, self.words_per_minute, &text_file, &wav),
            Duration::from_secs(60),
        );
        match process::run(&inv).await {
            Ok(_) => {}
            Err(ProcessError::Failed { stderr_tail, .. }) if stderr_tail.contains("voice does not exist") => {
                return Err(ProviderError::new(
                    NAME,
                    codes::VOICE_NOT_FOUND,
                    format!("espeak-ng has no voice `{}` (see `espeak-ng --voices`)", voice.as_str()),
                    false,
                ));
            }
            Err(e) => return Err(ProviderError::from_process(NAME, e)),
        }
        Pcm::read(&wav).await.map_err(|e| ProviderError::new(NAME, codes::BAD_AUDIO, e.to_string(), false))
    }
}

#[async_trait]
impl Narrator for EspeakNarrator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn default_voice(&self) -> Voice {
        self.default_voice.clone()
    }

    async fn voices(&self) -> Result<Arc<Vec<VoiceInfo>>, ProviderError> {
        self.voices
            .get_or_try_init(|| async {
                let inv = Invocation::new(self.program.clone(), vec!["--voices".into()], Duration::from_secs(30));
                let out = process::run(&inv).await.map_err(|e| ProviderError::from_process(NAME, e))?;
                Ok(Arc::new(parse_espeak_voices(&String::from_utf8_lossy(&out.stdout))))
            })
            .await
            .cloned()
    }

    fn configured_languages(&self) -> &BTreeMap<String, String> {
        &self.languages
    }

    fn words_per_second(&self, _voice: &Voice) -> f64 {
        f64::from(self.words_per_minute) / 60.0 * MEASURED_PACE
    }

    fn cache_identity(&self, voice: &Voice) -> String {
        format!("espeak-ng/{}/{}wpm", voice.as_str(), self.words_per_minute)
    }

    async fn narrate(
        &self,
        sentences: &[String],
        voice: &Voice,
        dir: &Path,
        _meter: &CostMeter,
    ) -> Result<SpokenNarration, ProviderError> {
        let mut parts = Vec::with_capacity(sentences.len());
        for (i, sentence) in sentences.iter().enumerate() {
            parts.push(self.speak_one(i, sentence, voice, dir).await?);
        }
        let (wav, duration_s, offsets) = write_narration(NAME, &parts, PAUSE_S, dir).await?;
        let mut timings = Vec::new();
        let mut words = Vec::new();
        for ((sentence, part), offset) in sentences.iter().zip(&parts).zip(offsets) {
            let (start, end) = speech_span(part);
            timings.push(SentenceTiming { text: sentence.clone(), start_s: offset + start, end_s: offset + end });
            words.extend(spread_words(sentence, offset + start, offset + end));
        }
        Ok(SpokenNarration { wav, duration_s, sentences: timings, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::PcmFormat;

    #[test]
    fn text_goes_through_a_file_so_it_is_never_an_option() {
        let args = espeak_args(&Voice::parse("en-us").unwrap(), 165, Path::new("/s/t.txt"), Path::new("/s/o.wav"));
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["-v", "en-us", "-s", "165", "-w", "/s/o.wav", "-f", "/s/t.txt"]);
    }

    #[test]
    fn speech_span_skips_leading_and_trailing_silence() {
        let format = PcmFormat { channels: 1, sample_rate: 100, bits_per_sample: 16 };
        let mut data = vec![0u8; 20]; // 10 silent samples
        for _ in 0..30 {
            data.extend_from_slice(&1000i16.to_le_bytes());
        }
        data.extend(vec![0u8; 120]); // 60 silent samples
        let (start, end) = speech_span(&Pcm { format, data });
        assert_eq!((start, end), (0.1, 0.4));
    }
}
