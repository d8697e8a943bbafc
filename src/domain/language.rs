//! The language a script is spoken in: a BCP-47 tag a job may give, or one
//! detected from the text by its writing system.
//!
//! Detection is by Unicode script, not by a statistical model, so it is
//! exact where a writing system belongs to one language and silent where it
//! does not: Latin, Cyrillic other than Russian's alphabet use, and the other
//! shared alphabets cannot tell one language from another by their letters,
//! so a Latin-script text is "not detected" and is spoken by the voice the job
//! names (or the default). The table ([`SCRIPT_LANGUAGES`]):
//!
//! | writing system | language |
//! |---|---|
//! | Hiragana or Katakana (with or without Han) | `ja` |
//! | Hangul | `ko` |
//! | Han without kana | `zh` |
//! | Devanagari | `hi` (Marathi and Nepali share it: give `language`) |
//! | Bengali, Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada, Malayalam, Sinhala | `bn`, `pa`, `gu`, `or`, `ta`, `te`, `kn`, `ml`, `si` |
//! | Thai, Lao, Khmer, Myanmar | `th`, `lo`, `km`, `my` |
//! | Arabic | `ar` (Persian and Urdu share it: give `language`) |
//! | Hebrew | `he` |
//! | Greek | `el` |
//! | Cyrillic | `ru` (other Cyrillic languages: give `language`) |
//! | Georgian, Armenian, Ethiopic | `ka`, `hy`, `am` |
//!
//! The writing system with the most letters wins when it holds at least a
//! third of the text's letters; a Latin majority means "not detected".

use std::fmt;

/// A BCP-47 language tag as a job gives it, normalised to the usual case
/// (`pt-BR`, `zh-Hant`, `sr-Latn-RS`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

