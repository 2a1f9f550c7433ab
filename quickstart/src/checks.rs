//! Steps 7-13: the backup rounds, waiting until every result is indexed,
//! the reporters, `list`, and the restore of an incremental chain checked
//! byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::out::{indent, info, now};
use crate::setup::{logged, run_logged};
use crate::{wait_for, Ctx};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn conf(ctx: &Ctx, rel: &str) -> String {
    ctx.dir().join(rel).display().to_string()
}

/// Step 7.
pub fn rounds(ctx: &mut Ctx) -> Result<()> {
    let rounds = ctx.rounds;
    ctx.out.step(&format!(
        "run the clients {rounds} times (a full, then incrementals; host2's mysql3307 fails every time)"
    ));
    let dir = ctx.dir();
    let mut last_end = 0u64;
    for r in 1..=rounds {
        // A message's create_time is the run's start in whole seconds (the
        // wire format). Cron runs are an hour apart; back-to-back runs here
        // must not share a second, or a chain's order is ambiguous and two
        // failures of one instance would get the same record id. So a round
        // starts only after the second in which the previous one ended.
        wait_for(&format!("the clock to pass second {last_end}"), 3, || {
            now() as u64 > last_end
        })?;
        let mut runs = Vec::new();
        for i in 1..=2 {
            let h = dir.join(format!("host{i}"));
            let mut c = Command::new(ctx.bin("ubackup-client"));
            c.arg("-c").arg(h.join("client.conf")).stdin(Stdio::null());
            let log = h.join(format!("run{r}.log"));
            runs.push((logged(c, &log)?.spawn()?, log));
        }
        let mut codes = Vec::new();
        for (child, log) in &mut runs {
            codes.push((child.wait()?.code().unwrap_or(-1), log.clone()));
        }
        crate::check_interrupt()?;
        // host1: all good (0); host2: one failing instance (1: failure queued)
        if codes[0].0 != 0 {
            indent(&read(&codes[0].1));
            bail!(
                "round {r}: ubackup-client on host1 exited {} (expected 0)",
                codes[0].0
            );
        }
        if codes[1].0 != 1 {
            indent(&read(&codes[1].1));
            bail!(
                "round {r}: ubackup-client on host2 exited {} (expected 1: mysql3307 fails)",
                codes[1].0
            );
        }
        last_end = now() as u64;
        info(&format!(
            "round {r}: host1 exit 0 (2 backups queued), host2 exit 1 (2 backups + 1 failure queued)"
        ));
    }
    Ok(())
}

/// Regular files below `root`, outside the temp areas.
fn count_files(root: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(root) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() && e.file_name() != ".ubackup-tmp" => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Step 8.
pub fn index(ctx: &mut Ctx) -> Result<()> {
    let expected = ctx.rounds * 5;
    ctx.out.step(&format!(
        "wait until all {expected} results are pulled and indexed"
    ));
    let dir = ctx.dir();
    // Nothing is waiting or in flight anywhere: the priority lists, every
    // node's and the indexer's in-flight list, every outbox, and the results
    // list are empty (an ack removes a message from in-flight and pushes its
    // result in one atomic step, so "all empty" means every result is in
    // the catalog).
    let workers = ["node1", "node2", "indexer1"];
    let what = format!(
        "every list to drain (see: ./quickstart.sh --keep, then redis-cli; or the logs in {})",
        dir.display()
    );
    wait_for(&what, 60, || {
        ctx.cluster().pending(&workers).is_ok_and(|n| n == 0)
    })?;
    // …and the catalog has every one of them, exactly once
    let count = |i: u32| -> Result<usize> {
        let out = Command::new(ctx.bin("ubackup-client"))
            .args(["-c", &conf(ctx, &format!("host{i}/client.conf"))])
            .args(["list", "--all", "--json"])
            .stdin(Stdio::null())
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "ubackup-client list --all --json on host{i}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok(v.as_array().map_or(0, Vec::len))
    };
    let (n1, n2) = (count(1)?, count(2)?);
    let rounds = ctx.rounds as usize;
    if n1 != rounds * 2 {
        bail!(
            "the catalog has {n1} backups of host1, expected {}",
            rounds * 2
        );
    }
    if n2 != rounds * 3 {
        bail!(
            "the catalog has {n2} backups of host2, expected {}",
            rounds * 3
        );
    }
    info(&format!(
        "catalog: {n1} results of host1, {n2} of host2 ({} of {expected}), every list empty",
        n1 + n2
    ));
    info(&format!(
        "files on node1: {}, on node2: {}",
        count_files(&dir.join("node1/store")),
        count_files(&dir.join("node2/store"))
    ));
    Ok(())
}

/// Steps 9-11.
pub fn reports(ctx: &mut Ctx) -> Result<()> {
    ctx.out
        .step("reporters as cron runs them: ubackup-reporter disk (each node), queue");
    let dir = ctx.dir();
    let reporter = ctx.bin("ubackup-reporter");
    for n in 1..=2 {
        let c = conf(ctx, &format!("node{n}/server.conf"));
        let out = dir.join(format!("node{n}/disk.out"));
        let rc = run_logged(&reporter, &["disk", "-c", &c], &out)?;
        indent(&read(&out));
        if rc != 0 {
            bail!("ubackup-reporter disk -c {c} failed");
        }
    }
    let ic = conf(ctx, "indexer/indexer.conf");
    let out = dir.join("queue.out");
    let rc = run_logged(&reporter, &["queue", "-c", &ic], &out)?;
    indent(&read(&out));
    if rc != 0 {
        bail!("ubackup-reporter queue failed");
    }

    ctx.out.step(&format!("ubackup-reporter status -c {ic}"));
    let out = dir.join("status.out");
    let rc = run_logged(&reporter, &["status", "-c", &ic], &out)?;
    indent(&read(&out));
    if rc != 0 {
        bail!("ubackup-reporter status exited {rc}");
    }

    ctx.out.step(&format!(
        "ubackup-reporter alerts -c {ic} (the failing instance must appear)"
    ));
    let out = dir.join("alerts.out");
    let rc = run_logged(&reporter, &["alerts", "-c", &ic], &out)?;
    let text = read(&out);
    indent(&text);
    info(&format!(
        "exit code {rc} (Nagios: 0 OK, 1 warning, 2 critical, 3 unknown)"
    ));
    let alerts: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| matches!(w.first(), Some(&("WARNING" | "CRITICAL" | "UNKNOWN"))) && w.len() > 1)
        .collect();
    let ours = |w: &[&str]| {
        w[1] == "script_error"
            && w.get(2)
                .is_some_and(|s| s.starts_with("900002/mysql/3307/"))
    };
    if !alerts.iter().any(|w| w[0] == "WARNING" && ours(w)) {
        bail!("no script_error alert for 900002/mysql/3307");
    }
    // the rest of the cluster is healthy: nothing else about instances,
    // nodes or lists (node_disk_low depends on this machine's disk)
    if alerts
        .iter()
        .any(|w| !ours(w) && !w.iter().any(|t| t.contains("node_disk_low")))
    {
        bail!("unexpected alerts (above)");
    }
    if rc != 1 && rc != 2 {
        bail!("ubackup-reporter alerts exited {rc}, expected 1 or 2");
    }
    Ok(())
}

