//! Word captions as an ASS subtitle document, burnt in by libass.
//!
//! Words are shown a few at a time: a cue holds up to `words_per_line ×
//! max_lines` words and breaks after a sentence's end; its lines are broken in
//! Rust to the safe area's width ([`super::caption_layout`]) and the cue is
//! placed inside the safe area with `\an` + `\pos`, its outline and shadow
//! included. A cue with more lines than fit is shown in parts, one after the
//! other. The `highlight` effect writes one Dialogue per word, the word being
//! spoken coloured and grown; `karaoke` one per cue with `\kf` fills.
//! Right-to-left cues (by their first strong letter) use a style with
//! `Encoding: -1` (libass's automatic base direction) and a horizontal centre
//! mirrored in the safe area.
//!
//! Script text is escaped so that it renders literally: libass reads `{…}` as
//! override tags and `\N`, `\n`, `\h` as breaks and spaces, so braces become
//! `\{` / `\}` and every backslash is followed by an invisible WORD JOINER
//! (U+2060) that stops it from forming an escape.

use std::fmt::Write;

use super::caption_layout::{Line, Measure, is_rtl, wrap};
use crate::domain::{CaptionChoice, Effect, Position, Preset, PresetLook, Rgb, Transition, WordTiming};

/// TikTok's interface bands on the 1080x1920 frame, in pixels from each edge:
/// captions are kept out of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeArea {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

impl SafeArea {
    /// The defaults (`[captions]` in `config/default.toml`): the top tabs, the
    /// bottom caption/sound stack and the right action column kept clear.
    pub const TIKTOK: SafeArea = SafeArea { top: 250, bottom: 500, left: 120, right: 180 };
}

/// What a job's caption style is resolved against: the team's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionDefaults {
    /// `captions.default_preset`: the preset of jobs that name none.
    pub preset: Preset,
    /// `media.caption_font`.
    pub font: String,
    /// `media.caption_size`: 100 % of a preset's size.
    pub size: u32,
    pub safe: SafeArea,
}

/// How captions look and where they may go; sizes are in pixels of the output frame.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionStyle {
    pub font: String,
    pub size: u32,
    pub bold: bool,
    pub primary: Rgb,
    pub highlight: Rgb,
    pub outline_colour: Rgb,
    pub outline: u32,
    pub shadow: u32,
    pub boxed: bool,
    pub box_colour: Rgb,
    pub position: Position,
    pub words_per_line: usize,
    pub max_lines: usize,
    pub uppercase: bool,
    pub effect: Effect,
    /// How the render joins footage clips; not drawn by captions, carried here
    /// because the style is where a job picks its look.
    pub transition: Transition,
    pub width: u32,
    pub height: u32,
    pub safe: SafeArea,
}

/// Size of the word being spoken under the `highlight` effect, in percent.
pub const HIGHLIGHT_GROW: u32 = 112;

impl CaptionStyle {
    /// A preset's look with the team's font and size, inside `safe` on a `width`×`height` frame.
    pub fn from_look(look: &PresetLook, font: &str, base_size: u32, safe: SafeArea, width: u32, height: u32) -> Self {
        Self {
            font: font.to_string(),
            size: (base_size * look.size_percent / 100).max(1),
            bold: look.bold,
            primary: look.primary,
            highlight: look.highlight,
            outline_colour: look.outline_colour,
            outline: look.outline,
            shadow: look.shadow,
            boxed: look.boxed,
            box_colour: look.box_colour,
            position: look.position,
            words_per_line: look.words_per_line as usize,
            max_lines: look.max_lines as usize,
            uppercase: look.uppercase,
            effect: look.effect,
            transition: look.transition,
            width,
            height,
            safe,
        }
    }

