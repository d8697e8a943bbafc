//! Motion for the render graph, built by pure functions: a slow Ken Burns
//! pan/zoom for stills, and the transitions that join clips (issue 14, part 5).
//!
//! Nothing here runs ffmpeg; [`super::ffmpeg`] splices these fragments into the
//! one filtergraph of a render, so stills and transitions stay in one pass.

use std::fmt::Write;

use super::ffmpeg::{FPS, HEIGHT, WIDTH};

pub use crate::domain::Transition;

/// How long two neighbouring clips overlap in a transition other than a cut:
/// long enough to read as a transition, short enough that a 2 s clip keeps
/// most of its stretch to itself.
pub const TRANSITION_OVERLAP_S: f64 = 0.4;

impl Transition {
    /// ffmpeg's `xfade` transition name; `None` for a plain cut (concat).
    pub fn xfade_name(self) -> Option<&'static str> {
        match self {
            Self::Cut => None,
            Self::Crossfade => Some("fade"),
            Self::Slide => Some("slideleft"),
            Self::Zoom => Some("zoomin"),
        }
    }
}

/// Seconds with millisecond precision, the way ffmpeg reads them.
fn secs(s: f64) -> String {
    format!("{:.3}", s.max(0.0))
}

/// Frames shown for `duration_s` at the output rate (at least one).
pub fn frames_for(duration_s: f64) -> u64 {
    ((duration_s * f64::from(FPS)).round() as u64).max(1)
}

/// The filter chain (no labels) that turns a single-frame still into
/// `duration_s` of slow motion at the output size and rate.
///
/// The still is first filled to twice the output size so zoompan's integer
/// crop positions do not visibly jitter; even-numbered stills zoom in 1.0→1.12
/// on the centre, odd ones pan left to right at a fixed 1.12 zoom, so two
/// stills in a row do not move the same way.
pub fn ken_burns_chain(duration_s: f64, index: usize) -> String {
    let frames = frames_for(duration_s);
    let (w2, h2) = (WIDTH * 2, HEIGHT * 2);
    let last = frames.saturating_sub(1).max(1);
    let (z, x, y) = if index % 2 == 0 {
        (format!("1+0.12*on/{last}"), "iw/2-(iw/zoom/2)".to_string(), "ih/2-(ih/zoom/2)".to_string())
    } else {
        ("1.12".to_string(), format!("(iw-iw/zoom)*on/{last}"), "ih/2-(ih/zoom/2)".to_string())
    };
    format!(
        "scale={w2}:{h2}:force_original_aspect_ratio=increase,crop={w2}:{h2},setsar=1,\
         zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={WIDTH}x{HEIGHT}:fps={FPS},\
         setsar=1,format=yuv420p,setpts=PTS-STARTPTS"
    )
}

/// How long each input must be so that, after `transition` overlaps of
/// `overlap_s` between neighbours, clip `i` is on screen for `shown[i]` and
/// the joined video lasts `shown.iter().sum()`: every clip but the last
/// is lengthened by the overlap it loses to the next one.
pub fn input_durations(shown: &[f64], transition: Transition, overlap_s: f64) -> Vec<f64> {
    let overlap = effective_overlap(shown, transition, overlap_s);
    let n = shown.len();
    shown.iter().enumerate().map(|(i, d)| if i + 1 < n { d + overlap } else { *d }).collect()
}

/// The overlap actually used: zero for cuts, and never more than half the
/// shortest clip so no transition swallows a whole clip.
pub fn effective_overlap(shown: &[f64], transition: Transition, overlap_s: f64) -> f64 {
    if transition == Transition::Cut || shown.len() < 2 {
        return 0.0;
    }
    let shortest = shown.iter().cloned().fold(f64::INFINITY, f64::min);
    overlap_s.max(0.0).min(shortest / 2.0)
}

