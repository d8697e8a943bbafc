//! The team's own media in a job: a voice-over that is the narration, and
//! images or clips shown for the whole video or pinned to sentences in place
//! of matched footage.
//!
//! The placing is pure ([`sentence_spans`], [`overlay`], [`spread_sentences`]);
//! the [`Pipeline`] methods only read the media rows.

use tracing::info;

use super::{Pipeline, StageError};
use crate::domain::{FootagePick, JobMedia, MediaId, MediaKind, Narration, ScriptOutput, SentenceTiming, WordTiming};
use crate::error_code as codes;
use crate::providers::voice::spread_words;
use crate::store::records::MediaRecord;

/// Pieces shorter than this (seconds) are given to their neighbour instead
/// of being an ffmpeg input of their own: under three frames is a flash.
const MIN_PIECE_S: f64 = 0.1;

/// Times `sentences` across a voice-over of `duration_s` seconds in
/// proportion to their length, and their words within each: the voice-over
/// comes with no timings, and captions need some. Sentences are spoken back to
/// back, so the spans touch and cover the whole recording.
pub fn spread_sentences(sentences: &[String], duration_s: f64) -> (Vec<SentenceTiming>, Vec<WordTiming>) {
    let weights: Vec<f64> = sentences.iter().map(|s| s.chars().count().max(1) as f64).collect();
    let total: f64 = weights.iter().sum::<f64>().max(1.0);
    let mut at = 0.0;
    let mut timed = Vec::with_capacity(sentences.len());
    let mut words = Vec::new();
    for (s, w) in sentences.iter().zip(weights) {
        let end = at + duration_s * w / total;
        words.extend(spread_words(s, at, end));
        timed.push(SentenceTiming { text: s.clone(), start_s: at, end_s: end });
        at = end;
    }
    (timed, words)
}

/// The stretch of the video each sentence owns: from its start (the first
/// from 0) to the next one's start (the last to the end), so the stretches
/// touch and cover the whole video.
pub fn sentence_spans(sentences: &[SentenceTiming], duration_s: f64) -> Vec<(f64, f64)> {
    let n = sentences.len();
    (0..n)
        .map(|i| {
            let start = if i == 0 { 0.0 } else { sentences[i].start_s.clamp(0.0, duration_s) };
            let end = if i + 1 == n { duration_s } else { sentences[i + 1].start_s.clamp(0.0, duration_s) };
            (start, end.max(start))
        })
        .collect()
}

/// `base` (picks covering the video in order) with each of `placed` (picks
/// of their own stretch) put over it: base picks are cut where a placed one
/// covers them. Pieces under [`MIN_PIECE_S`] go to their neighbour, so the
/// result still covers the video back to back and its durations add up to
/// the same total.
pub fn overlay(base: &[FootagePick], placed: &[FootagePick]) -> Vec<FootagePick> {
    let mut pieces: Vec<FootagePick> = Vec::new();
    for pick in base {
        let mut parts = vec![(pick.at_s, pick.at_s + pick.duration_s)];
        for p in placed {
            let (ps, pe) = (p.at_s, p.at_s + p.duration_s);
            parts = parts
                .into_iter()
                .flat_map(|(s, e)| {
                    if pe <= s || ps >= e {
                        vec![(s, e)]
                    } else {
                        [(s, ps.max(s)), (pe.min(e), e)].into_iter().filter(|(a, b)| b > a).collect()
                    }
                })
                .collect();
        }
        pieces.extend(parts.into_iter().map(|(s, e)| FootagePick { at_s: s, duration_s: e - s, ..pick.clone() }));
    }
    pieces.extend(placed.iter().filter(|p| p.duration_s > 0.0).cloned());
    pieces.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut out: Vec<FootagePick> = Vec::with_capacity(pieces.len());
    let mut carried = 0.0;
    for mut piece in pieces {
        if piece.duration_s < MIN_PIECE_S {
            match out.last_mut() {
                Some(last) => last.duration_s += piece.duration_s,
                None => carried += piece.duration_s,
            }
            continue;
        }
        if carried > 0.0 {
            piece.at_s -= carried;
            piece.duration_s += carried;
            carried = 0.0;
        }
        out.push(piece);
    }
    if carried > 0.0
        && let Some(last) = out.last_mut()
    {
        last.duration_s += carried;
    }
    out
}

/// Which media each sentence shows: its pin, else the whole-video media in
/// turn, else none (matched footage). Pins past the script's last sentence
/// (a topic's script may come out shorter) are not used.
pub fn media_per_sentence(media: &JobMedia, sentences: usize) -> Vec<Option<&MediaId>> {
    (0..sentences)
        .map(|i| {
            media.pinned(i).or_else(|| (!media.footage.is_empty()).then(|| &media.footage[i % media.footage.len()]))
        })
        .collect()
}

fn gone(id: &MediaId) -> StageError {
    StageError::job(
        codes::MEDIA_UNKNOWN,
        format!(
            "media `{id}` the job names is gone (deleted); upload it again and revise the job, or retry without it"
        ),
    )
}

impl Pipeline {
    async fn media_item(&self, id: &MediaId) -> Result<MediaRecord, StageError> {
        self.records.media(id).await?.ok_or_else(|| gone(id))
    }

