//! Repeating a caller's input back in an error, safely.
//!
//! An error that names the bad value helps the person fixing it, but the value
//! came from a stranger: it may be megabytes long (a 31 MB CSV header) or hold
//! control characters that rewrite a terminal or a log line. Every error that
//! quotes input goes through [`echo`] (a short, escaped prefix) or, for
//! messages that embed input indirectly such as a JSON parser's, [`clip`].

/// Most characters of a caller's input an error message repeats.
pub const ECHO_CHARS: usize = 100;

/// Most characters of a message that embeds input (a parser's error).
pub const CLIP_CHARS: usize = 400;

/// `input` as an error may quote it: at most [`ECHO_CHARS`] characters, control
/// and bidirectional-override characters escaped, and when it was cut, how
/// long it was.
pub fn echo(input: &str) -> String {
    clip_to(input, ECHO_CHARS)
}

/// A message that embeds input, bounded to [`CLIP_CHARS`] characters and escaped like [`echo`].
pub fn clip(message: &str) -> String {
    clip_to(message, CLIP_CHARS)
}

fn clip_to(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars * 2));
    for (n, (at, c)) in input.char_indices().enumerate() {
        if n == max_chars {
            out.push_str(&format!("… ({} more bytes)", input.len() - at));
            break;
        }
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters (C0, DEL, C1) and the invisible characters that reorder
/// text (bidirectional marks, embeddings, overrides and isolates).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_kept_and_control_characters_are_escaped() {
        assert_eq!(echo("colour"), "colour");
        assert_eq!(echo("a\u{0}b\nc\u{1b}[31m\u{202e}"), "a\\u{0}b\\nc\\u{1b}[31m\\u{202e}");
        assert_eq!(echo("naïve ✓"), "naïve ✓", "printable non-ASCII stays");
    }

    #[test]
    fn long_input_keeps_a_prefix_and_says_how_much_was_left_out() {
        let huge = "x".repeat(31 * 1024 * 1024);
        let quoted = echo(&huge);
        assert!(quoted.starts_with(&"x".repeat(ECHO_CHARS)), "{quoted}");
        assert!(quoted.ends_with(&format!("… ({} more bytes)", huge.len() - ECHO_CHARS)), "{quoted}");
        assert!(quoted.len() < 150, "{} bytes", quoted.len());
        // Multi-byte characters are counted as characters and never split.
        let wide = "é".repeat(500);
        assert_eq!(echo(&wide).chars().filter(|c| *c == 'é').count(), ECHO_CHARS);
        assert!(clip(&"y".repeat(10_000)).len() < CLIP_CHARS + 40);
    }
}
