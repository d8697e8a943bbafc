//! The render stage of a photo post (`format: photos`): one 1080x1920 JPEG
//! per sentence, each the frame of the footage on screen at that sentence's
//! midpoint ([`crate::domain::photo_shots`]) with the sentence drawn on in
//! the job's caption style. They go straight under `renders/` (kept for the
//! retention period, like a staged video), where the `/p/` route serves them
//! to TikTok's PULL_FROM_URL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use tokio::sync::watch;
use tracing::info;

use super::render::job_caption_style;
use super::{Pipeline, StageError};
use crate::domain::{
    DirectPost, Effect, FootagePick, JobId, JobState, MAX_PHOTOS, Manifest, Narration, PhotoOutput, Stage, WordTiming,
    photo_shots, photo_title,
};
use crate::error_code as codes;
use crate::media::captions::ass_document;
use crate::media::ffmpeg::{HEIGHT, WIDTH, photo_args};
use crate::media::process::{Invocation, run};
use crate::media::scratch::ScratchDir;
use crate::providers::tiktok::UploadError;
use crate::providers::tiktok::upload::PostTarget;
use crate::store::objects::ObjectKey;
use crate::store::records::{JobRecord, Transition};

/// Where photo `n` (from 1) of a job is kept.
pub fn photo_key(job: &JobId, n: usize) -> String {
    format!("renders/{job}-{n}.jpg")
}

/// The words of one sentence, all shown from 0 s to 1 s: one cue that the
/// photo's single frame (taken at 0 s) shows whole.
fn sentence_cue(narration: &Narration, sentence: usize) -> Vec<WordTiming> {
    let s = &narration.sentences[sentence];
    let words: Vec<WordTiming> = narration
        .words
        .iter()
        .filter(|w| w.start_s >= s.start_s - 1e-6 && w.end_s <= s.end_s + 1e-6)
        .map(|w| WordTiming { text: w.text.clone(), start_s: 0.0, end_s: 1.0 })
        .collect();
    if words.is_empty() {
        // No word timing fell inside (a voice-over timed by length): the sentence's own words.
        s.text.split_whitespace().map(|w| WordTiming { text: w.into(), start_s: 0.0, end_s: 1.0 }).collect()
    } else {
        words
    }
}

impl Pipeline {
    pub(super) async fn render_photos(
        &self,
        job: JobRecord,
        mut manifest: Manifest,
        narration: Narration,
        footage: Vec<FootagePick>,
        progress: &watch::Sender<u8>,
    ) -> Result<(), StageError> {
        let id = job.id.clone();
        let count = narration.sentences.len();
        if count > MAX_PHOTOS {
            return Err(StageError::job(
                codes::TOO_MANY_PHOTOS,
                format!("the script has {count} sentences; a photo post takes at most {MAX_PHOTOS} photos, one each"),
            ));
        }
        let Some(shots) = photo_shots(&narration.sentences, &footage) else {
            return Err(StageError::job(codes::MANIFEST_INCOMPLETE, "the job has no footage; retry it from prepare"));
        };
        let scratch =
            ScratchDir::fresh(&self.config.scratch_root, &id, Stage::Render).await.map_err(StageError::Scratch)?;
        let mut local: HashMap<usize, PathBuf> = HashMap::new();
        // Captions for a still: the whole sentence in one cue, as plain text.
        let mut style = job_caption_style(job.spec.caption_style.as_ref(), &self.config.captions);
        style.effect = Effect::None;
        style.words_per_line = style.words_per_line.max(6);
        style.max_lines = style.max_lines.max(6);
        let started = Instant::now();
        let mut photos = Vec::with_capacity(count);
        for (i, shot) in shots.iter().enumerate() {
            let pick = &footage[shot.pick];
            let clip = match local.get(&shot.pick) {
                Some(p) => p.clone(),
                None => {
                    let ext = pick.key.rsplit('.').next().unwrap_or("mp4");
                    let p = scratch.join(&format!("clip-{}.{ext}", shot.pick));
                    self.objects.fetch_to(&ObjectKey::parse(&pick.key)?, &p).await?;
                    local.insert(shot.pick, p.clone());
                    p
                }
            };
            let ass = if job.spec.captions {
                let path = scratch.join(&format!("photo-{}.ass", i + 1));
                let doc = ass_document(&sentence_cue(&narration, i), &style);
                tokio::fs::write(&path, doc).await.map_err(StageError::Scratch)?;
                Some(path)
            } else {
                None
            };
            let out = scratch.join(&format!("photo-{}.jpg", i + 1));
            let args = photo_args(
                &clip,
                shot.offset_s,
                pick.still,
                ass.as_deref().map(|a| (a, self.config.fonts_dir.as_path())),
                &out,
            );
            run(&Invocation::new(self.tools.ffmpeg.clone(), args, self.config.render_timeout))
                .await
                .map_err(crate::media::RenderError::from)?;
            let key = ObjectKey::parse(&photo_key(&id, i + 1))?;
            let bytes = self.objects.put_file(&key, &out).await?;
            photos.push(PhotoOutput { key: key.to_string(), bytes, width: WIDTH, height: HEIGHT });
            let pct = ((i + 1) * 100 / count) as u8;
            let _ = progress.send(pct);
        }
        let render_seconds = started.elapsed().as_secs_f64();
        info!(photos = photos.len(), render_seconds, "photos rendered");
        manifest.costs.render_seconds += render_seconds;
        manifest.photos = photos;
        drop(scratch);
        self.rendered(&job, &manifest).await
    }
}

