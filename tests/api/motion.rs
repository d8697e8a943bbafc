//! Motion measured in a rendered MP4: a still moves (Ken Burns) and clips
//! join with a crossfade, in one ffmpeg run of the render (issue 14, part 5).
//!
//! The render is driven directly from a `RenderPlan` with real ffmpeg: stills
//! reach manifests only through the team's media, and what is measured here
//! is the render, not how a still got into the job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clipforge::media::Toolbox;
use clipforge::media::ffmpeg::{ClipSegment, Encoder, RenderPlan};
use clipforge::media::motion::{TRANSITION_OVERLAP_S, Transition};
use clipforge::settings::Settings;

use crate::support::{
    QueueKind, counting_ffmpeg, frame_count, mean_abs_diff, media_measured_in_the_sqlite_pass, probe, test_env,
};

/// Makes `out` with ffmpeg from a lavfi source (test inputs only).
fn generate(lavfi: &str, extra: &[&str], out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", lavfi])
        .args(extra)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "could not make {}", out.display());
}

/// The whole frame at `at_s`, as 8-bit grey pixels.
fn grey_frame(path: &Path, at_s: f64) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at_s:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "frame extraction failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), 1080 * 1920);
    out.stdout
}

#[tokio::test]
async fn a_still_moves_and_clips_crossfade_in_one_ffmpeg_run_of_the_narrations_length() {
    if media_measured_in_the_sqlite_pass() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip0 = d.join("clip0.mp4");
    let still = d.join("still.png");
    let clip2 = d.join("clip2.mp4");
    let narration = d.join("narration.wav");
    generate("testsrc2=s=720x1280:r=30:d=3", &["-pix_fmt", "yuv420p"], &clip0);
    generate("testsrc2=s=1200x1600", &["-frames:v", "1"], &still);
    generate("mandelbrot=s=720x1280:r=30", &["-t", "3", "-pix_fmt", "yuv420p"], &clip2);
    generate("sine=frequency=300:duration=6", &[], &narration);

    let settings = Settings::load_with_env(None, Some(test_env(d, QueueKind::Sqlite, "motion"))).unwrap();
    let mut tools = Toolbox::from_settings(&settings);
    let (wrapper, runs) = counting_ffmpeg(d);
    tools.ffmpeg = wrapper;
    let segment =
        |path: &PathBuf, still: bool| ClipSegment { path: path.clone(), duration_s: 2.0, still, source_fps: None };
    let plan = RenderPlan {
        clips: vec![segment(&clip0, false), segment(&still, true), segment(&clip2, false)],
        transition: Transition::Crossfade,
        overlap_s: TRANSITION_OVERLAP_S,
        narration,
        duration_s: 6.0,
        captions: None,
        fonts_dir: settings.media.fonts_dir.clone(),
        music: None,
        encoder: Encoder { preset: "ultrafast".into(), crf: 23, params: String::new() },
        threads: 2,
        split_min_seconds: settings.media.split_min_seconds,
        filter_script: d.join("graph.txt"),
        output: d.join("video.mp4"),
    };
    clipforge::media::render(&tools, &plan, Duration::from_secs(300), &mut |_| {}).await.unwrap();

    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1, "the render is one ffmpeg run");
    let out = plan.output.to_str().unwrap();
    let p = probe(out);
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.pix_fmt.as_str()), (1080, 1920, "h264", "yuv420p"));
    let frames = frame_count(&plan.output);
    assert!(frames.abs_diff(180) <= 1, "{frames} frames; 6 s at 30 fps is 180");

    // Timeline: clip 0 alone to 2.0 s, fading into the still to 2.4 s; the
    // still alone to 4.0 s, fading into clip 2 to 4.4 s; clip 2 alone to 6 s.
    let (early, late) = (grey_frame(&plan.output, 2.6), grey_frame(&plan.output, 3.8));
    let moved = mean_abs_diff(&early, &late);
    assert!(moved > 3.0, "the still's frames 1.2 s apart differ by {moved:.2} on average: it stands still");

    // Half-way through the first crossfade (2.2 s) the frame is an even mix of
    // clip 0 just before it and the still just after it; a cut would show the still.
    let before = grey_frame(&plan.output, 1.95);
    let middle = grey_frame(&plan.output, 2.2);
    let after = grey_frame(&plan.output, 2.45);
    let (to_before, to_after) = (mean_abs_diff(&middle, &before), mean_abs_diff(&middle, &after));
    let mix: Vec<u8> = before.iter().zip(&after).map(|(a, b)| ((u16::from(*a) + u16::from(*b)) / 2) as u8).collect();
    let to_mix = mean_abs_diff(&middle, &mix);
    eprintln!(
        "frames {frames}; still moved {moved:.2}; mid-crossfade vs clip 0 {to_before:.2}, vs the still {to_after:.2}, \
         vs their even mix {to_mix:.2}"
    );
    assert!(
        to_before > 8.0 && to_after > 8.0,
        "mid-crossfade frame vs clip 0: {to_before:.2}, vs the still: {to_after:.2}; it should differ from both"
    );
    assert!(
        to_mix < to_before.min(to_after) / 2.0,
        "mid-crossfade frame is {to_mix:.2} from the even mix of its neighbours, {to_before:.2} and {to_after:.2} \
         from each: not a blend"
    );
}
