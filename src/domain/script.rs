//! A script's text as narration sees it: its sentences, and the shortest
//! time they can take to say.
//!
//! The API checks a submitted script with these functions and the prepare
//! stage checks a written one with the same, so a limit means the same thing
//! at submission and after the script writer.

/// Splits text into sentences at `.`, `!`, `?`, `…` followed by a space, and at
/// line breaks; each keeps its punctuation. Narration is synthesised per
/// sentence, which is what gives every sentence a known start and end.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            let ends = matches!(c, '.' | '!' | '?' | '…')
                && chars.peek().is_none_or(|n| n.is_whitespace())
                && !matches!(chars.peek(), Some('.' | '!' | '?'));
            if ends {
                push_sentence(&mut out, &current);
                current.clear();
            }
        }
        push_sentence(&mut out, &current);
    }
    out
}

fn push_sentence(out: &mut Vec<String>, s: &str) {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        return;
    }
    // Punctuation or symbols alone ("—", "😀") join the previous sentence instead
    // of becoming a silent sentence of their own.
    match out.last_mut() {
        Some(last) if !s.chars().any(char::is_alphanumeric) => {
            last.push(' ');
            last.push_str(&s);
        }
        _ => out.push(s),
    }
}

/// The shortest narration `sentences` can make, in seconds, when spoken at
/// `words_per_minute` (a rate faster than any narrator is configured to speak):
/// a lower bound, so a script it puts over a limit is over it for certain.
pub fn shortest_narration_secs<S: AsRef<str>>(sentences: &[S], words_per_minute: u32) -> f64 {
    let words: usize = sentences.iter().map(|s| s.as_ref().split_whitespace().count()).sum();
    words as f64 * 60.0 / f64::from(words_per_minute.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_and_line_breaks() {
        assert_eq!(
            split_sentences("One. Two!  Three?\nFour is here… five 3.5 percent"),
            ["One.", "Two!", "Three?", "Four is here…", "five 3.5 percent"]
        );
    }

    #[test]
    fn symbol_only_pieces_join_the_previous_sentence() {
        assert_eq!(split_sentences("Wow. 😀\n---"), ["Wow. 😀 ---"]);
        assert_eq!(split_sentences("Wait... what?!"), ["Wait...", "what?!"]);
    }

    #[test]
    fn the_shortest_narration_counts_words_at_the_fastest_rate() {
        assert_eq!(shortest_narration_secs(&["one two three", "four"], 240), 1.0);
        assert_eq!(shortest_narration_secs::<&str>(&[], 240), 0.0);
        let lines: Vec<String> = (0..1500).map(|i| format!("w{i}")).collect();
        assert_eq!(shortest_narration_secs(&lines, 300), 300.0);
    }
}
