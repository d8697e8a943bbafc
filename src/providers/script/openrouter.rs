//! OpenRouter chat completions: an LLM writes the script of a topic job.
//!
//! The answer is constrained by a strict JSON schema, and
//! `provider.require_parameters` keeps OpenRouter from routing to a model host
//! that would silently ignore it. OpenRouter can report an error with HTTP 200
//! (the model had started), so the body is always checked, and
//! `finish_reason: length` is reported as truncation, not as bad JSON.

use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ScriptWriter, given_script};
use crate::domain::{JobSpec, ScriptOutput, ScriptSource};
use crate::error_code as codes;
use std::sync::Arc;

use super::settings::OpenRouterSettings;
use crate::providers::http::HttpSettings;
use crate::providers::http::{self, CallPolicy, ErrorTally};
use crate::providers::{CostMeter, ProviderError};

const NAME: &str = "openrouter";
/// Spoken words per second used for the word budget (150 per minute).
/// Spoken words per second for a budget when the narrator gives none (150 per minute).
const WORDS_PER_SECOND: f64 = crate::providers::voice::DEFAULT_WORDS_PER_SECOND;

/// Writes scripts with an LLM through OpenRouter.
pub struct OpenRouterWriter {
    base_url: String,
    api_key: SecretString,
    model: String,
    temperature: f32,
    prompt: String,
    max_tokens: u32,
    client: reqwest::Client,
    policy: CallPolicy,
}

impl OpenRouterWriter {
    pub fn new(s: &OpenRouterSettings, http: &HttpSettings, tally: Arc<ErrorTally>) -> Self {
        Self {
            base_url: s.base_url.trim_end_matches('/').to_string(),
            api_key: s.api_key.clone().expect("checked in settings"),
            model: s.model.clone(),
            temperature: s.temperature,
            prompt: s.prompt.clone(),
            max_tokens: s.max_tokens,
            client: http::client(s.timeout()),
            policy: CallPolicy::new(http, tally),
        }
    }
}

/// The JSON schema the model must answer in.
pub fn script_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["hook", "sentences", "title", "caption", "hashtags"],
        "properties": {
            "hook": { "type": "string", "description": "The first sentence, spoken to stop the scroll." },
            "sentences": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["text", "footage_terms"],
                    "properties": {
                        "text": { "type": "string" },
                        "footage_terms": { "type": "array", "items": { "type": "string" } }
                    }
                }
            },
            "title": { "type": "string" },
            "caption": { "type": "string" },
            "hashtags": { "type": "array", "items": { "type": "string" } }
        }
    })
}

/// The system message of every request.
const SYSTEM: &str =
    "You write narration for vertical short videos. Answer only with the JSON object the schema asks for.";

/// The request body for a topic, a target length and its word budget.
pub fn request_body(
    model: &str,
    temperature: f32,
    max_tokens: u32,
    prompt: &str,
    topic: &str,
    seconds: u32,
    words: u32,
) -> Value {
    let user = prompt
        .replace("{topic}", topic)
        .replace("{seconds}", &seconds.to_string())
        .replace("{words}", &words.to_string());
    json!({
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "messages": [
            { "role": "system", "content": SYSTEM },
            { "role": "user", "content": user }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": { "name": "short_video_script", "strict": true, "schema": script_schema() }
        },
        "provider": { "require_parameters": true }
    })
}

/// The request that asks for a script to be rewritten to a new length: the
/// first request's conversation, the script as the model's answer, and what
/// to change.
pub fn rewrite_body(first: &Value, script: &ScriptOutput, spoken_s: f64, seconds: u32, words: u32) -> Value {
    let mut body = first.clone();
    let now = crate::domain::caption_words(&script.sentences.join(" ")).len();
    let previous = json!({
        "hook": script.sentences.first().cloned().unwrap_or_default(),
        "sentences": script.sentences.iter().zip(script.footage_terms.iter().chain(std::iter::repeat(&Vec::new())))
            .skip(1)
            .map(|(text, terms)| json!({ "text": text, "footage_terms": terms }))
            .collect::<Vec<_>>(),
        "title": script.title,
        "caption": script.caption.clone().unwrap_or_default(),
        "hashtags": script.hashtags,
    });
    let change = if f64::from(seconds) < spoken_s { "Shorten" } else { "Lengthen" };
    let ask = format!(
        "Spoken, that script of {now} words runs {spoken_s:.0} seconds, not {seconds}. {change} it to about {words} words, \
         keeping the topic, the hook and the same JSON shape."
    );
    if let Some(messages) = body["messages"].as_array_mut() {
        messages.push(json!({ "role": "assistant", "content": previous.to_string() }));
        messages.push(json!({ "role": "user", "content": ask }));
    }
    body
}

#[derive(Deserialize)]
struct Answer {
    hook: String,
    sentences: Vec<AnswerSentence>,
    title: String,
    caption: String,
    hashtags: Vec<String>,
}

#[derive(Deserialize)]
struct AnswerSentence {
    text: String,
    footage_terms: Vec<String>,
}

