//! Segmented render across workers (issue 17, part 3): a long video is
//! rendered in segments that any render worker takes, then joined. What a
//! user gets is checked frame by frame: the MP4 passes the render checks, has
//! exactly `round(duration × 30)` frames, every clip starts on the frame it
//! should (no frame repeated or missing at any join), and the captions at each
//! join are the ones a single pass draws. A render worker killed mid-segment
//! costs that segment alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clipforge::app::Roles;
use clipforge::domain::{JobState, Stage, WordTiming};
use clipforge::media::segments::{clip_frame_bounds, plan_segments};
use serde_json::{Value, json};

use crate::support::{QueueKind, TestApp, caption_band, files_under, history, mean_abs_diff, probe, spawn_app_with};

/// Library clips whose top band is a 12-bit barcode of `frame + 1024 × clip`
/// (12 stripes, white for a set bit) over flat grey: any frame of a render
/// says which clip it shows and which frame of it.
fn barcode_library(dir: &Path, clips: u32) {
    for c in 0..clips {
        let mut vf = "drawbox=x=0:y=0:w=720:h=160:color=black:t=fill".to_string();
        for bit in 0..12 {
            vf.push_str(&format!(
                ",drawbox=x={}:y=0:w=60:h=160:color=white:t=fill:enable='mod(floor((n+{})/{}),2)'",
                bit * 60,
                1024 * c,
                1u32 << bit
            ));
        }
        let out = dir.join(format!("bars-{c}.mp4"));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", "color=c=0x808080:s=720x1280:r=30:d=20", "-vf", &vf])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "could not make {}", out.display());
    }
}

/// A frame's barcode, as (clip, frame of the clip).
type Code = (u32, u32);

/// Every frame of `path`, in order: its barcode, and its caption band shrunk
/// ten times (grey, 108 wide).
fn frames(path: &str) -> (Vec<Code>, Vec<Vec<u8>>) {
    let (y, h) = caption_band();
    let dir = tempfile::tempdir().unwrap();
    let (bars, caps) = (dir.path().join("bars.raw"), dir.path().join("caps.raw"));
    let graph = format!(
        "[0:v]split[a][b];[a]crop=1080:200:0:20,scale=12:1:flags=area,format=gray[bars];\
         [b]crop=1080:{h}:0:{y},scale=108:{}:flags=area,format=gray[caps]",
        h / 10
    );
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "2", "-i", path, "-filter_complex", &graph])
        .args(["-map", "[bars]", "-f", "rawvideo"])
        .arg(&bars)
        .args(["-map", "[caps]", "-f", "rawvideo"])
        .arg(&caps)
        .status()
        .unwrap();
    assert!(status.success(), "could not read the frames of {path}");
    let codes = std::fs::read(&bars)
        .unwrap()
        .chunks(12)
        .map(|px| {
            let v = px.iter().enumerate().fold(0u32, |v, (bit, p)| v | (u32::from(*p > 128) << bit));
            (v / 1024, v % 1024)
        })
        .collect();
    let bands = std::fs::read(&caps).unwrap().chunks(108 * (h / 10) as usize).map(<[u8]>::to_vec).collect();
    (codes, bands)
}

