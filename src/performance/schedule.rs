//! When a post is asked about: often while it is young, less as it ages,
//! never once it is old. A pure function of times, so it is tested with
//! fixed ones.

use chrono::{DateTime, Duration, Utc};

/// How a post's samples back off as it ages: one an hour for the first
/// `hourly_for`, then one a day until `until` after it went up, then none.
///
/// Samples fall on fixed marks counted from the post's time (1 h, 2 h, …,
/// 24 h, then day 2, day 3, …, day 30), so a late pass does not push the
/// later ones back. A sample already late by more than [`Cadence::LATE`]
/// past the last mark is not taken at all: nothing is measured after the
/// schedule's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub hourly_for: Duration,
    pub until: Duration,
}

impl Cadence {
    /// How late the last mark's sample may still be taken.
    pub const LATE: Duration = Duration::hours(1);

    pub fn new(hourly_for_hours: u32, max_age_days: u32) -> Self {
        Self {
            hourly_for: Duration::hours(i64::from(hourly_for_hours)),
            until: Duration::days(i64::from(max_age_days)),
        }
    }

    /// When the next sample of a post that went up at `posted` is due, given
    /// the last one at `last` (None: never sampled), as seen at `now`. A time
    /// at or before `now` means due now; None means the schedule has ended.
    pub fn next_due(
        &self,
        posted: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let end = posted + self.until;
        let next = match last {
            // The first sample as soon as the post is known.
            None => posted,
            Some(last) if last >= end => return None,
            Some(last) => {
                let age = (last - posted).max(Duration::zero());
                let step = if age < self.hourly_for { Duration::hours(1) } else { Duration::days(1) };
                // The first mark after `last`: a whole number of steps from the post's time.
                let marks = age.num_seconds() / step.num_seconds() + 1;
                (posted + step * i32::try_from(marks).unwrap_or(i32::MAX)).min(end)
            }
        };
        if now > end + Self::LATE {
            return None;
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn at(hours: i64, minutes: i64) -> DateTime<Utc> {
        t0() + Duration::hours(hours) + Duration::minutes(minutes)
    }

    fn tiktok() -> Cadence {
        Cadence::new(24, 30)
    }

    #[test]
    fn a_new_post_is_sampled_at_once() {
        assert_eq!(tiktok().next_due(t0(), None, at(0, 5)), Some(t0()));
        assert_eq!(tiktok().next_due(t0(), None, at(50, 0)), Some(t0()), "found late: still due now");
    }

    #[test]
    fn hourly_in_the_first_day_on_the_hour_marks() {
        let c = tiktok();
        assert_eq!(c.next_due(t0(), Some(at(0, 0)), at(0, 0)), Some(at(1, 0)));
        assert_eq!(c.next_due(t0(), Some(at(0, 7)), at(0, 7)), Some(at(1, 0)), "the mark, not last + 1 h");
        assert_eq!(c.next_due(t0(), Some(at(5, 59)), at(5, 59)), Some(at(6, 0)));
        assert_eq!(c.next_due(t0(), Some(at(23, 0)), at(23, 0)), Some(at(24, 0)), "the 24 h mark is the last hourly");
        // Walked through: 24 hourly samples after the first.
        let mut last = t0();
        let mut hourly = 0;
        while let Some(next) = c.next_due(t0(), Some(last), last) {
            if next > at(24, 0) {
                break;
            }
            hourly += 1;
            last = next;
        }
        assert_eq!(hourly, 24);
    }

    #[test]
    fn daily_from_the_second_day_until_thirty_days_then_none() {
        let c = tiktok();
        assert_eq!(c.next_due(t0(), Some(at(24, 0)), at(24, 0)), Some(at(48, 0)));
        assert_eq!(c.next_due(t0(), Some(at(24, 3)), at(24, 3)), Some(at(48, 0)));
        assert_eq!(c.next_due(t0(), Some(at(24 * 10 + 5, 0)), at(24 * 10 + 5, 0)), Some(at(24 * 11, 0)));
        assert_eq!(c.next_due(t0(), Some(at(24 * 29, 0)), at(24 * 29, 0)), Some(at(24 * 30, 0)), "day 30 is the last");
        assert_eq!(c.next_due(t0(), Some(at(24 * 30, 0)), at(24 * 30, 0)), None, "then it stops");
        assert_eq!(c.next_due(t0(), Some(at(24 * 31, 0)), at(24 * 31, 0)), None);
        // The whole schedule from the first sample: 1 + 24 hourly + 29 daily.
        let mut samples = vec![t0()];
        while let Some(next) = c.next_due(t0(), samples.last().copied(), *samples.last().unwrap()) {
            samples.push(next);
        }
        assert_eq!(samples.len(), 54);
        assert_eq!(*samples.last().unwrap(), at(24 * 30, 0));
        assert!(samples.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn nothing_is_sampled_well_after_the_end() {
        let c = tiktok();
        // The day-30 mark is due, and may be up to an hour late.
        assert_eq!(c.next_due(t0(), Some(at(24 * 29, 0)), at(24 * 30, 59)), Some(at(24 * 30, 0)));
        assert_eq!(c.next_due(t0(), Some(at(24 * 29, 0)), at(24 * 30 + 2, 0)), None);
        assert_eq!(c.next_due(t0(), None, at(24 * 31, 0)), None, "a post found after 30 days is never asked");
    }

    #[test]
    fn settings_change_the_marks() {
        let c = Cadence::new(2, 3);
        assert_eq!(c.next_due(t0(), Some(at(1, 30)), at(1, 30)), Some(at(2, 0)));
        assert_eq!(c.next_due(t0(), Some(at(2, 0)), at(2, 0)), Some(at(24, 0)), "daily after 2 h");
        assert_eq!(c.next_due(t0(), Some(at(48, 0)), at(48, 0)), Some(at(72, 0)));
        assert_eq!(c.next_due(t0(), Some(at(72, 0)), at(72, 0)), None);
    }
}
