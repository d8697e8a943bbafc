//! Batch files: many job requests in one body, each line validated on its own.
//!
//! A batch comes as a JSON array of job requests, as JSON lines (one request
//! per line), or as CSV whose header names [`JobRequest`] fields. [`parse_batch`]
//! turns the body into one [`BatchLine`] per request: a [`JobSpec`], or every
//! problem of that line at once, with the line number a person finds in the
//! file. Only problems with the file as a whole (not JSON, an unknown CSV
//! column, too many lines) refuse the whole batch.
//!
//! CSV cells: an empty cell (after trimming) leaves the field out;
//! `footage_queries` holds several queries separated by `|`; `captions` is
//! `true`/`false` (also `yes`/`no`, `1`/`0`); music is given as the two
//! columns `music.track` and `music.volume`.

use crate::error_code::{self as codes, ErrorCode};
use serde_json::value::RawValue;

use super::{FieldError, JobRequest, JobSpec, MusicRequest, SpecLimits};

/// How a batch body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// `application/json`: an array of job requests; "line" is the 1-based element.
    JsonArray,
    /// `application/x-ndjson` or `application/jsonl`: one request per line;
    /// blank lines are skipped but counted.
    JsonLines,
    /// `text/csv`: a header row of field names (line 1), then one job per row.
    Csv,
}

impl BatchFormat {
    /// The format a `Content-Type` header announces (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Self::JsonArray),
            "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines" => {
                Some(Self::JsonLines)
            }
            "text/csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The `Content-Type` to send a file with this extension as (`csv`, `jsonl`, `ndjson`, `json`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::JsonLines),
            "json" => Some(Self::JsonArray),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::JsonArray => "application/json",
            Self::JsonLines => "application/x-ndjson",
            Self::Csv => "text/csv",
        }
    }
}

/// The separator of several values in one CSV cell (`footage_queries`).
pub const CSV_LIST_SEPARATOR: char = '|';

/// The CSV columns a batch may have: the [`JobRequest`] fields, music as two columns.
pub const CSV_COLUMNS: [&str; 11] = [
    "script",
    "topic",
    "voice",
    "target_length_s",
    "footage_queries",
    "captions",
    "music.track",
    "music.volume",
    "account",
    "idempotency_key",
    "language",
];

/// Why one line was not taken: a stable code, a sentence, and per-field problems.
#[derive(Debug, Clone, PartialEq)]
pub struct LineProblem {
    /// `malformed_json`, `malformed_csv` or `invalid_spec`.
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl LineProblem {
    /// The problems `JobSpec::parse` (or a cell conversion) found, as one line's answer.
    pub fn invalid_spec(details: Vec<FieldError>) -> Self {
        let message = details.iter().map(|d| format!("{}: {}", d.field, d.message)).collect::<Vec<_>>().join("; ");
        Self { code: codes::INVALID_SPEC, message, details }
    }
}

/// One request of a batch, where it is in the file, and what it parsed into.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLine {
    /// 1-based: the line in a JSON-lines or CSV file (the CSV header is line
    /// 1), the element of a JSON array.
    pub line: u32,
    pub spec: Result<JobSpec, LineProblem>,
}

/// Why a batch is refused as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body is not valid CSV: {0}")]
    MalformedCsv(String),
    #[error("a JSON batch must be an array of job requests, not {0}")]
    NotAnArray(&'static str),
    #[error("unknown CSV column `{}`; allowed: {}", super::echo(column), CSV_COLUMNS.join(", "))]
    UnknownColumn { column: String },
    #[error("CSV column `{}` appears twice", super::echo(column))]
    DuplicateColumn { column: String },
    #[error("the batch has more than {max} lines; split it")]
    TooManyLines { max: usize },
    #[error("the batch has no lines")]
    Empty,
}

