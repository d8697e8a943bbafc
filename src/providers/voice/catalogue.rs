//! Which voices a narrator has, the languages each speaks, and the one voice
//! a job is spoken in.
//!
//! The rule, checked at submission when the script's language is known (a
//! given script, or a topic with `language` or a detectable topic) and again
//! in prepare once a topic's script is written:
//!
//! - a job that **names a voice** which cannot speak its language is refused:
//!   `voice_language_mismatch` on the field `voice`, naming both;
//! - a job that **names no voice** is spoken by the default voice when that
//!   speaks its language, else by the voice `providers.voice.languages` maps
//!   the language to, else by the narrator's own voice for it (espeak-ng: the
//!   voice named after the language, `hi` for Hindi, `cmn` for `zh`); when
//!   there is none, `no_voice_for_language` names the language and the default voice.
//!
//! A language that cannot be told (Latin-script text without `language`), a
//! voice the catalogue does not list, or a catalogue that cannot be read
//! (the vendor is down) leaves the voice as asked: narration then fails with
//! the narrator's own error if the voice does not exist.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{FieldError, Language, Voice};
use crate::error_code as codes;

/// One voice of the configured narrator.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VoiceInfo {
    /// What a job's `voice` names.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Language tags the voice speaks, most natural first (e.g. `en-us`, `en`).
    pub languages: Vec<String>,
}

impl VoiceInfo {
    pub fn speaks(&self, language: &Language) -> bool {
        self.languages.iter().any(|l| language.spoken_by(l))
    }
}

/// Parses `espeak-ng --voices`: a header line, then one line per voice of
/// `Pty Language Age/Gender VoiceName File (other languages)…`, where the
/// other languages read `(zh-cmn 5)(zh 5)`. The `Language` column is the id
/// jobs give (`-v en-us`); a language listed by two voices keeps the first.
pub fn parse_espeak_voices(stdout: &str) -> Vec<VoiceInfo> {
    let mut voices: Vec<VoiceInfo> = Vec::new();
    for line in stdout.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_pty, id, _gender, name, _file, rest @ ..] = fields.as_slice() else { continue };
        if voices.iter().any(|v| v.id == *id) || Voice::parse(id).is_err() {
            continue;
        }
        let mut languages = vec![id.to_string()];
        // `(zh-cmn 5)(zh 5)` splits into `(zh-cmn`, `5)(zh`, `5)`.
        for token in rest.join(" ").split(['(', ')']) {
            if let Some(tag) = token.split_whitespace().next()
                && tag.chars().any(|c| c.is_ascii_alphabetic())
                && !languages.iter().any(|l| l == tag)
            {
                languages.push(tag.to_string());
            }
        }
        voices.push(VoiceInfo { id: id.to_string(), name: name.replace('_', " "), languages });
    }
    voices
}

/// How a job's language was learnt, for messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LanguageSource {
    Given,
    DetectedFromScript,
    DetectedFromTopic,
}

impl LanguageSource {
    fn says(self) -> &'static str {
        match self {
            Self::Given => "the job's `language`",
            Self::DetectedFromScript => "detected from the script's writing system",
            Self::DetectedFromTopic => "detected from the topic's writing system",
        }
    }

    /// The field a refusal points at when the job named no voice.
    fn field(self) -> &'static str {
        match self {
            Self::Given => "language",
            Self::DetectedFromScript => "script",
            Self::DetectedFromTopic => "topic",
        }
    }
}

/// What a narrator knows about its voices, for [`choose_voice`].
pub struct VoiceBook<'a> {
    pub narrator: &'a str,
    pub voices: &'a [VoiceInfo],
    pub default_voice: &'a Voice,
    /// `providers.voice.languages`: language tag (or language subtag) → voice.
    pub configured: &'a BTreeMap<String, String>,
}

impl VoiceBook<'_> {
    fn find(&self, voice: &Voice) -> Option<&VoiceInfo> {
        self.voices.iter().find(|v| v.id == voice.as_str())
    }

    fn configured_for(&self, language: &Language) -> Option<Voice> {
        let lower = |s: &str| s.to_ascii_lowercase();
        let by_key = |want: &str| self.configured.iter().find(|(k, _)| lower(k) == want).map(|(_, v)| v);
        by_key(&lower(language.as_str())).or_else(|| by_key(language.primary())).and_then(|v| Voice::parse(v).ok())
    }

    /// The narrator's own voice for a language: the one named exactly like
    /// the tag, then like its language subtag, then the first that speaks it.
    fn own_for(&self, language: &Language) -> Option<Voice> {
        let tag = language.as_str().to_ascii_lowercase();
        self.voices
            .iter()
            .find(|v| v.id.to_ascii_lowercase() == tag)
            .or_else(|| self.voices.iter().find(|v| v.id == language.primary()))
            .or_else(|| self.voices.iter().find(|v| v.speaks(language)))
            .and_then(|v| Voice::parse(&v.id).ok())
    }
}

