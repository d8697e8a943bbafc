//! The job spec: what a user asks for, parsed once into typed values.
//!
//! [`JobRequest`] is the wire shape (strict: unknown fields are refused);
//! [`JobSpec::parse`] turns it into a [`JobSpec`] or into every problem found at
//! once, so a batch producer fixes a row in one go instead of one field per try.

use crate::error_code::{self as codes, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::notify_request::NotifyRequest;
use super::review::Review;
use super::script::split_sentences;
use super::spec_limits::SpecLimits;

/// A job as submitted over the API, the CLI or a batch file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A finished narration script. Give this or `topic`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// What the video is about; the script writer turns it into a script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Voice name for the narrator (e.g. `en-us` for espeak-ng). Default: settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Wanted length in seconds for topic jobs (5-180 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_length_s: Option<u32>,
    /// Footage search hints, most important first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footage_queries: Vec<String>,
    /// Burn word captions into the video. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<bool>,
    /// Background music, ducked under the voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music: Option<MusicRequest>,
    /// The TikTok account whose inbox receives the draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Re-sending a job with the same key returns the first job instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Where to announce this job's progress; default: the `[notify]` settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyRequest>,
    /// Where the job stops for a person to approve it: `none`, `script` (after
    /// prepare: script, narration and footage picks), `video` (after render,
    /// before anything is staged or uploaded) or `both`. Default: the team's
    /// `review.default` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "video")]
    pub review: Option<String>,
    /// The language the script is spoken in, as a BCP-47 tag (`hi`, `ja`,
    /// `pt-BR`). Default: detected from the script (or topic) by its writing
    /// system; Latin-script text is not detected and is spoken as the voice speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "hi")]
    pub language: Option<String>,
    /// How captions look: a preset (`GET /v1/styles`) and any of its settings
    /// changed. Default: the team's `captions.default_preset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_style: Option<super::CaptionStyleRequest>,
    /// The team's own media (`POST /v1/media`): images or clips for the whole
    /// video or pinned to sentences, and a finished voice-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<super::JobMediaRequest>,
    /// Where the video goes at TikTok: `inbox` (a draft the creator posts
    /// from the app; the default) or `direct` (published on the profile, only
    /// after a person approves the video with their choices in the review
    /// gate; the account must allow Direct Post). Needs `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "direct")]
    pub post_mode: Option<String>,
    /// What the job makes: `video` (the default) or `photos`, a carousel of
    /// stills, one per sentence (at most 35), with the sentence drawn on,
    /// posted to TikTok as a photo post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "photos")]
    pub format: Option<String>,
    /// Where else the video is published, one account per platform:
    /// `[{"platform": "youtube", "account": "<id>"}, {"platform": "instagram", "account": "<id>"}]`.
    /// Each gets the same staged video exactly once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<super::TargetRequest>,
}

/// Background music as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MusicRequest {
    /// File name of a track in the configured music folder.
    pub track: String,
    /// Loudness of the music under the voice, 0.0-1.0. Default 0.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<f32>,
}

/// One problem with a submitted spec, pointing at the field to fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    /// A problem with `field`, coded by the catalogue.
    pub fn new(field: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.as_str().into(), message: message.into() }
    }
}

/// Where the words come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptSource {
    /// The user's own text, spoken as given.
    Script(String),
    /// A subject for the script writer.
    Topic(String),
}

/// A narrator voice name, restricted to characters that are safe as a program argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice(String);