/// The caption band of frames `first` and `first + 1` as a single pass draws
/// them: the job's captions over the same grey, at those frames' times.
fn reference_bands(ass: &Path, first: u64) -> Vec<Vec<u8>> {
    let (y, h) = caption_band();
    let vf = format!(
        "settb=AVTB,setpts=round((N+{first})/30/TB),ass=filename={}:fontsdir=/usr/share/fonts/truetype/dejavu,\
         crop=1080:{h}:0:{y},scale=108:{}:flags=area,format=gray",
        ass.display(),
        h / 10
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "color=c=0x808080:s=1080x1920:r=30:d=1", "-vf", &vf])
        .args(["-frames:v", "2", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "reference captions: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks(108 * (h / 10) as usize).map(<[u8]>::to_vec).collect()
}

/// A script of long sentences, so most clip boundaries (and joins) fall
/// while a caption is on screen.
fn long_script(sentences: usize) -> String {
    let sentence = "The river keeps carrying sand and small stones down from the hills, past the old mill, \
                    under the stone bridge and through the quiet town, all the way to the open sea. ";
    sentence.repeat(sentences)
}

fn library_settings(library: &Path) -> Vec<(String, String)> {
    [
        ("CLIPFORGE__PROVIDERS__FOOTAGE__LIBRARY_DIR", library.display().to_string()),
        ("CLIPFORGE__PROVIDERS__FOOTAGE__MAX_CLIP_SECS", "7".to_string()),
        ("CLIPFORGE__LIMITS__MAX_SCRIPT_CHARS", "6000".to_string()),
        ("CLIPFORGE__LIMITS__MAX_NARRATION_SECS", "240".to_string()),
        ("CLIPFORGE__LIMITS__MAX_TARGET_SECS", "240".to_string()),
        ("CLIPFORGE__LIMITS__MAX_FOOTAGE_SEGMENTS", "48".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The frame each clip of the staged job starts on, and its frame count.
fn planned_bounds(job: &Value) -> Vec<u64> {
    let shown: Vec<f64> =
        job["manifest"]["footage"].as_array().unwrap().iter().map(|p| p["duration_s"].as_f64().unwrap()).collect();
    clip_frame_bounds(&shown, job["manifest"]["narration"]["duration_s"].as_f64().unwrap())
}

/// Checks a staged segmented render the way a viewer would notice a bad
/// join; returns the joins' frames.
fn assert_frame_exact(job: &Value, segment_s: u64) -> Vec<u64> {
    let path = job["outputs"]["video"]["path"].as_str().unwrap();
    let p = probe(path);
    assert_eq!((p.width, p.height, p.video_codec.as_str(), p.pix_fmt.as_str()), (1080, 1920, "h264", "yuv420p"));
    assert_eq!((p.fps.as_str(), p.audio_codec.as_str()), ("30/1", "aac"));
    let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!((p.duration_s - narration).abs() <= 0.5, "video {:.2}s vs narration {narration:.2}s", p.duration_s);

    let bounds = planned_bounds(job);
    let joins: Vec<u64> = plan_segments(&bounds, segment_s * 30).iter().skip(1).map(|s| s.start_frame).collect();
    assert!(joins.len() >= 2, "the video was split in at least three segments: {joins:?}");
    let (codes, _) = frames(path);
    assert_eq!(codes.len() as u64, (narration * 30.0).round() as u64, "frame count = duration × 30");
    assert_eq!(codes.len() as u64, *bounds.last().unwrap());
    // Each frame is the next frame of its clip, or the first frame of the next
    // slot's clip exactly where that slot starts: no frame repeated or missing.
    let starts: Vec<u64> =
        (0..codes.len()).filter(|&i| i == 0 || codes[i].1 != codes[i - 1].1 + 1).map(|i| i as u64).collect();
    assert_eq!(starts, bounds[..bounds.len() - 1], "slots start where the plan puts them");
    for &i in &starts {
        assert_eq!(codes[i as usize].1, 0, "frame {i} starts its clip at its first frame");
    }
    for &j in &joins {
        let (before, at) = (codes[j as usize - 1], codes[j as usize]);
        let slot = bounds.iter().position(|b| *b == j).unwrap();
        assert_eq!(before.1 as u64, bounds[slot] - bounds[slot - 1] - 1, "the frame before join {j} ends its clip");
        assert_eq!(at.1, 0, "join {j}");
    }
    joins
}

#[tokio::test]
async fn a_three_minute_video_is_rendered_in_segments_and_joined_frame_exact_with_continuous_captions() {
    let started = Instant::now();
    let library = tempfile::tempdir().unwrap();
    barcode_library(library.path(), 3);
    let mut extra = library_settings(library.path());
    extra.extend(
        [
            ("CLIPFORGE__MEDIA__SEGMENT_MIN_SECONDS", "90"),
            // Slots are half-sentences: every other join falls mid-sentence.
            ("CLIPFORGE__MEDIA__SEGMENT_SECONDS", "25"),
            // Two segments at a time, one thread each: two single-core workers in one process.
            ("CLIPFORGE__QUEUE__RENDER_CONCURRENCY", "2"),
            ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(QueueKind::Sqlite, Roles::all(), &extra).await;
    let id = app.submit(json!({ "script": long_script(17) })).await;
    let job = app.wait_for(&id, &[JobState::Staged, JobState::Failed], Duration::from_secs(300)).await;
    assert_eq!(job["state"], "staged", "{job:#}");
    let rendered_in = started.elapsed();
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "staging", "staged"], "one render, as ever");
    assert_eq!(job["progress"], 100);
    let narration = job["manifest"]["narration"]["duration_s"].as_f64().unwrap();
    assert!(narration >= 150.0, "a long video: {narration:.1} s");

    let joins = assert_frame_exact(&job, 25);

    // Captions: at each join, the frames on both sides show what a single
    // pass draws at those times, and some cue is on screen across a join.
    let path = job["outputs"]["video"]["path"].as_str().unwrap();
    let (_, bands) = frames(path);
    let words: Vec<WordTiming> = serde_json::from_value(job["manifest"]["narration"]["words"].clone()).unwrap();
    let style = clipforge::pipeline::render_caption_style("DejaVu Sans", 84);
    let ass = app.data.path().join("reference.ass");
    std::fs::write(&ass, clipforge::media::captions::ass_document(&words, &style)).unwrap();
    let blank = reference_bands(&ass, 10_000_000)[0].clone();
    let mut spanning = 0;
    for &j in &joins {
        let want = reference_bands(&ass, j - 1);
        for (k, frame) in [(0, j - 1), (1, j)] {
            let got = &bands[frame as usize];
            let off = mean_abs_diff(got, &want[k]);
            let inked = mean_abs_diff(&want[k], &blank);
            // Far closer to what a single pass draws than a missing (or another) caption would be.
            assert!(
                off < f64::max(2.5, inked * 0.4),
                "frame {frame} at join {j}: {off:.2} from a single pass's captions ({inked:.2} from none)"
            );
        }
        if want.iter().all(|w| mean_abs_diff(w, &blank) > 3.0) {
            spanning += 1;
        }
    }
    assert!(spanning >= 1, "some caption is on screen on both sides of a join: joins {joins:?}");
    assert!(files_under(&app.scratch_dir()).is_empty(), "scratch left: {:?}", files_under(&app.scratch_dir()));
    eprintln!(
        "{narration:.1} s video in {} segments: staged after {rendered_in:?}, checked after {:?}",
        joins.len() + 1,
        started.elapsed()
    );
    app.stop().await;
}

fn render_worker(app: &TestApp, log_name: &str) -> Child {
    let log = std::fs::File::create(app.data.path().join(log_name)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clipforge"))
        .args(["worker", "--role", "render"])
        .envs(app.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("CLIPFORGE_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("worker starts")
}

/// The fields (message included) of every line about `job` in a worker's JSON log.
fn job_log_fields(app: &TestApp, log_name: &str, job: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(app.data.path().join(log_name)).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(job))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|mut v| v["fields"].take())
        .collect()
}

/// `(segment, message)` of every segment event of `job` in a worker's log.
fn segment_events(app: &TestApp, log_name: &str, job: &str) -> Vec<(u64, String)> {
    job_log_fields(app, log_name, job)
        .iter()
        .filter_map(|fields| Some((fields["segment"].as_u64()?, fields["message"].as_str()?.to_string())))
        .collect()
}

#[tokio::test]
async fn a_render_worker_killed_mid_segment_costs_only_that_segment() {
    let library = tempfile::tempdir().unwrap();
    barcode_library(library.path(), 2);
    let mut extra = library_settings(library.path());
    extra.extend(
        [
            ("CLIPFORGE__MEDIA__SEGMENT_MIN_SECONDS", "20"),
            ("CLIPFORGE__MEDIA__SEGMENT_SECONDS", "8"),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__MAX_CLIP_SECS", "4"),
            ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app =
        spawn_app_with(QueueKind::Redis, Roles { api: true, stages: vec![Stage::Prepare, Stage::Publish] }, &extra)
            .await;
    let logs = ["render-1.log", "render-2.log", "render-3.log"];
    let mut workers = vec![render_worker(&app, logs[0]), render_worker(&app, logs[1])];
    let id = app.submit(json!({ "script": long_script(3) })).await;

    // Kill a worker once it is a second into a segment.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (victim, segment) = loop {
        let busy = (0..2).find_map(|w| {
            let events = segment_events(&app, logs[w], &id);
            let (k, _) = events.iter().rev().find(|(_, m)| m == "segment started")?;
            let done = events.iter().any(|(d, m)| d == k && m == "segment rendered");
            (!done).then_some((w, *k))
        });
        if let Some(found) = busy {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !segment_events(&app, logs[found.0], &id).iter().any(|(d, m)| *d == found.1 && m == "segment rendered") {
                break found;
            }
        }
        assert!(Instant::now() < deadline, "no segment got going: {:#}", app.job(&id).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    workers[victim].kill().expect("SIGKILL");
    workers[victim].wait().unwrap();
    // A fresh worker takes the dead one's place, as an orchestrator would start one.
    workers.push(render_worker(&app, logs[2]));

    let job = app.wait_for(&id, &[JobState::Staged, JobState::Failed], Duration::from_secs(180)).await;
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert_eq!(job["state"], "staged", "{job:#}");
    assert_eq!(history(&job), ["queued", "preparing", "rendering", "staging", "staged"]);
    assert_frame_exact(&job, 8);

    let segments = clipforge::media::segments::plan_segments(&planned_bounds(&job), 8 * 30).len() as u64;
    let events: Vec<(u64, String)> = logs.iter().flat_map(|l| segment_events(&app, l, &id)).collect();
    for k in 0..segments {
        let started = events.iter().filter(|(s, m)| *s == k && m == "segment started").count();
        let rendered = events.iter().filter(|(s, m)| *s == k && m == "segment rendered").count();
        let want = if k == segment { 2 } else { 1 };
        assert_eq!((started, rendered), (want, 1), "segment {k} (killed in {segment}): {events:?}");
    }
    // The audio was mixed and encoded once, beside the segments, and the join only copied it.
    let messages: Vec<String> = logs
        .iter()
        .flat_map(|l| job_log_fields(&app, l, &id))
        .filter_map(|fields| Some(fields["message"].as_str()?.to_string()))
        .collect();
    let count = |m: &str| messages.iter().filter(|x| *x == m).count();
    assert_eq!(count("audio encoded for the join"), 1, "{messages:?}");
    assert_eq!(count("no audio encoded ahead; the join mixes it"), 0, "{messages:?}");
    let leftover = Command::new("pgrep").args(["-f", &app.scratch_dir().display().to_string()]).output().unwrap();
    assert!(leftover.stdout.is_empty(), "an ffmpeg of the killed worker is still running");
    eprintln!("{segments} segments; segment {segment} was killed and rendered again");
}
