//! A script's text as narration sees it: its sentences, and the shortest
//! time they can take to say.
//!
//! The API checks a submitted script with these functions and the prepare
//! stage checks a written one with the same, so a limit means the same thing
//! at submission and after the script writer.

use icu_segmenter::WordSegmenter;

/// Ends a sentence when a space (or the line's end) follows: `.`, `!`, `?`,
/// `…`, and the Arabic `؟` and Devanagari `।` `॥`.
fn ends_before_space(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '؟' | '।' | '॥')
}

/// Ends a sentence by itself, as scripts written without spaces use them:
/// the ideographic full stop and the full-width `！` `？` `．`, and `｡`.
fn ends_alone(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '．' | '｡')
}

/// Whether `word` ends with a mark that ends a sentence ([`split_sentences`]'s marks).
pub fn ends_sentence(word: &str) -> bool {
    word.chars().last().is_some_and(|c| ends_before_space(c) || ends_alone(c))
}

/// Splits text into sentences at `.`, `!`, `?`, `…` (and `؟`, `।`, `॥`)
/// followed by a space, at `。`, `！`, `？` whatever follows, and at line
/// breaks; each keeps its punctuation, and a run of marks (`?!`, `！？`) stays
/// together. Narration is synthesised per sentence, which is what gives every
/// sentence a known start and end.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            let more_marks = chars.peek().is_some_and(|&n| matches!(n, '.' | '!' | '?') || ends_alone(n));
            let ends = !more_marks
                && ((ends_before_space(c) && chars.peek().is_none_or(|n| n.is_whitespace())) || ends_alone(c));
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

/// Whether `c` belongs to a script written without spaces between words, whose
/// words only a dictionary finds: Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar.
fn needs_dictionary(c: char) -> bool {
    matches!(u32::from(c),
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F | 0x20000..=0x2FA1F | 0x0E00..=0x0EFF | 0x1780..=0x17FF | 0x1000..=0x109F)
}

thread_local! {
    /// Unicode's word segmentation with dictionaries for Chinese and Japanese
    /// and models for Thai, Lao, Khmer and Myanmar (ICU4X, data compiled in;
    /// one per thread, as it is not `Sync`).
    static WORDS: WordSegmenter = WordSegmenter::new_auto();
}

/// The words of `text` as captions show and time them: its whitespace-separated
/// runs, and within a run of a script written without spaces (Chinese,
/// Japanese, Thai, …) the words Unicode's segmentation finds there, each
/// keeping the punctuation after it. Without this a Japanese sentence is one
/// "word" that stays on screen for the whole sentence and runs off the frame.
pub fn caption_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in text.split_whitespace() {
        if !run.chars().any(needs_dictionary) {
            out.push(run.to_string());
            continue;
        }
        let first = out.len();
        let mut from = 0;
        let breaks: Vec<_> = WORDS.with(|w| w.segment_str(run).iter_with_word_type().collect());
        for (at, kind) in breaks {
            if at == 0 {
                continue;
            }
            let piece = &run[from..at];
            from = at;
            // Punctuation and marks go with the word before them in this run.
            let joins = out.len() > first && !kind.is_word_like();
            match out.last_mut() {
                Some(last) if joins => last.push_str(piece),
                _ => out.push(piece.to_string()),
            }
        }
    }
    out
}