/// `mysql_full_DATE_TIME_…` / `mysql_incr_DATE_TIME_…` in the order of
/// their date and time (`sort -t_ -k3,4`).
fn chain_order(names: &mut [String]) {
    let key = |n: &String| {
        let f: Vec<String> = n.split('_').map(str::to_string).collect();
        (f.get(2).cloned(), f.get(3).cloned(), n.clone())
    };
    names.sort_by_key(key);
}

fn files_below(d: &Path) -> usize {
    count_files(d)
}

/// Steps 12-13.
pub fn list_and_restore(ctx: &mut Ctx) -> Result<()> {
    ctx.out
        .step("ubackup-client list (on host1: where its backups are)");
    let dir = ctx.dir();
    let client = ctx.bin("ubackup-client");
    let c1 = conf(ctx, "host1/client.conf");
    let out = dir.join("list.out");
    let rc = run_logged(
        &client,
        &["-c", &c1, "list", "--type", "mysql", "--instance", "3306"],
        &out,
    )?;
    indent(&read(&out));
    if rc != 0 {
        bail!("ubackup-client list failed");
    }

    let rounds = ctx.rounds as usize;
    ctx.out.step(&format!(
        "restore host1's mysql/3306 (a full + {} incrementals) from the nodes' rsync modules",
        rounds - 1
    ));
    let dest = dir.join("restore/mysql3306");
    std::fs::create_dir_all(dir.join("restore"))?;
    let ds = dest.display().to_string();
    let out = dir.join("restore.out");
    let rc = run_logged(
        &client,
        &[
            "-c",
            &c1,
            "restore",
            "--type",
            "mysql",
            "--instance",
            "3306",
            "--dest",
            &ds,
        ],
        &out,
    )?;
    indent(&read(&out));
    if rc != 0 {
        bail!("ubackup-client restore failed");
    }
    let src = dir.join("host1/backup/database_3306");
    let nfiles = files_below(&dest);
    if nfiles != rounds {
        bail!("restore brought back {nfiles} files, expected the whole chain: {rounds}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&dest)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    for n in &names {
        if std::fs::read(dest.join(n))? != std::fs::read(src.join(n)).unwrap_or_default() {
            bail!("{n} differs from the source file in {}", src.display());
        }
    }
    info(&format!(
        "the {nfiles} restored files are byte-identical to the database host's backup files in {}",
        src.display()
    ));
    // apply the chain (the full, then each incremental in order) and compare
    // the result with the "database" itself: nothing has changed since the
    // last backup
    let data = dir.join("restore/data");
    std::fs::create_dir_all(&data)?;
    let mut chain: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("mysql_full_") || n.starts_with("mysql_incr_"))
        .collect();
    chain_order(&mut chain);
    for f in &chain {
        let p: PathBuf = dest.join(f);
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(&p)
            .arg("-C")
            .arg(&data)
            .status()?;
        if !st.success() {
            bail!("cannot extract {}", p.display());
        }
    }
    let db = dir.join("host1/data/mysql3306");
    let st = Command::new("diff")
        .arg("-r")
        .arg(&data)
        .arg(&db)
        .status()?;
    if !st.success() {
        bail!("the restored chain does not rebuild {}", db.display());
    }
    info(&format!(
        "full + incrementals extracted in order = {}, byte for byte (diff -r)",
        db.display()
    ));
    Ok(())
}
