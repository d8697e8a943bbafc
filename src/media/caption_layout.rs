//! Breaking caption words into lines that fit the safe area, in Rust.
//!
//! libass 0.17.1 (Debian 12's) cannot wrap by Unicode's rules, so every line
//! break is made here and written as `\N` with `WrapStyle: 2` (no wrapping by
//! libass). Widths are estimated per character class, on the wide side of
//! DejaVu Sans Bold and Debian's Noto fonts, so real text lands inside the
//! width it was wrapped to: Latin lower case 0.70 em, capitals 0.85 em, CJK
//! and Hangul 1.05 em, emoji 1.3 em, combining marks nothing. A word wider
//! than a line is squeezed (`\fscx`, down to [`MIN_SQUEEZE`] percent) or, if
//! that is not enough, broken where Unicode's line breaking allows inside it
//! (ICU4X `LineSegmenter`) and else between grapheme clusters — never cut.

use icu_segmenter::{GraphemeClusterSegmenter, LineSegmenter};

/// Narrowest a squeezed word gets, in percent of its width.
pub const MIN_SQUEEZE: u32 = 70;

thread_local! {
    static LINES: LineSegmenter = LineSegmenter::new_auto();
    static GRAPHEMES: GraphemeClusterSegmenter = GraphemeClusterSegmenter::new();
}

/// Estimated advance of `c` in em (of the font size).
pub fn char_em(c: char) -> f64 {
    let code = u32::from(c);
    match code {
        // Zero-width: combining marks, joiners, variation selectors, Thai/Arabic/Hebrew marks.
        0x0300..=0x036F
        | 0x0483..=0x0489
        | 0x0591..=0x05BD
        | 0x05BF
        | 0x05C1..=0x05C2
        | 0x05C4..=0x05C7
        | 0x0610..=0x061A
        | 0x064B..=0x065F
        | 0x0670
        | 0x06D6..=0x06ED
        | 0x0900..=0x0902
        | 0x093A
        | 0x093C
        | 0x0941..=0x0948
        | 0x094D
        | 0x0951..=0x0957
        | 0x0962..=0x0963
        | 0x0E31
        | 0x0E34..=0x0E3A
        | 0x0E47..=0x0E4E
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x200B..=0x200F
        | 0x2060..=0x2064
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F
        | 0xE0100..=0xE01EF => 0.0,
        0x20 => 0.36,
        _ if c.is_ascii() => match c {
            'i' | 'j' | 'l' | 'I' | '!' | '.' | ',' | '\'' | ':' | ';' | '|' | 'f' | 't' | 'r' | '(' | ')' | '['
            | ']' | '"' | '`' => 0.48,
            'm' | 'w' | 'M' | 'W' | '@' | '%' | '&' => 1.08,
            'A'..='Z' => 0.88,
            '0'..='9' => 0.74,
            _ => 0.72,
        },
        // Latin-1 and Latin Extended, Greek, Cyrillic: capitals are wider.
        0x00C0..=0x024F | 0x0370..=0x03FF | 0x0400..=0x052F => {
            if c.is_uppercase() {
                0.92
            } else {
                0.76
            }
        }
        0x0590..=0x05FF => 0.72,                   // Hebrew
        0x0600..=0x06FF | 0x0750..=0x08FF => 0.66, // Arabic
        0x0900..=0x0DFF => 0.8,                    // Devanagari and the other Indic scripts
        0x0E00..=0x0EFF => 0.68,                   // Thai, Lao
        // Emoji and pictographs (Symbola's outlines are wide).
        0x2600..=0x27BF | 0x1F000..=0x1FAFF => 1.3,
        // CJK, kana, Hangul, full-width forms.
        0x1100..=0x11FF
        | 0x2E80..=0x9FFF
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7FF
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFF => 1.05,
        _ => 1.0,
    }
}

/// Estimated width of `text` in em.
pub fn text_em(text: &str) -> f64 {
    text.chars().map(char_em).sum()
}

/// Whether two words are written without a space between them (Chinese,
/// Japanese, Thai), by the same rule [`crate::domain::join_words`] joins them.
pub fn tight(before: &str, after: &str) -> bool {
    crate::domain::join_words([before, after]).len() == before.len() + after.len()
}

