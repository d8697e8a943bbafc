//! Caption styles measured in rendered MP4s: captions stay inside the safe
//! area, and the highlight preset's coloured word moves with the narration.
//!
//! Each test renders the same job with and without captions (same script,
//! same footage, so the only difference is the captions) and looks at the
//! pixels that differ.

use serde_json::{Value, json};

use crate::support::{QueueKind, spawn_app};

/// One frame at `at_s` as RGB bytes, 1080x1920.
fn rgb_frame(path: &str, at_s: f64) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i", path, "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "frame extraction failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 1080 * 1920 * 3);
    out.stdout
}

/// Pixels where the captioned frame differs clearly from the uncaptioned one.
/// Returns (x, y, rgb of the captioned pixel) for each.
fn caption_pixels(with: &[u8], without: &[u8]) -> Vec<(u32, u32, [u8; 3])> {
    let mut out = Vec::new();
    for (i, (a, b)) in with.chunks_exact(3).zip(without.chunks_exact(3)).enumerate() {
        let diff = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
        if diff > 80 {
            out.push(((i % 1080) as u32, (i / 1080) as u32, [a[0], a[1], a[2]]));
        }
    }
    out
}

fn video_path(job: &Value) -> String {
    job["outputs"]["video"]["path"].as_str().expect("a local path").to_string()
}

fn words(job: &Value) -> Vec<(String, f64, f64)> {
    job["manifest"]["narration"]["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (w["text"].as_str().unwrap().to_string(), w["start_s"].as_f64().unwrap(), w["end_s"].as_f64().unwrap())
        })
        .collect()
}

/// Renders `script` with `style` and without captions; returns the app
/// (which holds the videos) and both staged jobs.
async fn render_pair(script: &str, style: Value) -> (crate::support::TestApp, Value, Value) {
    let app = spawn_app(QueueKind::Sqlite).await;
    let with = app.submit(json!({ "script": script, "caption_style": style })).await;
    let with = app.wait_staged(&with).await;
    // After the first has staged, so the second renders the very same cached
    // narration and footage (generated footage is random: made twice at once, it differs).
    let without = app.submit(json!({ "script": script, "captions": false })).await;
    let without = app.wait_staged(&without).await;
    assert_eq!(with["spec"]["caption_style"], style, "the style is kept with the job as given");
    (app, with, without)
}

const LINE_40: &str = "Bright morning light fills the old city.";
const WORD_30: &str = "Supercalifragilisticexpialidoc";
const CJK: &str = "今日はとても良い天気なので、みんなで近くの公園に行ってゆっくり散歩をしましょう。";

#[tokio::test]
async fn captions_stay_inside_the_safe_area_for_a_long_line_a_long_word_and_a_long_cjk_sentence() {
    if crate::support::media_measured_in_the_sqlite_pass() {
        return;
    }
    assert_eq!(LINE_40.chars().count(), 40);
    assert_eq!(WORD_30.chars().count(), 30);
    let script = format!("{LINE_40}\n{WORD_30}!\n{CJK}");
    // The biggest look: the highlight preset, larger, at the bottom edge of the area.
    let style = json!({ "preset": "highlight", "size": 110, "position": "bottom" });
    let (_app, with, without) = render_pair(&script, style).await;
    let (with_path, without_path) = (video_path(&with), video_path(&without));
    // The default [captions] safe area: x 120..900, y 250..1420.
    let (left, top, right, bottom) = (120, 250, 1080 - 180, 1920 - 500);
    let mut samples: Vec<(String, f64)> = Vec::new();
    for (text, start, end) in words(&with) {
        if text.starts_with(WORD_30) {
            // The long word is shown in parts, one after another: look at several moments of it.
            samples.extend(
                (0..5).map(|k| (format!("{text} at {k}/5"), start + (end - start) * (f64::from(k) + 0.5) / 5.0)),
            );
        } else {
            samples.push((text, (start + end) / 2.0));
        }
    }
    let mut seen = Vec::new();
    let mut outside = Vec::new();
    for (text, at) in &samples {
        let px = caption_pixels(&rgb_frame(&with_path, *at), &rgb_frame(&without_path, *at));
        assert!(px.len() > 300, "no caption drawn for `{text}` at {at:.2}s ({} pixels differ)", px.len());
        let (x0, y0) = (px.iter().map(|p| p.0).min().unwrap(), px.iter().map(|p| p.1).min().unwrap());
        let (x1, y1) = (px.iter().map(|p| p.0).max().unwrap(), px.iter().map(|p| p.1).max().unwrap());
        eprintln!("{text} at {at:.2}s: caption pixels x {x0}..{x1}, y {y0}..{y1} ({} pixels)", px.len());
        if x0 < left || x1 >= right || y0 < top || y1 >= bottom {
            outside.push(format!("`{text}` at {at:.2}s: x {x0}..{x1}, y {y0}..{y1}"));
        }
        seen.push((x0, x1));
    }
    assert!(outside.is_empty(), "captions left the safe area x {left}..{right}, y {top}..{bottom}: {outside:#?}");
    let widest = seen.iter().map(|(a, b)| b - a).max().unwrap();
    assert!(widest > 500, "the lines use the area's width ({widest} px at most), so the test measures something");
}