/// Joins the labelled streams `[v0]..[v{n-1}]` (already at the output size,
/// rate and pixel format; durations `inputs`, as from [`input_durations`])
/// into `[out]` with `transition`. A cut is a plain concat; the others are a
/// chain of `xfade`s whose offsets are where each incoming clip starts.
pub fn join_graph(inputs: &[f64], transition: Transition, overlap_s: f64, out: &str) -> String {
    let n = inputs.len();
    let mut g = String::new();
    let name = match transition.xfade_name() {
        Some(name) if n >= 2 && overlap_s > 0.0 => name,
        _ => {
            for i in 0..n {
                let _ = write!(g, "[v{i}]");
            }
            let _ = write!(g, "concat=n={n}:v=1:a=0[{out}];");
            return g;
        }
    };
    let mut prev = "v0".to_string();
    let mut elapsed = 0.0;
    for (k, d) in inputs.iter().enumerate().take(n - 1) {
        elapsed += d - overlap_s;
        let next = k + 1;
        let label = if next == n - 1 { out.to_string() } else { format!("x{next}") };
        let _ = write!(
            g,
            "[{prev}][v{next}]xfade=transition={name}:duration={}:offset={}[{label}];",
            secs(overlap_s),
            secs(elapsed)
        );
        prev = label;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transition_names() {
        assert_eq!(Transition::parse("cut"), Some(Transition::Cut));
        assert_eq!(Transition::parse("crossfade"), Some(Transition::Crossfade));
        assert_eq!(Transition::parse("slide"), Some(Transition::Slide));
        assert_eq!(Transition::parse("zoom"), Some(Transition::Zoom));
        assert_eq!(Transition::parse("wipe"), None);
        assert_eq!(Transition::default(), Transition::Cut);
    }

    #[test]
    fn cut_is_a_concat_without_overlap() {
        let shown = [2.0, 3.0, 1.5];
        let inputs = input_durations(&shown, Transition::Cut, 0.5);
        assert_eq!(inputs, shown.to_vec());
        let g = join_graph(&inputs, Transition::Cut, 0.0, "vcat");
        assert_eq!(g, "[v0][v1][v2]concat=n=3:v=1:a=0[vcat];");
    }

    #[test]
    fn crossfade_offsets_keep_the_total_duration() {
        let shown = [2.0, 3.0, 1.5];
        let overlap = effective_overlap(&shown, Transition::Crossfade, 0.5);
        let inputs = input_durations(&shown, Transition::Crossfade, 0.5);
        assert_eq!(inputs, vec![2.5, 3.5, 1.5]);
        // xfade output length = sum(inputs) - (n-1)*overlap = sum(shown).
        let total: f64 = inputs.iter().sum::<f64>() - 2.0 * overlap;
        assert!((total - 6.5).abs() < 1e-9);
        let g = join_graph(&inputs, Transition::Crossfade, overlap, "vcat");
        assert_eq!(
            g,
            "[v0][v1]xfade=transition=fade:duration=0.500:offset=2.000[x1];\
             [x1][v2]xfade=transition=fade:duration=0.500:offset=5.000[vcat];"
        );
    }

    #[test]
    fn slide_and_zoom_use_their_xfade_names() {
        let g = join_graph(&[1.0, 1.0], Transition::Slide, 0.25, "o");
        assert!(g.contains("transition=slideleft"), "{g}");
        let g = join_graph(&[1.0, 1.0], Transition::Zoom, 0.25, "o");
        assert!(g.contains("transition=zoomin"), "{g}");
    }

    #[test]
    fn overlap_never_exceeds_half_the_shortest_clip() {
        assert_eq!(effective_overlap(&[0.4, 3.0], Transition::Slide, 1.0), 0.2);
        assert_eq!(effective_overlap(&[3.0], Transition::Slide, 1.0), 0.0);
    }

    #[test]
    fn ken_burns_moves_for_the_whole_duration() {
        let zoom = ken_burns_chain(2.0, 0);
        assert!(zoom.contains("zoompan=z='1+0.12*on/59'"), "{zoom}");
        assert!(zoom.contains(":d=60:s=1080x1920:fps=30"), "{zoom}");
        let pan = ken_burns_chain(2.0, 1);
        assert!(pan.contains("x='(iw-iw/zoom)*on/59'"), "{pan}");
        assert_ne!(zoom, pan);
    }
}
