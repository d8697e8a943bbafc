//! The one way clipforge runs an outside program.
//!
//! Why not ffmpeg-sidecar: its event iterator is blocking (threads and a
//! rendezvous channel), its child has no kill on drop, and it parses progress
//! from stderr with regexes. `tokio::process` with `kill_on_drop` and ffmpeg's
//! own `-progress pipe:1` gives cancellation by dropping the future, a timeout
//! that really kills, and a machine-readable progress stream.
//!
//! A failed run is logged with its command line and the last
//! [`STDERR_TAIL_BYTES`] of stderr, because "ffmpeg exited with 1" alone helps
//! nobody. The error itself carries both too (for callers that look at
//! stderr), but its message — what ends up on a job and in API answers — is
//! short: the program's name, its exit status and the last lines of stderr
//! (at most [`STDERR_SUMMARY_BYTES`]), with paths cut to their file names.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;

/// How much of a program's stderr is kept for the log.
pub const STDERR_TAIL_BYTES: usize = 32 * 1024;

/// How much of the end of stderr an error message quotes.
pub const STDERR_SUMMARY_BYTES: usize = 1024;

/// A program run that did not succeed. `program` is the program's file name;
/// `command` (the whole command line) is for the log, never the message.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("command {program} not found, make sure it is installed and on $PATH (or set its path in settings)")]
    NotFound { program: String },
    #[error("{program} could not be started: {source}")]
    Spawn {
        program: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} took longer than {timeout:?} and was killed")]
    TimedOut { program: String, command: String, timeout: Duration, stderr_tail: String },
    #[error("{program} failed ({status}){}", stderr_summary(stderr_tail))]
    Failed { program: String, command: String, status: String, stderr_tail: String },
    #[error("reading the output of {program} failed: {source}")]
    Io {
        program: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// The last lines of `stderr_tail` for an error message: `: ` and at most
/// [`STDERR_SUMMARY_BYTES`] of whole lines (or the end of one very long
/// line), paths cut to their file names; nothing when stderr was empty.
pub fn stderr_summary(stderr_tail: &str) -> String {
    let clean = crate::domain::scrub_paths(stderr_tail.trim_end());
    let lines: Vec<&str> = clean.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 0;
    for line in lines.iter().rev() {
        if size + line.len() + 1 > STDERR_SUMMARY_BYTES {
            break;
        }
        size += line.len() + 1;
        kept.push(line);
    }
    if kept.is_empty()
        && let Some(last) = lines.last()
    {
        // One line longer than the budget: keep its end, where ffmpeg puts the reason.
        let mut start = last.len() - (STDERR_SUMMARY_BYTES - 4);
        while !last.is_char_boundary(start) {
            start += 1;
        }
        return format!(": …{}", &last[start..]);
    }
    kept.reverse();
    match kept.len() {
        0 => String::new(),
        1 => format!(": {}", kept[0]),
        _ => format!(":\n{}", kept.join("\n")),
    }
}

/// The file name of a program path, for messages.
fn program_name(program: &Path) -> String {
    program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned()
}

impl ProcessError {
    /// A timeout or a crash may pass on a second try; a missing program or a
    /// clean non-zero exit on the same inputs will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProcessError::TimedOut { .. } | ProcessError::Io { .. } => true,
            ProcessError::Failed { status, .. } => status.contains("signal"),
            ProcessError::NotFound { .. } | ProcessError::Spawn { .. } => false,
        }
    }
}

/// A program and its arguments, built by pure functions elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub timeout: Duration,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, timeout: Duration) -> Self {
        Self { program: program.into(), args, timeout }
    }

    /// The command line for error messages and debug logs, each argument quoted
    /// when needed. Never executed by a shell.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| {
                let s = a.to_string_lossy();
                if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "'\"\\;[]".contains(c)) {
                    format!("'{}'", s.replace('\'', r"'\''"))
                } else {
                    s.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a successful run printed.
#[derive(Debug)]
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
}

/// Runs `inv` to completion and returns its stdout.
pub async fn run(inv: &Invocation) -> Result<Finished, ProcessError> {
    run_inner(inv, None).await
}

