//! Five-field cron expressions (`minute hour day-of-month month day-of-week`,
//! in UTC): `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists of
//! these. As in cron, when both day fields are restricted a day matching either
//! one fires.

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

/// A parsed expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day fields were `*` (cron's either-day rule needs to know).
    any_day: bool,
    any_weekday: bool,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("'{expr}' does not have five fields"));
        }
        let mut sets = [0u64; 5];
        for (i, (field, (name, lo, hi))) in fields.iter().zip(FIELDS).enumerate() {
            sets[i] = field_set(field, lo, hi).map_err(|e| format!("'{expr}': {name}: {e}"))?;
        }
        // Sunday is 0 and 7.
        if sets[4] & (1 << 7) != 0 {
            sets[4] |= 1;
        }
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            any_day: fields[2] == "*",
            any_weekday: fields[4] == "*",
        })
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first whole minute after `now` the expression matches (None if none
    /// within five years, e.g. February 30th).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = now.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let mut t = start;
        let end = start + TimeDelta::days(5 * 366);
        while t < end {
            if self.months & (1 << t.month()) == 0 || !self.day_matches(t) {
                t = (t + TimeDelta::days(1)).with_hour(0)?.with_minute(0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = (t + TimeDelta::hours(1)).with_minute(0)?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += TimeDelta::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

fn field_set(field: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, number(s)?),
            None => (part, 1),
        };
        if step == 0 {
            return Err("a step must be positive".into());
        }
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, hi),
                None => (number(r)?, number(r)?),
            },
        };
        if from < lo || to > hi || from > to {
            return Err(format!("'{part}' is outside {lo}-{hi}"));
        }
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn number(s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("'{s}' is not a number"))
}

/// The next time `expr` fires after `now`.
pub fn next_after(expr: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Cron::parse(expr).ok()?.next_after(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn every_ten_minutes() {
        assert_eq!(
            next_after("*/10 * * * *", at(2026, 12, 2, 17, 3)),
            Some(at(2026, 12, 2, 17, 10))
        );
        assert_eq!(
            next_after("*/10 * * * *", at(2026, 12, 2, 17, 50)),
            Some(at(2026, 12, 2, 18, 0))
        );
    }

    #[test]
    fn daily_at_a_time_rolls_over_the_year() {
        assert_eq!(
            next_after("30 2 * * *", at(2026, 12, 31, 3, 0)),
            Some(at(2027, 1, 1, 2, 30))
        );
    }

    #[test]
    fn weekdays_and_lists() {
        // 2026-12-05 is a Saturday: the next weekday 09:00 is Monday the 7th.
        assert_eq!(
            next_after("0 9 * * 1-5", at(2026, 12, 5, 10, 0)),
            Some(at(2026, 12, 7, 9, 0))
        );
        assert_eq!(
            next_after("0 9,17 * * *", at(2026, 12, 5, 10, 0)),
            Some(at(2026, 12, 5, 17, 0))
        );
        // Sunday as 7.
        assert_eq!(
            next_after("0 0 * * 7", at(2026, 12, 5, 10, 0)),
            Some(at(2026, 12, 6, 0, 0))
        );
    }

    #[test]
    fn either_day_field_fires_when_both_are_restricted() {
        // The 1st of the month, or any Friday: Friday 2026-12-04 comes first.
        assert_eq!(
            next_after("0 0 1 * 5", at(2026, 12, 2, 0, 0)),
            Some(at(2026, 12, 4, 0, 0))
        );
    }

    #[test]
    fn impossible_dates_never_fire() {
        assert_eq!(next_after("0 0 30 2 *", at(2026, 1, 1, 0, 0)), None);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
