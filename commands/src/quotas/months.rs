//! Calendar months in UTC: the window a monthly token limit counts.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

/// The first day of `now`'s month (UTC).
pub fn month_start(now: DateTime<Utc>) -> NaiveDate {
    let today = now.date_naive();
    today.with_day(1).unwrap_or(today)
}

/// Midnight UTC on the first day of the month after `now`'s: when a monthly count resets.
pub fn next_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first = month_start(now);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
    next.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_count_of_december_resets_on_the_first_of_january() {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(month_start(now), NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(
            next_month_start(now),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_first_instant_of_a_month_belongs_to_it() {
        let now = Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap();
        assert_eq!(month_start(now), NaiveDate::from_ymd_opt(2027, 2, 1).unwrap());
        assert_eq!(
            next_month_start(now),
            Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap()
        );
    }
}
