//! Prepare: script → narration (with word timings) → footage picks, then the
//! render stage, or `in_review` when the job asks for a script review.
//!
//! Each part is skipped when the manifest already has it (a retry resumes), and
//! narration and footage are cached by content address in the object store, so
//! the same sentence in the same voice is never synthesised twice.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Pipeline, StageError};
use crate::domain::{
    FootagePick, JobId, Manifest, Narration, OutputFormat, OverLimit, PostMode, ReviewPoint, ScriptOutput,
    ScriptSource, SentenceTiming, Stage, Voice, WordTiming,
};
use crate::error_code as codes;
use crate::media::scratch::ScratchDir;
use crate::providers::CostMeter;
use crate::providers::footage::FootageRequest;
use crate::providers::tiktok::{PostLength, UploadError, post_length};
use crate::store::objects::ObjectKey;
use crate::store::records::JobRecord;

/// What is cached beside a narration's WAV: its timings.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedTimings {
    duration_s: f64,
    sentences: Vec<SentenceTiming>,
    words: Vec<WordTiming>,
}

pub(crate) fn content_address(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

impl Pipeline {
    pub(super) async fn prepare(&self, job: JobRecord, progress: &watch::Sender<u8>) -> Result<(), StageError> {
        let id = job.id.clone();
        let mut manifest = job.manifest.clone();
        let scratch =
            ScratchDir::fresh(&self.config.scratch_root, &id, Stage::Prepare).await.map_err(StageError::Scratch)?;

        // Each part's costs are saved with the part, so a retry never counts them twice.

        if manifest.script.is_none() {
            let meter = CostMeter::default();
            let script = match self.word_budget(&job.spec).await {
                Ok(words) => self.write_script(&job, words, &meter).await,
                Err(e) => Err(e),
            };
            let script = self.or_keep_cache_keys(script, &id, &mut manifest, &meter).await?;
            info!(writer = %script.writer, sentences = script.sentences.len(), "script written");
            manifest.script = Some(script);
            meter.record(&mut manifest);
            self.records.save_manifest(&id, &manifest).await?;
        }
        let _ = progress.send(20);

        if manifest.narration.is_none() {
            let meter = CostMeter::default();
            let script = manifest.script.as_ref().expect("set above");
            let spoken = match job.spec.media.as_ref().and_then(|m| m.voiceover.as_ref()) {
                // The team's own recording speaks: no narrator, no rewrite to a target length.
                Some(voiceover) => match self.voiceover_narration(voiceover, script).await {
                    Ok(narration) => self.within_narration_limit(narration).map(|n| (None, n)),
                    Err(e) => Err(e),
                },
                None => self.speak_on_target(&job, script, scratch.path(), &meter).await,
            };
            let (rewritten, narration) = self.or_keep_cache_keys(spoken, &id, &mut manifest, &meter).await?;
            if let Some(rewritten) = rewritten {
                manifest.script = Some(rewritten);
            }
            manifest.narration = Some(narration);
            meter.record(&mut manifest);
            self.records.save_manifest(&id, &manifest).await?;
        }
        let _ = progress.send(60);
        // Before footage is fetched and long before ffmpeg runs: a video the
        // creator cannot post is not worth making.
        self.creator_check(&job, manifest.narration.as_ref().expect("set above")).await?;

        if manifest.footage.is_none() {
            let meter = CostMeter::default();
            let narration = manifest.narration.as_ref().expect("set above");
            let terms = &manifest.script.as_ref().expect("set above").footage_terms;
            let picks = self.pick_footage(&job, narration, terms, scratch.path(), &meter).await;
            let picks = self.or_keep_cache_keys(picks, &id, &mut manifest, &meter).await?;
            manifest.footage = Some(picks);
            meter.record(&mut manifest);
            self.settle("save the footage picks", || self.records.save_manifest(&id, &manifest)).await?;
        }
        let _ = progress.send(100);
        // Done before the hand-off: once the next stage starts, this one's progress is ignored.
        self.settle("record progress", || self.records.set_progress(&id, Stage::Prepare, 100)).await?;
        if self.stops_for_review(&job, &manifest, ReviewPoint::Script).await? {
            return Ok(());
        }
        self.settle("queue the render stage", || self.queues.enqueue(Stage::Render, &id)).await?;
        Ok(())
    }

    /// A part's result; when it failed, the cache objects it wrote are first
    /// written into the manifest, so a purge of the job finds them.
    async fn or_keep_cache_keys<T>(
        &self,
        result: Result<T, StageError>,
        id: &JobId,
        manifest: &mut Manifest,
        meter: &CostMeter,
    ) -> Result<T, StageError> {
        if result.is_err()
            && meter.record_cache(manifest)
            && let Err(e) = self.records.save_manifest(id, manifest).await
        {
            tracing::warn!(job_id = %id, error = %e, "could not note the failed part's cache objects");
        }
        result
    }

    /// The narration of `script` in the job's voice, checked against the
    /// limits; a topic's script that came out off its target length is
    /// rewritten once and spoken again (then returned, to be kept).
    async fn speak_on_target(
        &self,
        job: &JobRecord,
        script: &ScriptOutput,
        dir: &Path,
        meter: &CostMeter,
    ) -> Result<(Option<ScriptOutput>, Narration), StageError> {
        // A topic's script is only known now; a given one was checked at submission
        // against the limits of that day.
        let within_limits = |sentences: &[String]| match self.tools.budget.spec.script_over_limits(sentences).first() {
            Some(over) => Err(StageError::job(over.code(), over.message())),
            None => Ok(()),
        };
        within_limits(&script.sentences)?;
        let voice = self.job_voice(&job.spec, Some(&script.sentences)).await?;
        let narration = self.narrate(&voice, &script.sentences, dir, meter).await?;
        let Some(rewritten) = self.rewrite_to_target(&job.spec, script, narration.duration_s, meter).await? else {
            return Ok((None, self.within_narration_limit(narration)?));
        };
        // The first narration stays the job's cache object too (from the cache or
        // not), so purging one of two jobs that share it keeps it for the other.
        meter.used_cache(&narration.key);
        if let Some(timings) = narration.key.strip_suffix(".wav") {
            meter.used_cache(&format!("{timings}.json"));
        }
        within_limits(&rewritten.sentences)?;
        let voice = self.job_voice(&job.spec, Some(&rewritten.sentences)).await?;
        let narration = self.narrate(&voice, &rewritten.sentences, dir, meter).await?;
        info!(duration_s = narration.duration_s, target_s = ?job.spec.target_length_s, "rewritten script spoken");
        Ok((Some(rewritten), self.within_narration_limit(narration)?))
    }

    /// The script, from the cache when the same writer was asked the same before.
    async fn write_script(
        &self,
        job: &JobRecord,
        words: Option<u32>,
        meter: &CostMeter,
    ) -> Result<ScriptOutput, StageError> {
        let writer = &self.providers.script;
        let Some(identity) = writer.cache_identity() else {
            return Ok(writer.write(&job.spec, words, meter).await?);
        };
        let source = match &job.spec.source {
            ScriptSource::Script(s) => format!("script\0{s}"),
            ScriptSource::Topic(t) => format!("topic\0{t}\0{:?}\0{words:?}", job.spec.target_length_s),
        };
        let address = content_address(&[writer.name(), &identity, &source]);
        let key = ObjectKey::parse(&format!("cache/script/{address}.json"))?;
        meter.used_cache(key.as_str());
        if let Some(bytes) = self.objects.get_bytes(&key).await?
            && let Ok(script) = serde_json::from_slice::<ScriptOutput>(&bytes)
        {
            info!(key = %key, "script found in cache");
            return Ok(script);
        }
        let script = writer.write(&job.spec, words, meter).await?;
        self.objects.put_bytes(&key, &serde_json::to_vec(&script).expect("serialises")).await?;
        Ok(script)
    }

    async fn narrate(
        &self,
        voice: &Voice,
        sentences: &[String],
        dir: &Path,
        meter: &CostMeter,
    ) -> Result<Narration, StageError> {
        let narrator = &self.providers.voice;
        let identity = narrator.cache_identity(voice);
        let address = content_address(&[narrator.name(), &identity, &sentences.join("\n")]);
        let wav_key = ObjectKey::parse(&format!("cache/narration/{address}.wav"))?;
        let timings_key = ObjectKey::parse(&format!("cache/narration/{address}.json"))?;

        if self.objects.size(&wav_key).await?.is_some() && self.objects.size(&timings_key).await?.is_some() {
            let local = dir.join("cached-timings.json");
            self.objects.fetch_to(&timings_key, &local).await?;
            let raw = tokio::fs::read(&local).await.map_err(StageError::Scratch)?;
            if let Ok(t) = serde_json::from_slice::<CachedTimings>(&raw) {
                info!(key = %wav_key, "narration found in cache");
                return Ok(Narration {
                    key: wav_key.to_string(),
                    duration_s: t.duration_s,
                    voice: voice.as_str().into(),
                    sentences: t.sentences,
                    words: t.words,
                });
            }
        }
        let spoken = narrator.narrate(sentences, voice, dir, meter).await?;
        info!(duration_s = spoken.duration_s, words = spoken.words.len(), "narration synthesised");
        let timings = CachedTimings { duration_s: spoken.duration_s, sentences: spoken.sentences, words: spoken.words };
        let timings_file = dir.join("timings.json");
        tokio::fs::write(&timings_file, serde_json::to_vec(&timings).expect("serialises"))
            .await
            .map_err(StageError::Scratch)?;
        // Audio first, timings last: the cache counts as filled only when both exist.
        meter.used_cache(wav_key.as_str());
        self.objects.put_file(&wav_key, &spoken.wav).await?;
        self.objects.put_file(&timings_key, &timings_file).await?;
        Ok(Narration {
            key: wav_key.to_string(),
            duration_s: timings.duration_s,
            voice: voice.as_str().into(),
            sentences: timings.sentences,
            words: timings.words,
        })
    }

    /// The narration, or `narration_too_long` when it runs over the limit:
    /// the submission only estimated its length.
    fn within_narration_limit(&self, narration: Narration) -> Result<Narration, StageError> {
        let max = self.tools.budget.spec.max_narration_secs;
        if narration.duration_s > f64::from(max) {
            let code = OverLimit::Narration { at_least_s: narration.duration_s, max_s: max }.code();
            return Err(StageError::job(
                code,
                format!(
                    "the narration runs {:.1} s; at most {max} s are allowed (limits.max_narration_secs)",
                    narration.duration_s
                ),
            ));
        }
        Ok(narration)
    }

    /// For a job with a TikTok account: fails it with
    /// `video_too_long_for_creator` when the narration runs longer than the
    /// creator may post. When the maximum cannot be had (no `video.publish`
    /// grant, TikTok or the store failing) the job goes on with a warning: the
    /// inbox draft does not need it. TikTok's limits make the job wait.
    async fn creator_check(&self, job: &JobRecord, narration: &Narration) -> Result<(), StageError> {
        let (Some(account), Some(tiktok)) = (job.spec.account.as_deref(), &self.tiktok) else {
            return Ok(());
        };
        let direct = job.spec.post_mode == PostMode::Direct;
        let info = match tiktok.creator_info(account).await {
            // A Direct Post needs the creator's choices: without video.publish it can never be approved.
            Ok(None) if direct => {
                return Err(StageError::job(
                    codes::SCOPE_NOT_AUTHORIZED,
                    format!(
                        "account {account} did not grant video.publish, which a Direct Post needs; connect it \
                         again and allow it, or submit the job with post_mode inbox"
                    ),
                ));
            }
            Ok(info) => info,
            Err(wait @ UploadError::Wait { .. }) => return Err(wait.into()),
            // The creator may not post now (TikTok's daily cap, the app's
            // creator cap): a Direct Post waits instead of rendering for nothing.
            Err(UploadError::Failed(e))
                if direct && [codes::SPAM_RISK_TOO_MANY_POSTS, codes::REACHED_ACTIVE_USER_CAP].contains(&e.code) =>
            {
                let until = chrono::Utc::now() + chrono::Duration::hours(1);
                return Err(UploadError::Wait {
                    code: codes::CREATOR_CANNOT_POST_NOW,
                    message: format!("TikTok says creator {account} cannot post now: {}", e.message),
                    until: Some(until),
                }
                .into());
            }
            Err(UploadError::Failed(e)) if direct => return Err(UploadError::Failed(e).into()),
            Err(UploadError::Failed(e)) => {
                warn!(
                    job_id = %job.id,
                    account,
                    code = e.code.as_str(),
                    error = %e.message,
                    "the creator's maximum video length could not be had; going on without it"
                );
                None
            }
        };
        // A photo post has no length: the narration only times its stills.
        let max_s = info
            .as_ref()
            .and_then(|i| i.max_video_post_duration_sec)
            .filter(|_| job.spec.format == OutputFormat::Video);
        match post_length(narration.duration_s, max_s) {
            PostLength::TooLong { duration_s, max_s } => {
                let who =
                    info.as_ref().map(|i| i.creator_username.as_str()).filter(|u| !u.is_empty()).unwrap_or(account);
                info!(job_id = %job.id, account, duration_s, max_s, "narration longer than the creator may post");
                Err(StageError::job(
                    codes::VIDEO_TOO_LONG_FOR_CREATOR,
                    format!(
                        "the narration runs {duration_s:.1} s, but TikTok lets creator {who} post videos of at most \
                         {max_s} s; shorten the script or set target_length_s to at most {max_s}"
                    ),
                ))
            }
            PostLength::Fits | PostLength::Unknown => Ok(()),
        }
    }

    async fn pick_footage(
        &self,
        job: &JobRecord,
        narration: &Narration,
        terms: &[Vec<String>],
        dir: &Path,
        meter: &CostMeter,
    ) -> Result<Vec<FootagePick>, StageError> {
        let footage = &self.providers.footage;
        let request = FootageRequest {
            job_queries: &job.spec.footage_queries,
            sentence_terms: terms,
            sentences: &narration.sentences,
            duration_s: narration.duration_s,
            max_segments: self.tools.budget.max_footage_segments,
        };
        let own = job.spec.media.as_ref().filter(|m| !m.footage.is_empty() || !m.pins.is_empty());
        // Media for the whole video leaves nothing to match: the footage source is not asked.
        let plan = match own {
            Some(media) if !media.footage.is_empty() => Vec::new(),
            _ => footage.plan(&request, meter).await?,
        };
        // Checked before any clip is fetched: it bounds the downloads too.
        self.within_segment_limit(plan.len(), "the footage plan")?;
        let mut picks = Vec::with_capacity(plan.len());
        for (i, clip) in plan.iter().enumerate() {
            let key = ObjectKey::parse(&clip.cache_key)?;
            if self.objects.size(&key).await?.is_none() {
                let ext = clip.cache_key.rsplit('.').next().unwrap_or("mp4");
                let local = dir.join(format!("clip-{i}.{ext}"));
                footage.fetch(clip, &local, meter).await?;
                self.objects.put_file(&key, &local).await?;
                // Named by the picks on success; noted in case a later clip fails.
                meter.used_cache(key.as_str());
                info!(source = %clip.source, key = %key, "footage fetched");
            }
            picks.push(FootagePick {
                key: key.to_string(),
                source: clip.source.clone(),
                at_s: clip.at_s,
                duration_s: clip.duration_s,
                credit: clip.credit.clone(),
                still: false,
            });
        }
        let picks = match own {
            Some(media) => self.place_own_media(media, narration, picks).await?,
            None => picks,
        };
        self.within_segment_limit(picks.len(), "with the job's own media, the video")?;
        Ok(picks)
    }

    /// Refuses `segments` footage segments over `limits.max_footage_segments`
    /// (`what` names whose they are): the bound on one render's inputs.
    pub(super) fn within_segment_limit(&self, segments: usize, what: &str) -> Result<(), StageError> {
        let max = self.tools.budget.max_footage_segments;
        if segments <= max {
            return Ok(());
        }
        Err(StageError::job(
            codes::TOO_MANY_FOOTAGE_SEGMENTS,
            format!(
                "{what} has {segments} segments; at most {max} are allowed in one render (limits.max_footage_segments)"
            ),
        ))
    }
}
