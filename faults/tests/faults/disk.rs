//! A full disk under a running transfer (case 8), on a tmpfs of its own.

use std::time::Duration;

use ubackup_faults::ledger::Expect;
use ubackup_faults::{tally, NodeSpec, World};
use ubackup_testkit::wait_until;

use crate::helpers::{files, rows_of, wait_row};
use crate::{quiet, Opts, Outcome};

/// A tmpfs mounted for one case, unmounted (by path) when dropped.
struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

pub(crate) fn disk_full(_: &Opts) -> Outcome {
    let mut w = World::new();
    let root = w.path("nodes/n1/root");
    std::fs::create_dir_all(&root).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&root)
        .stderr(std::process::Stdio::piped())
        .output();
    match st {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Err(format!("cannot run mount: {e}")),
    }
    let _mount = Tmpfs(root.clone());
    w.start_indexer();
    w.start_node(
        "n1",
        NodeSpec::new()
            .set("reserve_bytes", "65536")
            .set("rsync_bwlimit", "300")
            .set("retry", "3")
            .set("retry_backoff_ms", "500"),
    );
    let m = w.source("big.bin", 1_500_000, 11);
    w.producer().push(&w.lo, &m, Expect::Landed).unwrap();
    wait_until("transfer in progress", Duration::from_secs(20), || {
        w.tmp_bytes("n1") > 100_000
    });
    // fill the disk under the running transfer
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    tally::fault(1);
    w.wait_node_log("n1", "waiting for space", Duration::from_secs(30));
    assert!(
        files(&w.dest("n1")).is_empty(),
        "no partial file in the destination"
    );
    assert_eq!(w.inflight("n1"), 1, "not acked");
    assert!(
        rows_of(&w, &m).is_empty(),
        "no result while the disk is full"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        w.inflight("n1"),
        1,
        "still held, not given up, while waiting for space"
    );
    std::fs::remove_file(&filler).unwrap();
    let v = w.wait_quiet(quiet(60));
    let r = wait_row(&w, &m, Duration::from_secs(1));
    assert_eq!(r.succeed, 1, "{r:?}");
    let log = w.node_log("n1");
    let reason = log
        .lines()
        .find(|l| l.contains("pull attempt failed"))
        .unwrap_or("")
        .to_string();
    println!(
        "    attempts: {:?}; first failure: {}; {v}",
        r.attempts,
        reason
            .chars()
            .rev()
            .take(200)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    v.assert_ok(false);
    drop(_mount);
    Ok(())
}
