//! Failpoints for the fault-injection suite: `UBACKUP_FAILPOINT` names
//! points in a job and what happens there, e.g.
//! `UBACKUP_FAILPOINT=after_land=exit` or `before_ack=sleep:30,after_take=panic`.
//!
//! Points: `after_take` (the message is in flight, nothing done yet),
//! `after_pull` (rsync exited, nothing landed), `after_land` (the file is in
//! its final place, no result yet), `before_ack` (the result is built),
//! `after_ack` (result pushed); for copies (`crate::replica::copy`),
//! `replica_pulled` (rsync of a copy exited, nothing landed) and
//! `before_record_copy` (the copy is in place, not yet recorded). Actions: `exit` (the process kills itself
//! with SIGKILL, like a crash: no cleanup, no drain), `panic`, `sleep:SECS`.
//!
//! Compiled in only for debug builds or with the `failpoints` feature: a
//! release build ignores the variable (and says so once at start).

#[cfg(any(debug_assertions, feature = "failpoints"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Duration;

    #[derive(Debug, Clone)]
    enum Action {
        Exit,
        Panic,
        Sleep(Duration),
    }

    fn table() -> &'static Vec<(String, Action)> {
        static T: OnceLock<Vec<(String, Action)>> = OnceLock::new();
        T.get_or_init(|| {
            let spec = std::env::var("UBACKUP_FAILPOINT").unwrap_or_default();
            spec.split(',')
                .filter_map(|item| {
                    let (point, action) = item.trim().split_once('=')?;
                    let action = match action.trim() {
                        "exit" => Action::Exit,
                        "panic" => Action::Panic,
                        a => Action::Sleep(Duration::from_secs_f64(
                            a.strip_prefix("sleep:")?.parse().ok()?,
                        )),
                    };
                    Some((point.trim().to_string(), action))
                })
                .collect()
        })
    }

    pub fn describe() -> Option<String> {
        let t = table();
        (!t.is_empty()).then(|| format!("{t:?}"))
    }

    pub async fn hit(point: &str) {
        for (p, action) in table() {
            if p != point {
                continue;
            }
            tracing::warn!(failpoint = point, ?action, "failpoint hit");
            match action {
                Action::Exit => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::this(),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    std::process::abort();
                }
                Action::Panic => panic!("failpoint {point}"),
                Action::Sleep(d) => tokio::time::sleep(*d).await,
            }
        }
    }
}

#[cfg(not(any(debug_assertions, feature = "failpoints")))]
mod imp {
    pub fn describe() -> Option<String> {
        std::env::var("UBACKUP_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|_| {
                "ignored: this build has no failpoints (build with --features failpoints)".into()
            })
    }

    pub async fn hit(_point: &str) {}
}

pub use imp::{describe, hit};