/// Maps an OpenRouter error code (HTTP status or `error.code`) to ours.
fn classify(code: i64, message: &str) -> ProviderError {
    let (ours, retryable) = match code {
        401 => (codes::INVALID_API_KEY, false),
        402 => (codes::INSUFFICIENT_CREDITS, false),
        403 => (codes::MODERATION_REFUSED, false),
        408 => (codes::TIMEOUT, true),
        429 => (codes::RATE_LIMITED, true),
        502 => (codes::MODEL_UNAVAILABLE, true),
        503 => (codes::NO_PROVIDER_AVAILABLE, true),
        500..=599 => (codes::UPSTREAM_ERROR, true),
        _ => (codes::BAD_REQUEST, false),
    };
    ProviderError::new(NAME, ours, format!("OpenRouter said {code}: {message}"), retryable)
}

/// Reads a chat completion body (HTTP 200) into a script.
pub fn parse_completion(body: &Value, meter: &CostMeter, model: &str) -> Result<ScriptOutput, ProviderError> {
    if let Some(err) = body.get("error") {
        return Err(classify(err["code"].as_i64().unwrap_or(500), err["message"].as_str().unwrap_or("error")));
    }
    if let Some(usage) = body.get("usage") {
        let count = |field: &str, counter: &AtomicU64| CostMeter::add(counter, usage[field].as_u64().unwrap_or(0));
        count("prompt_tokens", &meter.llm_prompt_tokens);
        count("completion_tokens", &meter.llm_completion_tokens);
    }
    let choice = body["choices"]
        .get(0)
        .ok_or_else(|| ProviderError::new(NAME, codes::LLM_BAD_OUTPUT, "the answer has no choices", true))?;
    if let Some(err) = choice.get("error") {
        return Err(classify(err["code"].as_i64().unwrap_or(502), err["message"].as_str().unwrap_or("error")));
    }
    match choice["finish_reason"].as_str() {
        Some("length") => {
            return Err(ProviderError::new(
                NAME,
                codes::LLM_TRUNCATED,
                "the model stopped at max_tokens before finishing the script; raise providers.script.max_tokens",
                false,
            ));
        }
        Some("content_filter") => {
            return Err(ProviderError::new(NAME, codes::MODERATION_REFUSED, "the model refused the topic", false));
        }
        _ => {}
    }
    let content = choice["message"]["content"].as_str().unwrap_or_default();
    let answer: Answer = serde_json::from_str(content).map_err(|e| {
        ProviderError::new(NAME, codes::LLM_BAD_OUTPUT, format!("the answer does not follow the schema: {e}"), true)
    })?;
    let mut sentences = vec![answer.hook.trim().to_string()];
    let mut terms = vec![answer.sentences.first().map(|s| s.footage_terms.clone()).unwrap_or_default()];
    for s in answer.sentences {
        sentences.push(s.text.trim().to_string());
        terms.push(s.footage_terms);
    }
    let keep: Vec<bool> = sentences.iter().map(|s| s.chars().any(char::is_alphanumeric)).collect();
    let sentences: Vec<String> = sentences.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| s).collect();
    let terms: Vec<Vec<String>> = terms.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(t, _)| t).collect();
    if sentences.is_empty() {
        return Err(ProviderError::new(NAME, codes::LLM_BAD_OUTPUT, "the script has no sentences", true));
    }
    Ok(ScriptOutput {
        title: answer.title,
        sentences,
        writer: format!("openrouter:{model}"),
        footage_terms: terms,
        caption: Some(answer.caption),
        hashtags: answer.hashtags,
    })
}

#[async_trait]
impl ScriptWriter for OpenRouterWriter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cache_identity(&self) -> Option<String> {
        let prompt = hex::encode(&Sha256::digest(self.prompt.as_bytes())[..8]);
        Some(format!("openrouter/{}/{}/{}/{prompt}", self.model, self.temperature, self.max_tokens))
    }

    async fn write(
        &self,
        spec: &JobSpec,
        words: Option<u32>,
        meter: &CostMeter,
    ) -> Result<ScriptOutput, ProviderError> {
        let topic = match &spec.source {
            ScriptSource::Script(text) => return Ok(given_script(text)),
            ScriptSource::Topic(topic) => topic,
        };
        self.complete(&self.first_body(topic, spec, words), meter).await
    }

    async fn rewrite_to_length(
        &self,
        spec: &JobSpec,
        script: &ScriptOutput,
        spoken_s: f64,
        words: u32,
        meter: &CostMeter,
    ) -> Result<Option<ScriptOutput>, ProviderError> {
        let ScriptSource::Topic(topic) = &spec.source else { return Ok(None) };
        let first = self.first_body(topic, spec, None);
        let seconds = spec.target_length_s.unwrap_or(DEFAULT_SECONDS);
        let body = rewrite_body(&first, script, spoken_s, seconds, words);
        self.complete(&body, meter).await.map(Some)
    }
}

/// The target length of a topic job that gives none.
const DEFAULT_SECONDS: u32 = 30;