impl Voice {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c))
            && !raw.starts_with('-');
        if ok { Ok(Self(raw.to_string())) } else { Err(raw.to_string()) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Background music: a file name inside the music folder (never a path).
#[derive(Debug, Clone, PartialEq)]
pub struct Music {
    pub track: String,
    pub volume: f32,
}

/// A validated job spec. Only [`JobSpec::parse`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub source: ScriptSource,
    pub voice: Option<Voice>,
    pub target_length_s: Option<u32>,
    pub footage_queries: Vec<String>,
    pub captions: bool,
    pub music: Option<Music>,
    pub account: Option<String>,
    pub idempotency_key: Option<String>,
    /// The job's own notification targets (checked by [`JobSpec::parse`]).
    pub notify: Option<NotifyRequest>,
    /// Where the job asks to be reviewed; None: the team default
    /// (`review.default`), read when each stage ends.
    pub review: Option<Review>,
    /// The language the job gave; None: detected from the text when needed.
    pub language: Option<super::Language>,
    /// The job's caption style; None: the team default, read at render.
    pub caption_style: Option<super::CaptionChoice>,
    /// The team's media the job uses; None: matched footage and the narrator.
    pub media: Option<super::JobMedia>,
    /// Inbox draft or Direct Post (only with an account).
    pub post_mode: super::PostMode,
    /// A video or a photo carousel.
    pub format: super::OutputFormat,
    pub targets: Vec<super::Target>,
}

const MAX_TOPIC_CHARS: usize = 300;
const MAX_QUERIES: usize = 10;
const MAX_QUERY_CHARS: usize = 100;
const MAX_KEY_CHARS: usize = 128;

pub(super) fn is_safe_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The start of the idempotency keys the server gives batch lines
/// (`batch:<batch key>:<line>`). A caller's own key may not start with it:
/// such a key could take a later batch's line (and its notification targets).
pub const BATCH_KEY_PREFIX: &str = "batch:";

/// The problems of the rules only new input must follow (see
/// [`JobSpec::parse_submission`]); also turns `\r\n` line ends into `\n`.
fn submission_problems(req: &mut JobRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // Text (script, topic) may hold tab and newline; one-line values (a
    // search query, a URL) no control character at all.
    let mut check = |field: &str, value: &mut String, text: bool| {
        if text && value.contains("\r\n") {
            *value = value.replace("\r\n", "\n");
        }
        let allowed = |c: char| text && matches!(c, '\t' | '\n');
        if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| c.is_control() && !allowed(*c)) {
            let rule = if text { "only tab, newline and \\r\\n line ends are allowed" } else { "it must be one line" };
            errors.push(FieldError::new(
                field,
                codes::CONTROL_CHARACTER,
                format!("{field} holds the control character U+{:04X} at character {}; {rule}", u32::from(c), at + 1),
            ));
        } else if let Some(why) = text.then(|| crate::domain::unrenderable(value)).flatten() {
            errors.push(FieldError::new(field, codes::TEXT_UNRENDERABLE, format!("{field}: {why}")));
        }
    };
    if let Some(script) = req.script.as_mut() {
        check("script", script, true);
    }
    if let Some(topic) = req.topic.as_mut() {
        check("topic", topic, true);
    }
    for (i, query) in req.footage_queries.iter_mut().enumerate() {
        check(&format!("footage_queries[{i}]"), query, false);
    }
    if let Some(url) = req.notify.as_mut().and_then(|n| n.webhook_url.as_mut()) {
        check("notify.webhook_url", url, false);
    }
    if let Some(key) = &req.idempotency_key
        && key.starts_with(BATCH_KEY_PREFIX)
    {
        errors.push(FieldError::new(
            "idempotency_key",
            codes::IDEMPOTENCY_KEY_RESERVED,
            format!(
                "idempotency_key may not start with `{BATCH_KEY_PREFIX}`: that prefix is kept for the lines of batches"
            ),
        ));
    }
    errors
}

