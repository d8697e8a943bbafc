//! The offline script writer: the job's own script as given, or a short
//! template filled from the topic; and video ideas drawn from a page's
//! headings and sentences, the same every time for the same page.

use async_trait::async_trait;
use secrecy::SecretString;

use super::{IdeaAsk, ScriptWriter, given_script};
use crate::domain::{Idea, IdeaBounds, JobSpec, ScriptOutput, ScriptSource, split_sentences};
use crate::ideas::{BlockKind, PageText};
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

    async fn ideas(
        &self,
        ask: &IdeaAsk<'_>,
        _key: Option<&SecretString>,
        _meter: &CostMeter,
    ) -> Result<Vec<Idea>, ProviderError> {
        Ok(page_ideas(ask.page, &ask.bounds))
    }
}

/// Angles that turn one subject into another idea, when the page has fewer
/// subjects than ideas were asked for.
const ANGLES: &[&str] = &[
    "{topic}: three things to know",
    "The most common mistake with {topic}",
    "{topic}, explained in one minute",
    "Why {topic} matters more than you think",
    "A question people ask about {topic}",
];

/// Words that make poor footage searches.
const STOP_WORDS: &[&str] = &[
    "about", "after", "again", "also", "because", "been", "before", "being", "between", "both", "could", "does",
    "doing", "down", "each", "every", "from", "have", "here", "into", "just", "like", "make", "more", "most", "much",
    "only", "other", "over", "same", "should", "some", "such", "than", "that", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "under", "very", "what", "when", "where", "which", "while", "will",
    "with", "would", "your", "yours", "things", "know", "thing", "ways", "without", "within", "around", "never",
    "always",
];

/// Exactly `bounds.count` ideas from the page: a subject per heading (its
/// hook the first sentence under it), then per paragraph (its first
/// sentence), then the title; when the subjects run out, new angles on them.
pub fn page_ideas(page: &PageText, bounds: &IdeaBounds) -> Vec<Idea> {
    // (topic, hook, suggested seconds)
    let mut subjects: Vec<(String, String, i64)> = Vec::new();
    let first_sentence = |text: &str| split_sentences(text).into_iter().next().unwrap_or_default();
    for (i, block) in page.blocks.iter().enumerate() {
        if let BlockKind::Heading(level) = block.kind {
            let under =
                page.blocks[i + 1..].iter().find(|b| b.kind == BlockKind::Text).map(|b| first_sentence(&b.text));
            let hook = under.unwrap_or_else(|| format!("Here is what most people miss about {}.", block.text));
            subjects.push((block.text.clone(), hook, if level == 1 { 45 } else { 30 }));
        }
    }
    for block in page.blocks.iter().filter(|b| b.kind == BlockKind::Text) {
        let sentence = first_sentence(&block.text);
        if sentence.split_whitespace().count() >= 4 {
            subjects.push((sentence.trim_end_matches(['.', '!', '?']).to_string(), sentence.clone(), 20));
        }
    }
    if let Some(title) = &page.title {
        subjects.push((title.clone(), format!("Everything you need to know about {title}, fast."), 30));
    }
    let mut ideas: Vec<Idea> = Vec::new();
    let add = |topic: &str, hook: &str, secs: i64, ideas: &mut Vec<Idea>| {
        let queries = footage_words(&format!("{topic} {hook}"));
        if let Some(idea) = Idea::tidy(topic, hook, &queries, Some(secs), bounds)
            && !ideas.iter().any(|i| i.topic.eq_ignore_ascii_case(&idea.topic))
        {
            ideas.push(idea);
        }
    };
    for (topic, hook, secs) in &subjects {
        if ideas.len() == bounds.count {
            break;
        }
        add(topic, hook, *secs, &mut ideas);
    }
    let bases: Vec<Idea> = ideas.clone();
    'angles: for angle in ANGLES {
        for base in &bases {
            if ideas.len() >= bounds.count {
                break 'angles;
            }
            let topic = angle.replace("{topic}", &base.topic);
            add(&topic, &base.hook, i64::from(base.target_length_s), &mut ideas);
        }
    }
    // Still short (a page with one tiny subject): number the angles.
    let mut n = 2;
    while ideas.len() < bounds.count && !bases.is_empty() {
        let base = &bases[n % bases.len()];
        add(&format!("{} (part {n})", base.topic), &base.hook, i64::from(base.target_length_s), &mut ideas);
        n += 1;
    }
    ideas
}

/// Up to three search words from `text`: the first words of four letters or
/// more that are not filler, lowercased, each once.
fn footage_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 4 && !STOP_WORDS.contains(&word.as_str()) && !words.contains(&word) {
            words.push(word);
        }
        if words.len() == 3 {
            break;
        }
    }
    words
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

    const BOUNDS: IdeaBounds = IdeaBounds { count: 3, min_secs: 5, max_secs: 180 };

    fn page() -> PageText {
        PageText::from_html(
            "<title>The Shore Club</title><h1>Life in a tide pool</h1><p>Twice a day the sea leaves small worlds \
             behind. Crabs wait.</p><h2>Why anemones close</h2><p>They fold up to keep water in.</p>\
             <p>Go at low tide and step on bare rock only.</p>",
        )
    }

    #[test]
    fn ideas_come_from_headings_then_sentences_the_same_every_time() {
        let ideas = page_ideas(&page(), &BOUNDS);
        assert_eq!(ideas, page_ideas(&page(), &BOUNDS), "deterministic");
        let topics: Vec<&str> = ideas.iter().map(|i| i.topic.as_str()).collect();
        assert_eq!(
            topics,
            ["Life in a tide pool", "Why anemones close", "Twice a day the sea leaves small worlds behind"]
        );
        assert_eq!(ideas[0].hook, "Twice a day the sea leaves small worlds behind.");
        assert_eq!(ideas[1].hook, "They fold up to keep water in.");
        assert_eq!(ideas[0].footage_queries, ["life", "tide", "pool"]);
        assert_eq!((ideas[0].target_length_s, ideas[1].target_length_s, ideas[2].target_length_s), (45, 30, 20));
    }

    #[test]
    fn a_page_with_few_subjects_still_gives_the_count_asked_for() {
        let small = PageText::from_html("<p>Sourdough needs time, flour and water.</p>");
        for count in [1, 4, 12] {
            let ideas = page_ideas(&small, &IdeaBounds { count, ..BOUNDS });
            assert_eq!(ideas.len(), count);
            let topics: std::collections::BTreeSet<&str> = ideas.iter().map(|i| i.topic.as_str()).collect();
            assert_eq!(topics.len(), count, "each idea its own: {topics:?}");
            assert!(ideas.iter().all(|i| !i.hook.is_empty() && (5..=180).contains(&i.target_length_s)));
        }
    }
}
