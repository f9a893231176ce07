//! A tenant's working-hours calendar: when replies are due. A customer who writes at 23:00 is owed an
//! answer from the next morning's opening on, so response times count working time only.
//!
//! WeCom tenants in mainland China have one fixed UTC offset and no daylight saving time, so a fixed
//! offset (default +08:00) is the whole time zone. Holidays and the weekend days moved to make long
//! holidays (调休) are listed by date.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};

/// How far ahead a deadline is searched for; a calendar with no working time in a year is refused.
const SEARCH_DAYS: i64 = 400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// `+08:00`.
    #[serde(default = "china")]
    pub utc_offset: String,
    /// A customer message not answered within this much working time is 超时未回复.
    #[serde(default = "thirty")]
    pub reply_within_minutes: u32,
    /// Working hours by weekday: `"09:00-12:00,13:30-18:00"`; an empty string is a day off.
    #[serde(default = "every_day")]
    pub weekly: Weekly,
    /// Dates off although their weekday works (public holidays): `2026-10-01`.
    #[serde(default)]
    pub holidays: BTreeSet<String>,
    /// Dates that work although their weekday is off (调休), with Monday's hours.
    #[serde(default)]
    pub workdays: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    pub mon: String,
    pub tue: String,
    pub wed: String,
    pub thu: String,
    pub fri: String,
    pub sat: String,
    pub sun: String,
}

fn china() -> String {
    "+08:00".into()
}
fn thirty() -> u32 {
    30
}
/// Sales and service teams in China commonly answer 09:00–21:00 every day.
fn every_day() -> Weekly {
    let h = || "09:00-21:00".to_string();
    Weekly {
        mon: h(),
        tue: h(),
        wed: h(),
        thu: h(),
        fri: h(),
        sat: h(),
        sun: h(),
    }
}

impl Default for Calendar {
    fn default() -> Calendar {
        Calendar {
            utc_offset: china(),
            reply_within_minutes: thirty(),
            weekly: every_day(),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        }
    }
}

/// A calendar checked and ready to compute with.
#[derive(Debug, Clone)]
pub struct Hours {
    offset: FixedOffset,
    /// Working intervals per weekday (Monday first), in seconds after local midnight.
    week: [Vec<(u32, u32)>; 7],
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    /// The reply threshold in milliseconds of working time.
    pub threshold_ms: i64,
}

impl Calendar {
    /// Parses a calendar from JSON (the API body) or TOML (a file), naming the field that is wrong.
    pub fn parse(source: &str, text: &str) -> Result<Calendar, String> {
        let cal: Calendar = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| format!("{source}: {e}"))?
        };
        cal.hours().map_err(|e| format!("{source}: {e}"))?;
        Ok(cal)
    }

    pub fn hours(&self) -> Result<Hours, String> {
        let offset = parse_offset(&self.utc_offset)
            .ok_or_else(|| format!("utc_offset {:?} is not like +08:00", self.utc_offset))?;
        let w = &self.weekly;
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        for (i, (day, spec)) in [
            ("mon", &w.mon),
            ("tue", &w.tue),
            ("wed", &w.wed),
            ("thu", &w.thu),
            ("fri", &w.fri),
            ("sat", &w.sat),
            ("sun", &w.sun),
        ]
        .into_iter()
        .enumerate()
        {
            week[i] = parse_intervals(spec).map_err(|e| format!("weekly.{day}: {e}"))?;
        }
        if week.iter().all(Vec::is_empty) && self.workdays.is_empty() {
            return Err("weekly: no working hours on any day".into());
        }
        if self.reply_within_minutes == 0 {
            return Err("reply_within_minutes must be at least 1".into());
        }
        let dates = |field: &str, list: &BTreeSet<String>| {
            list.iter()
                .map(|d| {
                    NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|_| format!("{field}: {d:?} is not a date like 2026-10-01"))
                })
                .collect::<Result<BTreeSet<NaiveDate>, String>>()
        };
        Ok(Hours {
            offset,
            week,
            holidays: dates("holidays", &self.holidays)?,
            workdays: dates("workdays", &self.workdays)?,
            threshold_ms: i64::from(self.reply_within_minutes) * 60_000,
        })
    }
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

fn parse_intervals(spec: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("{part:?} is not like 09:00-18:00"))?;
        let secs = |t: &str| {
            if t.trim() == "24:00" {
                return Ok(86_400);
            }
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map(|t| t.signed_duration_since(NaiveTime::MIN).num_seconds() as u32)
                .map_err(|_| format!("{t:?} is not a time like 09:00"))
        };
        let (start, end) = (secs(a)?, secs(b)?);
        if start >= end {
            return Err(format!("{part:?} ends before it starts"));
        }
        if out.last().is_some_and(|&(_, prev_end)| start < prev_end) {
            return Err(format!(
                "{part:?} overlaps or precedes the interval before it"
            ));
        }
        out.push((start, end));
    }
    Ok(out)
}

