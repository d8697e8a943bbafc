//! Parses ffmpeg's `-progress pipe:1` output into a percentage.
//!
//! ffmpeg prints `key=value` lines in blocks ending with `progress=continue`
//! (or `progress=end`). `out_time_us` is microseconds of output written; early
//! blocks may say `N/A`.

/// Follows one ffmpeg run and turns its progress blocks into 0-100.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    total_us: f64,
    out_time_us: Option<u64>,
    ended: bool,
}

/// What one line changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProgressUpdate {
    /// A block finished; the percentage done so far.
    Percent(u8),
    /// ffmpeg said `progress=end`.
    End,
}

impl ProgressTracker {
    /// `total_s` is the expected output duration.
    pub fn new(total_s: f64) -> Self {
        Self { total_us: (total_s * 1_000_000.0).max(1.0), out_time_us: None, ended: false }
    }

    /// Feeds one line; returns an update when a block ends.
    pub fn feed(&mut self, line: &str) -> Option<ProgressUpdate> {
        let (key, value) = line.trim().split_once('=')?;
        match key {
            "out_time_us" | "out_time_ms" => {
                // Despite its name, out_time_ms is also in microseconds (ffmpeg bug #7345).
                if let Ok(us) = value.parse::<u64>() {
                    self.out_time_us = Some(us);
                }
                None
            }
            "progress" if value == "end" => {
                self.ended = true;
                Some(ProgressUpdate::End)
            }
            "progress" => Some(ProgressUpdate::Percent(self.percent())),
            _ => None,
        }
    }

    /// Percentage of the expected duration written so far; 99 at most until the end.
    pub fn percent(&self) -> u8 {
        if self.ended {
            return 100;
        }
        let done = self.out_time_us.unwrap_or(0) as f64 / self.total_us;
        (done * 100.0).clamp(0.0, 99.0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines copied from a real `ffmpeg -progress pipe:1 -nostats` run.
    const BLOCK_1: &str = "frame=48\nfps=0.00\nstream_0_0_q=29.0\nbitrate=N/A\ntotal_size=48\nout_time_us=N/A\nout_time_ms=N/A\nout_time=N/A\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue";
    const BLOCK_2: &str = "frame=150\nfps=59.81\nstream_0_0_q=29.0\nbitrate= 412.3kbits/s\ntotal_size=258096\nout_time_us=5005000\nout_time_ms=5005000\nout_time=00:00:05.005000\ndup_frames=0\ndrop_frames=0\nspeed=1.99x\nprogress=continue";
    const BLOCK_END: &str = "frame=300\nout_time_us=10000000\nspeed=2.1x\nprogress=end";

    fn feed_all(t: &mut ProgressTracker, block: &str) -> Vec<ProgressUpdate> {
        block.lines().filter_map(|l| t.feed(l)).collect()
    }

    #[test]
    fn na_values_count_as_nothing_done() {
        let mut t = ProgressTracker::new(10.0);
        assert_eq!(feed_all(&mut t, BLOCK_1), [ProgressUpdate::Percent(0)]);
    }

    #[test]
    fn out_time_drives_the_percentage() {
        let mut t = ProgressTracker::new(10.0);
        feed_all(&mut t, BLOCK_1);
        assert_eq!(feed_all(&mut t, BLOCK_2), [ProgressUpdate::Percent(50)]);
    }

    #[test]
    fn only_the_end_marker_reaches_100() {
        let mut t = ProgressTracker::new(5.0);
        feed_all(&mut t, BLOCK_2);
        assert_eq!(t.percent(), 99, "overshooting the expected length is not the end");
        assert_eq!(feed_all(&mut t, BLOCK_END), [ProgressUpdate::End]);
        assert_eq!(t.percent(), 100);
    }

    #[test]
    fn garbage_lines_are_ignored() {
        let mut t = ProgressTracker::new(1.0);
        assert_eq!(t.feed("no equals sign"), None);
        assert_eq!(t.feed("out_time_us=-5"), None);
        assert_eq!(t.percent(), 0);
    }
}
