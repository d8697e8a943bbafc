//! Voice and length in prepare: the voice a job's script is spoken in (by
//! its language, see `providers::voice::catalogue`), the word budget a topic's
//! script is written to, and the one rewrite of a script whose narration
//! missed `target_length_s` by more than a tenth.

use tracing::info;

use super::{Pipeline, StageError, content_address};
use crate::domain::{JobSpec, Language, ScriptOutput, ScriptSource, Voice, detect_language};
use crate::error_code as codes;
use crate::providers::CostMeter;
use crate::providers::voice::catalogue::LanguageSource;
use crate::store::objects::ObjectKey;

/// The language of a job: the one it gives, else the one its text's writing
/// system shows (`text`: the script, or the topic while there is no script).
pub fn job_language(spec: &JobSpec, script: Option<&[String]>) -> Option<(Language, LanguageSource)> {
    if let Some(l) = &spec.language {
        return Some((l.clone(), LanguageSource::Given));
    }
    match (script, &spec.source) {
        (Some(sentences), _) => detect_language(&sentences.join(" ")).map(|l| (l, LanguageSource::DetectedFromScript)),
        (None, ScriptSource::Script(s)) => detect_language(s).map(|l| (l, LanguageSource::DetectedFromScript)),
        (None, ScriptSource::Topic(t)) => detect_language(t).map(|l| (l, LanguageSource::DetectedFromTopic)),
    }
}

impl Pipeline {
    /// The voice for `spec`, its language taken from `script` when written.
    pub(super) async fn job_voice(&self, spec: &JobSpec, script: Option<&[String]>) -> Result<Voice, StageError> {
        let language = job_language(spec, script);
        let narrator = self.providers.voice.as_ref();
        crate::providers::voice::voice_for(narrator, spec.voice.as_ref(), language.as_ref().map(|(l, s)| (l, *s)), None)
            .await
            .map_err(|e| {
                let code = codes::find(&e.code).copied().unwrap_or(codes::NO_VOICE_FOR_LANGUAGE);
                StageError::job(code, e.message)
            })
    }

    /// The word budget of a topic job's script: its target length at the
    /// voice's pace. None for given scripts and jobs without a target.
    pub(super) async fn word_budget(&self, spec: &JobSpec) -> Result<Option<u32>, StageError> {
        let (ScriptSource::Topic(_), Some(target)) = (&spec.source, spec.target_length_s) else { return Ok(None) };
        let voice = self.job_voice(spec, None).await?;
        let pace = self.providers.voice.words_per_second(&voice);
        Ok(Some(crate::providers::script::word_budget(target, pace)))
    }

    /// The script rewritten to its target when its narration of `spoken_s`
    /// missed it by more than the tolerance; None when on target, not a
    /// topic job, or the writer does not rewrite. Cached like scripts.
    pub(super) async fn rewrite_to_target(
        &self,
        spec: &JobSpec,
        script: &ScriptOutput,
        spoken_s: f64,
        meter: &CostMeter,
    ) -> Result<Option<ScriptOutput>, StageError> {
        use crate::providers::script::{corrected_budget, off_target};
        let (ScriptSource::Topic(_), Some(target)) = (&spec.source, spec.target_length_s) else { return Ok(None) };
        if !off_target(spoken_s, target) {
            return Ok(None);
        }
        let words = corrected_budget(crate::domain::caption_words(&script.sentences.join(" ")).len(), spoken_s, target);
        info!(spoken_s, target_s = target, words, "narration off target; rewriting the script once");
        let writer = &self.providers.script;
        let Some(identity) = writer.cache_identity() else {
            return Ok(writer.rewrite_to_length(spec, script, spoken_s, words, meter).await?);
        };
        let before = serde_json::to_string(script).expect("serialises");
        let address = content_address(&[writer.name(), &identity, "rewrite", &before, &words.to_string()]);
        let key = ObjectKey::parse(&format!("cache/script/{address}.json"))?;
        meter.used_cache(key.as_str());
        if let Some(bytes) = self.objects.get_bytes(&key).await?
            && let Ok(script) = serde_json::from_slice::<ScriptOutput>(&bytes)
        {
            info!(key = %key, "rewritten script found in cache");
            return Ok(Some(script));
        }
        let Some(rewritten) = writer.rewrite_to_length(spec, script, spoken_s, words, meter).await? else {
            return Ok(None);
        };
        self.objects.put_bytes(&key, &serde_json::to_vec(&rewritten).expect("serialises")).await?;
        Ok(Some(rewritten))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobRequest, SpecLimits};

    fn spec(req: JobRequest) -> JobSpec {
        JobSpec::parse(req, &SpecLimits::default()).unwrap()
    }

    #[test]
    fn the_given_language_wins_then_the_script_then_the_topic() {
        let lang =
            |s: &JobSpec, script: Option<&[String]>| job_language(s, script).map(|(l, src)| (l.to_string(), src));
        let topic = spec(JobRequest { topic: Some("समुद्र".into()), ..Default::default() });
        assert_eq!(lang(&topic, None), Some(("hi".into(), LanguageSource::DetectedFromTopic)));
        let written = ["海はいつも動いています。".to_string()];
        assert_eq!(lang(&topic, Some(&written)), Some(("ja".into(), LanguageSource::DetectedFromScript)));
        let given =
            spec(JobRequest { topic: Some("tides".into()), language: Some("pt-br".into()), ..Default::default() });
        assert_eq!(lang(&given, Some(&written)), Some(("pt-BR".into(), LanguageSource::Given)));
        let english = spec(JobRequest { script: Some("Plain English words.".into()), ..Default::default() });
        assert_eq!(lang(&english, None), None);
    }
}
