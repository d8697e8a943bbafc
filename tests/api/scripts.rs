//! Captions in every script, measured in frames.
//!
//! Each case draws one caption cue with the render's own ASS document and the
//! studio preview's `ass` filter (the same libass path the render uses), and
//! checks three things a viewer would see:
//! - libass found a font for every character (it warns `failed to find any
//!   fallback with glyph` when it draws a box or nothing instead);
//! - the caption band differs clearly from the same cue drawn where the only
//!   font lacks that script (boxes or nothing), so the glyphs are real;
//! - the band matches the golden frame committed in
//!   `tests/fixtures/captions/<case>.png` (drawn on this machine's Debian fonts).
//!
//! `CLIPFORGE_GOLDEN=1 cargo test --test api scripts::` rewrites the goldens and
//! the contact sheet `docs/captions/contact-sheet.png` the README links to.

use std::path::{Path, PathBuf};
use std::process::Command;

use clipforge::domain::{WordTiming, caption_words};
use clipforge::media::captions::ass_document;
use clipforge::media::ffmpeg::caption_preview_args;

use crate::support::mean_abs_diff;

/// The frame is drawn at this width (and 16:9's height); the band is compared at this size.
const WIDTH: u32 = 540;
const HEIGHT: u32 = 960;

struct Case {
    name: &'static str,
    text: &'static str,
    /// A font file that lacks this script's glyphs.
    lacking: &'static str,
}

const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Has Devanagari and Latin but no Cyrillic.
const DEVANAGARI_ONLY: &str = "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf";

const CASES: &[Case] = &[
    Case { name: "ja", text: "今日は良い天気です。", lacking: DEJAVU },
    Case { name: "zh", text: "我们今天去公园散步。", lacking: DEJAVU },
    Case { name: "ko", text: "오늘은 날씨가 좋습니다.", lacking: DEJAVU },
    Case { name: "hi", text: "आज मौसम बहुत अच्छा है।", lacking: DEJAVU },
    Case { name: "th", text: "วันนี้อากาศดีมาก", lacking: DEJAVU },
    Case { name: "ar", text: "الطقس جميل اليوم", lacking: DEVANAGARI_ONLY },
    Case { name: "ru", text: "Сегодня хорошая погода.", lacking: DEVANAGARI_ONLY },
    Case { name: "emoji", text: "Good morning 😀🎉🚀", lacking: DEJAVU },
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captions")
}

/// The cue of `text` as the render writes it: the words Unicode segmentation
/// finds, a quarter second each, all on screen at once.
fn ass_for(text: &str, dir: &Path) -> PathBuf {
    let words: Vec<WordTiming> = caption_words(text)
        .into_iter()
        .enumerate()
        .map(|(i, w)| WordTiming { text: w, start_s: i as f64 * 0.05, end_s: 2.0 })
        .collect();
    let mut style = clipforge::pipeline::render_caption_style("DejaVu Sans", 84);
    style.words_per_line = words.len();
    let path = dir.join("captions.ass");
    std::fs::write(&path, ass_document(&words, &style)).unwrap();
    path
}

