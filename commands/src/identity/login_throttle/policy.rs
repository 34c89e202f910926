//! The throttling decisions, pure: given what is counted and the time, admit an attempt (and
//! count it) or refuse it with how long to wait.

use chrono::{DateTime, TimeDelta, Utc};

/// How failed logins are limited. Defaults: 5 failures within 15 minutes lock the (account,
/// address) pair for 1 minute, then 2, 4, 8, capped at 15; past 100 failures for one account
/// within an hour, addresses without a success for it in the last 30 days wait for the hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one pair within [`Self::window`] that lock it.
    pub max_failures: u32,
    /// How long failures of a pair are remembered towards a lock.
    pub window: TimeDelta,
    /// The first lock of a pair; each further lock doubles.
    pub first_lock: TimeDelta,
    /// The longest lock.
    pub max_lock: TimeDelta,
    /// Failures of one account within an hour, across addresses, past which unrecognised
    /// addresses are refused until the hour ends.
    pub account_failures_per_hour: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: TimeDelta::minutes(15),
            first_lock: TimeDelta::minutes(1),
            max_lock: TimeDelta::minutes(15),
            account_failures_per_hour: 100,
        }
    }
}

/// The account-wide window.
const ACCOUNT_WINDOW: TimeDelta = TimeDelta::hours(1);
/// How long a successful login keeps its address recognised past the account-wide ceiling.
const RECOGNISED_FOR: TimeDelta = TimeDelta::days(30);
/// A pair quiet this long starts its locks again at the first duration.
const LOCKS_FORGOTTEN_AFTER: TimeDelta = TimeDelta::days(1);

/// What is counted for one (account, address) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairCount {
    pub failures: i32,
    pub window_started_at: DateTime<Utc>,
    pub locks: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
}

/// What is counted for one account across addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountCount {
    pub failures: i32,
    pub window_started_at: DateTime<Utc>,
}

/// Why an attempt is refused before its password is looked at, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub until: DateTime<Utc>,
}

impl Refused {
    /// Whole seconds from `now` until the refusal ends, at least one (for `Retry-After`).
    pub fn retry_after_seconds(&self, now: DateTime<Utc>) -> u64 {
        let wait = (self.until - now).num_milliseconds().max(0);
        u64::try_from((wait + 999) / 1000).unwrap_or(1).max(1)
    }
}

impl LoginLimits {
    /// Admits an attempt, counting it as a failure until it proves right (so guesses in flight
    /// count too), or refuses it. A pair reaching [`Self::max_failures`] is locked at once.
    pub fn admit(
        &self,
        pair: &PairCount,
        account: &AccountCount,
        now: DateTime<Utc>,
    ) -> Result<(PairCount, AccountCount), Refused> {
        if let Some(until) = pair.locked_until.filter(|until| *until > now) {
            return Err(Refused { until });
        }
        let mut account = account.clone();
        if now - account.window_started_at >= ACCOUNT_WINDOW {
            account = AccountCount {
                failures: 0,
                window_started_at: now,
            };
        }
        let recognised = pair
            .last_success_at
            .is_some_and(|success| now - success < RECOGNISED_FOR);
        let ceiling = i32::try_from(self.account_failures_per_hour).unwrap_or(i32::MAX);
        if account.failures >= ceiling && !recognised {
            return Err(Refused {
                until: account.window_started_at + ACCOUNT_WINDOW,
            });
        }
        account.failures = account.failures.saturating_add(1);
        Ok((self.count_failure(pair, now), account))
    }

    /// The pair after one more failure at `now`.
    fn count_failure(&self, pair: &PairCount, now: DateTime<Utc>) -> PairCount {
        let mut pair = pair.clone();
        if pair
            .last_failure_at
            .is_some_and(|last| now - last >= LOCKS_FORGOTTEN_AFTER)
        {
            pair.locks = 0;
        }
        if pair.failures == 0 || now - pair.window_started_at >= self.window {
            pair.failures = 0;
            pair.window_started_at = now;
        }
        pair.failures = pair.failures.saturating_add(1);
        pair.last_failure_at = Some(now);
        if pair.failures >= i32::try_from(self.max_failures).unwrap_or(i32::MAX) {
            pair.locked_until = Some(now + self.lock_after(pair.locks));
            pair.locks = pair.locks.saturating_add(1);
            pair.failures = 0;
        }
        pair
    }

    /// The length of the lock after `locks` earlier ones: doubling, capped.
    pub fn lock_after(&self, locks: i32) -> TimeDelta {
        let doublings = u32::try_from(locks.clamp(0, 30)).unwrap_or(0);
        let lock = self
            .first_lock
            .checked_mul(2_i32.saturating_pow(doublings))
            .unwrap_or(self.max_lock);
        lock.min(self.max_lock)
    }