/// A piece of a word on a line: the whole word, or part of a word too long for one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Index of the word in the laid-out list.
    pub word: usize,
    pub text: String,
    /// Which part of its word this is, and of how many parts.
    pub part: usize,
    pub parts: usize,
}

/// One line of a caption: its pieces in reading order and the horizontal
/// squeeze (percent, 100 for none) that makes it fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub pieces: Vec<Piece>,
    pub squeeze: u32,
}

impl Line {
    /// The line as text, pieces joined as their words are.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.pieces.iter().enumerate() {
            if i > 0 && !tight(&self.pieces[i - 1].text, &p.text) {
                out.push(' ');
            }
            out.push_str(&p.text);
        }
        out
    }
}

/// How wide lines may be and how many words they hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// Text size in pixels.
    pub size: f64,
    /// Widest a line may be, in pixels.
    pub max_width: f64,
    /// Growth of the widest word while it is highlighted (1.0 for none).
    pub grow: f64,
    pub words_per_line: usize,
}

impl Measure {
    fn width(&self, text: &str) -> f64 {
        text_em(text) * self.size
    }

    /// Width of a line of `pieces` as it may be drawn: the highlighted
    /// (grown) word is the widest one.
    fn line_width(&self, pieces: &[&str]) -> f64 {
        let mut w = 0.0;
        let mut widest: f64 = 0.0;
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 && !tight(pieces[i - 1], p) {
                w += self.width(" ");
            }
            let pw = self.width(p);
            widest = widest.max(pw);
            w += pw;
        }
        w + widest * (self.grow - 1.0)
    }
}

/// Lays `words` out in lines no wider than `m.max_width` and of at most
/// `m.words_per_line` words each, in order.
pub fn wrap(words: &[String], m: &Measure) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let fits = |pieces: &[Piece], next: &str| {
        let mut texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        texts.push(next);
        m.line_width(&texts) <= m.max_width
    };
    for (i, word) in words.iter().enumerate() {
        let alone = m.line_width(&[word]);
        if alone > m.max_width {
            if !current.is_empty() {
                lines.push(Line { pieces: std::mem::take(&mut current), squeeze: 100 });
            }
            let squeeze = (m.max_width / alone * 100.0).floor() as u32;
            if squeeze >= MIN_SQUEEZE {
                let piece = Piece { word: i, text: word.clone(), part: 0, parts: 1 };
                lines.push(Line { pieces: vec![piece], squeeze });
            } else {
                let parts = break_word(word, m);
                let n = parts.len();
                for (part, text) in parts.into_iter().enumerate() {
                    lines.push(Line { pieces: vec![Piece { word: i, text, part, parts: n }], squeeze: 100 });
                }
            }
            continue;
        }
        let words_on_line = current.len();
        if !current.is_empty() && (words_on_line >= m.words_per_line.max(1) || !fits(&current, word)) {
            lines.push(Line { pieces: std::mem::take(&mut current), squeeze: 100 });
        }
        current.push(Piece { word: i, text: word.clone(), part: 0, parts: 1 });
    }
    if !current.is_empty() {
        lines.push(Line { pieces: current, squeeze: 100 });
    }
    lines
}

/// Splits a word too wide for a line into parts that each fit: at the breaks
/// Unicode's line breaking allows inside it where it can, else between
/// grapheme clusters (a cluster is never split, so no letter loses its marks).
fn break_word(word: &str, m: &Measure) -> Vec<String> {
    let line_breaks: Vec<usize> = LINES.with(|s| s.segment_str(word).collect());
    let graphemes: Vec<usize> = GRAPHEMES.with(|s| s.segment_str(word).collect());
    let mut parts = Vec::new();
    let mut from = 0;
    while from < word.len() {
        let fits = |to: usize| m.line_width(&[&word[from..to]]) <= m.max_width;
        let best = |breaks: &[usize]| breaks.iter().copied().filter(|&b| b > from && fits(b)).max();
        let to = best(&line_breaks)
            .or_else(|| best(&graphemes))
            // One cluster wider than a line (never with a sane size): it goes alone.
            .unwrap_or_else(|| graphemes.iter().copied().find(|&b| b > from).unwrap_or(word.len()));
        parts.push(word[from..to].to_string());
        from = to;
    }
    parts
}

