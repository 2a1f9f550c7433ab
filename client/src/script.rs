//! Running the operator's backup command line.
//!
//! `sh -c <script>` is the one shell in ubackup: the line is the operator's
//! own, from their config, exactly as the original ran it. Nothing from a
//! message or a log file ever reaches it.
//!
//! The script gets its own process group, so that a timeout or a stop
//! signal reaches everything it started (mysqldump, xtrabackup, gzip…), not
//! only the shell. stdout and stderr are drained while it runs, so a chatty
//! script never blocks on a full pipe, and their tails are kept for the
//! failure message.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};
use ubackup_common::shutdown::Shutdown;

/// Bytes of each stream kept for the failure message.
const TAIL_BYTES: usize = 4096;
/// After SIGTERM to the group, how long the script gets before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// After the script exits, how long to wait for its output to close. A
/// background process it left running can hold the pipes open for ever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How the script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptEnd {
    Exited(i32),
    /// Killed by a signal nobody here sent.
    Signaled(i32),
    /// Ran past `timeout`; its process group was killed.
    TimedOut(Duration),
    /// The client was told to stop; the process group was killed.
    Interrupted,
    /// `sh` could not be started.
    SpawnFailed(String),
}

/// The result of one script run.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    pub end: ScriptEnd,
    pub elapsed: Duration,
    pub stdout_tail: String,
    pub stderr_tail: String,
}

impl ScriptRun {
    pub fn succeeded(&self) -> bool {
        self.end == ScriptEnd::Exited(0)
    }

    /// Why it failed, for the message's `log` (`None` if it succeeded).
    /// Starts with the original's `execute backup script error`.
    pub fn failure(&self) -> Option<String> {
        let what = match &self.end {
            ScriptEnd::Exited(0) => return None,
            ScriptEnd::Exited(c) => format!("exit code {c}"),
            ScriptEnd::Signaled(s) => format!("killed by signal {}", signal_name(*s)),
            ScriptEnd::TimedOut(t) => {
                format!("timed out after {} s (timeout = {}); its process group was killed", self.elapsed.as_secs(), t.as_secs())
            }
            ScriptEnd::Interrupted => "interrupted: ubackup-client was stopped by a signal; the script's process group was killed".into(),
            ScriptEnd::SpawnFailed(e) => format!("cannot start sh: {e}"),
        };
        let tail = self.output_tail(600);
        Some(if tail.is_empty() {
            format!("execute backup script error: {what}")
        } else {
            format!("execute backup script error: {what}; output: {tail}")
        })
    }

    /// The last `max` characters of stderr, or of stdout when stderr was
    /// empty (the original merged the two), on one line.
    pub fn output_tail(&self, max: usize) -> String {
        let src = if self.stderr_tail.trim().is_empty() {
            &self.stdout_tail
        } else {
            &self.stderr_tail
        };
        let one_line = src
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        let n = one_line.chars().count();
        if n <= max {
            one_line
        } else {
            format!("…{}", one_line.chars().skip(n - max).collect::<String>())
        }
    }
}

/// Runs `sh -c command` with `env` added, until it exits, `timeout` passes
/// or `shutdown` fires.
pub async fn run(
    command: &str,
    env: &[(&str, String)],
    timeout: Option<Duration>,
    mut shutdown: Shutdown,
) -> ScriptRun {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ScriptRun {
                end: ScriptEnd::SpawnFailed(e.to_string()),
                elapsed: started.elapsed(),
                stdout_tail: String::new(),
                stderr_tail: String::new(),
            }
        }
    };
    // The child leads its own group: its pid is the group id.
    let pgid = Pid::from_raw(child.id().expect("a just-spawned child has a pid") as i32);
    debug!(
        step = "script",
        pgid = pgid.as_raw(),
        "started `sh -c {command}`"
    );
    let out = tokio::spawn(drain(child.stdout.take(), "stdout").in_current_span());
    let err = tokio::spawn(drain(child.stderr.take(), "stderr").in_current_span());

    enum Woke {
        Exited(std::io::Result<std::process::ExitStatus>),
        Timeout,
        Stop,
    }
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let woke = tokio::select! {
        st = child.wait() => Woke::Exited(st),
        _ = deadline => Woke::Timeout,
        _ = shutdown.wait() => Woke::Stop,
    };
    let end = match woke {
        Woke::Exited(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            match (st.code(), st.signal()) {
                (Some(c), _) => ScriptEnd::Exited(c),
                (None, Some(s)) => ScriptEnd::Signaled(s),
                (None, None) => ScriptEnd::Exited(-1),
            }
        }
        Woke::Exited(Err(e)) => {
            // Waiting failed (should not happen); do not leave it running.
            kill_group(&mut child, pgid).await;
            ScriptEnd::SpawnFailed(format!("waiting for the script failed: {e}"))
        }
        Woke::Timeout => {
            warn!(
                step = "script",
                "timeout reached after {:?}: killing process group {pgid}",
                started.elapsed()
            );
            kill_group(&mut child, pgid).await;
            ScriptEnd::TimedOut(timeout.unwrap_or_default())
        }
        Woke::Stop => {
            warn!(
                step = "script",
                "stop requested: killing process group {pgid}"
            );
            kill_group(&mut child, pgid).await;
            ScriptEnd::Interrupted
        }
    };
    let elapsed = started.elapsed();
    let stdout_tail = collect(out, "stdout").await;
    let stderr_tail = collect(err, "stderr").await;
    ScriptRun {
        end,
        elapsed,
        stdout_tail,
        stderr_tail,
    }
}