/// `words` as one line of text: with a space between two words, except where
/// both sides are of a script written without spaces (`今日` `は` → `今日は`).
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for word in words {
        let tight = line.chars().last().is_some_and(needs_dictionary_or_mark)
            && word.chars().next().is_some_and(needs_dictionary_or_mark);
        if !line.is_empty() && !tight {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// [`needs_dictionary`], or the ideographic marks those scripts use (`。`, `、`, `「`…).
fn needs_dictionary_or_mark(c: char) -> bool {
    needs_dictionary(c) || matches!(u32::from(c), 0x3000..=0x303F | 0xFF01..=0xFF65)
}

/// Most combining marks (accents and the like, U+0300–036F and kin) one
/// letter may carry; more pile up beyond the caption band and say nothing.
pub const MAX_COMBINING_RUN: usize = 4;

/// Why `text` would not caption as it is spoken, if it would not: a bidi
/// override or isolate (the captions would read in another order than the
/// narration), or a letter with more than [`MAX_COMBINING_RUN`] combining
/// marks. Scripts' own vowel signs (Devanagari, Thai, Arabic) are not counted.
pub fn unrenderable(text: &str) -> Option<String> {
    let mut run = 0;
    for (i, c) in text.chars().enumerate() {
        let code = u32::from(c);
        if matches!(code, 0x202A..=0x202E | 0x2066..=0x2069) {
            return Some(format!(
                "it holds the bidi control U+{code:04X} at character {}: captions would read in another order than                  the narration; write the text in its own order without direction controls",
                i + 1
            ));
        }
        let combining =
            matches!(code, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F);
        run = if combining { run + 1 } else { 0 };
        if run > MAX_COMBINING_RUN {
            return Some(format!(
                "character {} carries more than {MAX_COMBINING_RUN} combining marks in a row; they would stack                  above the captions and are not spoken",
                i + 1
            ));
        }
    }
    None
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
    fn sentences_end_at_ideographic_and_full_width_marks_without_a_space() {
        assert_eq!(split_sentences("今日は晴れです。明日は雨！本当？"), ["今日は晴れです。", "明日は雨！", "本当？"]);
        assert_eq!(split_sentences("本当！？はい。"), ["本当！？", "はい。"], "a run of marks stays together");
        assert_eq!(split_sentences("यह पहला है। यह दूसरा है।"), ["यह पहला है।", "यह दूसरा है।"]);
        assert_eq!(split_sentences("هل أنت هنا؟ نعم."), ["هل أنت هنا؟", "نعم."]);
        assert_eq!(split_sentences("Version 2.5 is out. Yes!"), ["Version 2.5 is out.", "Yes!"], "unchanged for Latin");
    }

    #[test]
    fn scripts_without_spaces_caption_word_by_word_and_others_by_their_spaces() {
        let ja = caption_words("今日は晴れです。");
        assert!(ja.len() >= 3, "a Japanese sentence is several words: {ja:?}");
        assert_eq!(ja.concat(), "今日は晴れです。", "nothing lost or added");
        assert!(
            ja.last().unwrap().ends_with('。') && ja.iter().all(|w| w != "。"),
            "the mark goes with its word: {ja:?}"
        );
        let zh = caption_words("我们今天去北京。");
        assert!(zh.len() >= 3 && zh.concat() == "我们今天去北京。", "{zh:?}");
        let th = caption_words("สวัสดีครับ วันนี้อากาศดี");
        assert!(th.len() >= 4, "Thai words found by the model: {th:?}");
        assert_eq!(caption_words("Hello, wide world."), ["Hello,", "wide", "world."]);
        assert_eq!(caption_words("안녕하세요 여러분"), ["안녕하세요", "여러분"], "Korean has spaces");
        assert_eq!(caption_words("नमस्ते दुनिया"), ["नमस्ते", "दुनिया"]);
    }

    #[test]
    fn words_of_scripts_without_spaces_join_without_one() {
        assert_eq!(join_words(["今日", "は", "晴れです。"]), "今日は晴れです。");
        assert_eq!(join_words(["Hello,", "world."]), "Hello, world.");
        assert_eq!(join_words(["東京", "Tower"]), "東京 Tower", "a space where one side has spaces");
        assert_eq!(join_words(Vec::<&str>::new()), "");
    }

    #[test]
    fn direction_overrides_and_piles_of_marks_are_named_and_real_scripts_pass() {
        assert!(unrenderable("abc\u{202E}cba").unwrap().contains("U+202E at character 4"));
        assert!(unrenderable("x\u{2067}y").is_some(), "isolates too");
        let zalgo = format!("a{}", "\u{0301}".repeat(MAX_COMBINING_RUN + 1));
        assert!(unrenderable(&zalgo).unwrap().contains("combining marks"));
        for fine in ["Crème brûlée", "e\u{0301}", "नमस्ते दुनिया", "สวัสดีครับ", "مرحبا بالعالم", "שלום עולם", "😀 fine"]
        {
            assert_eq!(unrenderable(fine), None, "{fine}");
        }
    }

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