impl Language {
    /// Parses a tag of the form language (2-3 letters), then optional script
    /// (4 letters), region (2 letters or 3 digits) and variants (5-8
    /// alphanumerics, or 4 starting with a digit). Private-use and extension
    /// subtags are refused: no narrator knows them.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || raw.to_string();
        if raw.is_empty() || raw.len() > 35 {
            return Err(bad());
        }
        let mut parts = raw.split(['-', '_']);
        let primary = parts.next().ok_or_else(bad)?;
        if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(bad());
        }
        let mut out = primary.to_ascii_lowercase();
        // 0: script may come, 1: region may come, 2: only variants.
        let mut stage = 0;
        for part in parts {
            let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
            let digits = part.chars().all(|c| c.is_ascii_digit());
            let alnum = part.chars().all(|c| c.is_ascii_alphanumeric());
            out.push('-');
            if stage == 0 && part.len() == 4 && alpha {
                let mut chars = part.chars();
                out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
                stage = 1;
            } else if stage <= 1 && ((part.len() == 2 && alpha) || (part.len() == 3 && digits)) {
                out.push_str(&part.to_ascii_uppercase());
                stage = 2;
            } else if alnum
                && ((5..=8).contains(&part.len())
                    || (part.len() == 4 && part.starts_with(|c: char| c.is_ascii_digit())))
            {
                out.push_str(&part.to_ascii_lowercase());
                stage = 2;
            } else {
                return Err(bad());
            }
        }
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language subtag alone: `pt` for `pt-BR`.
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// Whether a voice that speaks `tag` (a tag in any case, e.g. espeak-ng's
    /// `en-us` or `zh-cmn`) speaks this language: the same language subtag,
    /// where Mandarin and Cantonese (`cmn`, `yue`) count as `zh`.
    pub fn spoken_by(&self, tag: &str) -> bool {
        let theirs = tag.split(['-', '_']).next().unwrap_or(tag).to_ascii_lowercase();
        let norm = |p: &str| if matches!(p, "cmn" | "yue") { "zh".to_string() } else { p.to_string() };
        norm(&theirs) == norm(self.primary())
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unicode script ranges and the language detection names for each
/// (see the module docs for the table in words).
pub const SCRIPT_LANGUAGES: &[(char, char, &str)] = &[
    ('\u{0370}', '\u{03FF}', "el"),
    ('\u{0400}', '\u{04FF}', "ru"),
    ('\u{0530}', '\u{058F}', "hy"),
    ('\u{0590}', '\u{05FF}', "he"),
    ('\u{0600}', '\u{06FF}', "ar"),
    ('\u{0750}', '\u{077F}', "ar"),
    ('\u{0900}', '\u{097F}', "hi"),
    ('\u{0980}', '\u{09FF}', "bn"),
    ('\u{0A00}', '\u{0A7F}', "pa"),
    ('\u{0A80}', '\u{0AFF}', "gu"),
    ('\u{0B00}', '\u{0B7F}', "or"),
    ('\u{0B80}', '\u{0BFF}', "ta"),
    ('\u{0C00}', '\u{0C7F}', "te"),
    ('\u{0C80}', '\u{0CFF}', "kn"),
    ('\u{0D00}', '\u{0D7F}', "ml"),
    ('\u{0D80}', '\u{0DFF}', "si"),
    ('\u{0E00}', '\u{0E7F}', "th"),
    ('\u{0E80}', '\u{0EFF}', "lo"),
    ('\u{1000}', '\u{109F}', "my"),
    ('\u{10A0}', '\u{10FF}', "ka"),
    ('\u{1200}', '\u{139F}', "am"),
    ('\u{1780}', '\u{17FF}', "km"),
    ('\u{1100}', '\u{11FF}', "ko"),
    ('\u{3130}', '\u{318F}', "ko"),
    ('\u{AC00}', '\u{D7AF}', "ko"),
    ('\u{3040}', '\u{30FF}', "ja"),
    ('\u{31F0}', '\u{31FF}', "ja"),
    ('\u{3400}', '\u{4DBF}', "zh"),
    ('\u{4E00}', '\u{9FFF}', "zh"),
    ('\u{F900}', '\u{FAFF}', "zh"),
];

/// The language of `text` by its writing system, or None when it cannot be
/// told (mostly Latin letters, or no letters at all). See the module docs.
pub fn detect_language(text: &str) -> Option<Language> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let (mut letters, mut kana) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        let Some(&(_, _, lang)) = SCRIPT_LANGUAGES.iter().find(|(a, b, _)| (*a..=*b).contains(&c)) else {
            continue;
        };
        if lang == "ja" {
            kana += 1;
        }
        match counts.iter_mut().find(|(l, _)| *l == lang) {
            Some((_, n)) => *n += 1,
            None => counts.push((lang, 1)),
        }
    }
    // Japanese mixes kanji (Han) with kana: any real share of kana makes Han Japanese.
    if kana * 10 >= letters.max(1)
        && let Some(han) = counts.iter().position(|(l, _)| *l == "zh")
    {
        let (_, n) = counts.remove(han);
        if let Some(ja) = counts.iter_mut().find(|(l, _)| *l == "ja") {
            ja.1 += n;
        }
    }
    let (lang, n) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    (n * 3 >= letters).then(|| Language(lang.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_validated_and_normalised() {
        for (raw, norm) in [
            ("hi", "hi"),
            ("pt-br", "pt-BR"),
            ("PT_BR", "pt-BR"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("sl-rozaj", "sl-rozaj"),
            ("cmn", "cmn"),
        ] {
            assert_eq!(Language::parse(raw).unwrap().as_str(), norm, "{raw}");
        }
        for bad in ["", "h", "hindi", "en-", "en--us", "en-us-x-private", "1a", "en-u-ca-gregory", "ja-Latn-Latn", "x"]
        {
            assert!(Language::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn voices_match_on_the_language_subtag() {
        let hi = Language::parse("hi").unwrap();
        assert!(hi.spoken_by("hi") && !hi.spoken_by("en-us"));
        assert!(Language::parse("en-GB").unwrap().spoken_by("en-us"));
        assert!(Language::parse("pt-BR").unwrap().spoken_by("pt"));
        assert!(Language::parse("zh").unwrap().spoken_by("cmn"));
        assert_eq!(Language::parse("pt-BR").unwrap().primary(), "pt");
    }

    #[test]
    fn writing_systems_name_their_language() {
        let cases = [
            ("नमस्ते, आज हम समुद्र के बारे में बात करेंगे।", Some("hi")),
            ("今日は海の話をしましょう。", Some("ja")),
            ("今天我们来谈谈大海。", Some("zh")),
            ("오늘은 바다에 대해 이야기해요.", Some("ko")),
            ("วันนี้เราจะพูดถึงทะเล", Some("th")),
            ("مرحبا بكم في عالم البحار", Some("ar")),
            ("שלום וברוכים הבאים", Some("he")),
            ("Привет, сегодня поговорим о море.", Some("ru")),
            ("Γεια σας από τη θάλασσα", Some("el")),
            ("The ocean keeps a secret schedule.", None),
            ("Hoy hablamos del mar.", None),
            ("12345 !!!", None),
            // A Hindi script quoting one English brand name is still Hindi.
            ("यह YouTube वीडियो समुद्र के बारे में है", Some("hi")),
            // An English script quoting one Hindi word is not.
            ("Today we learn the word नमस्ते and many other friendly greetings", None),
        ];
        for (text, want) in cases {
            assert_eq!(detect_language(text).as_ref().map(Language::as_str), want, "{text}");
        }
    }
}
