//! Restart policies with Docker's backoff (moby restartmanager): the delay starts at 100 ms and
//! doubles up to one minute, and goes back to 100 ms once a run lasted 10 s. An explicit stop is
//! never undone; `on-failure[:N]` restarts only non-zero exits, at most N times.

use std::time::Duration;

use crate::engine::runtime::spec::RestartPolicy;

const DEFAULT: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RestartManager {
    policy: RestartPolicy,
    delay: Duration,
    pub count: u32,
}

impl RestartManager {
    pub fn new(policy: RestartPolicy) -> Self {
        RestartManager { policy, delay: Duration::ZERO, count: 0 }
    }

    /// After an exit: the delay before the next start, or None to stay stopped.
    pub fn next(&mut self, exit_code: i32, manually_stopped: bool, ran_for: Duration) -> Option<Duration> {
        if manually_stopped {
            return None;
        }
        if ran_for >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() { DEFAULT } else { (self.delay * 2).min(MAX) };
        let restart = match self.policy.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let max = self.policy.maximum_retry_count;
                exit_code != 0 && (max == 0 || self.count < max)
            }
            _ => false,
        };
        if !restart {
            return None;
        }
        self.count += 1;
        Some(self.delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RestartPolicy {
        RestartPolicy::parse(s).unwrap()
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut m = RestartManager::new(p("always"));
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..12).map(|_| m.next(0, false, quick).unwrap().as_millis()).collect();
        assert_eq!(&delays[..6], &[100, 200, 400, 800, 1600, 3200]);
        assert_eq!(*delays.last().unwrap(), 60_000);
        assert_eq!(m.next(1, false, Duration::from_secs(11)), Some(DEFAULT));
        assert_eq!(m.count, 13);
    }

    #[test]
    fn policies() {
        let mut m = RestartManager::new(p("on-failure:2"));
        assert!(m.next(0, false, Duration::ZERO).is_none());
        assert!(m.next(1, false, Duration::ZERO).is_some());
        assert!(m.next(1, false, Duration::ZERO).is_some());
        assert!(m.next(1, false, Duration::ZERO).is_none(), "at most 2 retries");
        let mut m = RestartManager::new(p("always"));
        assert!(m.next(0, true, Duration::ZERO).is_none(), "an explicit stop is never undone");
        let mut m = RestartManager::new(p("no"));
        assert!(m.next(1, false, Duration::ZERO).is_none());
        let mut m = RestartManager::new(p("unless-stopped"));
        assert!(m.next(137, false, Duration::ZERO).is_some());
    }
}
