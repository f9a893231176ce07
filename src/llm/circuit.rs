//! A circuit breaker per model endpoint. After `threshold` consecutive failed calls (each already
//! retried) the circuit opens and calls fail at once for `cooldown`; then one trial call is let through,
//! and its outcome closes or re-opens the circuit. A dead endpoint costs one timeout per cooldown, not one
//! per session in the backlog.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Circuit {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Closed,
    Trial,
}

impl Circuit {
    pub fn new(threshold: u32, cooldown: Duration) -> Circuit {
        Circuit {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::default(),
        }
    }

    /// May a call go out now? `None` while the circuit is open.
    pub fn permit(&self) -> Option<Permit> {
        let mut s = self.state.lock().expect("circuit lock");
        match s.open_until {
            None => Some(Permit::Closed),
            Some(until) if Instant::now() < until => None,
            Some(_) if s.trial_in_flight => None,
            Some(_) => {
                s.trial_in_flight = true;
                Some(Permit::Trial)
            }
        }
    }

    pub fn record(&self, ok: bool) {
        let mut s = self.state.lock().expect("circuit lock");
        s.trial_in_flight = false;
        if ok {
            s.consecutive_failures = 0;
            s.open_until = None;
        } else {
            s.consecutive_failures += 1;
            if s.consecutive_failures >= self.threshold {
                s.open_until = Some(Instant::now() + self.cooldown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_lets_one_trial_through_after_cooldown() {
        let c = Circuit::new(2, Duration::from_millis(30));
        assert_eq!(c.permit(), Some(Permit::Closed));
        c.record(false);
        assert_eq!(c.permit(), Some(Permit::Closed));
        c.record(false);
        assert_eq!(c.permit(), None, "open after two failures");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.permit(), Some(Permit::Trial));
        assert_eq!(c.permit(), None, "only one trial at a time");
        c.record(true);
        assert_eq!(c.permit(), Some(Permit::Closed));
    }
}