    /// The narration of a job whose voice-over is the team's own recording:
    /// the recording as it is, with the script's words timed across it.
    pub(super) async fn voiceover_narration(
        &self,
        id: &MediaId,
        script: &ScriptOutput,
    ) -> Result<Narration, StageError> {
        let item = self.media_item(id).await?;
        let duration_s = match (item.kind, item.duration_s) {
            (MediaKind::Audio, Some(d)) if d > 0.0 => d,
            _ => return Err(gone(id)),
        };
        let (sentences, words) = spread_sentences(&script.sentences, duration_s);
        info!(media_id = %id, duration_s, "the team's voice-over is the narration");
        Ok(Narration { key: item.object_key, duration_s, voice: format!("media:{id}"), sentences, words })
    }

    /// `base` with the job's own media put over the sentences it names.
    pub(super) async fn place_own_media(
        &self,
        media: &JobMedia,
        narration: &Narration,
        base: Vec<FootagePick>,
    ) -> Result<Vec<FootagePick>, StageError> {
        let spans = sentence_spans(&narration.sentences, narration.duration_s);
        let mut placed = Vec::new();
        for (chosen, (start, end)) in media_per_sentence(media, spans.len()).into_iter().zip(spans) {
            let Some(id) = chosen else { continue };
            let item = self.media_item(id).await?;
            if !item.kind.is_visual() {
                return Err(gone(id));
            }
            placed.push(FootagePick {
                key: item.object_key,
                source: format!("media:{id}"),
                at_s: start,
                duration_s: end - start,
                credit: None,
                still: item.kind == MediaKind::Image,
            });
        }
        Ok(overlay(&base, &placed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobMediaRequest, MediaPinRequest};

    fn pick(key: &str, at_s: f64, duration_s: f64) -> FootagePick {
        FootagePick { key: key.into(), source: "x".into(), at_s, duration_s, credit: None, still: false }
    }

    fn shape(picks: &[FootagePick]) -> Vec<(String, f64, f64)> {
        picks
            .iter()
            .map(|p| (p.key.clone(), (p.at_s * 1000.0).round() / 1000.0, (p.duration_s * 1000.0).round() / 1000.0))
            .collect()
    }

    #[test]
    fn a_pinned_stretch_cuts_the_footage_under_it() {
        let base = [pick("a", 0.0, 4.0), pick("b", 4.0, 4.0)];
        let out = overlay(&base, &[pick("m", 3.0, 2.0)]);
        assert_eq!(shape(&out), [("a".into(), 0.0, 3.0), ("m".into(), 3.0, 2.0), ("b".into(), 5.0, 3.0)]);
        let total: f64 = out.iter().map(|p| p.duration_s).sum();
        assert!((total - 8.0).abs() < 1e-9);
    }

    #[test]
    fn slivers_go_to_their_neighbour_and_the_total_stays() {
        let base = [pick("a", 0.0, 4.0)];
        let out = overlay(&base, &[pick("m", 0.05, 3.9)]);
        assert_eq!(shape(&out), [("m".into(), 0.0, 4.0)], "0.05 s before and after are not inputs of their own");
    }

    #[test]
    fn without_base_the_placed_media_is_the_whole_video() {
        let out = overlay(&[], &[pick("m1", 0.0, 2.0), pick("m2", 2.0, 3.0)]);
        assert_eq!(shape(&out), [("m1".into(), 0.0, 2.0), ("m2".into(), 2.0, 3.0)]);
    }

    #[test]
    fn sentence_spans_touch_and_cover_the_video() {
        let s = |a: f64, b: f64| SentenceTiming { text: "x".into(), start_s: a, end_s: b };
        let spans = sentence_spans(&[s(0.2, 1.5), s(1.8, 3.0), s(3.1, 4.0)], 4.5);
        assert_eq!(spans, [(0.0, 1.8), (1.8, 3.1), (3.1, 4.5)]);
    }

    #[test]
    fn a_voiceover_is_shared_by_length_and_words_follow_their_sentence() {
        let sentences = vec!["One two.".to_string(), "Three four five six.".to_string()];
        let (timed, words) = spread_sentences(&sentences, 9.0);
        assert_eq!(timed[0].start_s, 0.0);
        assert!((timed[1].end_s - 9.0).abs() < 1e-9);
        assert!((timed[0].end_s - 9.0 * 8.0 / 28.0).abs() < 1e-9, "{timed:?}");
        assert_eq!(words.len(), 6);
        assert!(words[2].start_s >= timed[1].start_s - 1e-9);
    }

    #[test]
    fn pins_win_over_whole_video_media_which_takes_turns() {
        let a = MediaId::new().to_string();
        let b = MediaId::new().to_string();
        let c = MediaId::new().to_string();
        let media = JobMedia::parse(&JobMediaRequest {
            footage: vec![a.clone(), b.clone()],
            pins: vec![
                MediaPinRequest { sentence: 2, media: c.clone() },
                MediaPinRequest { sentence: 9, media: c.clone() },
            ],
            voiceover: None,
        })
        .unwrap();
        let shown: Vec<String> = media_per_sentence(&media, 4).into_iter().map(|m| m.unwrap().to_string()).collect();
        assert_eq!(shown, [a.clone(), c, a, b]);
        let only_pins = JobMedia::parse(&JobMediaRequest {
            pins: vec![MediaPinRequest { sentence: 1, media: MediaId::new().to_string() }],
            ..Default::default()
        })
        .unwrap();
        let shown = media_per_sentence(&only_pins, 2);
        assert!(shown[0].is_some() && shown[1].is_none(), "unpinned sentences keep matched footage");
    }
}
