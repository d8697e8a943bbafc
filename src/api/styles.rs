//! Caption styles as the studio and API clients see them: the presets with
//! their settings (`GET /v1/styles`) and a still of each
//! (`GET /v1/styles/preview.png?style=NAME`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::domain::{Effect, Position, Preset, Transition, WordTiming};
use crate::error_code as codes;
use crate::media::captions::CaptionStyle;

/// One still per preset, drawn on first use and then answered from memory.
#[derive(Debug)]
pub struct StylePreviews(HashMap<&'static str, OnceCell<Vec<u8>>>);

impl Default for StylePreviews {
    fn default() -> Self {
        Self(Preset::ALL.into_iter().map(|p| (p.name(), OnceCell::new())).collect())
    }
}

/// A preset with the settings it renders with on this server.
#[derive(Debug, Serialize, ToSchema)]
pub struct StyleView {
    /// The name a job gives as `caption_style.preset`.
    pub name: &'static str,
    pub description: &'static str,
    /// Whether jobs that name no preset get this one (`captions.default_preset`).
    pub default: bool,
    pub font: String,
    /// Text size in pixels of the 1920-pixel-high frame.
    pub size: u32,
    pub bold: bool,
    pub primary_colour: String,
    pub highlight_colour: String,
    pub outline_colour: String,
    pub outline: u32,
    pub shadow: u32,
    #[serde(rename = "box")]
    pub boxed: bool,
    pub box_colour: String,
    pub position: Position,
    pub words_per_line: usize,
    pub max_lines: usize,
    pub uppercase: bool,
    /// What happens to the word being spoken: `none`, `highlight` or `karaoke`.
    pub effect: Effect,
    /// How the preset joins footage clips: `cut`, `crossfade`, `slide` or `zoom`.
    pub transition: Transition,
    /// A still of the preset: its URL on this server.
    pub preview: String,
}

/// The area of the 1080x1920 frame captions stay inside (`[captions]` settings).
#[derive(Debug, Serialize, ToSchema)]
pub struct SafeAreaView {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StyleList {
    /// The preset of jobs that name none.
    pub default: &'static str,
    pub safe_area: SafeAreaView,
    pub styles: Vec<StyleView>,
}

fn view(preset: Preset, style: &CaptionStyle, default: Preset) -> StyleView {
    StyleView {
        name: preset.name(),
        description: preset.look().description,
        default: preset == default,
        font: style.font.clone(),
        size: style.size,
        bold: style.bold,
        primary_colour: style.primary.hex(),
        highlight_colour: style.highlight.hex(),
        outline_colour: style.outline_colour.hex(),
        outline: style.outline,
        shadow: style.shadow,
        boxed: style.boxed,
        box_colour: style.box_colour.hex(),
        position: style.position,
        words_per_line: style.words_per_line,
        max_lines: style.max_lines,
        uppercase: style.uppercase,
        effect: style.effect,
        transition: style.transition,
        preview: format!("/v1/styles/preview.png?style={}", preset.name()),
    }
}

fn preset_style(state: &ApiState, preset: Preset) -> CaptionStyle {
    let defaults = &state.pipeline.config.captions;
    let choice = crate::domain::CaptionChoice { preset: Some(preset), ..Default::default() };
    crate::pipeline::job_caption_style(Some(&choice), defaults)
}

/// The caption presets a job can name in `caption_style.preset`, each with
/// the settings it renders with here and a still.
#[utoipa::path(get, path = "/v1/styles", tag = "studio", responses((status = 200, body = StyleList)))]
pub async fn list_styles(State(state): State<ApiState>) -> Json<StyleList> {
    let defaults = &state.pipeline.config.captions;
    let safe = defaults.safe;
    let styles = Preset::ALL.into_iter().map(|p| view(p, &preset_style(&state, p), defaults.preset)).collect();
    Json(StyleList {
        default: defaults.preset.name(),
        safe_area: SafeAreaView { top: safe.top, bottom: safe.bottom, left: safe.left, right: safe.right },
        styles,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// A preset name; absent for the team's default preset.
    pub style: Option<String>,
}

/// A still of a caption preset: sample words drawn by the same captions file
/// and `ass` filter the render uses, over a plain frame, 270x480, at the
/// moment the second word is spoken (so a highlight or karaoke fill shows).
/// Made once per preset and process, then answered from memory.
#[utoipa::path(get, path = "/v1/styles/preview.png", tag = "studio", params(PreviewQuery),
    responses((status = 200, description = "The still", content_type = "image/png"),
              (status = 404, description = "No such preset (`caption_preset_unknown`)", body = ErrorBody),
              (status = 503, description = "ffmpeg could not draw it", body = ErrorBody)))]
pub async fn style_preview(State(state): State<ApiState>, Query(q): Query<PreviewQuery>) -> Result<Response, ApiError> {
    let preset = match q.style.as_deref() {
        None => state.pipeline.config.captions.preset,
        Some(name) => Preset::parse(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                codes::CAPTION_PRESET_UNKNOWN,
                format!("no caption preset `{}`; one of {}", crate::domain::echo(name), Preset::names()),
            )
        })?,
    };
    let cell = state.studio.style_previews.0.get(preset.name()).expect("a cell per preset");
    let png = cell
        .get_or_try_init(|| draw_style_preview(&state, preset))
        .await
        .map_err(|e| ApiError::unavailable(codes::PREVIEW_UNAVAILABLE, e))?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=3600")], png.clone())
        .into_response())
}

/// The sample the previews show: four words, 0.3 s each.
pub fn preview_words() -> Vec<WordTiming> {
    ["Captions", "look", "like", "this"]
        .iter()
        .enumerate()
        .map(|(i, w)| WordTiming { text: (*w).into(), start_s: i as f64 * 0.3, end_s: i as f64 * 0.3 + 0.3 })
        .collect()
}

/// When the preview is taken: half-way through the second word.
pub const PREVIEW_AT_S: f64 = 0.45;

async fn draw_style_preview(state: &ApiState, preset: Preset) -> Result<Vec<u8>, String> {
    let p = &state.pipeline;
    let style = preset_style(state, preset);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ass = dir.path().join("captions.ass");
    let png = dir.path().join("preview.png");
    let doc = crate::media::captions::ass_document(&preview_words(), &style);
    tokio::fs::write(&ass, doc).await.map_err(|e| e.to_string())?;
    let args = crate::media::ffmpeg::caption_preview_args(&ass, &p.config.fonts_dir, PREVIEW_AT_S, 270, &png);
    let run = crate::media::process::Invocation::new(p.tools.ffmpeg.clone(), args, std::time::Duration::from_secs(30));
    crate::media::process::run(&run).await.map_err(|e| e.to_string())?;
    tokio::fs::read(&png).await.map_err(|e| e.to_string())
}