/// Parses a whole batch body; at most `max_lines` requests.
pub fn parse_batch(
    format: BatchFormat,
    body: &[u8],
    limits: &SpecLimits,
    max_lines: usize,
) -> Result<Vec<BatchLine>, BatchError> {
    let requests = match format {
        BatchFormat::JsonArray => json_array(body, max_lines)?,
        BatchFormat::JsonLines => json_lines(body, max_lines)?,
        BatchFormat::Csv => csv_rows(body, max_lines)?,
    };
    if requests.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(requests
        .into_iter()
        .map(|(line, request)| {
            let spec = request.and_then(|(req, mut problems)| match JobSpec::parse_submission(req, limits) {
                Ok(spec) if problems.is_empty() => Ok(spec),
                Ok(_) => Err(LineProblem::invalid_spec(problems)),
                Err(more) => {
                    problems.extend(more);
                    Err(LineProblem::invalid_spec(problems))
                }
            });
            BatchLine { line, spec }
        })
        .collect())
}

/// A request as read from the file, with the problems already found in its cells.
type Read = Result<(JobRequest, Vec<FieldError>), LineProblem>;

fn line_number(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A JSON value that did not fit [`JobRequest`] (unknown or repeated field, wrong type).
fn wrong_shape(e: serde_json::Error) -> LineProblem {
    LineProblem::invalid_spec(vec![FieldError {
        field: "line".into(),
        code: codes::WRONG_SHAPE.as_str().into(),
        message: super::clip(&e.to_string()),
    }])
}

fn malformed_json(e: impl std::fmt::Display) -> BatchError {
    BatchError::MalformedJson(super::clip(&e.to_string()))
}

/// Each element is read straight into a [`JobRequest`], as a single job's
/// body is, so a key given twice is refused (`duplicate field`) rather than
/// the last one winning, as it would through a `serde_json::Value`.
fn json_array(body: &[u8], max_lines: usize) -> Result<Vec<(u32, Read)>, BatchError> {
    let text = std::str::from_utf8(body).map_err(malformed_json)?;
    let whole: &RawValue = serde_json::from_str(text).map_err(malformed_json)?;
    let items: Vec<&RawValue> = match whole.get().trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(whole.get()).map_err(malformed_json)?,
        Some(b'{') => return Err(BatchError::NotAnArray("an object")),
        _ => return Err(BatchError::NotAnArray("a single value")),
    };
    if items.len() > max_lines {
        return Err(BatchError::TooManyLines { max: max_lines });
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let read = serde_json::from_str::<JobRequest>(item.get()).map(|r| (r, Vec::new())).map_err(wrong_shape);
            (line_number(i + 1), read)
        })
        .collect())
}

fn json_lines(body: &[u8], max_lines: usize) -> Result<Vec<(u32, Read)>, BatchError> {
    let mut out = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == max_lines {
            return Err(BatchError::TooManyLines { max: max_lines });
        }
        let read = serde_json::from_slice::<JobRequest>(raw).map(|r| (r, Vec::new())).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => wrong_shape(e),
                Category::Syntax | Category::Eof | Category::Io => LineProblem {
                    code: codes::MALFORMED_JSON,
                    message: format!("the line is not valid JSON: {}", super::clip(&e.to_string())),
                    details: Vec::new(),
                },
            }
        });
        out.push((line_number(i + 1), read));
    }
    Ok(out)
}