#[tokio::test]
async fn the_highlighted_word_is_coloured_and_moves_with_the_narration() {
    if crate::support::media_measured_in_the_sqlite_pass() {
        return;
    }
    // Six words: one cue of two lines of three, so the rest of the line is always there.
    let script = "Sun and sea and sky now.";
    let style = json!({ "preset": "highlight" });
    let (_app, with, without) = render_pair(script, style).await;
    let (with_path, without_path) = (video_path(&with), video_path(&without));
    let is_yellow = |c: [u8; 3]| c[0] > 170 && c[1] > 140 && c[2] < 110 && c[0].abs_diff(c[1]) < 90;
    let is_white = |c: [u8; 3]| c.iter().all(|v| *v > 200);
    let mut centres: Vec<(String, f64, f64)> = Vec::new();
    for (text, start, end) in words(&with) {
        let at = (start + end) / 2.0;
        let px = caption_pixels(&rgb_frame(&with_path, at), &rgb_frame(&without_path, at));
        let yellow: Vec<_> = px.iter().filter(|p| is_yellow(p.2)).collect();
        let white = px.iter().filter(|p| is_white(p.2)).count();
        assert!(yellow.len() > 400, "`{text}` at {at:.2}s: {} highlight-coloured pixels", yellow.len());
        assert!(white > 400, "`{text}` at {at:.2}s: the rest of the line is white ({white} pixels)");
        let cx = yellow.iter().map(|p| f64::from(p.0)).sum::<f64>() / yellow.len() as f64;
        let cy = yellow.iter().map(|p| f64::from(p.1)).sum::<f64>() / yellow.len() as f64;
        eprintln!("`{text}` at {at:.2}s: highlight at ({cx:.0}, {cy:.0}), {} yellow, {white} white", yellow.len());
        centres.push((text, cx, cy));
    }
    assert_eq!(centres.len(), 6);
    // Word by word the highlight moves right along a line, or down to the next line's start.
    for pair in centres.windows(2) {
        let ((a, ax, ay), (b, bx, by)) = (&pair[0], &pair[1]);
        let same_line = (ay - by).abs() < 30.0;
        let moved = if same_line { bx - ax > 40.0 } else { (by - ay).abs() >= 30.0 };
        assert!(moved, "from `{a}` ({ax:.0}, {ay:.0}) to `{b}` ({bx:.0}, {by:.0}) the highlight did not move on");
    }
    let lines_with_two = centres.windows(2).filter(|p| (p[0].2 - p[1].2).abs() < 30.0).count();
    assert!(lines_with_two >= 3, "several words share a line and the highlight walks along it: {centres:?}");
}

#[tokio::test]
async fn styles_are_listed_each_with_its_own_still_and_bad_styles_are_refused_per_field() {
    let app = spawn_app(QueueKind::Sqlite).await;
    let list: Value = app.get("/v1/styles").await.json().await.unwrap();
    assert_eq!(list["default"], "classic");
    assert_eq!(list["safe_area"], json!({ "top": 250, "bottom": 500, "left": 120, "right": 180 }));
    let styles = list["styles"].as_array().unwrap();
    let names: Vec<&str> = styles.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["classic", "highlight", "boxed", "minimal", "karaoke"]);
    assert!(styles.iter().all(|s| s["transition"] == "cut"), "every preset joins clips with a cut: {styles:?}");
    let mut stills = Vec::new();
    for s in styles {
        let res = app.get(s["preview"].as_str().unwrap()).await;
        assert_eq!(res.status(), 200, "{}", s["name"]);
        assert_eq!(res.headers()["content-type"], "image/png");
        let png = res.bytes().await.unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 1000, "{}: {} bytes", s["name"], png.len());
        assert!(!stills.contains(&png), "{}'s still is another preset's", s["name"]);
        stills.push(png);
    }
    let default = app.get("/v1/styles/preview.png").await.bytes().await.unwrap();
    assert_eq!(default, stills[0], "without a name: the default preset's still");
    let unknown = app.get("/v1/styles/preview.png?style=neon").await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(crate::support::error_code(&body), "caption_preset_unknown");

    let refused = app
        .post_job_raw(
            &json!({ "script": "Hi there.", "caption_style": { "preset": "neon", "primary_colour": "red", "size": 5, "transition": "wipe" } })
                .to_string(),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    let details = crate::support::field_codes(&body);
    assert_eq!(
        details,
        [
            ("caption_style.preset", "caption_preset_unknown"),
            ("caption_style.primary_colour", "caption_colour_invalid"),
            ("caption_style.size", "caption_value_out_of_range"),
            ("caption_style.transition", "caption_transition_invalid"),
        ]
    );
    let transition = &body["error"]["details"][3]["message"];
    assert_eq!(transition, "caption_style.transition `wipe` is not a transition; one of cut, crossfade, slide, zoom");
    crate::support::assert_catalogued(&body);
}
