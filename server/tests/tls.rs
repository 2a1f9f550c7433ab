//! Pulls over TLS (`rsync_tls*`): a real stunnel4 in front of a real rsync
//! daemon, certificates from a throwaway CA. Byte-identical pulls and
//! batches with nothing in plain; each certificate problem is one attempt
//! with a reason naming it and nothing landed; a closed TLS port is retried.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use ubackup_testkit::cluster::tls::{start_stunnel, Backend, Leaf, Pki, StunnelConf};
use ubackup_testkit::cluster::{localhost, Daemon};

/// The connector the node runs sits beside `ubackup-server` in the target
/// directory (built by `cargo build --workspace`, as test.sh does).
fn connector_built() {
    let bin = Path::new(env!("CARGO_BIN_EXE_ubackup-server"));
    let c = bin.with_file_name("ubackup-tls-connect");
    assert!(
        c.exists(),
        "{} is missing: run `cargo build --workspace` first (test.sh does)",
        c.display()
    );
}

/// The DB host's TLS side: stunnel starting the daemon per connection from
/// a copy of the cluster's rsyncd.conf with its own log, so the plain
/// daemon's log shows whether anything reached it in plain.
struct DbHostTls {
    stunnel: Daemon,
    exec_log: PathBuf,
}

fn dbhost_tls(c: &Cluster, cert: &(PathBuf, PathBuf), client_ca: Option<&Path>) -> DbHostTls {
    let conf = std::fs::read_to_string(c.rsyncd.dir.path().join("rsyncd.conf")).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("tls")
        .tempdir_in(c.etc.path())
        .unwrap()
        .keep();
    let exec_log = dir.join("rsyncd-tls.log");
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("log file") {
                format!("log file = {}\n", exec_log.display())
            } else if l.starts_with("pid file") {
                String::new()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let exec_conf = dir.join("rsyncd-tls.conf");
    std::fs::write(&exec_conf, conf).unwrap();
    let stunnel = start_stunnel(
        &dir,
        localhost(),
        &StunnelConf {
            cert: &cert.0,
            key: &cert.1,
            require_client_ca: client_ca,
            backend: Backend::Exec(&exec_conf),
        },
    )
    .expect("stunnel4");
    DbHostTls { stunnel, exec_log }
}

fn tls_keys(port: u16, ca: &Path, client: Option<&(PathBuf, PathBuf)>) -> Vec<(String, String)> {
    let mut v = vec![
        ("rsync_tls".to_string(), "yes".to_string()),
        ("rsync_tls_port".into(), port.to_string()),
        ("rsync_tls_ca".into(), ca.display().to_string()),
    ];
    if let Some((c, k)) = client {
        v.push(("rsync_tls_cert".into(), c.display().to_string()));
        v.push(("rsync_tls_key".into(), k.display().to_string()));
    }
    v
}

fn spawn_with(c: &Cluster, id: &str, keys: &[(String, String)]) -> Node {
    let over: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    c.spawn(id, &over)
}

fn stop(mut node: Node) {
    node.proc.signal(libc::SIGTERM);
    assert_eq!(node.proc.wait_exit(Duration::from_secs(20)), Some(Some(0)));
}

/// Transfers the plain daemon served (its start-up probe only logs
/// "connect from").
fn plain_connections(c: &Cluster) -> usize {
    c.rsyncd.log().matches("] rsync on ").count()
}

#[test]
fn pulls_and_batches_over_mutual_tls_are_byte_identical_and_nothing_goes_in_plain() {
    connector_built();
    let c = Cluster::start();
    let pki = Pki::new("ubackup test CA").unwrap();
    let server = pki
        .issue(&Leaf {
            name: "dbhost",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })
        .unwrap();
    let node_cert = pki
        .issue(&Leaf {
            name: "node",
            sans: &["n1.nodes"],
            client: true,
            expired: false,
        })
        .unwrap();
    let tls = dbhost_tls(&c, &server, Some(&pki.ca));
    let names: Vec<String> = (0..8).map(|i| format!("t{i}.xb")).collect();
    for (i, n) in names.iter().enumerate() {
        c.source_file(n, 20_000 + i * 4099, 40 + i as u64);
    }
    // a large one too, pulled on its own
    c.source_file("big.xb", 3 << 20, 99);
    let before = plain_connections(&c);
    for n in names.iter().chain(std::iter::once(&"big.xb".to_string())) {
        c.push(&c.lo, &c.message(n));
    }
    let node = spawn_with(
        &c,
        "n1",
        &tls_keys(tls.stunnel.port, &pki.ca, Some(&node_cert)),
    );
    ubackup_testkit::wait_until_or(
        "every result",
        Duration::from_secs(60),
        || c.results().len() > names.len(),
        || node.log_text(),
    );
    let results = c.results();
    for r in &results {
        assert_eq!(r["succeed"], 1, "{r}");
        assert_eq!(r["attempts"], 1, "{r}\n{}", node.log_text());
        let name = r["filename"].as_str().unwrap();
        assert_eq!(
            std::fs::read(c.dest().join(name)).unwrap(),
            std::fs::read(c.src.path().join("database_3306").join(name)).unwrap(),
            "{name} landed byte-identical over TLS"
        );
    }
    let log = std::fs::read_to_string(&tls.exec_log).unwrap_or_default();
    assert!(
        log.matches("] rsync on ").count() >= 2,
        "the pulls went through stunnel: {log}"
    );
    assert!(
        node.log_text().contains("pulling a batch of"),
        "batched over TLS too"
    );
    assert_eq!(
        plain_connections(&c),
        before,
        "nothing reached the plain daemon"
    );
    assert_eq!(c.inflight("n1"), 0);
    stop(node);
}

/// One message against a stunnel set up to fail one way: a failure result
/// after exactly one attempt, its reason naming the problem, nothing landed.
fn fails_once(c: &Cluster, id: &str, keys: &[(String, String)], name: &str, reason: &str) {
    c.source_file(name, 5000, 7);
    let before = c.results().len();
    let node = spawn_with(c, id, keys);
    c.push(&c.lo, &c.message(name));
    ubackup_testkit::wait_until_or(
        "the failure result",
        Duration::from_secs(30),
        || c.results().len() > before,
        || node.log_text(),
    );
    let r = c.results();
    let r = &r[before];
    assert_eq!(r["filename"], name, "{r}");
    assert_eq!(r["succeed"], 0, "{r}");
    assert_eq!(
        r["attempts"], 1,
        "a certificate problem is not retried: {r}"
    );
    let log = r["log"].as_str().unwrap();
    assert!(
        log.contains("TLS authentication failed") && log.contains(reason),
        "the reason names {reason:?}: {log}"
    );
    assert!(!c.dest().join(name).exists(), "nothing landed for {name}");
    stop(node);
}

#[test]
fn each_certificate_problem_is_one_attempt_with_its_reason_and_lands_nothing() {
    connector_built();
    let c = Cluster::start();
    let pki = Pki::new("ubackup test CA").unwrap();
    let other = Pki::new("some other CA").unwrap();
    let good = pki
        .issue(&Leaf {
            name: "dbhost",
            sans: &["127.0.0.1"],
            client: false,
            expired: false,
        })
        .unwrap();
    let node_cert = pki
        .issue(&Leaf {
            name: "node",
            sans: &["n1.nodes"],
            client: true,
            expired: false,
        })
        .unwrap();
    let before = plain_connections(&c);

    // the node trusts another CA than the one that signed the DB host
    let t = dbhost_tls(&c, &good, None);
    fails_once(
        &c,
        "wrongca",
        &tls_keys(t.stunnel.port, &other.ca, None),
        "wrongca.xb",
        "unknown issuer",
    );

    // the DB host's certificate expired
    let expired = pki
        .issue(&Leaf {
            name: "expired",
            sans: &["127.0.0.1"],
            client: false,
            expired: true,
        })
        .unwrap();
    let t = dbhost_tls(&c, &expired, None);
    fails_once(
        &c,
        "expired",
        &tls_keys(t.stunnel.port, &pki.ca, None),
        "expired.xb",
        "expired",
    );

    // valid, but for another host
    let elsewhere = pki
        .issue(&Leaf {
            name: "elsewhere",
            sans: &["127.0.0.9", "db9.example"],
            client: false,
            expired: false,
        })
        .unwrap();
    let t = dbhost_tls(&c, &elsewhere, None);
    fails_once(
        &c,
        "mismatch",
        &tls_keys(t.stunnel.port, &pki.ca, None),
        "mismatch.xb",
        "hostname mismatch",
    );

    // the DB host requires a client certificate and the node has none
    let t = dbhost_tls(&c, &good, Some(&pki.ca));
    fails_once(
        &c,
        "nocert",
        &tls_keys(t.stunnel.port, &pki.ca, None),
        "nocert.xb",
        "refused our certificate",
    );

    // a client certificate from another CA is refused the same way
    let foreign = other
        .issue(&Leaf {
            name: "foreign",
            sans: &["n9.nodes"],
            client: true,
            expired: false,
        })
        .unwrap();
    fails_once(
        &c,
        "foreign",
        &tls_keys(t.stunnel.port, &pki.ca, Some(&foreign)),
        "foreign.xb",
        "refused our certificate",
    );

    // and with the right one, the same stunnel serves the node
    c.source_file("right.xb", 5000, 8);
    let n = c.results().len();
    let node = spawn_with(
        &c,
        "right",
        &tls_keys(t.stunnel.port, &pki.ca, Some(&node_cert)),
    );
    c.push(&c.lo, &c.message("right.xb"));
    let r = c.wait_results(n + 1, Duration::from_secs(30));
    assert_eq!(r[n]["succeed"], 1, "{}", r[n]);
    stop(node);
    assert_eq!(plain_connections(&c), before, "never a fallback to plain");
}

#[test]
fn a_closed_tls_port_is_a_connection_failure_and_retried() {
    connector_built();
    let c = Cluster::start();
    let pki = Pki::new("ubackup test CA").unwrap();
    // a port nothing listens on
    let port = ubackup_testkit::free_port();
    let mut keys = tls_keys(port, &pki.ca, None);
    keys.push(("retry".into(), "3".into()));
    c.source_file("closed.xb", 5000, 9);
    let before = plain_connections(&c);
    let node = spawn_with(&c, "n1", &keys);
    c.push(&c.lo, &c.message("closed.xb"));
    let r = c.wait_results(1, Duration::from_secs(60));
    assert_eq!(r[0]["succeed"], 0, "{}", r[0]);
    assert_eq!(r[0]["attempts"], 3, "retried: {}", r[0]);
    let log = r[0]["log"].as_str().unwrap();
    assert!(log.contains("TLS connection failed"), "{log}");
    assert_eq!(
        plain_connections(&c),
        before,
        "no fallback to the plain port: {}",
        c.rsyncd.log()
    );
    stop(node);
}