/// The base direction of `text` by its first strong letter: right-to-left
/// for Hebrew and Arabic (and the scripts written like them), else left-to-right.
pub fn is_rtl(text: &str) -> bool {
    for c in text.chars() {
        let code = u32::from(c);
        if matches!(code, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF) {
            return !matches!(code, 0x0591..=0x05C7 | 0x064B..=0x065F | 0x0660..=0x0669 | 0x06F0..=0x06F9);
        }
        if c.is_alphabetic() {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(max_width: f64, words_per_line: usize) -> Measure {
        Measure { size: 100.0, max_width, grow: 1.0, words_per_line }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(Line::text).collect()
    }

    #[test]
    fn lines_hold_at_most_the_words_and_the_width_given() {
        let w = words("one two three four five");
        assert_eq!(texts(&wrap(&w, &m(10_000.0, 2))), ["one two", "three four", "five"]);
        // "one two" is 0.72*5 + 0.48 + 0.36 em ≈ 4.4 em; 400 px holds one word.
        assert_eq!(texts(&wrap(&w, &m(400.0, 5))), ["one", "two", "three", "four", "five"]);
        for line in wrap(&w, &m(600.0, 5)) {
            assert!(text_em(&line.text()) * 100.0 <= 600.0, "{line:?}");
        }
    }

    #[test]
    fn a_grown_highlight_counts_against_the_width() {
        let w = words("abcd abcd");
        let plain = m(620.0, 5);
        assert_eq!(wrap(&w, &plain).len(), 1, "2 × 2.88 em + a space fits 620 px");
        let grown = Measure { grow: 1.12, ..plain };
        assert_eq!(wrap(&w, &grown).len(), 2, "not with the highlighted word 12 % wider");
    }

    #[test]
    fn a_word_a_little_too_wide_is_squeezed_and_a_much_too_wide_one_broken_never_cut() {
        let squeezed = wrap(&words("abcdefghij"), &m(600.0, 3));
        assert_eq!(squeezed.len(), 1);
        assert!((MIN_SQUEEZE..100).contains(&squeezed[0].squeeze), "{squeezed:?}");

        let long = "a".repeat(30);
        let lines = wrap(&[long.clone(), "end".into()], &m(700.0, 3));
        assert!(lines.len() >= 3, "{lines:?}");
        let pieces: Vec<&Piece> = lines.iter().flat_map(|l| &l.pieces).filter(|p| p.word == 0).collect();
        assert_eq!(pieces.iter().map(|p| p.text.as_str()).collect::<String>(), long, "nothing is lost");
        assert!(pieces.iter().all(|p| p.parts == pieces.len()));
        for line in &lines {
            assert!(text_em(&line.text()) * 100.0 <= 700.0, "{line:?}");
        }
        assert_eq!(lines.last().unwrap().text(), "end", "the next word starts a new line");
    }

    #[test]
    fn a_long_word_breaks_where_unicode_allows_first_and_clusters_stay_whole() {
        let lines = wrap(&["well-known-long-compound".into()], &m(1_000.0, 3));
        assert!(lines[0].text().ends_with('-'), "broken after a hyphen: {lines:?}");
        let marks = "e\u{301}".repeat(20);
        for line in wrap(&[marks], &m(300.0, 3)) {
            assert!(!line.text().starts_with('\u{301}'), "a mark never starts a line: {line:?}");
        }
    }

    #[test]
    fn words_without_spaces_join_tight_and_are_measured_full_width() {
        let w: Vec<String> = ["今日は", "とても", "良い", "天気です。"].map(String::from).to_vec();
        let lines = wrap(&w, &m(800.0, 10));
        assert_eq!(texts(&lines), ["今日はとても", "良い天気です。"]);
        assert!((text_em("今日は") - 3.15).abs() < 1e-9);
        assert_eq!(text_em("e\u{301}"), 0.72, "a combining mark adds nothing");
    }

    #[test]
    fn direction_is_the_first_strong_letters() {
        assert!(is_rtl("שלום עולם"));
        assert!(is_rtl("«مرحبا» hello"));
        assert!(is_rtl("123 مرحبا"));
        assert!(!is_rtl("hello שלום"));
        assert!(!is_rtl("今日は"));
        assert!(!is_rtl("😀"));
    }
}