impl OpenRouterWriter {
    /// The first request for a topic; `words` defaults to the target at [`WORDS_PER_SECOND`].
    fn first_body(&self, topic: &str, spec: &JobSpec, words: Option<u32>) -> Value {
        let seconds = spec.target_length_s.unwrap_or(DEFAULT_SECONDS);
        let words = words.unwrap_or_else(|| super::word_budget(seconds, WORDS_PER_SECOND));
        request_body(&self.model, self.temperature, self.max_tokens, &self.prompt, topic, seconds, words)
    }

    /// One chat completion, read into a script.
    async fn complete(&self, body: &Value, meter: &CostMeter) -> Result<ScriptOutput, ProviderError> {
        let url = format!("{}/chat/completions", self.base_url);
        self.policy
            .run(|| async {
                let resp = self
                    .client
                    .post(&url)
                    .bearer_auth(self.api_key.expose_secret())
                    .header("X-OpenRouter-Title", "clipforge")
                    .json(body)
                    .send()
                    .await
                    .map_err(|e| http::transport_error(NAME, e))?;
                let status = resp.status();
                let wait = http::retry_after(resp.headers());
                let value: Value = resp.json().await.map_err(|e| {
                    ProviderError::new(
                        NAME,
                        codes::LLM_BAD_OUTPUT,
                        format!("the answer is not JSON: {}", e.without_url()),
                        true,
                    )
                })?;
                if !status.is_success() {
                    let msg = value["error"]["message"].as_str().unwrap_or("no message");
                    return Err(classify(i64::from(status.as_u16()), msg).after(wait));
                }
                parse_completion(&value, meter, &self.model)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(content: &str, finish: &str) -> Value {
        json!({
            "choices": [{ "finish_reason": finish, "message": { "role": "assistant", "content": content } }],
            "usage": { "prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200 }
        })
    }

    const ANSWER: &str = r##"{"hook":"Tides are the moon's handwriting.","sentences":[{"text":"Twice a day the sea rises.","footage_terms":["ocean","waves"]}],"title":"Tides","caption":"Why tides happen","hashtags":["#ocean"]}"##;

    #[test]
    fn a_schema_answer_becomes_sentences_with_terms_and_counts_tokens() {
        let meter = CostMeter::default();
        let out = parse_completion(&completion(ANSWER, "stop"), &meter, "m").unwrap();
        assert_eq!(out.sentences, ["Tides are the moon's handwriting.", "Twice a day the sea rises."]);
        assert_eq!(out.footage_terms, [vec!["ocean", "waves"], vec!["ocean", "waves"]]);
        assert_eq!(out.hashtags, ["#ocean"]);
        let mut costs = crate::domain::Costs::default();
        meter.add_to(&mut costs);
        assert_eq!((costs.llm_prompt_tokens, costs.llm_completion_tokens), (120, 80));
    }

    #[test]
    fn truncation_is_named_as_such_not_as_bad_json() {
        let err =
            parse_completion(&completion("{\"hook\": \"Tides are", "length"), &CostMeter::default(), "m").unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("llm_truncated", false));
    }

    #[test]
    fn an_error_inside_a_200_body_is_an_error() {
        let body = json!({ "choices": [{ "finish_reason": "error", "error": { "code": 502, "message": "upstream died" }, "message": { "content": null } }] });
        let err = parse_completion(&body, &CostMeter::default(), "m").unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("model_unavailable", true));
        let top = json!({ "error": { "code": 402, "message": "no credits" } });
        assert_eq!(parse_completion(&top, &CostMeter::default(), "m").unwrap_err().code, "insufficient_credits");
    }

    #[test]
    fn malformed_content_is_retryable_bad_output() {
        let err = parse_completion(&completion("not json", "stop"), &CostMeter::default(), "m").unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("llm_bad_output", true));
    }

    #[test]
    fn the_request_asks_for_the_strict_schema_and_the_word_budget() {
        let body = request_body("m", 0.5, 900, "About {topic}: {seconds}s, {words} words.", "tides", 40, 100);
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(body["provider"]["require_parameters"], true);
        assert_eq!(body["messages"][1]["content"], "About tides: 40s, 100 words.");
        assert_eq!(body["response_format"]["json_schema"]["schema"]["additionalProperties"], false);
    }

    #[test]
    fn a_rewrite_replays_the_script_and_asks_for_the_new_budget() {
        let first = request_body("m", 0.5, 900, "About {topic}: {words} words.", "tides", 30, 75);
        let script = parse_completion(&completion(ANSWER, "stop"), &CostMeter::default(), "m").unwrap();
        let body = rewrite_body(&first, &script, 45.0, 30, 50);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4);
        let replayed: Value = serde_json::from_str(messages[2]["content"].as_str().unwrap()).unwrap();
        assert_eq!(replayed["hook"], "Tides are the moon's handwriting.");
        assert_eq!(replayed["sentences"][0]["footage_terms"], json!(["ocean", "waves"]));
        let ask = messages[3]["content"].as_str().unwrap();
        assert!(ask.contains("Shorten it to about 50 words") && ask.contains("runs 45 seconds, not 30"), "{ask}");
        assert_eq!(body["response_format"], first["response_format"]);
    }
}