/// Runs `inv`, handing every stdout line to `on_line` as it arrives (ffmpeg's
/// `-progress pipe:1`). Stdout is then not collected.
pub async fn run_streaming(inv: &Invocation, on_line: &mut (dyn FnMut(&str) + Send)) -> Result<Finished, ProcessError> {
    run_inner(inv, Some(on_line)).await
}

async fn run_inner(inv: &Invocation, on_line: Option<&mut (dyn FnMut(&str) + Send)>) -> Result<Finished, ProcessError> {
    let result = run_once(inv, on_line).await;
    if let Err(e) = &result {
        log_failure(e);
    }
    result
}

/// Puts the whole story of a failed run in the log, the one place that keeps
/// the command line and the stderr tail.
fn log_failure(err: &ProcessError) {
    match err {
        ProcessError::NotFound { program } => tracing::warn!(program = %program, "program not found"),
        ProcessError::Spawn { program, command, source } => {
            tracing::warn!(program = %program, command = %command, error = %source, "program could not be started")
        }
        ProcessError::TimedOut { program, command, timeout, .. } => {
            tracing::warn!(program = %program, command = %command, timeout_s = timeout.as_secs_f64(), "program timed out and was killed")
        }
        ProcessError::Failed { program, command, status, stderr_tail } => {
            tracing::warn!(program = %program, command = %command, status = %status, stderr_tail = %stderr_tail, "program failed")
        }
        ProcessError::Io { program, command, source } => {
            tracing::warn!(program = %program, command = %command, error = %source, "reading a program's output failed")
        }
    }
}

async fn run_once(inv: &Invocation, on_line: Option<&mut (dyn FnMut(&str) + Send)>) -> Result<Finished, ProcessError> {
    let command = inv.display();
    let program = program_name(&inv.program);
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the future (timeout, cancelled job, shutdown) kills the child.
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
    unsafe {
        // If this process is killed outright (SIGKILL: no destructors), the
        // kernel kills the child too instead of leaving an orphan ffmpeg.
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| spawn_error(&inv.program, command.clone(), source))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let work = async {
        let (out, err) = tokio::join!(read_stdout(stdout, on_line), read_tail(stderr));
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, stderr_tail, status) = match tokio::time::timeout(inv.timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            // The child is killed by kill_on_drop when `child` goes out of scope,
            // but we kill explicitly so the error is returned only once it is gone.
            let _ = child.kill().await;
            return Err(ProcessError::TimedOut { program, command, timeout: inv.timeout, stderr_tail: String::new() });
        }
    };
    let io = |source| ProcessError::Io { program: program.clone(), command: command.clone(), source };
    let stdout = out.map_err(io)?;
    let stderr_tail = stderr_tail.map_err(io)?;
    let status = status.map_err(io)?;
    if status.success() {
        Ok(Finished { stdout, stderr_tail })
    } else {
        Err(ProcessError::Failed { program, command, status: status.to_string(), stderr_tail })
    }
}

fn spawn_error(program: &Path, command: String, source: std::io::Error) -> ProcessError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ProcessError::NotFound { program: program.display().to_string() }
    } else {
        ProcessError::Spawn { program: program_name(program), command, source }
    }
}

async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    on_line: Option<&mut (dyn FnMut(&str) + Send)>,
) -> std::io::Result<Vec<u8>> {
    match on_line {
        None => {
            let mut buf = Vec::new();
            BufReader::new(stdout).read_to_end(&mut buf).await?;
            Ok(buf)
        }
        Some(on_line) => {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                on_line(&line);
            }
            Ok(Vec::new())
        }
    }
}

/// Reads all of stderr (so the child never blocks on a full pipe) and keeps the tail.
async fn read_tail(stderr: impl AsyncRead + Unpin) -> std::io::Result<String> {
    let mut tail = TailBuffer::new(STDERR_TAIL_BYTES);
    let mut reader = BufReader::new(stderr);
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        tail.push(&chunk[..n]);
    }
    Ok(tail.into_string())
}

/// Keeps the last `cap` bytes pushed into it.
struct TailBuffer {
    cap: usize,
    bytes: VecDeque<u8>,
}

