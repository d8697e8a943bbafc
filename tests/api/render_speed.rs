//! The cheaper render draws the same picture (issue 17, part 1): clips of
//! every shape, cropped to 9:16 before they are scaled and, when faster than
//! 30 fps, thinned before they are scaled, come out as the usual
//! `scale=…:force_original_aspect_ratio=increase,crop=…` command draws them.
//! The encoder's default options over its preset (`media.x264_params`) keep
//! the quality a draft gets for its bits. How much faster both are, is
//! measured by `clipforge bench render`, not here.

use std::path::Path;
use std::time::Duration;

use clipforge::media::Toolbox;
use clipforge::media::ffmpeg::{ClipSegment, Encoder, MusicBed, RenderPlan};
use clipforge::media::motion::{TRANSITION_OVERLAP_S, Transition};
use clipforge::settings::Settings;

use crate::support::{QueueKind, counting_ffmpeg, frame_count, media_measured_in_the_sqlite_pass, probe, test_env};

/// Makes `out` with ffmpeg from a lavfi source (test inputs only).
fn generate(lavfi: &str, out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", lavfi, "-t", "2"])
        .args(["-c:v", "libx264", "-preset", "fast", "-crf", "18", "-pix_fmt", "yuv420p"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "could not make {}", out.display());
}

/// SSIM (all planes) and average PSNR (dB) of `a` against `b`, and the frames compared.
fn quality(a: &Path, b: &Path) -> (f64, f64, u64) {
    quality_within(a, b, &[])
}

/// [`quality`] of the stretch both inputs are cut to by `window` (input
/// options such as `-ss 11.5 -t 1`).
fn quality_within(a: &Path, b: &Path, window: &[&str]) -> (f64, f64, u64) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin"])
        .args(window)
        .arg("-i")
        .arg(a)
        .args(window)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", "[0:v]split[a0][a1];[1:v]split[b0][b1];[a0][b0]ssim;[a1][b1]psnr", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let figure = |mark: &str| -> f64 {
        let line = text.lines().rev().find(|l| l.contains(mark)).unwrap_or_else(|| panic!("no {mark} {text}"));
        line.split(mark).nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    let (all, psnr) = (figure("All:"), figure("average:"));
    // The last progress report (they are separated by carriage returns).
    let frames = text
        .rsplit("frame=")
        .next()
        .and_then(|f| f.split_whitespace().next())
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    (all, psnr, frames)
}

#[tokio::test]
async fn landscape_portrait_and_60_fps_clips_come_out_as_the_usual_scale_then_crop_draws_them() {
    if media_measured_in_the_sqlite_pass() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A softened fractal zoom at 60 fps (the camera-like detail that shows a
    // misplaced crop), a 25 fps 720p test card, and a portrait clip.
    let wide60 = d.join("wide60.mp4");
    let hd25 = d.join("hd25.mp4");
    let tall = d.join("tall.mp4");
    generate("mandelbrot=s=1920x1080:r=60,gblur=sigma=1.2", &wide60);
    generate("testsrc2=s=1280x720:r=25", &hd25);
    generate("testsrc2=s=1080x1920:r=30", &tall);
    let narration = d.join("narration.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=6"])
        .arg(&narration)
        .status()
        .unwrap();
    assert!(status.success());

    let settings = Settings::load_with_env(None, Some(test_env(d, QueueKind::Sqlite, "render_speed"))).unwrap();
    let tools = Toolbox::from_settings(&settings);
    let mut clips = Vec::new();
    for path in [&wide60, &hd25, &tall] {
        // The rate as the render stage learns it.
        let report = clipforge::media::ffprobe::probe(&tools.ffprobe, path).await.unwrap();
        let fps = report.video.unwrap().fps;
        clips.push(ClipSegment { path: path.clone(), duration_s: 2.0, still: false, source_fps: Some(fps) });
    }
    assert!(clips[0].source_fps.unwrap() > 59.0, "{:?}", clips[0].source_fps);
    let encoder = Encoder { preset: "ultrafast".into(), crf: 16, params: String::new() };
    let plan = RenderPlan {
        clips,
        transition: Transition::Cut,
        overlap_s: TRANSITION_OVERLAP_S,
        narration: narration.clone(),
        duration_s: 6.0,
        captions: None,
        fonts_dir: settings.media.fonts_dir.clone(),
        music: None,
        encoder: encoder.clone(),
        threads: 2,
        split_min_seconds: settings.media.split_min_seconds,
        filter_script: d.join("graph.txt"),
        output: d.join("ours.mp4"),
    };
    clipforge::media::render(&tools, &plan, Duration::from_secs(300), &mut |_| {}).await.unwrap();
    let graph = std::fs::read_to_string(&plan.filter_script).unwrap();
    assert!(!graph.contains("force_original_aspect_ratio"), "{graph}");

    // The usual command, written out by hand, on the same inputs and encoder.
    let usual = d.join("usual.mp4");
    let fill = "scale=1080:1920:force_original_aspect_ratio=increase,crop=1080:1920,setsar=1,fps=30,format=yuv420p";
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-t", "2", "-i"])
        .arg(&wide60)
        .args(["-t", "2", "-i"])
        .arg(&hd25)
        .args(["-t", "2", "-i"])
        .arg(&tall)
        .arg("-i")
        .arg(&narration)
        .arg("-filter_complex")
        .arg(format!("[0:v]{fill}[a];[1:v]{fill}[b];[2:v]{fill}[c];[a][b][c]concat=n=3:v=1:a=0[v]"))
        .args(["-map", "[v]", "-map", "3:a", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16"])
        .args(["-pix_fmt", "yuv420p", "-r", "30", "-c:a", "aac", "-t", "6"])
        .arg(&usual)
        .status()
        .unwrap();
    assert!(status.success());

    let p = probe(plan.output.to_str().unwrap());
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.pix_fmt.as_str()), (1080, 1920, "h264", "yuv420p"));
    let (similarity, _, frames) = quality(&plan.output, &usual);
    eprintln!("SSIM {similarity:.4} over {frames} frames");
    assert_eq!(frames, 180, "6 s at 30 fps, every frame compared with the usual command's");
    assert!(similarity >= 0.99, "SSIM {similarity:.4} against the usual scale-then-crop: not the same picture");
}

