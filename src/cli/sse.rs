//! Reading a server-sent event stream (`GET /v1/events`) as it arrives, the
//! way the HTML standard's `EventSource` reads one: lines end with LF, CRLF
//! or CR; `:` starts a comment; `data` lines join with newlines; an empty
//! line ends an event, which is dispatched only if it had data; `id` sets the
//! last event id, which stays until another `id` changes it.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field; `message` when none was given.
    pub event: String,
    pub data: String,
    /// The last event id when this event was dispatched (None: none yet).
    pub id: Option<String>,
}

/// Turns chunks of a stream, cut anywhere, into events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The last chunk ended with CR: an LF that starts the next one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// The events that `chunk` completes, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&String::from_utf8_lossy(&line), &mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The id to send as `Last-Event-ID` when reconnecting.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The server's `retry:` hint, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    fn line_ended(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                let event = if event.is_empty() { "message".to_string() } else { event };
                out.push(SseEvent { event, data, id: self.last_id.clone() });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok()
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent { event: name.into(), data: data.into(), id: id.map(Into::into) }
    }

    #[test]
    fn events_ids_comments_and_the_retry_hint_as_axum_writes_them() {
        let mut p = SseParser::default();
        let stream = "retry: 2000\n\n:\n\nevent: state\nid: 7\ndata: {\"state\":\"queued\"}\n\n\
                      event: progress\ndata: {\"percent\":5}\n\n";
        let got = p.feed(stream.as_bytes());
        assert_eq!(
            got,
            [event("state", r#"{"state":"queued"}"#, Some("7")), event("progress", r#"{"percent":5}"#, Some("7"))]
        );
        assert_eq!((p.retry_ms(), p.last_event_id()), (Some(2000), Some("7")));
    }

    #[test]
    fn chunks_cut_anywhere_give_the_same_events() {
        let stream = "event: state\r\nid: 12\r\ndata: a\r\ndata: b\r\n\r\n: keep-alive\r\r\ndata:no space\n\n";
        let whole = SseParser::default().feed(stream.as_bytes());
        assert_eq!(whole, [event("state", "a\nb", Some("12")), event("message", "no space", Some("12"))]);
        for cut in 1..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&stream.as_bytes()[..cut]);
            got.extend(p.feed(&stream.as_bytes()[cut..]));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_unfinished_one_waits() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(b"event: state\nid: 3\n\n"), []);
        assert_eq!(p.last_event_id(), Some("3"), "the id still counts");
        assert_eq!(p.feed(b"event: state\ndata: x\n"), [], "no empty line yet");
        assert_eq!(p.feed(b"\n"), [event("state", "x", Some("3"))]);
        assert_eq!(p.feed(b"retry: soon\n\n"), []);
        assert_eq!(p.retry_ms(), None, "a retry that is not digits is ignored");
    }
}