impl Hours {
    /// The local date of an instant: the day a message counts for.
    pub fn day(&self, ms: i64) -> NaiveDate {
        self.local(ms).date_naive()
    }

    fn local(&self, ms: i64) -> DateTime<FixedOffset> {
        self.offset
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(|| self.offset.timestamp_millis_opt(0).unwrap())
    }

    /// Working intervals of a local date, as epoch-millisecond ranges.
    fn intervals(&self, date: NaiveDate) -> Vec<(i64, i64)> {
        let spec = if self.holidays.contains(&date) {
            &[][..]
        } else if self.workdays.contains(&date) {
            &self.week[0][..]
        } else {
            &self.week[date.weekday().num_days_from_monday() as usize][..]
        };
        let midnight = self
            .offset
            .from_local_datetime(&date.and_time(NaiveTime::MIN))
            .single()
            .map_or(0, |d| d.timestamp_millis());
        spec.iter()
            .map(|&(s, e)| {
                (
                    midnight + i64::from(s) * 1000,
                    midnight + i64::from(e) * 1000,
                )
            })
            .collect()
    }

    /// Working milliseconds between two instants.
    pub fn working_ms(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        let mut total = 0;
        let mut date = self.day(from);
        let last = self.day(to);
        let mut days = 0;
        while date <= last && days < SEARCH_DAYS {
            for (s, e) in self.intervals(date) {
                total += (e.min(to) - s.max(from)).max(0);
            }
            date += Duration::days(1);
            days += 1;
        }
        total
    }

    /// The instant a reply to a message sent at `from` is due: `threshold_ms` of working time later.
    pub fn due(&self, from: i64) -> i64 {
        let mut left = self.threshold_ms;
        let mut date = self.day(from);
        for _ in 0..SEARCH_DAYS {
            for (s, e) in self.intervals(date) {
                let start = s.max(from);
                if start >= e {
                    continue;
                }
                if e - start >= left {
                    return start + left;
                }
                left -= e - start;
            }
            date += Duration::days(1);
        }
        // Unreachable for a checked calendar; never due is the safe reading.
        i64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn office() -> Hours {
        Calendar::parse(
            "test",
            r#"
            reply_within_minutes = 30
            holidays = ["2026-10-01"]
            workdays = ["2026-10-11"]
            [weekly]
            mon = "09:00-12:00,13:00-18:00"
            tue = "09:00-12:00,13:00-18:00"
            wed = "09:00-12:00,13:00-18:00"
            thu = "09:00-12:00,13:00-18:00"
            fri = "09:00-12:00,13:00-18:00"
            sat = ""
            sun = ""
            "#,
        )
        .unwrap()
        .hours()
        .unwrap()
    }

    #[test]
    fn a_message_at_night_is_due_half_an_hour_after_opening() {
        let h = office();
        // Tuesday 23:00 → due Wednesday 09:30.
        assert_eq!(
            h.due(ms("2026-11-24T23:00:00+08:00")),
            ms("2026-11-25T09:30:00+08:00")
        );
        // A reply at 09:10 took ten working minutes.
        assert_eq!(
            h.working_ms(
                ms("2026-11-24T23:00:00+08:00"),
                ms("2026-11-25T09:10:00+08:00")
            ),
            10 * 60_000
        );
    }

    #[test]
    fn lunch_weekends_holidays_and_swapped_workdays_do_not_count() {
        let h = office();
        // 11:50 + 30 working minutes skips the lunch hour.
        assert_eq!(
            h.due(ms("2026-11-25T11:50:00+08:00")),
            ms("2026-11-25T13:20:00+08:00")
        );
        // Friday 17:45 → Monday 09:15.
        assert_eq!(
            h.due(ms("2026-11-27T17:45:00+08:00")),
            ms("2026-11-30T09:15:00+08:00")
        );
        // 2026-10-01 is a Thursday holiday: due on Friday.
        assert_eq!(
            h.due(ms("2026-09-30T17:50:00+08:00")),
            ms("2026-10-02T09:20:00+08:00")
        );
        // 2026-10-11 is a Sunday made a workday.
        assert_eq!(
            h.due(ms("2026-10-11T10:00:00+08:00")),
            ms("2026-10-11T10:30:00+08:00")
        );
    }

    #[test]
    fn bad_calendars_name_the_field() {
        let e = Calendar::parse(
            "cal.toml",
            "[weekly]\nmon = \"9-18\"\ntue=\"\"\nwed=\"\"\nthu=\"\"\nfri=\"\"\nsat=\"\"\nsun=\"\"",
        )
        .unwrap_err();
        assert!(e.contains("weekly.mon"), "{e}");
        let e = Calendar::parse("cal.json", r#"{"utc_offset": "CST"}"#).unwrap_err();
        assert!(e.contains("utc_offset"), "{e}");
        let e = Calendar::parse("cal.json", r#"{"reply_within": 5}"#).unwrap_err();
        assert!(e.contains("reply_within"), "{e}");
    }
}