    /// A job's style: its preset (or the team's default) with its overrides applied.
    pub fn resolve(choice: Option<&CaptionChoice>, defaults: &CaptionDefaults, width: u32, height: u32) -> Self {
        let empty = CaptionChoice::default();
        let c = choice.unwrap_or(&empty);
        let preset = c.preset.unwrap_or(defaults.preset);
        let mut s = Self::from_look(&preset.look(), &defaults.font, defaults.size, defaults.safe, width, height);
        if let Some(font) = &c.font {
            s.font = font.clone();
        }
        s.size = c.size.unwrap_or(s.size);
        s.primary = c.primary.unwrap_or(s.primary);
        s.highlight = c.highlight.unwrap_or(s.highlight);
        s.outline_colour = c.outline_colour.unwrap_or(s.outline_colour);
        s.outline = c.outline.unwrap_or(s.outline);
        s.shadow = c.shadow.unwrap_or(s.shadow);
        s.boxed = c.boxed.unwrap_or(s.boxed);
        s.box_colour = c.box_colour.unwrap_or(s.box_colour);
        s.position = c.position.unwrap_or(s.position);
        s.words_per_line = c.words_per_line.map_or(s.words_per_line, |v| v as usize);
        s.max_lines = c.max_lines.map_or(s.max_lines, |v| v as usize);
        s.uppercase = c.uppercase.unwrap_or(s.uppercase);
        s.transition = c.transition.unwrap_or(s.transition);
        s
    }

    /// How far ink reaches beyond the text's box: outline (or box padding), shadow and a pixel of antialiasing.
    pub fn pad(&self) -> u32 {
        self.outline + self.shadow + 2
    }

    /// The safe area as (x, y, width, height) on the frame.
    pub fn safe_rect(&self) -> (u32, u32, u32, u32) {
        let s = self.safe;
        (s.left, s.top, self.width - s.left - s.right, self.height - s.top - s.bottom)
    }

    /// Height of one line in pixels, with room for a grown highlighted word.
    fn line_height(&self) -> f64 {
        let grow = if self.effect == Effect::Highlight { f64::from(HIGHLIGHT_GROW) / 100.0 } else { 1.0 };
        f64::from(self.size) * 1.25 * grow
    }

    /// Most lines one cue shows: `max_lines`, fewer if they would not fit the safe area's height.
    pub fn lines_per_cue(&self) -> usize {
        let (_, _, _, h) = self.safe_rect();
        let fit = ((f64::from(h) - 2.0 * f64::from(self.pad())) / self.line_height()).floor() as usize;
        self.max_lines.min(fit).max(1)
    }

    fn measure(&self) -> Measure {
        let (_, _, w, _) = self.safe_rect();
        let grow = if self.effect == Effect::Highlight { f64::from(HIGHLIGHT_GROW) / 100.0 } else { 1.0 };
        Measure {
            size: f64::from(self.size),
            max_width: f64::from(w) - 2.0 * f64::from(self.pad()),
            grow,
            words_per_line: self.words_per_line,
        }
    }

    /// The caption band of bottom-placed captions, as (y, height): rows a
    /// one- or two-line cue covers. Tests compare it between renders.
    pub fn band(&self) -> (u32, u32) {
        let height = self.size * 3;
        let bottom = self.height - self.safe.bottom;
        (bottom.saturating_sub(height), height)
    }

    /// Where a cue is anchored: its `\an` alignment and `\pos` point.
    fn anchor(&self, rtl: bool) -> (u32, u32, u32) {
        let s = self.safe;
        let (left, right) = if rtl { (s.right, s.left) } else { (s.left, s.right) };
        let x = (left + self.width - right) / 2;
        let pad = self.pad();
        match self.position {
            Position::Bottom => (2, x, self.height - s.bottom - pad),
            Position::Middle => (5, x, (s.top + self.height - s.bottom) / 2),
            Position::Top => (8, x, s.top + pad),
        }
    }
}

/// One caption cue: lines on screen from its start to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionCue {
    pub start_s: f64,
    pub end_s: f64,
    pub lines: Vec<Line>,
    /// When each piece (word, or part of a long word) is spoken, in the order
    /// of the lines' pieces.
    pub spoken: Vec<(f64, f64)>,
    pub rtl: bool,
}

impl CaptionCue {
    /// The cue's lines as plain text, one per line.
    pub fn text(&self) -> String {
        self.lines.iter().map(Line::text).collect::<Vec<_>>().join("\n")
    }
}

