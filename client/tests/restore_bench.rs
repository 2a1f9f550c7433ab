//! Restore throughput against raw rsync of the same files, side by side
//! (ignored: a measurement, not a test). Run with
//!
//! ```text
//! cargo test --release -p ubackup-client --test tests -- restore_bench:: --ignored --nocapture
//! ```
//!
//! `UBACKUP_BENCH_MB` sets the size of each of the 3 files of the chain
//! (default 128). Each round times `ubackup-client restore` (catalog
//! lookup, chain, one rsync, blake3 of every file, rename) and then
//! `rsync` alone pulling the same three files from the same daemon into an
//! empty directory; the order alternates between rounds. Prints the median
//! of 3 rounds of each.

use std::process::Command;
use std::time::{Duration, Instant};

use ubackup_catalog::{Catalog, CatalogRecord, SqliteCatalog};
use ubackup_common::ResultRecord;
use ubackup_testkit::{write_file, RsyncDaemon, RsyncModule};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn restore_throughput_vs_raw_rsync() {
    let mb: usize = std::env::var("UBACKUP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let node = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let rsyncd = RsyncDaemon::start(&[RsyncModule {
        name: "ubackup".into(),
        path: node.path().into(),
        chroot: false,
    }])
    .unwrap();
    let dir = node.path().join("mysql/10.0.0/5");
    let cat = SqliteCatalog::open(&work.path().join("c.sqlite")).unwrap();
    let names = ["full.xb", "inc1.xb", "inc2.xb"];
    let t0 = 1_763_800_000_000i64;
    let mut total = 0u64;
    for (i, n) in names.iter().enumerate() {
        let p = dir.join(n);
        write_file(&p, mb << 20, i as u64 + 1);
        total += (mb << 20) as u64;
        let r = ResultRecord {
            back_server_ip: "127.0.0.1".into(),
            file_path: Some(dir.display().to_string()),
            filename: Some(n.to_string()),
            create_time: t0 + i as i64 * 3_600_000,
            rsync_time: t0,
            size: (mb << 20) as i64,
            last_all_filename: if i == 0 {
                "None".into()
            } else {
                "full.xb".into()
            },
            last_all_time: if i == 0 { 0 } else { t0 },
            duration_ms: None,
            attempts: None,
            bytes_per_sec: None,
            checksum: Some(ubackup_common::fsutil::blake3_file(&p).unwrap()),
            ..ubackup_testkit::fixtures::result(3306, 0)
        };
        cat.store(&[CatalogRecord::new(r, "g")]).await.unwrap();
    }
    let conf = work.path().join("client.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nserver_id = 111111\ngame_id = 31\nredis_host = 127.0.0.1\nmy_ip = 10.0.0.5\nnode_rsync_port = {}\ncatalog = {}\n",
            rsyncd.port,
            work.path().join("c.sqlite").display()
        ),
    )
    .unwrap();
    let urls: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "rsync://127.0.0.1:{}/ubackup/mysql/10.0.0/5/{n}",
                rsyncd.port
            )
        })
        .collect();

    let restore = |round: usize| {
        let dest = work.path().join(format!("r{round}"));
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_ubackup-client"))
            .arg("-c")
            .arg(&conf)
            .args(["restore", "--type", "mysql", "--instance", "3306", "--dest"])
            .arg(&dest)
            .output()
            .unwrap();
        let el = t.elapsed();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::remove_dir_all(&dest).unwrap();
        el
    };
    let raw = |round: usize| {
        let dest = work.path().join(format!("raw{round}"));
        std::fs::create_dir_all(&dest).unwrap();
        let t = Instant::now();
        let st = Command::new("rsync")
            .args([
                "-s",
                "--no-links",
                "--times",
                "--sockopts=TCP_NODELAY",
                "--",
            ])
            .args(&urls)
            .arg(format!("{}/", dest.display()))
            .status()
            .unwrap();
        let el = t.elapsed();
        assert!(st.success());
        std::fs::remove_dir_all(&dest).unwrap();
        el
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..3 {
        if round % 2 == 0 {
            ours.push(restore(round));
            theirs.push(raw(round));
        } else {
            theirs.push(raw(round));
            ours.push(restore(round));
        }
    }
    // what restore's verification alone costs: blake3 of the same files,
    // one thread per file as restore does it
    let hashes: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for n in names {
                    let p = dir.join(n);
                    s.spawn(move || ubackup_common::fsutil::blake3_file(&p).unwrap());
                }
            });
            t.elapsed()
        })
        .collect();
    let (o, r) = (median(ours.clone()), median(theirs.clone()));
    let mibs = |d: Duration| total as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!(
        "files: 3 x {mb} MiB = {} MiB, loopback, page cache warm",
        total >> 20
    );
    println!(
        "ubackup-client restore: {ours:?} -> median {o:?} = {:.0} MiB/s",
        mibs(o)
    );
    println!(
        "raw rsync:              {theirs:?} -> median {r:?} = {:.0} MiB/s",
        mibs(r)
    );
    println!(
        "restore / raw rsync time: {:.2}",
        o.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "blake3 of the files (restore's verification): {hashes:?} -> median {:?}",
        median(hashes.clone())
    );
}