/// The URL TikTok pulls photo `n` (from 1) of `job` from: the verified
/// prefix, then the `/p/` route's `{job}/{n}.jpg`.
pub fn photo_url(prefix: &str, job: &JobId, n: usize) -> String {
    format!("{prefix}{job}/{n}.jpg")
}

/// A photo post's `post_info`: the script's title (cut to 90 UTF-16 units);
/// for a Direct Post also the approved choices, with the caption as the
/// description. Photo posts have no Duet or Stitch.
pub fn photo_post_info(title: &str, post: Option<&DirectPost>) -> serde_json::Value {
    let title = photo_title(title);
    match post {
        None => json!({ "title": title }),
        Some(p) => json!({
            "title": title,
            "description": p.title,
            "privacy_level": p.privacy_level,
            "disable_comment": p.disable_comment,
            "auto_add_music": true,
            "brand_content_toggle": p.brand_content_toggle,
            "brand_organic_toggle": p.brand_organic_toggle,
        }),
    }
}

impl Pipeline {
    /// The publish stage of a photo post: without an account the stills are
    /// kept (`staged`); with one, TikTok pulls them from
    /// `tiktok.photo_url_prefix` into the inbox (`in_inbox`) or, approved,
    /// onto the profile (`posted`).
    pub(super) async fn publish_photos(&self, job: JobRecord, progress: &watch::Sender<u8>) -> Result<(), StageError> {
        let id = job.id.clone();
        let manifest = job.manifest.clone();
        if manifest.photos.is_empty() {
            return Err(StageError::job(codes::MANIFEST_INCOMPLETE, "the job has no photos yet; retry it from render"));
        }
        let Some((account, uploader)) = self.tiktok_for(&job, progress).await? else { return Ok(()) };
        let prefix = &self.config.photo_url_prefix;
        if prefix.is_empty() {
            return Err(StageError::job(
                codes::PHOTO_URL_PREFIX_MISSING,
                "TikTok pulls a photo post's stills from URLs under a prefix verified for the app, and \\
                 tiktok.photo_url_prefix is not set: set it to the public https address of this server's /p/ route",
            ));
        }
        let title = manifest.script.as_ref().map(|s| s.title.clone()).unwrap_or_default();
        let target = super::publish::post_target(&job, &manifest, |post| photo_post_info(&title, Some(post)))?;
        let post_info = match &target {
            PostTarget::Inbox => photo_post_info(&title, None),
            PostTarget::Direct(info) => info.clone(),
        };
        let urls: Vec<String> = (1..=manifest.photos.len()).map(|n| photo_url(prefix, &id, n)).collect();
        self.records
            .transition(&id, Transition::new(&[JobState::Staging], JobState::Uploading).stage(Stage::Publish))
            .await?;
        let report = |pct: u8| {
            let _ = progress.send(pct);
        };
        let delivered = match uploader.deliver_photos(&id, &account, &urls, &post_info, &target, &report).await {
            Err(UploadError::Failed(e)) if e.code == codes::URL_OWNERSHIP_UNVERIFIED => {
                return Err(StageError::job(
                    codes::URL_OWNERSHIP_UNVERIFIED,
                    format!(
                        "TikTok has not verified {prefix} (tiktok.photo_url_prefix) for this app, so it will not \\
                         pull the photos: add that URL prefix (or its domain) under URL properties in TikTok's \\
                         developer portal, then retry the job ({})",
                        e.message
                    ),
                ));
            }
            other => other?,
        };
        let result = crate::domain::TargetResult {
            platform: crate::domain::Platform::Tiktok,
            account: account.clone(),
            state: "delivered".into(),
            remote_id: Some(delivered.publish_id),
            url: None,
            post_id: delivered.post_id,
        };
        self.delivered(&id, manifest, result).await?;
        let done = match target {
            PostTarget::Inbox => JobState::InInbox,
            PostTarget::Direct(_) => JobState::Posted,
        };
        self.end_publish(&id, done).await?;
        info!(account = %account, photos = urls.len(), "TikTok has the photo post");
        Ok(())
    }
}