/// Groups words into cues of at most `words_per_line × max_lines` words,
/// breaking after sentence ends; wraps each to the safe area and splits it
/// where it has more lines than fit at once.
pub fn cues(words: &[WordTiming], style: &CaptionStyle) -> Vec<CaptionCue> {
    let per_cue = style.words_per_line.max(1) * style.max_lines.max(1);
    let lines_per_cue = style.lines_per_cue();
    let measure = style.measure();
    let mut groups: Vec<Vec<&WordTiming>> = vec![Vec::new()];
    for w in words {
        let group = groups.last_mut().expect("one group at least");
        group.push(w);
        if group.len() >= per_cue || crate::domain::ends_sentence(&w.text) {
            groups.push(Vec::new());
        }
    }
    let mut cues: Vec<CaptionCue> = Vec::new();
    for group in groups.iter().filter(|g| !g.is_empty()) {
        let texts: Vec<String> =
            group.iter().map(|w| if style.uppercase { w.text.to_uppercase() } else { w.text.clone() }).collect();
        let rtl = is_rtl(&texts.concat());
        let lines = wrap(&texts, &measure);
        for chunk in lines.chunks(lines_per_cue) {
            let spoken: Vec<(f64, f64)> = chunk
                .iter()
                .flat_map(|l| &l.pieces)
                .map(|p| {
                    let w = group[p.word];
                    let share = (w.end_s - w.start_s).max(0.0) / p.parts as f64;
                    (w.start_s + share * p.part as f64, w.start_s + share * (p.part + 1) as f64)
                })
                .collect();
            let (Some(first), Some(last)) = (spoken.first(), spoken.last()) else { continue };
            cues.push(CaptionCue { start_s: first.0, end_s: last.1, lines: chunk.to_vec(), spoken, rtl });
        }
    }
    // A cue ends where the next starts, so captions never flicker off mid-sentence.
    for i in 1..cues.len() {
        let next_start = cues[i].start_s;
        if next_start - cues[i - 1].end_s < 0.3 {
            cues[i - 1].end_s = next_start.max(cues[i - 1].start_s);
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
    let cs = centiseconds(seconds);
    format!("{}:{:02}:{:02}.{:02}", cs / 360_000, (cs / 6000) % 60, (cs / 100) % 60, cs % 100)
}

fn centiseconds(seconds: f64) -> u64 {
    (seconds.max(0.0) * 100.0).round() as u64
}

/// An ASS colour, `&HAABBGGRR` (alpha 0 is opaque).
pub fn ass_colour(c: Rgb, alpha: u8) -> String {
    format!("&H{alpha:02X}{:02X}{:02X}{:02X}", c.2, c.1, c.0)
}

/// A colour as an override tag takes it, `&HBBGGRR&`.
pub fn tag_colour(c: Rgb) -> String {
    format!("&H{:02X}{:02X}{:02X}&", c.2, c.1, c.0)
}

/// The text of one Dialogue for `cue`: its position, then its lines, with the
/// piece numbered `active` highlighted and, for karaoke, a `\kf` before each piece.
fn dialogue_text(cue: &CaptionCue, style: &CaptionStyle, active: Option<usize>) -> String {
    let (an, x, y) = style.anchor(cue.rtl);
    let mut out = format!("{{\\an{an}\\pos({x},{y})}}");
    let mut index = 0;
    for (n, line) in cue.lines.iter().enumerate() {
        if n > 0 {
            out.push_str("\\N");
        }
        let squeeze = line.squeeze;
        if squeeze < 100 {
            let _ = write!(out, "{{\\fscx{squeeze}}}");
        }
        for (k, piece) in line.pieces.iter().enumerate() {
            if k > 0 && !super::caption_layout::tight(&line.pieces[k - 1].text, &piece.text) {
                out.push(' ');
            }
            if style.effect == Effect::Karaoke {
                let (start, end) = cue.spoken[index];
                let until = cue.spoken.get(index + 1).map_or(cue.end_s.max(end), |next| next.0);
                let from = if index == 0 { cue.start_s } else { start };
                let _ = write!(out, "{{\\kf{}}}", centiseconds(until).saturating_sub(centiseconds(from)));
            }
            if active == Some(index) {
                let grow = HIGHLIGHT_GROW;
                let _ = write!(
                    out,
                    "{{\\1c{}\\fscx{}\\fscy{grow}}}{}{{\\r}}",
                    tag_colour(style.highlight),
                    squeeze * grow / 100,
                    escape_ass_text(&piece.text)
                );
                if squeeze < 100 {
                    let _ = write!(out, "{{\\fscx{squeeze}}}");
                }
            } else {
                out.push_str(&escape_ass_text(&piece.text));
            }
            index += 1;
        }
        if squeeze < 100 {
            out.push_str("{\\fscx100}");
        }
    }
    out
}

/// The complete `.ass` document for `words`.
pub fn ass_document(words: &[WordTiming], style: &CaptionStyle) -> String {
    let mut doc = String::new();
    let s = style.safe;
    let (primary, secondary) = match style.effect {
        // `\kf` fills from the secondary colour to the primary one.
        Effect::Karaoke => (style.highlight, style.primary),
        _ => (style.primary, style.primary),
    };
    // With an opaque box (BorderStyle 3) libass fills the box in the outline
    // colour and its shadow in the back colour; `outline` is its padding.
    let (border_style, outline_colour, back) = if style.boxed {
        (3, ass_colour(style.box_colour, 0), ass_colour(style.box_colour, 0x40))
    } else {
        (1, ass_colour(style.outline_colour, 0), "&H80000000".to_string())
    };
    let style_line = |name: &str, left: u32, right: u32, encoding: i32| {
        format!(
            "Style: {name},{font},{size},{primary},{secondary},{outline_colour},{back},{bold},0,0,0,100,100,0,0,\
             {border_style},{outline},{shadow},2,{left},{right},{mv},{encoding}\n",
            font = style.font,
            size = style.size,
            primary = ass_colour(primary, 0),
            secondary = ass_colour(secondary, 0),
            bold = if style.bold { -1 } else { 0 },
            outline = style.outline,
            shadow = style.shadow,
            mv = s.bottom,
        )
    };
    let _ = write!(
        doc,
        "[Script Info]\nScriptType: v4.00+\nPlayResX: {w}\nPlayResY: {h}\nWrapStyle: 2\nScaledBorderAndShadow: yes\n\n\
         [V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
         Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, \
         Alignment, MarginL, MarginR, MarginV, Encoding\n{ltr}{rtl}\n\
         [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        w = style.width,
        h = style.height,
        ltr = style_line("Caption", s.left, s.right, 1),
        rtl = style_line("CaptionRtl", s.right, s.left, -1),
    );
    for cue in cues(words, style) {
        let name = if cue.rtl { "CaptionRtl" } else { "Caption" };
        let mut line = |start: f64, end: f64, active: Option<usize>| {
            if centiseconds(end) > centiseconds(start) {
                let _ = writeln!(
                    doc,
                    "Dialogue: 0,{},{},{name},,0,0,0,,{}",
                    ass_time(start),
                    ass_time(end),
                    dialogue_text(&cue, style, active)
                );
            }
        };
        if style.effect == Effect::Highlight {
            // One Dialogue per piece: from when it is spoken until the next one is.
            for k in 0..cue.spoken.len() {
                let start = if k == 0 { cue.start_s } else { cue.spoken[k].0 };
                let end = cue.spoken.get(k + 1).map_or(cue.end_s, |next| next.0);
                line(start, end, Some(k));
            }
        } else {
            line(cue.start_s, cue.end_s, None);
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start_s: f64, end_s: f64) -> WordTiming {
        WordTiming { text: text.into(), start_s, end_s }
    }

    fn style(preset: Preset) -> CaptionStyle {
        CaptionStyle::from_look(&preset.look(), "DejaVu Sans", 84, SafeArea::TIKTOK, 1080, 1920)
    }

    fn dialogues(doc: &str) -> Vec<&str> {
        doc.lines().filter(|l| l.starts_with("Dialogue:")).collect()
    }

    #[test]
    fn override_tags_and_breaks_are_defused() {
        assert_eq!(escape_ass_text(r"{\b1}bold"), "\\{\\\u{2060}b1\\}bold");
        assert_eq!(escape_ass_text(r"a\Nb"), "a\\\u{2060}Nb");
        assert_eq!(escape_ass_text("two\nlines"), "two lines");
        assert_eq!(escape_ass_text("50% [x]; 'q': שלום 😀"), "50% [x]; 'q': שלום 😀");
    }

    #[test]
    fn times_are_centiseconds_and_colours_bgr() {
        assert_eq!(ass_time(0.0), "0:00:00.00");
        assert_eq!(ass_time(61.234), "0:01:01.23");
        assert_eq!(ass_time(3600.5), "1:00:00.50");
        assert_eq!(ass_colour(Rgb(0xFF, 0xD4, 0x00), 0), "&H0000D4FF");
        assert_eq!(tag_colour(Rgb(0x12, 0x34, 0x56)), "&H563412&");
    }

    #[test]
    fn words_group_by_count_and_sentence() {
        let words = [w("One", 0.0, 0.2), w("two", 0.3, 0.5), w("three.", 0.6, 0.9), w("Four", 1.5, 1.8)];
        let mut s = style(Preset::Classic);
        s.words_per_line = 2;
        let c = cues(&words, &s);
        let texts: Vec<_> = c.iter().map(CaptionCue::text).collect();
        assert_eq!(texts, ["One two", "three.", "Four"]);
        assert_eq!(c[0].end_s, 0.6, "a short gap is closed up to the next cue");
        assert_eq!(c[1].end_s, 0.9, "a sentence pause is kept");
    }

    #[test]
    fn a_cue_with_more_lines_than_fit_is_shown_in_parts_one_after_the_other() {
        // Classic shows one line: six short words at most three a line make two cues.
        let words: Vec<_> = (0..6).map(|i| w(&format!("w{i}"), f64::from(i), f64::from(i) + 0.9)).collect();
        let mut s = style(Preset::Classic);
        s.max_lines = 1;
        s.words_per_line = 3;
        let c = cues(&words, &s);
        assert_eq!(c.iter().map(CaptionCue::text).collect::<Vec<_>>(), ["w0 w1 w2", "w3 w4 w5"]);
        s.max_lines = 2;
        let c = cues(&words, &s);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text(), "w0 w1 w2\nw3 w4 w5");
    }

    #[test]
    fn a_thirty_letter_word_is_broken_over_lines_each_spoken_in_turn() {
        let long = "Pneumonoultramicroscopicsilico";
        let c = cues(&[w(long, 1.0, 4.0)], &style(Preset::Classic));
        assert!(c.len() >= 2, "{c:?}");
        assert_eq!(c.iter().map(CaptionCue::text).collect::<String>(), long, "nothing is cut");
        assert_eq!(c[0].start_s, 1.0);
        assert!((c.last().unwrap().end_s - 4.0).abs() < 1e-9);
        for pair in c.windows(2) {
            assert!(pair[0].end_s <= pair[1].start_s + 1e-9, "parts follow each other: {c:?}");
        }
    }

    #[test]
    fn the_document_places_escaped_lines_inside_the_safe_area_and_breaks_them_itself() {
        let s = style(Preset::Classic);
        let doc = ass_document(&[w("{x}", 1.0, 2.0)], &s);
        assert!(doc.contains("PlayResX: 1080\nPlayResY: 1920\nWrapStyle: 2\n"), "{doc}");
        // Centred between x 120 and 900; bottom at 1920 - 500 less outline, shadow and 2.
        let pad = 6 + 2 + 2;
        let want =
            format!("Dialogue: 0,0:00:01.00,0:00:02.00,Caption,,0,0,0,,{{\\an2\\pos(510,{})}}\\{{x\\}}\n", 1420 - pad);
        assert!(doc.contains(&want), "{doc}");
        let many: Vec<_> =
            "a bb ccc dddd".split(' ').enumerate().map(|(i, t)| w(t, i as f64, i as f64 + 1.0)).collect();
        let mut two = style(Preset::Minimal);
        two.words_per_line = 2;
        let doc = ass_document(&many, &two);
        assert!(doc.contains("a bb\\Ncccc dddd") || doc.contains("a bb\\Nccc dddd"), "{doc}");
    }

    #[test]
    fn right_to_left_cues_use_automatic_direction_and_mirrored_margins() {
        let doc = ass_document(&[w("שלום", 0.0, 1.0), w("עולם.", 1.0, 2.0)], &style(Preset::Classic));
        let rtl_style = doc.lines().find(|l| l.starts_with("Style: CaptionRtl,")).unwrap();
        assert!(rtl_style.ends_with(",2,180,120,500,-1"), "{rtl_style}");
        let ltr_style = doc.lines().find(|l| l.starts_with("Style: Caption,")).unwrap();
        assert!(ltr_style.ends_with(",2,120,180,500,1"), "{ltr_style}");
        let d = dialogues(&doc);
        assert!(d[0].contains(",CaptionRtl,") && d[0].contains("\\pos(570,"), "{d:?}");
    }

    #[test]
    fn highlight_writes_one_dialogue_per_word_with_that_word_coloured_and_grown() {
        let words = [w("Sea", 0.0, 0.4), w("is", 0.5, 0.8), w("up.", 0.9, 1.2)];
        let doc = ass_document(&words, &style(Preset::Highlight));
        let d = dialogues(&doc);
        assert_eq!(d.len(), 3, "{doc}");
        assert!(d[0].starts_with("Dialogue: 0,0:00:00.00,0:00:00.50,"), "{}", d[0]);
        assert!(d[1].starts_with("Dialogue: 0,0:00:00.50,0:00:00.90,"), "{}", d[1]);
        assert!(d[2].starts_with("Dialogue: 0,0:00:00.90,0:00:01.20,"), "{}", d[2]);
        assert!(d[1].contains("Sea {\\1c&H00D4FF&\\fscx112\\fscy112}is{\\r} up."), "{}", d[1]);
        assert!(d[0].contains("\\an5\\pos(510,835)"), "the middle of the safe area: {}", d[0]);
    }

    #[test]
    fn karaoke_fills_each_word_for_as_long_as_it_is_spoken() {
        let words = [w("Sea", 0.0, 0.4), w("is", 0.5, 0.8), w("up.", 0.9, 1.2)];
        let doc = ass_document(&words, &style(Preset::Karaoke));
        let d = dialogues(&doc);
        assert_eq!(d.len(), 1, "{doc}");
        assert!(d[0].ends_with("{\\kf50}Sea {\\kf40}is {\\kf30}up."), "{}", d[0]);
        let st = doc.lines().find(|l| l.starts_with("Style: Caption,")).unwrap();
        assert!(st.contains(",&H00FFE03C,&H00FFFFFF,"), "fill colour primary, unfilled secondary: {st}");
    }

    #[test]
    fn boxed_draws_an_opaque_box_and_minimal_a_thin_outline() {
        let doc = ass_document(&[w("Hi.", 0.0, 1.0)], &style(Preset::Boxed));
        let st = doc.lines().find(|l| l.starts_with("Style: Caption,")).unwrap();
        assert!(st.contains(",3,16,0,2,"), "BorderStyle 3, 16 px padding: {st}");
        assert!(st.contains(",&H00181010,&H40181010,"), "box in the outline colour: {st}");
        let doc = ass_document(&[w("Hi.", 0.0, 1.0)], &style(Preset::Minimal));
        let st = doc.lines().find(|l| l.starts_with("Style: Caption,")).unwrap();
        assert!(
            st.starts_with("Style: Caption,DejaVu Sans,58,") && st.contains(",0,0,0,0,100,100,0,0,1,2,0,2,"),
            "{st}"
        );
    }

    #[test]
    fn overrides_replace_the_presets_settings_and_uppercase_shows_capitals() {
        let defaults =
            CaptionDefaults { preset: Preset::Classic, font: "DejaVu Sans".into(), size: 84, safe: SafeArea::TIKTOK };
        let choice = CaptionChoice {
            preset: Some(Preset::Highlight),
            font: Some("Noto Sans".into()),
            size: Some(60),
            highlight: Some(Rgb(0xFF, 0, 0)),
            position: Some(Position::Top),
            uppercase: Some(true),
            ..Default::default()
        };
        let s = CaptionStyle::resolve(Some(&choice), &defaults, 1080, 1920);
        assert_eq!((s.font.as_str(), s.size, s.effect), ("Noto Sans", 60, Effect::Highlight));
        let doc = ass_document(&[w("big", 0.0, 1.0)], &s);
        assert!(doc.contains("{\\1c&H0000FF&\\fscx112\\fscy112}BIG{\\r}"), "{doc}");
        assert!(doc.contains("\\an8\\pos(510,261)"), "top of the safe area, below the outline: {doc}");
        let plain = CaptionStyle::resolve(None, &defaults, 1080, 1920);
        assert_eq!(plain, style(Preset::Classic), "no choice: the team's default preset");
    }
}