    /// The pair and account after the attempt admitted by [`Self::admit`] proved right: the
    /// pair starts afresh and is recognised; the account's count of it is taken back.
    pub fn succeed(
        pair: &PairCount,
        account: &AccountCount,
        now: DateTime<Utc>,
    ) -> (PairCount, AccountCount) {
        let pair = PairCount {
            failures: 0,
            window_started_at: now,
            locks: 0,
            locked_until: None,
            last_failure_at: pair.last_failure_at,
            last_success_at: Some(now),
        };
        let account = AccountCount {
            failures: (account.failures - 1).max(0),
            window_started_at: account.window_started_at,
        };
        (pair, account)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
    }

    fn fresh_pair() -> PairCount {
        PairCount {
            failures: 0,
            window_started_at: now(),
            locks: 0,
            locked_until: None,
            last_failure_at: None,
            last_success_at: None,
        }
    }

    fn fresh_account() -> AccountCount {
        AccountCount {
            failures: 0,
            window_started_at: now(),
        }
    }

    /// Admits `n` attempts one second apart (none proving right); the state after them.
    fn fail(
        limits: &LoginLimits,
        n: u32,
        mut pair: PairCount,
        mut account: AccountCount,
    ) -> (PairCount, AccountCount) {
        for i in 0..n {
            let at = now() + TimeDelta::seconds(i64::from(i));
            (pair, account) = limits.admit(&pair, &account, at).unwrap();
        }
        (pair, account)
    }

    #[test]
    fn the_fifth_failure_locks_the_pair_for_a_minute_and_the_sixth_attempt_is_refused() {
        let limits = LoginLimits::default();
        let (pair, account) = fail(&limits, 4, fresh_pair(), fresh_account());
        assert_eq!(pair.locked_until, None);
        let (pair, account) = limits
            .admit(&pair, &account, now() + TimeDelta::seconds(4))
            .unwrap();
        assert_eq!(pair.locked_until, Some(now() + TimeDelta::seconds(64)));

        let refused = limits
            .admit(&pair, &account, now() + TimeDelta::seconds(5))
            .unwrap_err();
        assert_eq!(refused.retry_after_seconds(now() + TimeDelta::seconds(5)), 59);
    }

    #[test]
    fn each_lock_lasts_twice_the_one_before_up_to_the_cap() {
        let limits = LoginLimits::default();
        let minutes: Vec<i64> = (0..6)
            .map(|locks| limits.lock_after(locks).num_minutes())
            .collect();
        assert_eq!(minutes, vec![1, 2, 4, 8, 15, 15]);
        assert_eq!(limits.lock_after(i32::MAX), TimeDelta::minutes(15));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count_towards_a_lock() {
        let limits = LoginLimits::default();
        let (pair, account) = fail(&limits, 4, fresh_pair(), fresh_account());
        let later = now() + TimeDelta::minutes(16);
        let (pair, _) = limits.admit(&pair, &account, later).unwrap();
        assert_eq!((pair.failures, pair.locked_until), (1, None));
    }

    #[test]
    fn a_success_clears_the_pair_and_takes_back_its_count_on_the_account() {
        let limits = LoginLimits::default();
        let (pair, account) = fail(&limits, 5, fresh_pair(), fresh_account());
        let (pair, account) = LoginLimits::succeed(&pair, &account, now());
        assert_eq!((pair.failures, pair.locks, pair.locked_until), (0, 0, None));
        assert_eq!(account.failures, 4);
        assert!(limits.admit(&pair, &account, now()).is_ok());
    }

    #[test]
    fn past_the_account_ceiling_only_a_recognised_address_is_admitted_until_the_hour_ends() {
        let limits = LoginLimits {
            account_failures_per_hour: 3,
            ..LoginLimits::default()
        };
        let (_, account) = fail(&limits, 3, fresh_pair(), fresh_account());
        let stranger = limits.admit(&fresh_pair(), &account, now()).unwrap_err();
        assert_eq!(stranger.until, now() + TimeDelta::hours(1));

        let owner = PairCount {
            last_success_at: Some(now() - TimeDelta::days(2)),
            ..fresh_pair()
        };
        assert!(limits.admit(&owner, &account, now()).is_ok());
        assert!(
            limits
                .admit(&fresh_pair(), &account, now() + TimeDelta::hours(1))
                .is_ok(),
            "the ceiling ends with its hour"
        );
    }
}
