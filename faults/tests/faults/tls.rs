//! Pulls over TLS under faults: the database host's rsync daemon behind a
//! real stunnel that requires the nodes' client certificate (mutual TLS).
//! The stunnel is killed with -9 while pulls run through it and started
//! again on its port: every pull lands, after retries, byte-identical. A
//! node configured with another CA refuses the host's certificate: one
//! attempt, a failure result that says so, nothing landed, nothing pulled
//! in plain.

use std::time::{Duration, Instant};

use ubackup_faults::ledger::Expect;
use ubackup_faults::{tally, NodeSpec, World};
use ubackup_testkit::cluster::localhost;
use ubackup_testkit::cluster::tls::{
    restart_stunnel, start_stunnel, Backend, Leaf, Pki, StunnelConf,
};

use crate::helpers::{all_logs, wait_row};
use crate::{quiet, Opts, Outcome};

const FILES: usize = 8;

pub(crate) fn tls_terminator_killed_and_a_foreign_ca(_: &Opts) -> Outcome {
    let mut w = World::new();
    w.start_indexer();
    let pki = Pki::new("ubackup faults CA").expect("openssl");
    let host = pki
        .issue(&Leaf {
            name: "dbhost",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })
        .unwrap();
    let node = pki
        .issue(&Leaf {
            name: "node",
            sans: &["ubackup-node"],
            client: true,
            expired: false,
        })
        .unwrap();
    let foreign = Pki::new("someone else's CA").expect("openssl");
    // outside the world's tree, which the check keeps to destinations
    let etc = tempfile::tempdir().unwrap();
    let dir = etc.path().to_path_buf();
    let conf = StunnelConf {
        cert: &host.0,
        key: &host.1,
        require_client_ca: Some(&pki.ca),
        backend: Backend::Connect(localhost(), w.rsyncd.port),
    };
    let Ok(mut stunnel) = start_stunnel(&dir, localhost(), &conf) else {
        return Err("stunnel4 is not installed".into());
    };
    let port = stunnel.port;
    let tls = |ca: &std::path::Path| {
        NodeSpec::new()
            .set("rsync_tls", "yes")
            .set("rsync_tls_port", &port.to_string())
            .set("rsync_tls_ca", &ca.display().to_string())
            .set("rsync_tls_cert", &node.0.display().to_string())
            .set("rsync_tls_key", &node.1.display().to_string())
    };

    // ---- kill -9 of the TLS terminator mid-pull, started again. Each
    // file is larger than everything between the daemon and rsync can
    // hold (two loopback sockets of several MiB each, the connector's
    // buffers): with half-megabyte files a whole batch sat in those
    // buffers once the first bytes landed, the pull finished without
    // stunnel, and nothing was cut. bwlimit keeps each pull running for
    // about two seconds.
    w.start_node(
        "n1",
        tls(&pki.ca)
            .set("rsync_bwlimit", "16384")
            .set("retry", "6")
            .set("work_thread", "2"),
    );
    let msgs: Vec<_> = (0..FILES)
        .map(|i| {
            w.source(
                &format!("tls-{i}.bin"),
                (32 << 20) + i * 1000,
                70 + i as u64,
            )
        })
        .collect();
    let mut p = w.producer();
    for m in &msgs {
        p.push(&w.lo, m, Expect::Landed).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(20);
    while w.tmp_bytes("n1") == 0 {
        assert!(Instant::now() < end, "no pull started\n{}", all_logs(&w));
        std::thread::sleep(Duration::from_millis(10));
    }
    stunnel.proc.kill9();
    tally::fault(1);
    let _ = stunnel;
    let again = restart_stunnel(&dir, localhost(), port, &conf).expect("stunnel again");
    let v = w.wait_quiet(quiet(90));
    println!("    terminator killed mid-pull: {v}");
    for m in &msgs {
        let r = wait_row(&w, m, Duration::from_secs(5));
        assert_eq!(
            r.succeed, 1,
            "{} landed after the restart: {r:?}",
            m.filename
        );
    }
    let retried = msgs
        .iter()
        .filter(|m| {
            wait_row(&w, m, Duration::from_secs(1))
                .attempts
                .unwrap_or(1)
                > 1
        })
        .count();
    assert!(
        retried >= 1,
        "the pull cut by the kill was retried\n{}",
        all_logs(&w)
    );
    w.stop_node("n1");

    // ---- a node that trusts another CA: one attempt, the reason, nothing
    w.start_node("n2", tls(&foreign.ca).set("retry", "6"));
    let bad = w.source("tls-foreign-ca.bin", 4096, 99);
    p.push(&w.lo, &bad, Expect::FailureResult).unwrap();
    tally::fault(1);
    let v = w.wait_quiet(quiet(30));
    let r = wait_row(&w, &bad, Duration::from_secs(5));
    assert_eq!(
        r.attempts,
        Some(1),
        "a refused certificate is not retried: {r:?}"
    );
    assert!(
        r.log.contains("certificate") || r.log.contains("TLS"),
        "the result says why: {}",
        r.log
    );
    println!(
        "    foreign CA: {}; {v}",
        r.log.chars().take(160).collect::<String>()
    );
    v.assert_ok(false);
    drop(again);
    Ok(())
}