/// x264 with the default `media.x264_params` against its bare preset, both
/// encoding the same uncompressed 9:16 picture (a slow pan over a softened
/// fractal with a caption burnt in: the case where motion search pays most):
/// its bitrate within ±10 % of the preset's at the same CRF, and its PSNR
/// against the picture no more than 0.1 dB under the preset's own
/// rate-quality curve at that bitrate (the preset measured at CRF −2, 0, +2,
/// read between them on a log-rate scale). Full-pixel motion search alone
/// (`subme=0`) lands 0.17 dB under that curve here and fails.
#[tokio::test]
async fn the_default_x264_options_keep_the_quality_a_draft_gets_for_its_bits() {
    if media_measured_in_the_sqlite_pass() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The shipped encoder settings, not the suite's fast ones.
    let mut env = test_env(d, QueueKind::Sqlite, "x264_params");
    env.retain(|(key, _)| !key.starts_with("CLIPFORGE__MEDIA__"));
    let settings = Settings::load_with_env(None, Some(env)).unwrap();
    let ours = Encoder::from_settings(&settings.media);
    assert!(!ours.params.is_empty(), "the default sets options over the preset");

    // The picture: lossless, so each encode is measured against the truth.
    let picture = d.join("picture.nut");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(
            "mandelbrot=s=2400x2400:r=30,gblur=sigma=1.2,crop=1080:1920:x='600+500*sin(t/2)':y='200+200*cos(t/3)',\
             drawtext=text='Every clip is cut':fontsize=84:fontcolor=white:borderw=5:x=(w-tw)/2:y=1420",
        )
        .args(["-frames:v", "90", "-c:v", "ffv1", "-pix_fmt", "yuv420p"])
        .arg(&picture)
        .status()
        .unwrap();
    assert!(status.success(), "could not make the picture");

    // Bytes, PSNR and SSIM of `encoder`'s encoding of the picture.
    let encode = |encoder: &Encoder, name: &str| {
        let out = d.join(format!("{name}.mp4"));
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&picture)
            .args(clipforge::media::ffmpeg::video_encoder_args(encoder, 2))
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "could not encode {name}");
        let (ssim, psnr, frames) = quality(&out, &picture);
        assert_eq!(frames, 90, "3 s at 30 fps compared");
        (std::fs::metadata(&out).unwrap().len() as f64, psnr, ssim)
    };
    let (bytes, psnr, ssim) = encode(&ours, "ours");
    let curve = [ours.crf + 2, ours.crf, ours.crf - 2]
        .map(|crf| encode(&Encoder { crf, params: String::new(), ..ours.clone() }, &format!("bare-{crf}")));
    let (bare_bytes, bare_psnr, bare_ssim) = curve[1];
    // The preset's PSNR at our bitrate, between its two nearest points.
    let (lo, hi) = if bytes >= bare_bytes { (curve[1], curve[2]) } else { (curve[0], curve[1]) };
    let along = (bytes.ln() - lo.0.ln()) / (hi.0.ln() - lo.0.ln());
    let expected = lo.1 + along * (hi.1 - lo.1);
    let rate = bytes / bare_bytes;
    eprintln!(
        "x264 {} crf {} with `{}`: {rate:.3}x the bare preset's bitrate, PSNR {psnr:.3} dB (the preset's curve \
         there: {expected:.3} dB; at the same CRF {bare_psnr:.3} dB), SSIM {ssim:.5} (bare {bare_ssim:.5})",
        ours.preset, ours.crf, ours.params
    );
    assert!((0.9..=1.1).contains(&rate), "bitrate {rate:.3}x the preset's: outside ±10 %");
    assert!(psnr >= expected - 0.1, "PSNR {psnr:.3} dB, {:.3} dB under the preset's curve", expected - psnr);
    assert!(ssim >= bare_ssim - 0.002, "SSIM {ssim:.5} against the preset's {bare_ssim:.5}");
}

