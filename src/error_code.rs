//! Every stable error code, defined once.
//!
//! A code is what scripts branch on: the `error.code` of an API answer, the
//! `code` of a field problem in its `details` or of a rejected batch line, and
//! the `error.code` of a failed (or waiting) job. Each code here says where it
//! is met (the HTTP status of the answer, whether a job that stopped with it is
//! retried) and, in one sentence, what to do about it. The strings never
//! change: they are part of the API.
//!
//! The README's table of codes and the OpenAPI document are rendered from
//! [`ALL`] ([`markdown_table`], [`codes_where`]); a test fails when the
//! README's copy is out of date.

use std::fmt;

/// One stable error code and what a client does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The string clients see, in snake_case. Never changes.
    pub code: &'static str,
    /// The status of the API answer whose `error.code` this is, if the API
    /// answers with it.
    pub http: Option<u16>,
    /// Whether it names one field's problem: a `details[].code` of an
    /// `invalid_spec` answer or of a rejected batch line.
    pub field: bool,
    /// Whether it is the `code` of a rejected line of a batch.
    pub line: bool,
    /// If a job can stop with it (the job's `error.code`): whether it is retried.
    pub job: Option<Retry>,
    /// Whether an MCP tool answers with it on its own (a tool error whose
    /// cause is not an API answer; see [`crate::mcp`]).
    pub mcp: bool,
    /// One sentence: what to do.
    pub hint: &'static str,
}

/// What happens to a job that stopped with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A later attempt may succeed: the stage is tried again after a backoff.
    Yes,
    /// Trying again as asked cannot help: the job fails at once.
    No,
    /// Either, by what exactly went wrong (a program that timed out is tried
    /// again, one that is missing is not); the job's `retryable` says which.
    Depends,
    /// Not a failure: the job is `waiting` until a limit clears or its
    /// account is connected again, then goes on by itself.
    Waits,
}

impl ErrorCode {
    const fn new(code: &'static str, hint: &'static str) -> Self {
        Self { code, http: None, field: false, line: false, job: None, mcp: false, hint }
    }

    const fn http(self, status: u16) -> Self {
        Self { http: Some(status), ..self }
    }

    const fn field(self) -> Self {
        Self { field: true, ..self }
    }

    const fn line(self) -> Self {
        Self { line: true, ..self }
    }

    const fn job(self, retry: Retry) -> Self {
        Self { job: Some(retry), ..self }
    }

    const fn mcp(self) -> Self {
        Self { mcp: true, ..self }
    }

    /// The code as clients see it.
    pub const fn as_str(&self) -> &'static str {
        self.code
    }

    /// Whether a job that failed with this code is tried again, for codes
    /// whose answer does not depend on the failure.
    pub const fn retryable(&self) -> Option<bool> {
        match self.job {
            Some(Retry::Yes) => Some(true),
            Some(Retry::No) => Some(false),
            Some(Retry::Depends | Retry::Waits) | None => None,
        }
    }

    /// Where a client meets this code, in words: `HTTP 404`, `field`,
    /// `job: retried`, joined with `; `.
    pub fn places(&self) -> String {
        let mut places = Vec::new();
        if let Some(status) = self.http {
            places.push(format!("HTTP {status}"));
        }
        if self.line {
            places.push("batch line".to_string());
        }
        if self.field {
            places.push("field".to_string());
        }
        if let Some(retry) = self.job {
            places.push(
                match retry {
                    Retry::Yes => "job: retried",
                    Retry::No => "job: fails",
                    Retry::Depends => "job: retried or fails",
                    Retry::Waits => "job: waits",
                }
                .to_string(),
            );
        }
        if self.mcp {
            places.push("MCP tool".to_string());
        }
        places.join("; ")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.code == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.code
    }
}

/// The code whose string is `code`, if it is one of ours.
pub fn find(code: &str) -> Option<&'static ErrorCode> {
    ALL.iter().find(|c| c.code == code)
}

/// The codes met where `keep` says, in catalogue order: e.g. those an API
/// answer carries, for the OpenAPI document.
pub fn codes_where(keep: impl Fn(&ErrorCode) -> bool) -> Vec<&'static str> {
    ALL.iter().filter(|c| keep(c)).map(|c| c.code).collect()
}

/// The catalogue as a Markdown table, as the README lists it.
pub fn markdown_table() -> String {
    let mut table = String::from("| code | where | what to do |\n|---|---|---|\n");
    for c in ALL {
        table.push_str(&format!("| `{}` | {} | {} |\n", c.code, c.places(), c.hint));
    }
    table
}

/// Defines each code as a constant and lists them all in [`ALL`], so no
/// code can be defined and left out of the list.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident = $code:literal $($place:ident($($arg:expr)?))* : $hint:literal;)*) => {
        $($(#[$doc])* pub const $name: ErrorCode = ErrorCode::new($code, $hint)$(.$place($($arg)?))*;)*

        /// Every stable code, in the order the README lists them.
        pub const ALL: &[ErrorCode] = &[$($name),*];
    };
}

use Retry::{Depends, No, Waits, Yes};