fn csv_rows(body: &[u8], max_lines: usize) -> Result<Vec<(u32, Read)>, BatchError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let header = reader.headers().map_err(|e| BatchError::MalformedCsv(super::clip(&e.to_string())))?.clone();
    let mut columns: Vec<&'static str> = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = name.trim();
        let Some(known) = CSV_COLUMNS.iter().find(|c| **c == name) else {
            return Err(BatchError::UnknownColumn { column: name.to_string() });
        };
        if columns.contains(known) {
            return Err(BatchError::DuplicateColumn { column: name.to_string() });
        }
        columns.push(known);
    }
    let mut out = Vec::new();
    for row in reader.records() {
        if out.len() == max_lines {
            return Err(BatchError::TooManyLines { max: max_lines });
        }
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                // A row that is not CSV (bad UTF-8, say) is that line's problem,
                // as long as the reader can say where it is.
                let Some(line) = e.position().map(|p| p.line()) else {
                    return Err(BatchError::MalformedCsv(super::clip(&e.to_string())));
                };
                let message = format!("the row is not CSV: {}", super::clip(&e.to_string()));
                let problem = LineProblem { code: codes::MALFORMED_CSV, message, details: vec![] };
                out.push((line_number(line as usize), Err(problem)));
                continue;
            }
        };
        let line = line_number(row.position().map_or(0, |p| p.line()) as usize);
        if row.len() > columns.len() {
            let problem = LineProblem {
                code: codes::MALFORMED_CSV,
                message: format!("the row has {} cells; the header has {}", row.len(), columns.len()),
                details: vec![],
            };
            out.push((line, Err(problem)));
            continue;
        }
        out.push((line, Ok(csv_request(&columns, &row))));
    }
    Ok(out)
}

/// One CSV row as a request, and the cells that could not be read.
fn csv_request(columns: &[&'static str], row: &csv::StringRecord) -> (JobRequest, Vec<FieldError>) {
    let mut req = JobRequest::default();
    let mut problems = Vec::new();
    let mut music_volume = None;
    for (column, cell) in columns.iter().zip(row.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let text = Some(cell.to_string());
        match *column {
            "script" => req.script = text,
            "topic" => req.topic = text,
            "voice" => req.voice = text,
            "language" => req.language = text,
            "account" => req.account = text,
            "idempotency_key" => req.idempotency_key = text,
            "target_length_s" => match cell.parse::<u32>() {
                Ok(n) => req.target_length_s = Some(n),
                Err(_) => problems.push(cell_error(
                    column,
                    codes::NOT_A_NUMBER,
                    format!("`{}` is not a whole number", super::echo(cell)),
                )),
            },
            "captions" => match cell.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => req.captions = Some(true),
                "false" | "no" | "0" => req.captions = Some(false),
                _ => problems.push(cell_error(
                    column,
                    codes::NOT_A_BOOLEAN,
                    format!("`{}` is not true or false", super::echo(cell)),
                )),
            },
            "footage_queries" => {
                req.footage_queries =
                    cell.split(CSV_LIST_SEPARATOR).map(str::trim).filter(|q| !q.is_empty()).map(String::from).collect();
            }
            "music.track" => req.music = Some(MusicRequest { track: cell.to_string(), volume: None }),
            "music.volume" => match cell.parse::<f32>() {
                Ok(v) => music_volume = Some(v),
                Err(_) => problems.push(cell_error(
                    column,
                    codes::NOT_A_NUMBER,
                    format!("`{}` is not a number", super::echo(cell)),
                )),
            },
            other => unreachable!("column `{other}` was checked against CSV_COLUMNS"),
        }
    }
    if let Some(volume) = music_volume {
        match &mut req.music {
            Some(music) => music.volume = Some(volume),
            None => {
                problems.push(cell_error("music.volume", codes::MUSIC_TRACK_MISSING, "music.volume needs music.track"))
            }
        }
    }
    (req, problems)
}

