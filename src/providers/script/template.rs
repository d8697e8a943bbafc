//! The offline script writer: the job's own script as given, or a short
//! template filled from the topic.

use async_trait::async_trait;

use super::{ScriptWriter, given_script};
use crate::domain::{JobSpec, ScriptOutput, ScriptSource};
use crate::providers::{CostMeter, ProviderError};

/// Speaks the given script, or makes one from the topic with no outside help.
#[derive(Debug, Clone, Copy)]
pub struct TemplateWriter;

/// Roughly how many template sentences fill a second of narration.
const SENTENCES_PER_SECOND: f64 = 1.0 / 3.5;

const TEMPLATE: &[&str] = &[
    "Here is something worth knowing about {topic}.",
    "Most people never think twice about {topic}.",
    "But {topic} shapes more of your day than you would guess.",
    "Start by noticing where {topic} shows up around you.",
    "Then ask one question about {topic} that you cannot answer yet.",
    "Look it up, and share what you find.",
    "That small habit turns {topic} from background noise into something you understand.",
    "Follow for more short stories like this one.",
];

#[async_trait]
impl ScriptWriter for TemplateWriter {
    fn name(&self) -> &'static str {
        "template"
    }

    fn cache_identity(&self) -> Option<String> {
        None
    }

    async fn write(
        &self,
        spec: &JobSpec,
        _words: Option<u32>,
        _meter: &CostMeter,
    ) -> Result<ScriptOutput, ProviderError> {
        let (sentences, title) = match &spec.source {
            ScriptSource::Script(text) => return Ok(given_script(text)),
            ScriptSource::Topic(topic) => {
                let target = f64::from(spec.target_length_s.unwrap_or(20));
                let count = ((target * SENTENCES_PER_SECOND).round() as usize).clamp(2, TEMPLATE.len());
                let sentences =
                    TEMPLATE[..count - 1].iter().chain(TEMPLATE.last()).map(|t| t.replace("{topic}", topic)).collect();
                (sentences, topic.clone())
            }
        };
        let title: String = title.chars().take(100).collect();
        Ok(ScriptOutput {
            title,
            sentences,
            writer: "template".into(),
            footage_terms: vec![],
            caption: None,
            hashtags: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobRequest, SpecLimits};

    fn spec(req: JobRequest) -> JobSpec {
        JobSpec::parse(req, &SpecLimits::default()).unwrap()
    }

    #[tokio::test]
    async fn a_given_script_is_spoken_as_written() {
        let out = TemplateWriter
            .write(
                &spec(JobRequest { script: Some("First. Second!".into()), ..Default::default() }),
                None,
                &CostMeter::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.sentences, ["First.", "Second!"]);
        assert_eq!(out.writer, "given");
    }

    #[tokio::test]
    async fn a_topic_fills_the_template_to_the_target_length() {
        let short = TemplateWriter
            .write(
                &spec(JobRequest { topic: Some("tides".into()), target_length_s: Some(5), ..Default::default() }),
                None,
                &CostMeter::default(),
            )
            .await
            .unwrap();
        let long = TemplateWriter
            .write(
                &spec(JobRequest { topic: Some("tides".into()), target_length_s: Some(60), ..Default::default() }),
                None,
                &CostMeter::default(),
            )
            .await
            .unwrap();
        assert_eq!(short.sentences.len(), 2);
        assert!(long.sentences.len() > short.sentences.len());
        assert!(long.sentences[0].contains("tides"));
        assert_eq!(long.sentences.last().unwrap(), "Follow for more short stories like this one.");
    }
}