/// One caption, on screen from 10 s to 14 s (across the middle of a 23.4 s
/// video), large and in the middle of the frame.
const CAPTION_ACROSS_THE_MIDDLE: &str = "[Script Info]
ScriptType: v4.00+
PlayResX: 1080
PlayResY: 1920

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,140,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,1,0,0,0,100,100,0,0,1,8,0,5,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:10.00,0:00:14.00,Default,,0,0,0,,ACROSS THE JOIN
";

/// A render long enough (`media.split_min_seconds`) with two threads runs as
/// two single-threaded parts and the audio side by side, joined by a copy,
/// and what comes out is the video one run makes of the same plan: every
/// frame once, the picture (a caption on screen across the join included),
/// its audio, and nothing left beside it.
#[tokio::test]
async fn a_render_split_across_two_cores_is_the_video_one_run_makes() {
    if media_measured_in_the_sqlite_pass() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (wide, card) = (d.join("wide.mp4"), d.join("card.mp4"));
    generate("mandelbrot=s=1920x1080:r=30,gblur=sigma=1.2", &wide);
    generate("testsrc2=s=1280x720:r=25", &card);
    let (narration, music, captions) = (d.join("narration.wav"), d.join("music.m4a"), d.join("captions.ass"));
    for (lavfi, out) in [("sine=frequency=300:duration=23.424", &narration), ("sine=frequency=110:duration=5", &music)]
    {
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", lavfi])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(&captions, CAPTION_ACROSS_THE_MIDDLE).unwrap();

    let settings = Settings::load_with_env(None, Some(test_env(d, QueueKind::Sqlite, "render_split"))).unwrap();
    assert_eq!(settings.media.split_min_seconds, 20, "the default");
    let mut tools = Toolbox::from_settings(&settings);
    let (wrapper, runs) = counting_ffmpeg(d);
    tools.ffmpeg = wrapper;
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    // 8 slots of 2.928 s, not a whole number of frames: one run gives a 30 fps
    // clip 88 frames and a 25 fps one 89, so each clip starts a little later
    // than its time; the video (703 frames) is halved at the clip boundary
    // nearest frame 352 (354, 11.8 s), and every frame must be where one run shows it.
    let clips = (0..8)
        .map(|i| ClipSegment {
            path: if i % 2 == 0 { wide.clone() } else { card.clone() },
            duration_s: 2.928,
            still: false,
            source_fps: Some(if i % 2 == 0 { 30.0 } else { 25.0 }),
        })
        .collect();
    let split = RenderPlan {
        clips,
        transition: Transition::Cut,
        overlap_s: TRANSITION_OVERLAP_S,
        narration,
        duration_s: 23.424,
        captions: Some(captions),
        fonts_dir: settings.media.fonts_dir.clone(),
        music: Some(MusicBed { path: music, volume: 0.3 }),
        encoder: Encoder { preset: "ultrafast".into(), crf: 16, params: String::new() },
        threads: 2,
        split_min_seconds: settings.media.split_min_seconds,
        filter_script: out.join("graph.txt"),
        output: out.join("split.mp4"),
    };
    let mut seen = Vec::new();
    clipforge::media::render(&tools, &split, Duration::from_secs(300), &mut |pct| seen.push(pct)).await.unwrap();
    let started = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(started, 4, "two parts, the audio and the join");
    assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen.last() == Some(&100), "progress {seen:?}");
    let left: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(left, ["split.mp4"], "the parts, the audio and their scripts are removed");

    let p = probe(split.output.to_str().unwrap());
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.pix_fmt.as_str()), (1080, 1920, "h264", "yuv420p"));
    assert_eq!(p.audio_codec, "aac");
    assert!((p.duration_s - 23.424).abs() < 0.05, "{} s", p.duration_s);
    assert_eq!(frame_count(&split.output), 703, "every frame once, none repeated at the join");

    // The same plan in one ffmpeg run.
    let one_run = RenderPlan { split_min_seconds: 0, output: out.join("one-run.mp4"), ..split.clone() };
    clipforge::media::render(&tools, &one_run, Duration::from_secs(300), &mut |_| {}).await.unwrap();
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), started + 1, "0: one run");
    assert_eq!(frame_count(&one_run.output), 703);
    let (whole, _, frames) = quality(&split.output, &one_run.output);
    assert_eq!(frames, 703);
    // Around the join (frame 354, 11.8 s), where the caption is on screen on both sides.
    let (join, _, _) = quality_within(&split.output, &one_run.output, &["-ss", "11.3", "-t", "1"]);
    eprintln!("SSIM against one run: {whole:.4} whole, {join:.4} around the join");
    assert!(whole >= 0.99 && join >= 0.99, "SSIM {whole:.4} whole, {join:.4} around the join: not the same picture");
}