impl TailBuffer {
    fn new(cap: usize) -> Self {
        Self { cap, bytes: VecDeque::with_capacity(cap) }
    }
    fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.cap { &data[data.len() - self.cap..] } else { data };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }
    fn into_string(self) -> String {
        let (a, b) = self.bytes.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Invocation {
        Invocation::new("sh", vec!["-c".into(), script.into()], timeout)
    }

    #[test]
    fn tail_buffer_keeps_only_the_end() {
        let mut t = TailBuffer::new(4);
        t.push(b"abc");
        t.push(b"def");
        assert_eq!(t.into_string(), "cdef");
        let mut t = TailBuffer::new(3);
        t.push(b"0123456789");
        assert_eq!(t.into_string(), "789");
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let inv = Invocation::new("ffmpeg", vec!["-i".into(), "a b.mp4".into(), "it's".into()], Duration::from_secs(1));
        assert_eq!(inv.display(), r"ffmpeg -i 'a b.mp4' 'it'\''s'");
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let err = run(&Invocation::new("no-such-program-xyz", vec![], Duration::from_secs(5))).await.unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }));
        assert!(err.to_string().contains("no-such-program-xyz not found"), "{err}");
    }

    #[tokio::test]
    async fn a_failure_says_the_program_its_status_and_the_end_of_stderr() {
        let err = run(&sh("echo boom >&2; exit 3", Duration::from_secs(5))).await.unwrap_err();
        let msg = err.to_string();
        assert_eq!(msg, "sh failed (exit status: 3): boom");
        let ProcessError::Failed { command, .. } = &err else { panic!("{err}") };
        assert!(command.starts_with("sh -c"), "the command line is kept for the log: {command}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn the_message_of_a_long_failure_is_short_and_holds_no_path_or_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("job-render");
        // 2,000 lines naming scratch files, as ffmpeg does, and a huge command line.
        let script = format!(
            "for i in $(seq 2000); do echo \"{0}/clip-$i.mp4: Invalid data found when processing input\" >&2; done; exit 1",
            scratch.display()
        );
        let filler = "x".repeat(100_000);
        let inv = Invocation::new("sh", vec!["-c".into(), script.into(), filler.into()], Duration::from_secs(10));
        let err = run(&inv).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() <= STDERR_SUMMARY_BYTES + 64, "{} bytes", msg.len());
        assert!(msg.starts_with("sh failed (exit status: 1):\n"), "{msg}");
        assert!(msg.ends_with("clip-2000.mp4: Invalid data found when processing input"), "{msg}");
        assert!(!msg.contains(&dir.path().display().to_string()) && !msg.contains("xxxx"), "{msg}");
        let ProcessError::Failed { stderr_tail, command, .. } = &err else { panic!("{err}") };
        assert!(stderr_tail.contains(&scratch.display().to_string()), "the full tail is kept for the log");
        assert!(command.len() > 100_000);
    }

    #[test]
    fn one_very_long_stderr_line_keeps_its_end() {
        let line = format!("{}the reason", "y".repeat(5000));
        let summary = stderr_summary(&line);
        assert!(summary.len() <= STDERR_SUMMARY_BYTES + 8 && summary.ends_with("the reason"), "{summary}");
        assert_eq!(stderr_summary("\n\n"), "");
    }

    #[tokio::test]
    async fn only_the_last_32k_of_stderr_is_kept() {
        let err = run(&sh("head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1", Duration::from_secs(5)))
            .await
            .unwrap_err();
        let ProcessError::Failed { stderr_tail, .. } = err else { panic!("{err}") };
        assert_eq!(stderr_tail.len(), STDERR_TAIL_BYTES);
        assert!(stderr_tail.ends_with("END\n"));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("sleep 2; touch {}", marker.display());
        let err = run(&sh(&script, Duration::from_millis(200))).await.unwrap_err();
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the child kept running after the timeout");
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let inv = Invocation::new(
            "sh",
            vec!["-c".into(), format!("sleep 1; touch {}", marker.display()).into()],
            Duration::from_secs(10),
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), run(&inv)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the child kept running after its future was dropped");
    }

    #[tokio::test]
    async fn streaming_hands_over_each_line() {
        let mut seen = Vec::new();
        run_streaming(&sh("printf 'a=1\\nb=2\\n'", Duration::from_secs(5)), &mut |l| seen.push(l.to_string()))
            .await
            .unwrap();
        assert_eq!(seen, ["a=1", "b=2"]);
    }
}
