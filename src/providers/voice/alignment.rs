//! Character alignment (ElevenLabs `alignment`) → word timings of the original text.
//!
//! `alignment` lists the characters of the text we sent, each with a start and
//! end time. An item may hold more than one code point (an emoji with a skin
//! tone), so items are flattened to code points first. When the flattened text
//! is the text we sent, every word takes the times of its first and last
//! character. When it is not (the service normalised something), words are
//! matched one to one if the counts agree, and spread evenly over the span
//! otherwise, so captions never drift past the audio.

use serde::Deserialize;

use crate::domain::WordTiming;

/// Three parallel arrays, times in seconds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Alignment {
    pub characters: Vec<String>,
    pub character_start_times_seconds: Vec<f64>,
    pub character_end_times_seconds: Vec<f64>,
}

impl Alignment {
    /// (code point, start, end) for every code point.
    fn code_points(&self) -> Vec<(char, f64, f64)> {
        let mut out = Vec::new();
        for (i, item) in self.characters.iter().enumerate() {
            let start = self.character_start_times_seconds.get(i).copied().unwrap_or(0.0);
            let end = self.character_end_times_seconds.get(i).copied().unwrap_or(start);
            for c in item.chars() {
                out.push((c, start, end));
            }
        }
        out
    }

    /// Start of the first and end of the last character.
    pub fn span(&self) -> (f64, f64) {
        let start = self.character_start_times_seconds.first().copied().unwrap_or(0.0);
        let end = self.character_end_times_seconds.last().copied().unwrap_or(start);
        (start, end)
    }
}

/// Words of `text` with times from `alignment`, shifted by `offset_s`.
pub fn words_from_alignment(text: &str, alignment: &Alignment, offset_s: f64) -> Vec<WordTiming> {
    let points = alignment.code_points();
    let aligned: String = points.iter().map(|p| p.0).collect();
    let words = crate::domain::caption_words(text);
    let timed = if aligned == text {
        // Character for character: each caption word takes the times of its
        // first and last character (words within a run of a script written
        // without spaces included).
        let mut at = 0;
        let mut timed = Vec::with_capacity(words.len());
        for w in &words {
            while points.get(at).is_some_and(|p| p.0.is_whitespace()) {
                at += 1;
            }
            let n = w.chars().count().max(1);
            let (Some(first), Some(last)) = (points.get(at), points.get(at + n - 1)) else { break };
            timed.push((w.clone(), first.1, last.2));
            at += n;
        }
        timed
    } else {
        let from_alignment = timed_words(&points);
        if from_alignment.len() == words.len() {
            from_alignment
        } else {
            let (start, end) = alignment.span();
            return super::spread_words(text, start + offset_s, end + offset_s);
        }
    };
    words
        .iter()
        .zip(timed)
        .map(|(w, (_, start, end))| WordTiming { text: w.clone(), start_s: start + offset_s, end_s: end + offset_s })
        .collect()
}

/// Whitespace-separated runs of `points` with the times of their first and last code point.
fn timed_words(points: &[(char, f64, f64)]) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let mut current: Option<(String, f64, f64)> = None;
    for &(c, start, end) in points {
        if c.is_whitespace() {
            out.extend(current.take());
            continue;
        }
        match current.as_mut() {
            Some(w) => {
                w.0.push(c);
                w.2 = end;
            }
            None => current = Some((c.to_string(), start, end)),
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alignment giving each item 0.1 s, as the service would for `items`.
    fn aligned(items: &[&str]) -> Alignment {
        Alignment {
            characters: items.iter().map(|s| s.to_string()).collect(),
            character_start_times_seconds: (0..items.len()).map(|i| i as f64 * 0.1).collect(),
            character_end_times_seconds: (0..items.len()).map(|i| i as f64 * 0.1 + 0.1).collect(),
        }
    }

    fn chars(text: &str) -> Vec<String> {
        text.chars().map(String::from).collect()
    }

    fn texts(words: &[WordTiming]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn numbers_and_punctuation_keep_their_characters_times() {
        let text = "It costs $5.50, in 2024!";
        let items = chars(text);
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let words = words_from_alignment(text, &aligned(&refs), 10.0);
        assert_eq!(texts(&words), ["It", "costs", "$5.50,", "in", "2024!"]);
        // "$5.50," is characters 9..=14.
        assert!((words[2].start_s - 10.9).abs() < 1e-9 && (words[2].end_s - 11.5).abs() < 1e-9, "{:?}", words[2]);
        assert!((words[4].end_s - (10.0 + 2.4)).abs() < 1e-9);
    }

    #[test]
    fn a_japanese_sentence_is_timed_word_by_word_from_its_characters() {
        let text = "今日は晴れです。";
        let items = chars(text);
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let words = words_from_alignment(text, &aligned(&refs), 0.0);
        assert!(words.len() >= 3, "several caption words, not one: {:?}", texts(&words));
        assert_eq!(texts(&words).concat(), text);
        assert_eq!(words[0].start_s, 0.0);
        assert!((words.last().unwrap().end_s - 0.8).abs() < 1e-9, "the last ends with the last character");
        assert!(words.windows(2).all(|p| p[0].end_s <= p[1].start_s + 1e-9), "in order");
    }

    #[test]
    fn an_emoji_item_of_several_code_points_stays_one_word() {
        let text = "Nice 👍🏽 work";
        // The service sends the thumbs-up and its skin tone as one item.
        let items = ["N", "i", "c", "e", " ", "👍🏽", " ", "w", "o", "r", "k"];
        let words = words_from_alignment(text, &aligned(&items), 0.0);
        assert_eq!(texts(&words), ["Nice", "👍🏽", "work"]);
        assert_eq!((words[1].start_s, words[1].end_s), (0.5, 0.6));
        assert!((words[2].start_s - 0.7).abs() < 1e-9);
    }

    #[test]
    fn normalised_text_with_the_same_word_count_maps_word_for_word() {
        // Sent "Dr. Who" but the alignment spells it out.
        let items = chars("Doctor Who");
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let words = words_from_alignment("Dr. Who", &aligned(&refs), 0.0);
        assert_eq!(texts(&words), ["Dr.", "Who"]);
        assert_eq!((words[0].start_s, words[0].end_s), (0.0, 0.6));
    }

    #[test]
    fn a_different_word_count_spreads_the_original_words_over_the_span() {
        let items = chars("twenty twenty four");
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let words = words_from_alignment("In 2024", &aligned(&refs), 1.0);
        assert_eq!(texts(&words), ["In", "2024"]);
        assert_eq!(words[0].start_s, 1.0);
        assert!((words[1].end_s - (1.0 + 1.8)).abs() < 1e-9, "ends with the last character");
    }
}