/// Draws `ass` at 0.5 s into `png`. With `only_font`, fontconfig and the
/// fonts folder see that one font and nothing else. Returns ffmpeg's warnings.
fn draw(ass: &Path, png: &Path, only_font: Option<&str>, scratch: &Path) -> String {
    let mut fonts_dir = PathBuf::from("/usr/share/fonts/truetype/dejavu");
    let mut cmd = Command::new("ffmpeg");
    if let Some(font) = only_font {
        fonts_dir = scratch.join("only-font");
        std::fs::create_dir_all(&fonts_dir).unwrap();
        std::fs::copy(font, fonts_dir.join(Path::new(font).file_name().unwrap())).unwrap();
        let conf = scratch.join("fonts.conf");
        std::fs::write(
            &conf,
            format!(
                "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig><dir>{}</dir><cachedir>{}</cachedir></fontconfig>\n",
                fonts_dir.display(),
                scratch.join("fc-cache").display()
            ),
        )
        .unwrap();
        cmd.env("FONTCONFIG_FILE", conf);
    }
    let mut args = caption_preview_args(ass, &fonts_dir, 0.5, WIDTH, png);
    // The preview keeps errors only; libass's missing-glyph report is a warning.
    let level = args.iter().position(|a| a == "-loglevel").unwrap() + 1;
    args[level] = "warning".into();
    let out = cmd.args(&args).output().unwrap();
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Rows `y..y+h` of a PNG as 8-bit grey pixels.
fn grey_rows(png: &Path, y: u32, h: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-vf", &format!("crop={WIDTH}:{h}:0:{y}"), "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), (WIDTH * h) as usize, "{} is not {WIDTH} wide", png.display());
    out.stdout
}

/// The caption band at the drawn size, with room above it for a wrapped line.
fn band() -> (u32, u32) {
    let (y, h) = crate::support::caption_band();
    let scale = |v: u32| v * WIDTH / 1080;
    let top = scale(y).saturating_sub(scale(h));
    (top, (scale(y + h) - top).min(HEIGHT - top))
}

#[test]
fn every_script_is_drawn_with_real_glyphs() {
    let rewrite = std::env::var_os("CLIPFORGE_GOLDEN").is_some();
    let scratch = tempfile::tempdir().unwrap();
    let (y, h) = band();
    let mut bands = Vec::new();
    let mut failures = Vec::new();
    for case in CASES {
        let dir = scratch.path().join(case.name);
        std::fs::create_dir_all(&dir).unwrap();
        let ass = ass_for(case.text, &dir);
        let real = dir.join("real.png");
        let warnings = draw(&ass, &real, None, &dir);
        if warnings.contains("failed to find any fallback") {
            failures.push(format!("{}: libass lacked a glyph: {warnings}", case.name));
        }
        let lacking = dir.join("lacking.png");
        draw(&ass, &lacking, Some(case.lacking), &dir);
        let real_band = grey_rows(&real, y, h);
        let against_lacking = mean_abs_diff(&real_band, &grey_rows(&lacking, y, h));
        if against_lacking < 1.0 {
            failures.push(format!(
                "{}: the band is the same as with a font lacking the script (mean diff {against_lacking:.2})",
                case.name
            ));
        }
        let golden = golden_dir().join(format!("{}.png", case.name));
        if rewrite {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::copy(&real, &golden).unwrap();
        }
        let against_golden = mean_abs_diff(&real_band, &grey_rows(&golden, y, h));
        if against_golden > 0.5 {
            failures.push(format!(
                "{}: the band differs from {} (mean diff {against_golden:.2}); if the look changed on purpose, \
                 rewrite the goldens with CLIPFORGE_GOLDEN=1",
                case.name,
                golden.display()
            ));
        }
        eprintln!("{}: vs lacking font {against_lacking:.2}, vs golden {against_golden:.2}", case.name);
        bands.push(real);
    }
    if rewrite {
        contact_sheet(&bands, y, h);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The caption bands of every case stacked into one picture for the README.
fn contact_sheet(frames: &[PathBuf], y: u32, h: u32) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/captions/contact-sheet.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    for f in frames {
        cmd.arg("-i").arg(f);
    }
    let crops: String = (0..frames.len()).map(|i| format!("[{i}:v]crop={WIDTH}:{h}:0:{y}[b{i}];")).collect();
    let inputs: String = (0..frames.len()).map(|i| format!("[b{i}]")).collect();
    let graph = format!("{crops}{inputs}vstack=inputs={}[out]", frames.len());
    let status = cmd.args(["-filter_complex", &graph, "-map", "[out]", "-frames:v", "1"]).arg(&out).status().unwrap();
    assert!(status.success());
}