catalogue! {
    // Answers to requests the API could not read or route.
    BAD_REQUEST = "bad_request" http(400) job(No): "Fix the request as the message says; a provider's `bad_request` means it refused the job's request, so check the job's settings for that provider.";
    INVALID_QUERY = "invalid_query" http(400): "Fix the query string: use only the parameters the OpenAPI document lists for the route.";
    BODY_UNREADABLE = "body_unreadable" http(400): "Send the body again; the connection broke or the encoding was not readable.";
    NOT_FOUND = "not_found" http(404): "Check the path against the OpenAPI document at `/openapi.json`.";
    METHOD_NOT_ALLOWED = "method_not_allowed" http(405): "Use one of the methods the `Allow` header names.";
    BODY_TIMEOUT = "body_timeout" http(408): "Send the body without pauses, or raise `server.body_timeout_secs`.";
    LENGTH_REQUIRED = "length_required" http(411): "Send a `Content-Length` header with the body.";
    BODY_TOO_LARGE = "body_too_large" http(413): "Send a smaller body, within the limit the message gives.";
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type" http(415): "Send `Content-Type: application/json` (or, for batches, a batch format the route accepts).";
    HOST_NOT_ALLOWED = "host_not_allowed" http(421): "Call the server by a host name it answers to, or add the name to the server's allowed hosts.";
    UNPROCESSABLE = "unprocessable" http(422): "Fix the request as the message says.";
    INTERNAL_ERROR = "internal_error" http(500) job(Yes): "Try again later; if it persists, read the server's log (or, from TikTok, TikTok's status page).";

    // API keys and browsers.
    UNAUTHORIZED = "unauthorized" http(401): "Send a valid API key in the `Authorization: Bearer` header.";
    FORBIDDEN = "forbidden" http(403): "Use an API key whose scopes allow this route, or ask an operator for one.";
    CROSS_SITE_REQUEST = "cross_site_request" http(403): "Send state-changing requests from the server's own pages or from a client that is not a browser.";
    RATE_LIMITED = "rate_limited" http(429) job(Yes): "Wait as long as `Retry-After` says (or, from a provider, let the job retry) and send fewer requests.";
    RATE_LIMITER_UNAVAILABLE = "rate_limiter_unavailable" http(503): "Try again shortly; the store that counts requests cannot be reached.";
    INVALID_KEY_REQUEST = "invalid_key_request" http(422) field(): "Give the key a name of 1-100 characters and at least one known scope.";
    KEY_NOT_FOUND = "key_not_found" http(404): "Check the key id; `GET /v1/keys` (or `clipforge keys list`) lists them.";
    INVALID_SAMPLE_TEXT = "invalid_sample_text" field(): "Send 1-300 characters of text to hear, without control characters.";
    REVIEW_LINK_INVALID = "review_link_invalid" http(403): "Ask the team for a new reviewer link: this one was changed, or it expired.";
    TELEGRAM_SECRET_MISMATCH = "telegram_secret_mismatch" http(401): "Register the webhook with setWebhook's `secret_token` equal to `telegram.webhook_secret`.";

    // Jobs.
    JOB_NOT_FOUND = "job_not_found" http(404): "Check the job id; `GET /v1/jobs` lists the jobs this key can see.";
    NO_VIDEO = "no_video" http(404): "Wait until the job is staged (or later) before asking for its video.";
    VIDEO_EXPIRED = "video_expired" http(410): "Submit the job again; its video was removed after the retention period.";
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused" http(409) line(): "Use a new idempotency key for a different request, or send the original request unchanged.";
    NOT_FAILED = "not_failed" http(409): "Retry only failed jobs; this one has not failed.";
    ALREADY_FINISHED = "already_finished" http(409): "Nothing to cancel: the job has already finished.";
    JOB_ACTIVE = "job_active" http(409): "Cancel the job, or wait until it finishes, then delete it.";
    JOB_STOPPING = "job_stopping" http(409): "Try again in a few seconds, once the job has stopped.";
    INVALID_SPEC = "invalid_spec" http(422) line(): "Fix each field the `details` name, then submit again.";
    WRONG_SHAPE = "wrong_shape" field(): "Send only the fields the OpenAPI document lists, each once and of its type.";
    RECORDS_UNAVAILABLE = "records_unavailable" http(503): "Try again shortly; the record store cannot be reached.";
    QUEUE_UNAVAILABLE = "queue_unavailable" http(503): "Try again shortly; the queue cannot be reached.";
    OBJECT_STORE_UNAVAILABLE = "object_store_unavailable" http(503): "Try again shortly; the object store cannot be reached.";
    SCRATCH_UNAVAILABLE = "scratch_unavailable" http(503): "Try again shortly; the scratch folder could not be cleared.";
    PREVIEW_UNAVAILABLE = "preview_unavailable" http(503): "Check that ffmpeg runs (`GET /readyz`) and that `media.fonts_dir` holds the caption font; the still could not be drawn.";

    // A spec's fields (the `details` of `invalid_spec`).
    SCRIPT_AND_TOPIC = "script_and_topic" field(): "Give either `script` or `topic`, not both.";
    SCRIPT_OR_TOPIC_REQUIRED = "script_or_topic_required" field(): "Give a `script` or a `topic`.";
    SCRIPT_EMPTY = "script_empty" field() job(No): "Give a script with words to speak.";
    TEXT_UNRENDERABLE = "text_unrenderable" field(): "Write the text in its own order, without bidi controls or piles of combining marks.";
    SCRIPT_TOO_LONG = "script_too_long" field(): "Shorten the script to the length the message gives.";
    TOO_MANY_SENTENCES = "too_many_sentences" field() job(No): "Use fewer sentences, or raise `limits.max_sentences`.";
    NARRATION_TOO_LONG = "narration_too_long" field() job(No): "Shorten the script, or raise `limits.max_narration_secs`.";
    TOPIC_EMPTY = "topic_empty" field(): "Give a topic with words in it.";
    TOPIC_TOO_LONG = "topic_too_long" field(): "Shorten the topic to the length the message gives.";
    CONTROL_CHARACTER = "control_character" field(): "Remove the control character the message names from the field.";
    TARGET_LENGTH_OUT_OF_RANGE = "target_length_out_of_range" field(): "Give a `target_length_s` within the range the message gives.";
    TOO_MANY_QUERIES = "too_many_queries" field(): "Give fewer `footage_queries`, at most as many as the message says.";
    QUERY_INVALID = "query_invalid" field(): "Give each footage query the number of characters the message allows.";
    VOICE_INVALID = "voice_invalid" field(): "Give a voice name of at most 64 letters, digits, `-`, `_` and `+`.";
    MUSIC_TRACK_INVALID = "music_track_invalid" field(): "Give the file name of a track in the music folder (letters, digits, `-`, `_`, `.`), without a path.";
    MUSIC_VOLUME_OUT_OF_RANGE = "music_volume_out_of_range" field(): "Give a music volume from 0.0 to 1.0, as the message says.";
    ACCOUNT_INVALID = "account_invalid" field(): "Give an account id of letters, digits, `-`, `_` and `.`, as `GET /v1/accounts` lists it.";
    TELEGRAM_CHAT_ID_INVALID = "telegram_chat_id_invalid" field(): "Give `notify.telegram_chat_id` as a numeric chat id or `@channelname`.";
    WEBHOOK_URL_INVALID = "webhook_url_invalid" field(): "Give `notify.webhook_url` as an http(s) URL with a host, at most 2048 characters.";
    IDEMPOTENCY_KEY_RESERVED = "idempotency_key_reserved" field(): "Choose an idempotency key that does not start with `batch:`; those are the batches' own.";
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid" field(): "Give an idempotency key of printable ASCII characters without spaces, as long as the message allows.";
    LANGUAGE_INVALID = "language_invalid" field(): "Give `language` as a BCP-47 tag such as `hi`, `ja` or `pt-BR`.";
    VOICE_LANGUAGE_MISMATCH = "voice_language_mismatch" field() job(No): "Name a voice that speaks the script's language (`GET /v1/voices` lists each voice's languages), or leave `voice` out to get the one configured for it.";
    NO_VOICE_FOR_LANGUAGE = "no_voice_for_language" field() job(No): "Name a voice for the language, map one in `providers.voice.languages`, or give `language` if the detected one is wrong.";
    REVIEW_INVALID = "review_invalid" field(): "Give `review` as `none`, `script`, `video` or `both`.";
    CAPTION_PRESET_UNKNOWN = "caption_preset_unknown" http(404) field(): "Name a caption preset `GET /v1/styles` lists (`classic`, `highlight`, `boxed`, `minimal`, `karaoke`).";
    CAPTION_FONT_INVALID = "caption_font_invalid" field(): "Give `caption_style.font` as a font family name: 1-64 letters, digits, spaces, `-`, `_` and `.`.";
    CAPTION_COLOUR_INVALID = "caption_colour_invalid" field(): "Give caption colours as `#RRGGBB`, e.g. `#FFD400`.";
    CAPTION_VALUE_OUT_OF_RANGE = "caption_value_out_of_range" field(): "Give the caption setting a value within the range the message gives.";
    CAPTION_POSITION_INVALID = "caption_position_invalid" field(): "Give `caption_style.position` as `bottom`, `middle` or `top`.";
    MEDIA_INVALID = "media_invalid" field(): "Name media by the ids `POST /v1/media` answered, pin each sentence (counted from 1) once, and send a voice-over only with a `script`.";
    MEDIA_UNKNOWN = "media_unknown" field() job(No): "Upload the item first (`POST /v1/media`); `GET /v1/media` lists what the team has.";
    MEDIA_WRONG_KIND = "media_wrong_kind" field(): "Use images or clips as footage and an audio item as the voice-over, as the message says.";
    CAPTION_TRANSITION_INVALID = "caption_transition_invalid" field(): "Give `caption_style.transition` as `cut`, `crossfade`, `slide` or `zoom`.";
    PUBLISH_NOT_CONFIGURED = "publish_not_configured" http(404) field() job(No): "Leave `account` out to get a staged video, or configure TikTok (`tiktok.client_key`, `tiktok.client_secret`).";
    ACCOUNT_UNKNOWN = "account_unknown" http(404) field() job(No): "Connect the account first; `GET /v1/accounts` lists the connected ones.";
    ACCOUNT_DISCONNECTED = "account_disconnected" field() job(No): "Connect the account again, then submit (or retry) the job.";

    // The review gate.
    NOT_IN_REVIEW = "not_in_review" http(409): "Approve, reject or make a reviewer link only for a job that is `in_review`; read its state first (an approval sent twice acts once).";
    NOT_REVISABLE = "not_revisable" http(409): "Revise only a job that is `changes_requested` or `in_review`.";
    NOTE_REQUIRED = "note_required" field(): "Say in `note` what should change when sending a job back.";
    NOTE_TOO_LONG = "note_too_long" field(): "Shorten the note to the length the message gives.";
    NOTHING_TO_REVISE = "nothing_to_revise" http(422): "Give at least one of `script`, `voice`, `footage_queries`, `captions`, `music`, `caption_style` with a new value.";

    // The team's media (`POST /v1/media`).
    MEDIA_TOO_LARGE = "media_too_large" http(413): "Send a smaller file, within `uploads.max_mb`, or raise that setting.";
    MEDIA_UNSUPPORTED = "media_unsupported" http(415): "Send a PNG, JPEG or WebP image, an MP4, MOV or WebM clip, or a WAV, MP3, M4A, OGG or FLAC audio file.";
    MEDIA_UNREADABLE = "media_unreadable" http(422): "Send a file that plays: ffprobe could not read the one sent as the type its content claims.";
    MEDIA_OVER_LIMITS = "media_over_limits" http(422): "Send a shorter or smaller item, within `uploads.max_secs` and `uploads.max_dimension`.";
    MEDIA_URL_REFUSED = "media_url_refused" http(422): "Give an http(s) URL on a public address; loopback and private addresses are refused unless `uploads.allow_private_urls` is on.";
    MEDIA_FETCH_FAILED = "media_fetch_failed" http(502): "Check that the URL answers 200 with the file within `uploads.fetch_timeout_secs`, then try again.";
    MEDIA_NOT_FOUND = "media_not_found" http(404): "Check the media id; `GET /v1/media` lists the team's media.";

    // Ideas from a web page (`POST /v1/ideas`).
    INVALID_IDEAS_REQUEST = "invalid_ideas_request" http(422): "Fix each field the `details` name (`url`, `count`, `llm_key`), then ask again.";
    PAGE_URL_INVALID = "page_url_invalid" field(): "Give `url` as an absolute http(s) URL with a host, at most 2048 characters.";
    IDEA_COUNT_OUT_OF_RANGE = "idea_count_out_of_range" field(): "Ask for 1 to `ideas.max_count` ideas, as the message says.";
    LLM_KEY_INVALID = "llm_key_invalid" field(): "Give `llm_key` as the LLM provider's key: 1-512 printable characters without spaces, or leave it out.";
    PAGE_ADDRESS_REFUSED = "page_address_refused" http(422): "Give a page on a public address; a loopback or private one is read only when its exact `host:port` is in `ideas.allowed_private_hosts`.";
    PAGE_REDIRECT_REFUSED = "page_redirect_refused" http(422): "Give the page's final address: it redirected to an address that is refused, or more often than `ideas.max_redirects` allows.";
    PAGE_TOO_LARGE = "page_too_large" http(422): "Give a smaller page, within `ideas.max_page_kb`, or raise that setting.";
    PAGE_TOO_SLOW = "page_too_slow" http(504): "Try again when the site answers faster, or raise `ideas.fetch_timeout_secs`.";
    PAGE_UNREACHABLE = "page_unreachable" http(502): "Check that the URL opens in a browser and answers 200, then ask again.";
    PAGE_WITHOUT_TEXT = "page_without_text" http(422): "Give a page whose HTML holds its text (headings, paragraphs); a page drawn by scripts in the browser shows a fetch nothing to read.";
    LLM_KEY_REFUSED = "llm_key_refused" http(422): "Check the `llm_key` sent with the request (a valid OpenRouter key with credits); it was used for that request only and not kept.";
    IDEAS_WRITER_FAILED = "ideas_writer_failed" http(502): "Read the script writer's code in the message; try again later, or check `providers.script` (its key, credits and model).";

    // Content performance (`GET /v1/performance`).
    GROUP_BY_INVALID = "group_by_invalid" http(422): "Give `group_by` as `topic`, `style`, `voice` or `account`.";
    SINCE_INVALID = "since_invalid" http(422): "Give `since` as an RFC 3339 time with its offset, e.g. `2026-03-01T00:00:00Z`.";

    // Batches.
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key" http(400): "Give the batch an idempotency key of printable ASCII characters without spaces, as long as the message allows.";
    MALFORMED_JSON = "malformed_json" http(400) line(): "Send valid JSON (one object per line for JSON Lines).";
    MALFORMED_CSV = "malformed_csv" http(400) line(): "Send valid CSV: a header row, then rows with as many cells as it has.";
    INVALID_BATCH = "invalid_batch" http(422): "Send a JSON array of job specs, JSON Lines or CSV.";
    UNKNOWN_COLUMN = "unknown_column" http(422): "Name only the columns the message lists (the README's batch section has them too).";
    DUPLICATE_COLUMN = "duplicate_column" http(422): "Name each column once.";
    BATCH_EMPTY = "batch_empty" http(422): "Send at least one job in the batch.";
    TOO_MANY_LINES = "too_many_lines" http(413): "Split the batch, or raise `limits.max_batch_lines`.";
    BATCH_TOO_LARGE = "batch_too_large" http(413): "Split the batch, or raise `limits.max_batch_mb`.";
    BATCH_NOT_FOUND = "batch_not_found" http(404): "Check the batch id the batch's answer gave.";
    MUSIC_TRACK_MISSING = "music_track_missing" field(): "Give a `music.track` cell when the row sets `music.volume`.";
    NOT_A_NUMBER = "not_a_number" field(): "Write the cell as a number.";
    NOT_A_BOOLEAN = "not_a_boolean" field(): "Write the cell as `true` or `false`.";

    // Stages of a job.
    FFMPEG_NOT_FOUND = "ffmpeg_not_found" job(No): "Install ffmpeg on the worker's `$PATH` (or set `media.ffmpeg`), then retry the job.";
    FFMPEG_FAILED = "ffmpeg_failed" job(Depends): "Read the worker's log for ffmpeg's command line and stderr; retry the job once the cause is fixed.";
    RENDER_TIMED_OUT = "render_timed_out" job(Yes): "Let the job retry; if renders keep timing out, raise `media.render_timeout_secs` or shorten the video.";
    PROBE_FAILED = "probe_failed" job(Yes): "Let the job retry; if it keeps failing, check that ffprobe is installed beside ffmpeg.";
    RENDER_CHECK_FAILED = "render_check_failed" job(No): "Read the message for what the rendered file lacked and report it; retrying renders the same file.";
    SCRATCH_ERROR = "scratch_error" job(Yes): "Check that the scratch folder is writable and has free space; the job retries.";
    OBJECT_MISSING = "object_missing" job(No): "Retry the job from an earlier stage; an object it needs was removed.";
    OBJECT_STORE_ERROR = "object_store_error" job(Depends): "Check the object store's reachability and credentials, then retry the job.";
    RECORD_STORE_ERROR = "record_store_error" job(Yes): "Check the record store's reachability; the job retries.";
    QUEUE_ERROR = "queue_error" job(Yes): "Check the queue's reachability (Redis); the job retries.";
    JOB_MISSING = "job_missing" job(No): "Nothing to do: the job was deleted while it ran.";
    MANIFEST_INCOMPLETE = "manifest_incomplete" job(No): "Retry the job from the prepare stage.";
    MUSIC_NOT_FOUND = "music_not_found" job(No): "Put the track in the music folder (`media.music_dir`) or name one that is there, then retry.";
    MUSIC_UNAVAILABLE = "music_unavailable" job(No): "Configure a music folder (`media.music_dir`), or submit the job without music.";
    TOO_MANY_FOOTAGE_SEGMENTS = "too_many_footage_segments" job(No): "Use a shorter script, or raise `limits.max_footage_segments`.";
    TOO_MANY_DELIVERIES = "too_many_deliveries" job(No): "Find why workers crashed or were killed in this stage (the worker's log), then retry the job.";

    // Programs and HTTP providers, any stage.
    PROGRAM_NOT_FOUND = "program_not_found" job(No): "Install the program the message names on the worker's `$PATH`, then retry the job.";
    PROGRAM_TIMED_OUT = "program_timed_out" job(Yes): "Let the job retry; if it keeps timing out, check the worker's load.";
    PROGRAM_FAILED = "program_failed" job(Depends): "Read the worker's log for the program's command line and stderr; retry once the cause is fixed.";
    IO_ERROR = "io_error" job(Yes): "Check the worker's disk space and permissions; the job retries.";
    TIMEOUT = "timeout" job(Yes): "Let the job retry; if the provider stays slow, raise its `timeout_secs`.";
    UNREACHABLE = "unreachable" job(Yes): "Check the worker's network and the provider's status; the job retries.";
    INVALID_API_KEY = "invalid_api_key" job(No): "Set a valid key for the provider the message names, then retry the job.";
    UPSTREAM_ERROR = "upstream_error" job(Yes): "Let the job retry; the provider had a server error.";
    BAD_ANSWER = "bad_answer" job(Yes): "Let the job retry; if it persists, the provider's API may have changed, so report it.";
    CACHE_ERROR = "cache_error" job(Yes): "Check the object store that holds the provider cache; the job retries.";

    // Narrators.
    VOICE_NOT_FOUND = "voice_not_found" http(404) job(No): "Name a voice the configured narrator has (for espeak-ng, `espeak-ng --voices`), then retry.";
    QUOTA_EXCEEDED = "quota_exceeded" job(No): "Raise the ElevenLabs quota or wait for it to renew, then retry the job.";
    TEXT_TOO_LONG = "text_too_long" job(No): "Shorten the script; the narrator refused a sentence as too long.";
    BAD_AUDIO = "bad_audio" job(No): "Check the narrator's output format settings; the audio it returned could not be read.";
    BAD_FORMAT = "bad_format" job(No): "Set an output format the narrator supports in its settings.";

    // Script writers.
    INSUFFICIENT_CREDITS = "insufficient_credits" job(No): "Add credits to the OpenRouter account, then retry the job.";
    MODERATION_REFUSED = "moderation_refused" job(No): "Choose a different topic; the model refused this one.";
    MODEL_UNAVAILABLE = "model_unavailable" job(Yes): "Let the job retry, or configure another model.";
    NO_PROVIDER_AVAILABLE = "no_provider_available" job(Yes): "Let the job retry, or configure a model more providers serve.";
    LLM_BAD_OUTPUT = "llm_bad_output" job(Yes): "Let the job retry; if it persists, configure a model that follows JSON schemas.";
    LLM_TRUNCATED = "llm_truncated" job(No): "Raise the script writer's `max_tokens`, or ask for a shorter video.";

    // Footage sources.
    FOOTAGE_LIBRARY_UNSET = "footage_library_unset" job(No): "Set the local footage folder the message names in settings, or use another footage source.";
    FOOTAGE_LIBRARY_UNREADABLE = "footage_library_unreadable" job(No): "Make the footage folder readable by the worker, then retry.";
    FOOTAGE_LIBRARY_EMPTY = "footage_library_empty" job(No): "Put video files in the footage folder, then retry.";
    FOOTAGE_MISSING = "footage_missing" job(No): "Restore the footage file the message names, or retry the job from prepare.";
    DOWNLOAD_FAILED = "download_failed" job(Depends): "Let the job retry; if it fails again, the stock clip may be gone, so retry from prepare.";
    GENERATION_FAILED = "generation_failed" job(Depends): "Read the vendor's failure code in the message; a refused prompt needs other words in that sentence, other failures pass on a retry (the slot shows stock footage meanwhile).";
    GENERATION_TIMED_OUT = "generation_timed_out" job(Yes): "Let the job retry, or raise `providers.ai_video.poll_timeout_secs`; the slot shows stock footage meanwhile.";

    // TikTok: accounts and tokens.
    TOKEN_KEY_MISSING = "token_key_missing" http(503) job(No): "Set `tiktok.token_key` so tokens can be sealed at rest, then connect again.";
    TOKEN_KEY_INVALID = "token_key_invalid" http(503) job(No): "Set `tiktok.token_key` to a key of the form the message gives.";
    TOKEN_UNREADABLE = "token_unreadable" job(No): "Connect the account again; its tokens were sealed with another key.";
    TOKEN_REFRESH_STALLED = "token_refresh_stalled" job(Yes): "Let the job retry; another worker's token refresh did not finish.";
    TOKEN_REFRESH_LOST = "token_refresh_lost" job(Yes): "Let the job retry; the refreshed token could not be stored.";
    NEEDS_RECONNECT = "needs_reconnect" job(Waits): "Connect the account again; the waiting jobs then go on by themselves.";
    OAUTH_STATE_MISSING = "oauth_state_missing" http(400): "Start again from `/v1/accounts/tiktok/connect`.";
    OAUTH_STATE_INVALID = "oauth_state_invalid" http(400): "Start again from `/v1/accounts/tiktok/connect`; each link works once.";
    OAUTH_STATE_EXPIRED = "oauth_state_expired" http(400): "Start again from `/v1/accounts/tiktok/connect` and finish within the link's lifetime.";
    OAUTH_DENIED = "oauth_denied" http(400): "Ask the creator to connect again and allow access.";
    OAUTH_CODE_MISSING = "oauth_code_missing" http(400): "Start again from `/v1/accounts/tiktok/connect`.";
    INVALID_GRANT = "invalid_grant" job(No): "Connect the account again.";
    INVALID_CLIENT = "invalid_client" job(No): "Check `tiktok.client_key` and `tiktok.client_secret`.";
    ACCESS_DENIED = "access_denied" job(No): "Ask the creator to connect again and allow access.";
    INVALID_SCOPE = "invalid_scope" job(No): "Request only the scopes the TikTok app is approved for.";
    INVALID_REQUEST = "invalid_request" job(No): "Read TikTok's description in the message; often the redirect URL registered for the app differs from the server's.";
    UNAUTHORIZED_CLIENT = "unauthorized_client" job(No): "Enable the needed grant for the TikTok app in TikTok's developer portal.";
    SERVER_ERROR = "server_error" job(Yes): "Try again later; TikTok's login service failed.";
    OAUTH_ERROR = "oauth_error" job(No): "Read TikTok's description in the message; connect the account again if it persists.";

    // TikTok: uploads and publishing.
    ACCESS_TOKEN_INVALID = "access_token_invalid" job(Yes): "Let the job retry with a refreshed token; connect the account again if it persists.";
    SCOPE_NOT_AUTHORIZED = "scope_not_authorized" job(No): "Connect the account again and allow the scope the message names (`video.upload` for drafts, `video.publish` for Direct Post and creator checks).";
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded" job(Waits): "Nothing: the job waits for TikTok's per-minute limit, then goes on.";
    RATE_LIMIT = "rate_limit" job(Waits): "Nothing: the job waits for the account's upload limit in settings, then goes on.";
    PENDING_DRAFTS_CAP = "pending_drafts_cap" job(Waits): "Ask the creator to post or delete drafts in the TikTok inbox; the job then goes on.";
    SPAM_RISK_TOO_MANY_PENDING_SHARE = "spam_risk_too_many_pending_share" job(Waits): "Ask the creator to post or delete drafts in the TikTok inbox; the job waits, then tries again.";
    SPAM_RISK_TOO_MANY_POSTS = "spam_risk_too_many_posts" job(No): "Retry the job tomorrow; the creator reached TikTok's daily post cap.";
    SPAM_RISK_USER_BANNED_FROM_POSTING = "spam_risk_user_banned_from_posting" job(No): "Nothing the server can do: TikTok does not let this creator post.";
    REACHED_ACTIVE_USER_CAP = "reached_active_user_cap" job(No): "Ask TikTok to raise the app's active-user cap.";
    INVALID_PARAM = "invalid_param" job(No): "Report it with the message's log_id; TikTok refused the request's parameters.";
    URL_OWNERSHIP_UNVERIFIED = "url_ownership_unverified" job(No): "Verify the domain or URL prefix of `tiktok.photo_url_prefix` in TikTok's developer portal (URL properties), then retry the job.";
    INVALID_PUBLISH_ID = "invalid_publish_id" job(No): "Retry the job; TikTok does not know its publish.";
    TOKEN_NOT_AUTHORIZED_FOR_SPECIFIED_PUBLISH_ID = "token_not_authorized_for_specified_publish_id" job(No): "Retry the job with the account it was published with.";
    TIKTOK_ERROR = "tiktok_error" job(No): "Read TikTok's code and log_id in the message and report it.";
    UNEXPECTED_RESPONSE = "unexpected_response" job(Depends): "Let the job retry; if it persists, TikTok's API may have changed, so report it.";
    UPLOAD_SERVER_ERROR = "upload_server_error" job(Yes): "Let the job retry; TikTok's upload server failed.";
    UPLOAD_REFUSED = "upload_refused" job(No): "Read the message for why TikTok refused the chunk and report it.";
    UPLOAD_OUT_OF_ORDER = "upload_out_of_order" job(Yes): "Let the job retry; TikTok lost track of the chunks sent.";
    UPLOAD_URL_EXPIRED = "upload_url_expired" job(Yes): "Check the bandwidth to TikTok (`tiktok.timeout_secs`), then retry the job.";
    VIDEO_UNREADABLE = "video_unreadable" job(Yes): "Let the job retry; the staged video could not be read.";
    VIDEO_UNSUITABLE = "video_unsuitable" job(No): "Render a video within the sizes TikTok takes in chunks, as the message says, then retry.";
    STATUS_TIMEOUT = "status_timeout" job(Yes): "Let the job retry; TikTok did not finish processing in time.";
    TIKTOK_INTERNAL = "tiktok_internal" job(Yes): "Let the job retry; TikTok failed to process the upload.";
    FILE_FORMAT_CHECK_FAILED = "file_format_check_failed" job(No): "Render in a file format TikTok accepts, then retry.";
    DURATION_CHECK_FAILED = "duration_check_failed" job(No): "Render a video within TikTok's duration limits, then retry.";
    FRAME_RATE_CHECK_FAILED = "frame_rate_check_failed" job(No): "Render at a frame rate TikTok accepts, then retry.";
    PICTURE_SIZE_CHECK_FAILED = "picture_size_check_failed" job(No): "Render at a picture size TikTok accepts, then retry.";
    PUBLISH_CANCELLED = "publish_cancelled" job(No): "Retry the job if the video should still go to TikTok.";
    AUTH_REMOVED = "auth_removed" job(No): "Connect the account again, then retry the job.";
    SPAM_RISK = "spam_risk" job(No): "Change the video or its text; TikTok's spam checks refused it.";
    PUBLISH_FAILED = "publish_failed" job(No): "Read TikTok's fail_reason in the message and report it.";
    VIDEO_TOO_LONG_FOR_CREATOR = "video_too_long_for_creator" job(No): "Shorten the script, or set `target_length_s`, to at most the creator's maximum the message names, then submit the job again.";

    // TikTok: Direct Post (see docs/tiktok-direct-post.md).
    POST_MODE_INVALID = "post_mode_invalid" field(): "Give `post_mode` as `inbox` (a draft, the default) or `direct`, with an `account`.";
    DIRECT_POST_NOT_ENABLED = "direct_post_not_enabled" field(): "Turn Direct Post on for the account first: `PATCH /v1/accounts/{id}` with `{\"direct_post\": true}`, or the studio's Accounts page.";
    DIRECT_POST_REQUIRED = "direct_post_required" field(): "Approve a Direct Post job's video with `direct_post` holding the person's choices, as the studio's composer sends them.";
    DIRECT_POST_NOT_ASKED = "direct_post_not_asked" field(): "Send `direct_post` only when approving the video of a job whose `post_mode` is `direct`.";
    PRIVACY_LEVEL_REQUIRED = "privacy_level_required" field(): "Choose who can see the post from the creator's options (`GET /v1/jobs/{id}/creator`); there is no default.";
    PRIVACY_LEVEL_OPTION_MISMATCH = "privacy_level_option_mismatch" field() job(No): "Choose one of the creator's `privacy_level_options` (`GET /v1/jobs/{id}/creator`), then approve again.";
    INTERACTION_DISABLED_BY_CREATOR = "interaction_disabled_by_creator" field(): "Leave comments, Duet or Stitch off when the creator turned them off in TikTok.";
    COMMERCIAL_CONTENT_UNSPECIFIED = "commercial_content_unspecified" field(): "With `disclose_commercial` on, choose `your_brand`, `branded_content` or both; without it, neither.";
    BRANDED_CONTENT_PRIVATE = "branded_content_private" field(): "Choose an audience other than SELF_ONLY for branded content.";
    MUSIC_CONFIRMATION_REQUIRED = "music_confirmation_required" field(): "Read TikTok's Music Usage Confirmation (and Branded Content Policy for branded content) and set `music_confirmed: true`.";
    TITLE_TOO_LONG = "title_too_long" field(): "Shorten the caption to at most 2200 UTF-16 units.";
    DIRECT_POST_NOT_APPROVED = "direct_post_not_approved" job(No): "Approve the video in the review gate with the composer's choices; a Direct Post is never sent without them.";
    UNAUDITED_CLIENT_CAN_ONLY_POST_TO_PRIVATE_ACCOUNTS = "unaudited_client_can_only_post_to_private_accounts" job(No): "Choose SELF_ONLY until TikTok has audited the app, then approve again.";
    FORMAT_INVALID = "format_invalid" field(): "Give `format` as `video` (the default) or `photos`; a photo post has one photo per sentence, at most 35.";
    PHOTO_URL_PREFIX_MISSING = "photo_url_prefix_missing" job(No): "Set `tiktok.photo_url_prefix` to the public https address of this server's `/p/` route, verified with TikTok as a URL prefix, then retry the job.";
    PHOTO_NOT_FOUND = "photo_not_found" http(404): "Check the job id and the photo's number (from 1); only a photo post's stills are served, for the retention period.";
    TOO_MANY_PHOTOS = "too_many_photos" job(No): "Shorten the script to at most 35 sentences (one photo each), then submit the job again.";
    CREATOR_CANNOT_POST_NOW = "creator_cannot_post_now" job(Waits): "Nothing: TikTok says the creator cannot post right now (the message says why); the Direct Post job waits, then tries again.";
    CREATOR_INFO_UNAVAILABLE = "creator_info_unavailable" http(503): "Try again in a minute; TikTok could not say what the creator may choose (the message says why).";

    // YouTube and Instagram targets (`targets` in a job).
    TARGET_INVALID = "target_invalid" field(): "Name each of `youtube` and `instagram` at most once in `targets`, with a connected account of that platform; TikTok goes in `account`.";
    TARGET_NOT_CONFIGURED = "target_not_configured" job(No): "Configure the platform (`youtube.client_id` or `instagram.app_id` and its secret), or leave it out of `targets`, then retry the job.";
    YOUTUBE_QUOTA_EXCEEDED = "youtube_quota_exceeded" job(Waits): "Nothing: the job waits until the project's YouTube quota resets (midnight Pacific time), then uploads.";
    YOUTUBE_UPLOAD_LIMIT = "youtube_upload_limit" job(Waits): "Nothing: the channel reached YouTube's uploads per 24 h; the job waits a day, then uploads.";
    YOUTUBE_REFUSED = "youtube_refused" job(No): "Read YouTube's reason in the message (title, description or tags out of its limits), change the job, then retry it.";
    YOUTUBE_REJECTED = "youtube_rejected" job(No): "Read YouTube's rejection or failure reason in the message; the video was not published.";
    YOUTUBE_SESSION_LOST = "youtube_session_lost" job(Yes): "Let the job retry; YouTube forgot the unfinished upload session, so the retry starts a new one (no video came of the old).";
    YOUTUBE_UNAVAILABLE = "youtube_unavailable" job(Yes): "Let the job retry; YouTube failed or could not be reached, and the upload resumes where it stopped.";
    INSTAGRAM_PUBLISH_LIMIT = "instagram_publish_limit" job(Waits): "Nothing: the account reached Instagram's posts per 24 h; the job waits until one frees up.";
    INSTAGRAM_MEDIA_REFUSED = "instagram_media_refused" job(No): "Read Instagram's reason in the message (format, aspect ratio, size); the render must change before a retry helps.";
    INSTAGRAM_MEDIA_UNREACHABLE = "instagram_media_unreachable" job(No): "Instagram fetches the video from a presigned link of the object store: use S3 or R2 (`storage`) reachable from the internet, then retry.";
    INSTAGRAM_CONTAINER_FAILED = "instagram_container_failed" job(No): "Read Instagram's status in the message; retry the job to make a new container if the cause is gone.";
    INSTAGRAM_RESTRICTED = "instagram_restricted" job(No): "Instagram restricted the account (spam or policy); resolve it in the Instagram app, then retry.";
    INSTAGRAM_UNAVAILABLE = "instagram_unavailable" job(Yes): "Let the job retry; Instagram failed or could not be reached, and the job goes on with the same container.";

    // The MCP server (docs/mcp.md).
    API_UNREACHABLE = "api_unreachable" mcp(): "Start the clipforge API, or point `clipforge mcp --server` (CLIPFORGE_SERVER) at it; the message says what failed.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_say_what_to_do() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "`{}` is defined twice", c.code);
            let snake = !c.code.is_empty()
                && c.code.starts_with(|ch: char| ch.is_ascii_lowercase())
                && !c.code.ends_with('_')
                && !c.code.contains("__")
                && c.code.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            assert!(snake, "`{}` is not snake_case", c.code);
            assert!(
                c.hint.len() > 1 && c.hint.ends_with('.'),
                "`{}`: the hint is not one sentence ending in a period",
                c.code
            );
            assert!(
                c.hint.starts_with(|ch: char| ch.is_uppercase() || ch == '`'),
                "`{}`: the hint starts a sentence",
                c.code
            );
            assert!(c.http.is_some() || c.field || c.line || c.job.is_some() || c.mcp, "`{}` is met nowhere", c.code);
            assert!(
                !c.hint.contains('|') && !c.hint.contains('\n'),
                "`{}`: the hint would break the README's table",
                c.code
            );
            if let Some(status) = c.http {
                assert!((400..600).contains(&status), "`{}`: HTTP {status} is not an error", c.code);
            }
        }
    }

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../README.md");
        let (start, end) = ("<!-- error codes: start -->\n", "<!-- error codes: end -->");
        let listed = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table)
            .expect("the README has the error code markers");
        let table = markdown_table();
        assert!(
            listed == table,
            "the README's table of error codes is out of date; paste this between the markers:\n\n{table}"
        );
    }
}
