//! Word captions as an ASS subtitle document, burnt in by libass.
//!
//! Words are shown a few at a time, each group from its first word's start to
//! its last word's end. Script text is escaped so that it renders literally:
//! libass reads `{…}` as override tags and `\N`, `\n`, `\h` as breaks and
//! spaces, so braces become `\{` / `\}` and every backslash is followed by an
//! invisible WORD JOINER (U+2060) that stops it from forming an escape.

use std::fmt::Write;

use crate::domain::WordTiming;

/// How captions look; sizes are in pixels of the output frame.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionStyle {
    pub font: String,
    pub size: u32,
    pub width: u32,
    pub height: u32,
    /// Distance of the caption baseline from the bottom of the frame.
    pub margin_bottom: u32,
    pub max_words: usize,
}

impl CaptionStyle {
    /// The caption band: where on the frame captions can appear, as (y, height).
    /// Tests compare this band between renders with and without captions.
    pub fn band(&self) -> (u32, u32) {
        let height = self.size * 3;
        (self.height.saturating_sub(self.margin_bottom + height), height)
    }
}

/// One caption line on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionCue {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// Groups words into cues of at most `max_words`, breaking after sentence ends.
pub fn cues(words: &[WordTiming], max_words: usize) -> Vec<CaptionCue> {
    let mut cues = Vec::new();
    let mut group: Vec<&WordTiming> = Vec::new();
    let flush = |group: &mut Vec<&WordTiming>, cues: &mut Vec<CaptionCue>| {
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            let text = crate::domain::join_words(group.iter().map(|w| w.text.as_str()));
            cues.push(CaptionCue { start_s: first.start_s, end_s: last.end_s, text });
        }
        group.clear();
    };
    for w in words {
        group.push(w);
        let sentence_end = crate::domain::ends_sentence(&w.text);
        if group.len() >= max_words.max(1) || sentence_end {
            flush(&mut group, &mut cues);
        }
    }
    flush(&mut group, &mut cues);
    // A cue ends where the next starts, so captions never flicker off mid-sentence.
    for i in 1..cues.len() {
        let next_start = cues[i].start_s;
        if next_start - cues[i - 1].end_s < 0.3 {
            cues[i - 1].end_s = next_start;
        }
    }
    cues
}

/// Makes `text` show literally in an ASS dialogue line.
pub fn escape_ass_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\u{2060}"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `H:MM:SS.cc`, the ASS time format (centiseconds).
pub fn ass_time(seconds: f64) -> String {
    let cs = (seconds.max(0.0) * 100.0).round() as u64;
    format!("{}:{:02}:{:02}.{:02}", cs / 360_000, (cs / 6000) % 60, (cs / 100) % 60, cs % 100)
}

/// The complete `.ass` document for `words`.
pub fn ass_document(words: &[WordTiming], style: &CaptionStyle) -> String {
    let mut doc = String::new();
    let _ = write!(
        doc,
        "[Script Info]\nScriptType: v4.00+\nPlayResX: {w}\nPlayResY: {h}\nWrapStyle: 0\nScaledBorderAndShadow: yes\n\n\
         [V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
         Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, \
         Alignment, MarginL, MarginR, MarginV, Encoding\n\
         Style: Caption,{font},{size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,{outline},2,2,60,60,{mv},1\n\n\
         [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        w = style.width,
        h = style.height,
        font = style.font,
        size = style.size,
        outline = (style.size / 14).max(2),
        mv = style.margin_bottom,
    );
    for cue in cues(words, style.max_words) {
        let _ = writeln!(
            doc,
            "Dialogue: 0,{},{},Caption,,0,0,0,,{}",
            ass_time(cue.start_s),
            ass_time(cue.end_s),
            escape_ass_text(&cue.text)
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start_s: f64, end_s: f64) -> WordTiming {
        WordTiming { text: text.into(), start_s, end_s }
    }

    #[test]
    fn override_tags_and_breaks_are_defused() {
        assert_eq!(escape_ass_text(r"{\b1}bold"), "\\{\\\u{2060}b1\\}bold");
        assert_eq!(escape_ass_text(r"a\Nb"), "a\\\u{2060}Nb");
        assert_eq!(escape_ass_text("two\nlines"), "two lines");
        assert_eq!(escape_ass_text("50% [x]; 'q': שלום 😀"), "50% [x]; 'q': שלום 😀");
    }

    #[test]
    fn times_are_centiseconds() {
        assert_eq!(ass_time(0.0), "0:00:00.00");
        assert_eq!(ass_time(61.234), "0:01:01.23");
        assert_eq!(ass_time(3600.5), "1:00:00.50");
    }

    #[test]
    fn words_group_by_count_and_sentence() {
        let words = [w("One", 0.0, 0.2), w("two", 0.3, 0.5), w("three.", 0.6, 0.9), w("Four", 1.5, 1.8)];
        let c = cues(&words, 2);
        let texts: Vec<_> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["One two", "three.", "Four"]);
        assert_eq!(c[0].end_s, 0.6, "a short gap is closed up to the next cue");
        assert_eq!(c[1].end_s, 0.9, "a sentence pause is kept");
    }

    #[test]
    fn the_document_carries_escaped_dialogue() {
        let style = CaptionStyle {
            font: "DejaVu Sans".into(),
            size: 80,
            width: 1080,
            height: 1920,
            margin_bottom: 400,
            max_words: 3,
        };
        let doc = ass_document(&[w("{x}", 1.0, 2.0)], &style);
        assert!(doc.contains("PlayResX: 1080\nPlayResY: 1920"));
        assert!(doc.contains("Dialogue: 0,0:00:01.00,0:00:02.00,Caption,,0,0,0,,\\{x\\}\n"), "{doc}");
    }
}