/// SIGTERM to the whole group, SIGKILL to whatever is left after
/// [`KILL_GRACE`] or as soon as the shell is gone (grandchildren that
/// outlive it get no longer than the shell did).
async fn kill_group(child: &mut tokio::process::Child, pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGTERM);
    // SIGCONT too: a stopped member would not act on SIGTERM.
    let _ = killpg(pgid, Signal::SIGCONT);
    let exited = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
    // The group id stays reserved while any member lives, so this cannot hit
    // a stranger; ESRCH just means everyone is gone.
    let _ = killpg(pgid, Signal::SIGKILL);
    if !exited {
        let _ = child.wait().await;
    }
}

async fn drain<R: AsyncRead + Unpin>(stream: Option<R>, name: &'static str) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut tail: Vec<u8> = Vec::with_capacity(TAIL_BYTES * 2);
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > TAIL_BYTES * 2 {
                    tail.drain(..tail.len() - TAIL_BYTES);
                }
            }
            Err(e) => {
                debug!(step = "script", "reading the script's {name}: {e}");
                break;
            }
        }
    }
    if tail.len() > TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
    tail
}

async fn collect(h: JoinHandle<Vec<u8>>, name: &str) -> String {
    let abort = h.abort_handle();
    match tokio::time::timeout(DRAIN_GRACE, h).await {
        Ok(Ok(bytes)) => {
            let s = String::from_utf8_lossy(&bytes).into_owned();
            if !s.trim().is_empty() {
                debug!(step = "script", "{name} tail: {}", s.trim_end());
            }
            s
        }
        Ok(Err(_)) => String::new(),
        Err(_) => {
            abort.abort();
            warn!(
                step = "script",
                "the script exited but something it started in the background still holds its {name} open; not waiting for it"
            );
            String::new()
        }
    }
}

fn signal_name(s: i32) -> String {
    Signal::try_from(s)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ubackup_common::shutdown;

    #[tokio::test]
    async fn exit_code_and_stderr_tail() {
        let (_t, sd) = shutdown::channel();
        let r = run(
            "echo out; echo 'first err' >&2; echo \"$UB_X\" >&2; exit 3",
            &[("UB_X", "from env".into())],
            None,
            sd,
        )
        .await;
        assert_eq!(r.end, ScriptEnd::Exited(3));
        let f = r.failure().unwrap();
        assert_eq!(
            f,
            "execute backup script error: exit code 3; output: first err | from env"
        );
    }

    #[tokio::test]
    async fn stdout_is_used_when_stderr_is_empty() {
        let (_t, sd) = shutdown::channel();
        let r = run("echo only stdout; exit 1", &[], None, sd).await;
        assert!(r.failure().unwrap().ends_with("output: only stdout"));
    }

    #[tokio::test]
    async fn success_has_no_failure() {
        let (_t, sd) = shutdown::channel();
        let r = run("true", &[], None, sd).await;
        assert!(r.succeeded() && r.failure().is_none());
    }

    #[tokio::test]
    async fn tail_keeps_the_end_of_a_chatty_script() {
        let (_t, sd) = shutdown::channel();
        // 1 MB on stderr would block a script whose pipe nobody drains.
        let r = run("i=0; while [ $i -lt 20000 ]; do echo \"line $i of noise to fill pipes\" >&2; i=$((i+1)); done; echo LAST >&2; exit 2", &[], None, sd).await;
        assert_eq!(r.end, ScriptEnd::Exited(2));
        assert!(r.stderr_tail.len() <= TAIL_BYTES);
        assert!(
            r.output_tail(100).ends_with("LAST"),
            "{}",
            r.output_tail(100)
        );
    }

    #[tokio::test]
    async fn stop_kills_the_group() {
        let (t, sd) = shutdown::channel();
        let h = tokio::spawn(run("sleep 30", &[], None, sd));
        // Whether the trigger lands before or after the spawn, the script
        // must end as Interrupted, quickly.
        t.trigger();
        let r = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.end, ScriptEnd::Interrupted);
        assert!(r.elapsed < Duration::from_secs(10));
    }
}