/// The voice a job is spoken in (see the module docs): `Ok(voice)` to use,
/// or the field problem that refuses the job.
pub fn choose_voice(
    asked: Option<&Voice>,
    language: Option<(&Language, LanguageSource)>,
    book: &VoiceBook<'_>,
) -> Result<Voice, FieldError> {
    let Some((language, source)) = language else {
        return Ok(asked.unwrap_or(book.default_voice).clone());
    };
    if let Some(voice) = asked {
        return match book.find(voice) {
            Some(info) if !info.speaks(language) => Err(FieldError::new(
                "voice",
                codes::VOICE_LANGUAGE_MISMATCH,
                format!(
                    "voice `{}` speaks {}, not `{language}` ({}); name a voice for `{language}` (GET /v1/voices) \
                     or leave `voice` out",
                    voice.as_str(),
                    info.languages.join(", "),
                    source.says()
                ),
            )),
            _ => Ok(voice.clone()),
        };
    }
    let default = book.default_voice;
    match book.find(default) {
        Some(info) if !info.speaks(language) => {}
        // The default speaks it, or nothing is known about the default.
        _ => return Ok(default.clone()),
    }
    if let Some(voice) = book.configured_for(language).or_else(|| book.own_for(language)) {
        return Ok(voice);
    }
    Err(FieldError::new(
        source.field(),
        codes::NO_VOICE_FOR_LANGUAGE,
        format!(
            "the script is in `{language}` ({}), but no {} voice speaks it and the default voice `{}` speaks {}; \
             name a voice, or map one in providers.voice.languages",
            source.says(),
            book.narrator,
            default.as_str(),
            book.find(default).map(|i| i.languages.join(", ")).unwrap_or_default()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESPEAK: &str = "\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  af              --/M      Afrikaans          gmw/af
 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn              (zh-cmn 5)(zh 5)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  hi              --/M      Hindi              inc/hi
 5  pt              --/M      Portuguese_(Portugal) roa/pt               (pt-pt 5)
 5  pt-br           --/M      Portuguese_(Brazil) roa/pt-BR            (pt 6)
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)
";

    fn voices() -> Vec<VoiceInfo> {
        parse_espeak_voices(ESPEAK)
    }

    #[test]
    fn espeak_voice_lines_become_voices_with_their_languages() {
        let v = voices();
        assert_eq!(
            v.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            ["af", "cmn", "en-us", "hi", "pt", "pt-br", "yue"]
        );
        assert_eq!(v[1].languages, ["cmn", "zh-cmn", "zh"]);
        assert_eq!(v[1].name, "Chinese (Mandarin, latin as English)");
        assert_eq!(v[2].languages, ["en-us", "en"]);
        assert_eq!(v[3].languages, ["hi"]);
    }

    fn lang(tag: &str) -> Language {
        Language::parse(tag).unwrap()
    }

    fn choose(asked: Option<&str>, language: Option<&str>, configured: &[(&str, &str)]) -> Result<String, FieldError> {
        let voices = voices();
        let default = Voice::parse("en-us").unwrap();
        let configured: BTreeMap<String, String> =
            configured.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let book = VoiceBook { narrator: "espeak", voices: &voices, default_voice: &default, configured: &configured };
        let asked = asked.map(|a| Voice::parse(a).unwrap());
        let language = language.map(lang);
        choose_voice(asked.as_ref(), language.as_ref().map(|l| (l, LanguageSource::DetectedFromScript)), &book)
            .map(|v| v.as_str().to_string())
    }

    #[test]
    fn an_english_voice_named_for_a_hindi_script_is_refused_naming_both() {
        let err = choose(Some("en-us"), Some("hi"), &[]).unwrap_err();
        assert_eq!((err.field.as_str(), err.code.as_str()), ("voice", "voice_language_mismatch"));
        assert!(err.message.contains("`en-us`") && err.message.contains("`hi`"), "{}", err.message);
        assert_eq!(choose(Some("hi"), Some("hi"), &[]).unwrap(), "hi");
        assert_eq!(choose(Some("en-us"), Some("en-GB"), &[]).unwrap(), "en-us");
    }

    #[test]
    fn without_a_voice_the_language_picks_one() {
        assert_eq!(choose(None, Some("hi"), &[]).unwrap(), "hi");
        assert_eq!(choose(None, Some("zh"), &[]).unwrap(), "cmn", "the first voice that speaks zh");
        assert_eq!(choose(None, Some("pt-BR"), &[]).unwrap(), "pt-br", "the exact tag first");
        assert_eq!(choose(None, Some("pt"), &[]).unwrap(), "pt");
        assert_eq!(choose(None, Some("zh"), &[("zh", "yue")]).unwrap(), "yue", "the setting wins");
        assert_eq!(choose(None, Some("pt-BR"), &[("pt", "pt")]).unwrap(), "pt", "a setting for the subtag");
        assert_eq!(choose(None, Some("en"), &[("en", "af")]).unwrap(), "en-us", "the default speaks it");
        assert_eq!(choose(None, None, &[]).unwrap(), "en-us");
        let err = choose(None, Some("ja"), &[]).unwrap_err();
        assert_eq!((err.field.as_str(), err.code.as_str()), ("script", "no_voice_for_language"));
        assert!(err.message.contains("`ja`") && err.message.contains("`en-us`"), "{}", err.message);
    }

    #[test]
    fn unknown_voices_and_languages_are_left_as_asked() {
        assert_eq!(choose(Some("zz-custom"), Some("hi"), &[]).unwrap(), "zz-custom");
        assert_eq!(choose(Some("en-us"), None, &[]).unwrap(), "en-us");
    }
}