impl JobSpec {
    /// Parses a spec a caller submits (one job, a batch line): the rules of
    /// [`JobSpec::parse`], and those only new input must follow — no control
    /// characters in `script` and `topic` but tab and newline (`\r\n` is read
    /// as `\n`; a lone `\r` is refused), none at all in footage queries and the
    /// webhook URL, and no key starting with [`BATCH_KEY_PREFIX`]. Specs
    /// read back from the record store go through `parse` alone, so these
    /// rules never make a stored job unreadable.
    pub fn parse_submission(mut req: JobRequest, limits: &SpecLimits) -> Result<Self, Vec<FieldError>> {
        let mut errors = submission_problems(&mut req);
        match JobSpec::parse(req, limits) {
            Ok(spec) if errors.is_empty() => Ok(spec),
            Ok(_) => Err(errors),
            Err(mut more) => {
                // One problem per field: a script with a NUL is not also "empty".
                more.retain(|e| !errors.iter().any(|first| first.field == e.field));
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Takes each notification target the job does not name itself from
    /// `key`'s: the targets of the API key it was submitted with.
    pub fn adopt_targets(&mut self, key: &NotifyRequest) {
        let merged = self.notify.take().unwrap_or_default().or(key);
        self.notify = (merged != NotifyRequest::default()).then_some(merged);
    }

    /// Checks every field against `limits` and returns all problems found.
    pub fn parse(req: JobRequest, limits: &SpecLimits) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let source = match (req.script, req.topic) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "script",
                    codes::SCRIPT_AND_TOPIC,
                    "give either `script` or `topic`, not both",
                ));
                None
            }
            (None, None) => {
                errors.push(FieldError::new("script", codes::SCRIPT_OR_TOPIC_REQUIRED, "give a `script` or a `topic`"));
                None
            }
            (Some(script), None) => {
                let script = script.trim().to_string();
                let chars = script.chars().count();
                if !script.chars().any(char::is_alphanumeric) {
                    errors.push(FieldError::new("script", codes::SCRIPT_EMPTY, "the script has no words to speak"));
                    None
                } else if chars > limits.max_script_chars {
                    errors.push(FieldError::new(
                        "script",
                        codes::SCRIPT_TOO_LONG,
                        format!("the script has {chars} characters; at most {} are allowed", limits.max_script_chars),
                    ));
                    None
                } else {
                    let over = limits.script_over_limits(&split_sentences(&script));
                    errors.extend(over.iter().map(|o| FieldError::new("script", o.code(), o.message())));
                    over.is_empty().then_some(ScriptSource::Script(script))
                }
            }
            (None, Some(topic)) => {
                let topic = topic.trim().to_string();
                let chars = topic.chars().count();
                if !topic.chars().any(char::is_alphanumeric) {
                    errors.push(FieldError::new("topic", codes::TOPIC_EMPTY, "the topic is empty"));
                    None
                } else if chars > MAX_TOPIC_CHARS {
                    errors.push(FieldError::new(
                        "topic",
                        codes::TOPIC_TOO_LONG,
                        format!("the topic has {chars} characters; at most {MAX_TOPIC_CHARS} are allowed"),
                    ));
                    None
                } else {
                    Some(ScriptSource::Topic(topic))
                }
            }
        };
        let voice = match req.voice.as_deref().map(Voice::parse) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(raw)) => {
                errors.push(FieldError::new(
                    "voice",
                    codes::VOICE_INVALID,
                    format!(
                        "voice `{}` is not a voice name (letters, digits, '-', '_', '+'; at most 64)",
                        super::echo(&raw)
                    ),
                ));
                None
            }
        };
        if let Some(t) = req.target_length_s
            && (t < limits.min_target_secs || t > limits.max_target_secs)
        {
            errors.push(FieldError::new(
                "target_length_s",
                codes::TARGET_LENGTH_OUT_OF_RANGE,
                format!(
                    "target_length_s is {t}; allowed {}-{} seconds",
                    limits.min_target_secs, limits.max_target_secs
                ),
            ));
        }
        if req.footage_queries.len() > MAX_QUERIES {
            errors.push(FieldError::new(
                "footage_queries",
                codes::TOO_MANY_QUERIES,
                format!("{} footage queries given; at most {MAX_QUERIES}", req.footage_queries.len()),
            ));
        }
        let mut queries = Vec::new();
        for (i, q) in req.footage_queries.iter().enumerate() {
            let q = q.trim();
            if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
                errors.push(FieldError::new(
                    &format!("footage_queries[{i}]"),
                    codes::QUERY_INVALID,
                    format!("a footage query must have 1-{MAX_QUERY_CHARS} characters"),
                ));
            } else {
                queries.push(q.to_string());
            }
        }
        let music = match req.music {
            None => None,
            Some(m) => {
                let volume = m.volume.unwrap_or(0.3);
                let track_ok = is_safe_name(&m.track, 128) && !m.track.starts_with('.');
                if !track_ok {
                    errors.push(FieldError::new(
                        "music.track",
                        codes::MUSIC_TRACK_INVALID,
                        "music.track must be a file name in the music folder (letters, digits, '-', '_', '.')",
                    ));
                }
                if !(0.0..=1.0).contains(&volume) {
                    errors.push(FieldError::new(
                        "music.volume",
                        codes::MUSIC_VOLUME_OUT_OF_RANGE,
                        "music.volume must be 0.0-1.0",
                    ));
                }
                Some(Music { track: m.track, volume })
            }
        };
        if let Some(a) = &req.account
            && !is_safe_name(a, 64)
        {
            errors.push(FieldError::new(
                "account",
                codes::ACCOUNT_INVALID,
                "account must be an account id (letters, digits, '-', '_', '.')",
            ));
        }
        if let Some(k) = &req.idempotency_key {
            let ok = !k.is_empty() && k.len() <= MAX_KEY_CHARS && k.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                errors.push(FieldError::new(
                    "idempotency_key",
                    codes::IDEMPOTENCY_KEY_INVALID,
                    format!("idempotency_key must be 1-{MAX_KEY_CHARS} printable ASCII characters without spaces"),
                ));
            }
        }
        if let Some(n) = &req.notify {
            errors.extend(n.problems());
        }
        let review = match req.review.as_deref().map(|raw| (raw, Review::parse(raw))) {
            None => None,
            Some((_, Some(review))) => Some(review),
            Some((raw, None)) => {
                errors.push(FieldError::new(
                    "review",
                    codes::REVIEW_INVALID,
                    format!("review `{}` is not a review option; one of {}", super::echo(raw), Review::allowed()),
                ));
                None
            }
        };
        let language = match req.language.as_deref().map(super::Language::parse) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(raw)) => {
                errors.push(FieldError::new(
                    "language",
                    codes::LANGUAGE_INVALID,
                    format!("language `{}` is not a BCP-47 tag such as `hi`, `ja` or `pt-BR`", super::echo(&raw)),
                ));
                None
            }
        };
        let caption_style = match req.caption_style.as_ref().map(super::CaptionChoice::parse) {
            None => None,
            Some(Ok(choice)) => Some(choice),
            Some(Err(problems)) => {
                errors.extend(problems);
                None
            }
        };
        let media = match req.media.as_ref().map(super::JobMedia::parse) {
            None => None,
            Some(Ok(media)) => Some(media),
            Some(Err(problems)) => {
                errors.extend(problems);
                None
            }
        };
        let post_mode = match req.post_mode.as_deref() {
            None => super::PostMode::Inbox,
            Some(raw) => match super::PostMode::parse(raw) {
                Some(super::PostMode::Direct) if req.account.is_none() => {
                    errors.push(FieldError::new(
                        "post_mode",
                        codes::POST_MODE_INVALID,
                        "a Direct Post goes to a creator's profile: name the TikTok `account` too",
                    ));
                    super::PostMode::Direct
                }
                Some(mode) => mode,
                None => {
                    errors.push(FieldError::new(
                        "post_mode",
                        codes::POST_MODE_INVALID,
                        format!("post_mode `{}` is not `inbox` or `direct`", super::echo(raw)),
                    ));
                    super::PostMode::Inbox
                }
            },
        };
        let format = match req.format.as_deref().map(|raw| (raw, super::OutputFormat::parse(raw))) {
            None => super::OutputFormat::Video,
            Some((_, Some(format))) => format,
            Some((raw, None)) => {
                errors.push(FieldError::new(
                    "format",
                    codes::FORMAT_INVALID,
                    format!("format `{}` is not `video` or `photos`", super::echo(raw)),
                ));
                super::OutputFormat::Video
            }
        };
        if let Some(ScriptSource::Script(script)) = &source
            && format == super::OutputFormat::Photos
        {
            let n = split_sentences(script).len();
            if n > super::MAX_PHOTOS {
                errors.push(FieldError::new(
                    "format",
                    codes::FORMAT_INVALID,
                    format!(
                        "a photo post has one photo per sentence and TikTok takes at most {}; the script has {n} \
                         sentences",
                        super::MAX_PHOTOS
                    ),
                ));
            }
        }
        let targets = super::parse_targets(&req.targets).unwrap_or_else(|problems| {
            errors.extend(problems);
            Vec::new()
        });
        if !targets.is_empty() && format == super::OutputFormat::Photos {
            errors.push(FieldError::new(
                "targets",
                codes::TARGET_INVALID,
                "a photo post goes to TikTok only; YouTube and Instagram targets take videos",
            ));
        }
        if let (Some(ScriptSource::Topic(_)), Some(super::JobMedia { voiceover: Some(_), .. })) = (&source, &media) {
            errors.push(FieldError::new(
                "media.voiceover",
                codes::MEDIA_INVALID,
                "a voice-over speaks a script you wrote: send it as `script` (its words are timed across the \
                 voice-over for the captions), not a `topic`",
            ));
        }
        match source {
            Some(source) if errors.is_empty() => Ok(JobSpec {
                source,
                voice,
                target_length_s: req.target_length_s,
                footage_queries: queries,
                captions: req.captions.unwrap_or(true),
                music,
                account: req.account,
                idempotency_key: req.idempotency_key,
                notify: req.notify,
                review,
                language,
                caption_style,
                media,
                post_mode,
                format,
                targets,
            }),
            _ => Err(errors),
        }
    }

    /// The wire form, stored in the record store and shown by the API.
    pub fn to_request(&self) -> JobRequest {
        let (script, topic) = match &self.source {
            ScriptSource::Script(s) => (Some(s.clone()), None),
            ScriptSource::Topic(t) => (None, Some(t.clone())),
        };
        JobRequest {
            script,
            topic,
            voice: self.voice.as_ref().map(|v| v.as_str().to_string()),
            target_length_s: self.target_length_s,
            footage_queries: self.footage_queries.clone(),
            captions: Some(self.captions),
            music: self.music.as_ref().map(|m| MusicRequest { track: m.track.clone(), volume: Some(m.volume) }),
            account: self.account.clone(),
            idempotency_key: self.idempotency_key.clone(),
            notify: self.notify.clone(),
            review: self.review.map(|r| r.as_str().to_string()),
            language: self.language.as_ref().map(|l| l.as_str().to_string()),
            caption_style: self.caption_style.as_ref().map(super::CaptionChoice::to_request),
            media: self.media.as_ref().map(super::JobMedia::to_request),
            post_mode: (self.post_mode != super::PostMode::Inbox).then(|| self.post_mode.as_str().to_string()),
            format: (self.format != super::OutputFormat::Video).then(|| self.format.as_str().to_string()),
            targets: self
                .targets
                .iter()
                .map(|t| super::TargetRequest { platform: t.platform.as_str().into(), account: t.account.clone() })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::is_telegram_chat_id;

    fn script(s: &str) -> JobRequest {
        JobRequest { script: Some(s.into()), ..Default::default() }
    }

    fn codes(r: Result<JobSpec, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.code).collect()
    }

    #[test]
    fn a_plain_script_parses_with_defaults() {
        let spec = JobSpec::parse(script("  Hello there.  "), &SpecLimits::default()).unwrap();
        assert_eq!(spec.source, ScriptSource::Script("Hello there.".into()));
        assert!(spec.captions);
        assert_eq!(spec.to_request().captions, Some(true));
    }

    #[test]
    fn empty_and_punctuation_only_scripts_are_refused() {
        assert_eq!(codes(JobSpec::parse(script("   "), &SpecLimits::default())), ["script_empty"]);
        assert_eq!(codes(JobSpec::parse(script("... !!"), &SpecLimits::default())), ["script_empty"]);
    }

    #[test]
    fn too_long_script_names_the_limit() {
        let err = JobSpec::parse(script(&"a".repeat(3001)), &SpecLimits::default()).unwrap_err();
        assert_eq!(err[0].code, "script_too_long");
        assert!(err[0].message.contains("3000"), "{}", err[0].message);
    }

    /// `n` lines of one letter each: 1,500 of them fit in 3,000 characters.
    fn one_word_lines(n: usize) -> String {
        (0..n).map(|i| format!("{}\n", char::from(b'a' + (i % 26) as u8))).collect()
    }

    #[test]
    fn two_hundred_one_word_lines_fit_and_fifteen_hundred_name_both_limits() {
        assert!(JobSpec::parse(script(&one_word_lines(200)), &SpecLimits::default()).is_ok());
        let err = JobSpec::parse(script(&one_word_lines(201)), &SpecLimits::default()).unwrap_err();
        assert_eq!(err.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(), ["too_many_sentences"]);
        assert!(err[0].message.contains("201 sentences") && err[0].message.contains("at most 200"), "{err:?}");

        let err = JobSpec::parse(script(&one_word_lines(1500)), &SpecLimits::default()).unwrap_err();
        assert_eq!(
            err.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
            ["too_many_sentences", "narration_too_long"]
        );
        assert_eq!(err[1].field, "script");
        assert!(err[1].message.contains("at least 300 s") && err[1].message.contains("at most 180 s"), "{err:?}");
    }

    #[test]
    fn the_narration_estimate_refuses_only_what_is_over_for_certain() {
        let limits = SpecLimits { max_sentences: 10_000, max_script_chars: 20_000, ..SpecLimits::default() };
        // 900 words at 300 words a minute: exactly 180 s, the limit.
        assert!(JobSpec::parse(script(&"word ".repeat(900)), &limits).is_ok());
        let codes = codes(JobSpec::parse(script(&"word ".repeat(901)), &limits));
        assert_eq!(codes, ["narration_too_long"]);
        let stored = JobSpec::parse(script(&one_word_lines(1500)), &SpecLimits::unbounded());
        assert!(stored.is_ok(), "stored specs read back whatever the limits are now");
    }

    #[test]
    fn script_and_topic_are_exclusive_and_one_is_required() {
        let both = JobRequest { script: Some("a".into()), topic: Some("b".into()), ..Default::default() };
        assert_eq!(codes(JobSpec::parse(both, &SpecLimits::default())), ["script_and_topic"]);
        assert_eq!(codes(JobSpec::parse(JobRequest::default(), &SpecLimits::default())), ["script_or_topic_required"]);
    }

    #[test]
    fn target_length_is_range_checked_at_both_ends() {
        for (t, ok) in [(4, false), (5, true), (180, true), (181, false)] {
            let req = JobRequest { topic: Some("cats".into()), target_length_s: Some(t), ..Default::default() };
            assert_eq!(JobSpec::parse(req, &SpecLimits::default()).is_ok(), ok, "target {t}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let req = JobRequest {
            script: Some("hi".into()),
            voice: Some("--rm -rf".into()),
            music: Some(MusicRequest { track: "../etc/passwd".into(), volume: Some(2.0) }),
            ..Default::default()
        };
        let c = codes(JobSpec::parse(req, &SpecLimits::default()));
        assert_eq!(c, ["voice_invalid", "music_track_invalid", "music_volume_out_of_range"]);
    }

    #[test]
    fn a_jobs_own_targets_win_over_its_keys_and_the_rest_come_from_the_key() {
        let key = NotifyRequest {
            telegram_chat_id: Some("-100".into()),
            webhook_url: Some("https://team.example/hook".into()),
            on_queued: Some(true),
        };
        let mut spec = JobSpec::parse(
            serde_json::from_str(r#"{"script":"hi","notify":{"telegram_chat_id":"@ownchannel"}}"#).unwrap(),
            &SpecLimits::default(),
        )
        .unwrap();
        spec.adopt_targets(&key);
        let n = spec.notify.clone().unwrap();
        assert_eq!(n.telegram_chat_id.as_deref(), Some("@ownchannel"));
        assert_eq!(n.webhook_url.as_deref(), Some("https://team.example/hook"));
        assert_eq!(n.on_queued, Some(true));
        let mut plain =
            JobSpec::parse(serde_json::from_str(r#"{"script":"hi"}"#).unwrap(), &SpecLimits::default()).unwrap();
        plain.adopt_targets(&NotifyRequest::default());
        assert_eq!(plain.notify, None, "a key without targets adds nothing");
    }

    #[test]
    fn notify_targets_are_checked() {
        let with = |chat: &str, url: &str| JobRequest {
            script: Some("Hello.".into()),
            notify: Some(NotifyRequest {
                telegram_chat_id: Some(chat.into()),
                webhook_url: Some(url.into()),
                on_queued: None,
            }),
            ..Default::default()
        };
        for chat in ["-1001234567890", "42", "@clip_forge"] {
            assert!(JobSpec::parse(with(chat, "https://example.com/hook"), &SpecLimits::default()).is_ok(), "{chat}");
        }
        let c = codes(JobSpec::parse(with("@ab", "ftp://example.com"), &SpecLimits::default()));
        assert_eq!(c, ["telegram_chat_id_invalid", "webhook_url_invalid"]);
        assert!(!is_telegram_chat_id("12a") && !is_telegram_chat_id("@with space"));
        let err = serde_json::from_str::<JobRequest>(r#"{"script":"hi","notify":{"email":"x"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `email`"), "{err}");
    }

    #[test]
    fn control_characters_in_text_are_refused_per_field_and_crlf_is_read_as_lf() {
        let parse = |req: JobRequest| JobSpec::parse_submission(req, &SpecLimits::default());
        let err = parse(script("Hello.\u{0} Secret rest.")).unwrap_err();
        assert_eq!((err[0].field.as_str(), err[0].code.as_str()), ("script", "control_character"));
        assert!(err[0].message.contains("U+0000 at character 7"), "{}", err[0].message);
        let err = parse(script("\u{0}")).unwrap_err();
        assert_eq!(err.len(), 1, "a NUL-only script is not also reported empty: {err:?}");
        for bad in ["a\rb", "a\u{1b}[2Jb", "a\u{7f}", "a\u{85}b"] {
            assert_eq!(codes(parse(script(bad))), ["control_character"], "{bad:?}");
        }
        let req = JobRequest {
            topic: Some("tides\u{8}".into()),
            footage_queries: vec!["ocean".into(), "mo\u{0}on".into()],
            notify: Some(NotifyRequest { webhook_url: Some("https://ex\nample.com/h".into()), ..Default::default() }),
            ..Default::default()
        };
        let fields: Vec<String> = parse(req).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["topic", "footage_queries[1]", "notify.webhook_url"]);
        let spec = parse(script("Line one.\r\nLine\ttwo.\nThree.")).unwrap();
        assert_eq!(spec.source, ScriptSource::Script("Line one.\nLine\ttwo.\nThree.".into()));
        // Stored specs are read with `parse`, which does not apply these rules.
        assert!(JobSpec::parse(script("Old\u{0}job."), &SpecLimits::default()).is_ok());
    }

    #[test]
    fn the_batch_key_prefix_is_kept_for_batches() {
        let keyed = |k: &str| JobRequest { idempotency_key: Some(k.into()), ..script("Hi.") };
        let err = JobSpec::parse_submission(keyed("batch:abc:3"), &SpecLimits::default()).unwrap_err();
        assert_eq!((err[0].field.as_str(), err[0].code.as_str()), ("idempotency_key", "idempotency_key_reserved"));
        assert!(JobSpec::parse_submission(keyed("batch-7:3"), &SpecLimits::default()).is_ok());
        assert!(JobSpec::parse(keyed("batch:abc:3"), &SpecLimits::default()).is_ok(), "stored batch lines still load");
    }

    #[test]
    fn the_review_option_is_one_of_four_names_and_round_trips() {
        let with = |r: &str| JobRequest { review: Some(r.into()), ..script("Hi.") };
        for name in ["none", "script", "video", "both"] {
            let spec = JobSpec::parse(with(name), &SpecLimits::default()).unwrap();
            assert_eq!(spec.to_request().review.as_deref(), Some(name));
        }
        let err = JobSpec::parse(with("later"), &SpecLimits::default()).unwrap_err();
        assert_eq!((err[0].field.as_str(), err[0].code.as_str()), ("review", "review_invalid"));
        assert!(err[0].message.contains("none, script, video, both"), "{}", err[0].message);
        assert_eq!(JobSpec::parse(script("Hi."), &SpecLimits::default()).unwrap().review, None, "the team default");
    }

    #[test]
    fn unknown_fields_are_refused_by_the_wire_type() {
        let err = serde_json::from_str::<JobRequest>(r#"{"script":"hi","colour":"red"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }
}
