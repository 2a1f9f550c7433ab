//! What the quickstart prints: numbered steps with the time since the start,
//! indented details, and the failure line.

use std::time::{SystemTime, UNIX_EPOCH};

/// Step counter and clock. quickstart.sh prints the first steps (packages,
/// build) itself and hands over its start time and last step number in
/// `UBACKUP_QUICKSTART_T0` / `UBACKUP_QUICKSTART_STEP`.
pub struct Out {
    t0: f64,
    pub step: u32,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Out {
    /// The clock and step from quickstart.sh, if it started us; and whether
    /// it did.
    pub fn from_env() -> (Out, bool) {
        let t0 = std::env::var("UBACKUP_QUICKSTART_T0")
            .ok()
            .and_then(|v| v.parse().ok());
        let step = std::env::var("UBACKUP_QUICKSTART_STEP")
            .ok()
            .and_then(|v| v.parse().ok());
        match (t0, step) {
            (Some(t0), Some(step)) => (Out { t0, step }, true),
            _ => (Out { t0: now(), step: 0 }, false),
        }
    }

    pub fn step(&mut self, what: &str) {
        self.step += 1;
        println!("\n==> [{:6.1}s] {}. {what}", now() - self.t0, self.step);
    }
}

pub fn info(line: &str) {
    println!("    {line}");
}

/// Another program's output, each line as `    | …`.
pub fn indent(text: &str) {
    for line in text.lines() {
        println!("    | {line}");
    }
}
