//! Healthchecks with Docker's rules: the first probe one interval after start (the start
//! interval during the start period), each next one an interval after the previous ended; a
//! probe that outlives its timeout is killed and counts as a failure; failures during the start
//! period do not count; `retries` consecutive failures make the container unhealthy, one
//! success makes it healthy. The last five results are kept, each output cut at 4 KiB.

use std::time::{Duration, Instant};

use crate::engine::runtime::logs::now_rfc3339;
use crate::engine::runtime::spec::Healthcheck;
use crate::engine::runtime::state::{Health, HealthResult, HealthStatus};

pub const MAX_OUTPUT: usize = 4096;
const MAX_LOG: usize = 5;

pub struct HealthMonitor {
    pub check: Healthcheck,
    pub argv: Vec<String>,
    started: Instant,
    next: Instant,
    pub state: Health,
    /// The probe in flight: (start time text, deadline).
    running: Option<(String, Instant)>,
}

impl HealthMonitor {
    /// None when the container has no (or a disabled) healthcheck.
    pub fn new(check: &Option<Healthcheck>, now: Instant) -> Option<Self> {
        let check = check.clone()?;
        let argv = check.argv()?;
        let mut m = HealthMonitor {
            check,
            argv,
            started: now,
            next: now,
            state: Health { status: HealthStatus::Starting, failing_streak: 0, log: Vec::new() },
            running: None,
        };
        m.next = now + m.gap(now);
        Some(m)
    }

    fn in_start_period(&self, now: Instant) -> bool {
        now.duration_since(self.started) < self.check.start_period()
    }

    fn gap(&self, now: Instant) -> Duration {
        if self.in_start_period(now) && self.check.start_period > 0 { self.check.start_interval() } else { self.check.interval() }
    }

    /// When something is due next: the running probe's deadline or the next probe.
    pub fn deadline(&self) -> Instant {
        self.running.as_ref().map(|(_, d)| *d).unwrap_or(self.next)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// True when a probe should start now.
    pub fn due(&self, now: Instant) -> bool {
        self.running.is_none() && now >= self.next
    }

    pub fn started(&mut self, now: Instant) {
        self.running = Some((now_rfc3339(), now + self.check.timeout()));
    }

    /// True when the running probe has outlived its timeout.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.running.as_ref().is_some_and(|(_, d)| now >= *d)
    }

    /// Records a probe's result (`exit_code` -1 for a timeout) and schedules the next one.
    pub fn finished(&mut self, exit_code: i32, output: &[u8], now: Instant) {
        let (start, _) = self.running.take().unwrap_or_else(|| (now_rfc3339(), now));
        let text = if exit_code == -1 && output.is_empty() {
            format!("Health check exceeded timeout ({})", fmt_dur(self.check.timeout()))
        } else {
            String::from_utf8_lossy(&output[..output.len().min(MAX_OUTPUT)]).into_owned()
        };
        self.state.log.push(HealthResult { start, end: now_rfc3339(), exit_code, output: text });
        if self.state.log.len() > MAX_LOG {
            self.state.log.remove(0);
        }
        if exit_code == 0 {
            self.state.failing_streak = 0;
            self.state.status = HealthStatus::Healthy;
        } else if !self.in_start_period(now) {
            self.state.failing_streak += 1;
            if self.state.failing_streak >= self.check.retries() {
                self.state.status = HealthStatus::Unhealthy;
            }
        }
        self.next = now + self.gap(now);
    }

    /// Forgets a probe that could not be started or was abandoned, and retries later.
    pub fn abandon(&mut self, now: Instant) {
        self.running = None;
        self.next = now + self.gap(now);
    }
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{:?}", d) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(retries: u32, start_period_ms: u64) -> Option<Healthcheck> {
        Some(Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 1_000_000_000,
            timeout: 500_000_000,
            retries,
            start_period: start_period_ms * 1_000_000,
            start_interval: 100_000_000,
        })
    }

    #[test]
    fn healthy_then_unhealthy_after_retries() {
        let t0 = Instant::now();
        let mut m = HealthMonitor::new(&hc(2, 0), t0).unwrap();
        assert_eq!(m.state.status, HealthStatus::Starting);
        assert!(!m.due(t0));
        let t1 = t0 + Duration::from_secs(1);
        assert!(m.due(t1));
        m.started(t1);
        m.finished(0, b"ok", t1);
        assert_eq!(m.state.status, HealthStatus::Healthy);
        m.started(t1);
        m.finished(1, b"bad", t1);
        assert_eq!(m.state.status, HealthStatus::Healthy);
        m.started(t1);
        m.finished(1, b"bad", t1);
        assert_eq!((m.state.status, m.state.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..10 {
            m.started(t1);
            m.finished(1, &[b'x'; 5000], t1);
        }
        assert_eq!(m.state.log.len(), 5);
        assert_eq!(m.state.log[4].output.len(), MAX_OUTPUT);
    }

    #[test]
    fn start_period_failures_do_not_count_and_probe_faster() {
        let t0 = Instant::now();
        let mut m = HealthMonitor::new(&hc(1, 10_000), t0).unwrap();
        assert_eq!(m.deadline(), t0 + Duration::from_millis(100));
        m.started(t0);
        m.finished(1, b"", t0);
        assert_eq!(m.state.status, HealthStatus::Starting);
        m.started(t0);
        assert!(m.timed_out(t0 + Duration::from_secs(1)));
        m.finished(-1, b"", t0 + Duration::from_secs(11));
        assert_eq!(m.state.status, HealthStatus::Unhealthy);
        assert!(m.state.log.last().unwrap().output.contains("exceeded timeout (500ms)"));
    }

    #[test]
    fn none_disables() {
        let h = Some(Healthcheck { test: vec!["NONE".into()], ..Default::default() });
        assert!(HealthMonitor::new(&h, Instant::now()).is_none());
    }

    #[test]
    fn health_status_is_stored_as_docker_words_it() {
        // state.json and `inspect` keep the words they had as strings, and old states still read.
        let h = Health { status: HealthStatus::Healthy, ..Default::default() };
        assert_eq!(serde_json::to_value(&h).unwrap()["Status"], "healthy");
        assert_eq!(serde_json::to_value(Health::default()).unwrap()["Status"], "");
        for (text, status) in [
            ("starting", HealthStatus::Starting),
            ("healthy", HealthStatus::Healthy),
            ("unhealthy", HealthStatus::Unhealthy),
            ("", HealthStatus::None),
            ("none", HealthStatus::None),
        ] {
            let h: Health = serde_json::from_value(serde_json::json!({ "Status": text })).unwrap();
            assert_eq!(h.status, status, "{text:?}");
        }
        let h: Health = serde_json::from_value(serde_json::json!({ "FailingStreak": 1 })).unwrap();
        assert_eq!(h.status, HealthStatus::None);
        assert_eq!(HealthStatus::Unhealthy.to_string(), "unhealthy");
    }
}