fn cell_error(field: &str, code: ErrorCode, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: BatchFormat, body: &str) -> Result<Vec<BatchLine>, BatchError> {
        parse_batch(format, body.as_bytes(), &SpecLimits::default(), 100)
    }

    /// (line, Ok(script or topic) | Err(codes)) for each line.
    fn summary(lines: &[BatchLine]) -> Vec<(u32, Result<String, Vec<String>>)> {
        lines
            .iter()
            .map(|l| {
                let outcome = match &l.spec {
                    Ok(spec) => Ok(match &spec.source {
                        super::super::ScriptSource::Script(s) | super::super::ScriptSource::Topic(s) => s.clone(),
                    }),
                    Err(p) => Err(std::iter::once(p.code.to_string())
                        .chain(p.details.iter().map(|d| d.code.clone()))
                        .collect()),
                };
                (l.line, outcome)
            })
            .collect()
    }

    fn err(codes: &[&str]) -> Result<String, Vec<String>> {
        Err(codes.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn content_types_and_extensions_pick_the_format() {
        assert_eq!(BatchFormat::from_content_type("text/csv; charset=utf-8"), Some(BatchFormat::Csv));
        assert_eq!(BatchFormat::from_content_type("application/x-ndjson"), Some(BatchFormat::JsonLines));
        assert_eq!(BatchFormat::from_content_type("Application/JSON"), Some(BatchFormat::JsonArray));
        assert_eq!(BatchFormat::from_content_type("text/plain"), None);
        assert_eq!(BatchFormat::from_extension("NDJSON"), Some(BatchFormat::JsonLines));
        assert_eq!(BatchFormat::from_extension("txt"), None);
    }

    #[test]
    fn csv_lines_count_the_header_as_line_one_and_cells_are_typed() {
        let body = "script,topic,target_length_s,footage_queries,captions,music.track,music.volume\n\
                    Hello there.,,,ocean | moon|,no,calm.mp3,0.5\n\
                    ,tides,four,,maybe,,0.2\n\
                    \"A quoted\nscript.\",,,,,,\n\
                    ...,,,,,,\n";
        let lines = parse(BatchFormat::Csv, body).unwrap();
        assert_eq!(
            summary(&lines),
            [
                (2, Ok("Hello there.".into())),
                (3, err(&["invalid_spec", "not_a_number", "not_a_boolean", "music_track_missing"])),
                (4, Ok("A quoted\nscript.".into())),
                (6, err(&["invalid_spec", "script_empty"])),
            ]
        );
        let first = lines[0].spec.as_ref().unwrap();
        assert_eq!(first.footage_queries, ["ocean", "moon"]);
        assert!(!first.captions);
        assert_eq!(first.music.as_ref().map(|m| (m.track.as_str(), m.volume)), Some(("calm.mp3", 0.5)));
    }

    #[test]
    fn a_csv_row_with_too_many_cells_is_that_lines_problem_and_short_rows_leave_fields_out() {
        let lines = parse(BatchFormat::Csv, "script,voice\nHi.,en-us,extra\nShort.\n").unwrap();
        assert_eq!(summary(&lines), [(2, err(&["malformed_csv"])), (3, Ok("Short.".into()))]);
    }

    #[test]
    fn an_unknown_or_repeated_csv_column_refuses_the_batch() {
        let unknown = parse(BatchFormat::Csv, "script,colour\nHi.,red\n").unwrap_err();
        assert_eq!(unknown, BatchError::UnknownColumn { column: "colour".into() });
        assert!(unknown.to_string().contains("`colour`"), "{unknown}");
        assert_eq!(
            parse(BatchFormat::Csv, "script,script\nHi.,Ho.\n").unwrap_err(),
            BatchError::DuplicateColumn { column: "script".into() }
        );
        assert_eq!(parse(BatchFormat::Csv, "\u{feff}script\n").unwrap_err(), BatchError::Empty);
    }

    #[test]
    fn json_lines_skip_blank_lines_but_count_them() {
        let body = "{\"script\": \"One.\"}\n\n  \n{\"script\": \"Two.\", \"colour\": 1}\r\n{\"script\": \n{\"topic\": \"cats\"}\n";
        let lines = parse(BatchFormat::JsonLines, body).unwrap();
        assert_eq!(
            summary(&lines),
            [
                (1, Ok("One.".into())),
                (4, err(&["invalid_spec", "wrong_shape"])),
                (5, err(&["malformed_json"])),
                (6, Ok("cats".into())),
            ]
        );
    }

    #[test]
    fn a_json_array_numbers_its_elements_and_must_be_an_array() {
        let lines = parse(BatchFormat::JsonArray, r#"[{"script": "One."}, {"script": "  "}, 5]"#).unwrap();
        assert_eq!(
            summary(&lines),
            [
                (1, Ok("One.".into())),
                (2, err(&["invalid_spec", "script_empty"])),
                (3, err(&["invalid_spec", "wrong_shape"]))
            ]
        );
        assert_eq!(
            parse(BatchFormat::JsonArray, r#"{"script": "One."}"#).unwrap_err(),
            BatchError::NotAnArray("an object")
        );
        assert!(matches!(parse(BatchFormat::JsonArray, "[{").unwrap_err(), BatchError::MalformedJson(_)));
        assert_eq!(parse(BatchFormat::JsonArray, "[]").unwrap_err(), BatchError::Empty);
    }

    #[test]
    fn a_key_given_twice_refuses_that_line_in_every_json_form() {
        let array = r#"[{"script": "One."}, {"script": "Two.", "script": "Other."}, {"topic": "t", "music": {"track": "a.mp3", "track": "b.mp3"}}]"#;
        let lines = parse(BatchFormat::JsonArray, array).unwrap();
        let shape = err(&["invalid_spec", "wrong_shape"]);
        assert_eq!(summary(&lines), [(1, Ok("One.".into())), (2, shape.clone()), (3, shape.clone())]);
        let Err(p) = &lines[1].spec else { unreachable!() };
        assert!(p.message.contains("duplicate field `script`"), "{}", p.message);
        let jsonl = "{\"script\": \"One.\"}\n{\"topic\": \"a\", \"topic\": \"b\"}\n";
        assert_eq!(summary(&parse(BatchFormat::JsonLines, jsonl).unwrap()), [(1, Ok("One.".into())), (2, shape)]);
    }

    #[test]
    fn errors_quote_a_short_escaped_prefix_of_bad_input() {
        let header = format!("script,{}\u{1b}\n", "c".repeat(1_000_000));
        let e = parse(BatchFormat::Csv, &(header + "Hi.,x\n")).unwrap_err().to_string();
        assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..200]);
        assert!(e.contains("more bytes"), "{e}");
        let cell = format!("script,target_length_s\nHi.,{}\u{7}\n", "9x".repeat(50_000));
        let lines = parse(BatchFormat::Csv, &cell).unwrap();
        let Err(p) = &lines[0].spec else { panic!("a bad cell is refused") };
        assert!(p.message.len() < 300 && !p.message.contains('\u{7}'), "{}", p.message);
        let json = format!("[{{\"script\": \"Hi.\", \"{}\": 1}}]", "k".repeat(100_000));
        let lines = parse(BatchFormat::JsonArray, &json).unwrap();
        let Err(p) = &lines[0].spec else { panic!("an unknown field is refused") };
        assert!(p.message.len() < 600, "{} bytes", p.message.len());
    }

    #[test]
    fn more_lines_than_allowed_refuse_the_batch() {
        let body = "script\n".to_string() + &"Hi.\n".repeat(3);
        let limits = SpecLimits::default();
        assert_eq!(parse_batch(BatchFormat::Csv, body.as_bytes(), &limits, 3).unwrap().len(), 3);
        assert_eq!(
            parse_batch(BatchFormat::Csv, body.as_bytes(), &limits, 2).unwrap_err(),
            BatchError::TooManyLines { max: 2 }
        );
        let jsonl = "{\"script\": \"Hi.\"}\n".repeat(3);
        assert_eq!(
            parse_batch(BatchFormat::JsonLines, jsonl.as_bytes(), &limits, 2).unwrap_err(),
            BatchError::TooManyLines { max: 2 }
        );
    }
}
