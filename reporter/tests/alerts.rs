//! Every alert type raised and then resolved, against a real redis-server
//! and a real SQLite catalog; Nagios exit codes of the real binary.

use crate::common;

use common::*;
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;
use ubackup_common::DeadLetter;
use ubackup_reporter::{AlertKind, Severity};
use ubackup_testkit::RedisServer;

fn has(ids: &[String], id: &str) -> bool {
    ids.iter().any(|i| i == id)
}

const SUBJ: &str = "111111/mysql/3306/mygame";

#[tokio::test]
async fn script_error_raised_then_resolved_by_a_newer_success() {
    let b = Bench::new("");
    b.store(vec![
        ok(3306, 600, 3600),
        client_failed(
            3306,
            60,
            "backup script exited with code 2: mysqldump: Got error 1045",
        ),
    ])
    .await;
    let r = b.alerts().await;
    let a = r
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::ScriptError)
        .expect("script_error raised");
    assert_eq!(a.subject, SUBJ);
    assert!(
        a.reason.contains("mysqldump: Got error 1045"),
        "{}",
        a.reason
    );
    let inst = a.instance.as_ref().unwrap();
    assert_eq!(
        (
            inst.server_id,
            inst.back_type.as_str(),
            inst.instance,
            inst.game_name.as_str()
        ),
        (111111, "mysql", 3306, "mygame")
    );
    assert_eq!(r.status, Severity::Warning);
    assert!(
        r.text()
            .lines()
            .any(|l| l.contains("script_error") && l.contains(SUBJ)),
        "{}",
        r.text()
    );

    b.store(vec![ok(3306, 5, 3600)]).await;
    let ids = b.alert_ids().await;
    assert!(ids.is_empty(), "{ids:?}");
}

#[tokio::test]
async fn pull_failed_raised_then_resolved() {
    let b = Bench::new("");
    b.store(vec![ok(3306, 600, 3600), pull_failed(3306, 60)])
        .await;
    let ids = b.alert_ids().await;
    assert_eq!(ids, vec![format!("pull_failed:{SUBJ}")]);
    b.store(vec![ok(3306, 5, 3600)]).await;
    assert!(b.alert_ids().await.is_empty());
}

#[tokio::test]
async fn illegal_dead_lettered_mismatch_and_below_min_size_raised_then_resolved() {
    let b = Bench::new("min_size.mysql = 10M\n");
    // dead-lettered message (the node's illegal result)
    let mut dead = client_failed(3306, 100, "rsync_model `../etc` escapes the module");
    dead.illegal = Some("rsync_model `../etc` escapes the module".into());
    // size mismatch found by the node's verification
    let mut mismatch = pull_failed(3307, 100);
    mismatch.verify = Some("failed: verification failed: size 10 != 1024 in the message".into());
    // a success that is too small for its type
    let mut small = ok(3308, 100, 3600);
    small.size = 1000;
    b.store(vec![dead, mismatch, small]).await;
    let r = b.alerts().await;
    let illegal: Vec<_> = r
        .alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Illegal)
        .collect();
    assert_eq!(illegal.len(), 3, "{:#?}", r.alerts);
    assert!(illegal.iter().all(|a| a.severity == Severity::Critical));
    assert!(illegal
        .iter()
        .any(|a| a.subject.contains("/3306/") && a.reason.contains("escapes the module")));
    assert!(illegal
        .iter()
        .any(|a| a.subject.contains("/3307/") && a.reason.contains("mismatch")));
    assert!(
        illegal
            .iter()
            .any(|a| a.subject.contains("/3308/") && a.reason.contains("below min_size.mysql")),
        "{illegal:#?}"
    );
    assert_eq!(r.exit_code(), 2);

    b.store(vec![
        ok(3306, 5, 3600),
        ok(3307, 5, 3600),
        ok(3308, 5, 3600),
    ])
    .await;
    assert!(b.alert_ids().await.is_empty());
}

/// Regression: a file `ubackup-server verify` found corrupt used to raise
/// nothing when it was not its instance's newest record.
#[tokio::test]
async fn illegal_for_an_older_file_verify_found_corrupt_then_resolved() {
    use ubackup_catalog::{Retention, VerifyOutcome};
    let b = Bench::new("");
    let old = ok(3306, 7200, 3600);
    let newest = ok(3306, 60, 3600);
    let old_id = old.record_id();
    let old_name = old.filename.clone().unwrap();
    b.store(vec![old, newest]).await;
    assert!(
        !b.alerts()
            .await
            .alerts
            .iter()
            .any(|a| a.kind == AlertKind::Illegal),
        "no alert before verify"
    );
    b.catalog
        .record_verify(
            &old_id,
            &VerifyOutcome::Corrupt("size 10 != 52428800".into()),
            now_ms(),
        )
        .await
        .unwrap();
    let r = b.alerts().await;
    let a = r
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::Illegal)
        .expect("illegal raised for the corrupt older file");
    assert_eq!(a.subject, format!("{SUBJ} {old_name}"));
    assert!(a.reason.contains("corrupt"), "{}", a.reason);
    assert_eq!(r.status, Severity::Critical);
    // the file is good again at the next verify: resolved
    b.catalog
        .record_verify(
            &old_id,
            &VerifyOutcome::Ok {
                checked: "size+blake3".into(),
            },
            now_ms(),
        )
        .await
        .unwrap();
    assert!(!b
        .alerts()
        .await
        .alerts
        .iter()
        .any(|a| a.kind == AlertKind::Illegal));
}

#[tokio::test]
async fn overdue_uses_each_instances_own_interval() {
    // factor 1.5, no grace: a 60 s instance is overdue after 90 s, an
    // hourly one after 90 min
    let b = Bench::new("overdue_factor = 1.5\noverdue_grace_secs = 0\n");
    b.store(vec![ok(1, 200, 60), ok(2, 200, 3600), ok(3, 80, 60)])
        .await;
    let ids = b.alert_ids().await;
    assert_eq!(
        ids,
        vec!["overdue:111111/mysql/1/mygame".to_string()],
        "only the 60 s instance last seen 200 s ago"
    );
    let r = b.alerts().await;
    assert_eq!(r.status, Severity::Critical);
    assert!(
        r.alerts[0].reason.contains("interval 1m0s × 1.5"),
        "{}",
        r.alerts[0].reason
    );

    // a failure does not end overdue; a success does
    let mut failed = client_failed(1, 1, "boom");
    failed.interval = 60;
    b.store(vec![failed]).await;
    let ids = b.alert_ids().await;
    assert!(
        has(&ids, "overdue:111111/mysql/1/mygame")
            && has(&ids, "script_error:111111/mysql/1/mygame"),
        "{ids:?}"
    );
    b.store(vec![ok(1, 0, 60)]).await;
    assert!(b.alert_ids().await.is_empty());

    // the factor is configurable: 4 × 60 s = 240 s > 200 s
    let b2 = Bench::new("overdue_factor = 4\noverdue_grace_secs = 0\n");
    b2.store(vec![ok(1, 200, 60)]).await;
    assert!(b2.alert_ids().await.is_empty());
}

#[tokio::test]
async fn node_disk_low_warning_critical_then_resolved() {
    let b = Bench::new("disk_low_pct = 10\ndisk_critical_pct = 5\n");
    let total = 1000u64 << 20;
    b.node(
        "n5",
        true,
        &[
            (state::DISK_TOTAL, &total.to_string()),
            (state::DISK_FREE, &(80u64 << 20).to_string()),
        ],
    );
    let r = b.alerts().await;
    assert_eq!(r.alerts.len(), 1, "{:#?}", r.alerts);
    assert_eq!(
        (r.alerts[0].id.as_str(), r.alerts[0].severity),
        ("node_disk_low:n5", Severity::Warning)
    );
    assert!(
        r.alerts[0].reason.contains("8.0% free"),
        "{}",
        r.alerts[0].reason
    );

    b.node(
        "n5",
        true,
        &[
            (state::DISK_FREE, &(30u64 << 20).to_string()),
            (state::DISK_TOTAL, &total.to_string()),
        ],
    );
    assert_eq!(b.alerts().await.alerts[0].severity, Severity::Critical);

    b.node(
        "n5",
        true,
        &[
            (state::DISK_FREE, &(500u64 << 20).to_string()),
            (state::DISK_TOTAL, &total.to_string()),
        ],
    );
    assert!(b.alert_ids().await.is_empty());
}

#[tokio::test]
async fn node_down_when_heartbeat_expires_then_resolved() {
    let b = Bench::new("");
    b.node("n5", true, &[]);
    b.node(
        "indexer-a",
        true,
        &[(state::KIND, "indexer"), (state::QUEUES, &b.mq)],
    );
    assert!(b.alert_ids().await.is_empty());
    // a real expiry: a 1 ms TTL
    redis::cmd("PEXPIRE")
        .arg(b.keys.alive("n5"))
        .arg(1)
        .query::<()>(&mut b.conn())
        .unwrap();
    ubackup_testkit::wait_until(
        "alive key expired",
        std::time::Duration::from_secs(5),
        || {
            !redis::cmd("EXISTS")
                .arg(b.keys.alive("n5"))
                .query::<bool>(&mut b.conn())
                .unwrap()
        },
    );
    let r = b.alerts().await;
    assert_eq!(
        r.alerts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["node_down:n5"]
    );
    assert_eq!(r.status, Severity::Critical);
    assert!(
        r.alerts[0].reason.contains("heartbeat expired"),
        "{}",
        r.alerts[0].reason
    );
    b.set_up("n5", true);
    assert!(b.alert_ids().await.is_empty());
}

#[tokio::test]
async fn queue_backlog_by_depth_and_by_age_then_resolved() {
    let b = Bench::new("backlog_threshold = 3\nbacklog_age_mins = 10\n");
    let mut c = b.conn();
    let now_s = now_ms() / 1000;
    for i in 0..4 {
        redis::cmd("LPUSH")
            .arg(&b.q2)
            .arg(message(1, i, now_s))
            .query::<()>(&mut c)
            .unwrap();
    }
    // one message, 20 minutes old, on the top list
    redis::cmd("LPUSH")
        .arg(&b.q1)
        .arg(message(1, 9, now_s - 1200))
        .query::<()>(&mut c)
        .unwrap();
    let r = b.alerts().await;
    let ids: Vec<&str> = r.alerts.iter().map(|a| a.id.as_str()).collect();
    assert!(
        ids.contains(&format!("queue_backlog:{}", b.q2).as_str()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&format!("queue_backlog:{}", b.q1).as_str()),
        "{ids:?}"
    );
    let q1 = r
        .alerts
        .iter()
        .find(|a| a.list.as_deref() == Some(&b.q1))
        .unwrap();
    assert!(q1.reason.contains("oldest waiting 20m"), "{}", q1.reason);
    let q2 = r
        .alerts
        .iter()
        .find(|a| a.list.as_deref() == Some(&b.q2))
        .unwrap();
    assert!(
        q2.reason.contains("4 messages waiting (threshold 3)"),
        "{}",
        q2.reason
    );
    assert_eq!(r.status, Severity::Warning);
    assert_eq!(r.exit_code(), 1);

    redis::cmd("DEL")
        .arg(&b.q1)
        .arg(&b.q2)
        .query::<()>(&mut c)
        .unwrap();
    assert!(b.alert_ids().await.is_empty());
}

#[tokio::test]
async fn dead_letters_present_then_resolved() {
    let b = Bench::new("");
    let dl = DeadLetter {
        payload: "{bad".into(),
        reason: "not JSON: EOF while parsing".into(),
        time: now_ms(),
        node: "n5".into(),
        queue: b.q1.clone(),
    };
    redis::cmd("LPUSH")
        .arg(b.keys.dead(&b.q1))
        .arg(serde_json::to_string(&dl).unwrap())
        .query::<()>(&mut b.conn())
        .unwrap();
    let r = b.alerts().await;
    assert_eq!(r.alerts.len(), 1);
    assert_eq!(r.alerts[0].id, format!("dead_letters:{}:dead", b.q1));
    assert!(
        r.alerts[0].reason.contains("1 dead letter(s)") && r.alerts[0].reason.contains("not JSON"),
        "{}",
        r.alerts[0].reason
    );
    redis::cmd("DEL")
        .arg(b.keys.dead(&b.q1))
        .query::<()>(&mut b.conn())
        .unwrap();
    assert!(b.alert_ids().await.is_empty());
}

#[test]
fn binary_exit_codes_follow_nagios() {
    let b = Bench::new("backlog_threshold = 1\n");
    let cfg = p(&b.config).to_string();
    let (code, out, _) = b.run(&["alerts", "-c", &cfg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("UBACKUP OK"), "{out}");
    for i in 0..2 {
        redis::cmd("LPUSH")
            .arg(&b.q1)
            .arg(message(1, i, now_ms() / 1000))
            .query::<()>(&mut b.conn())
            .unwrap();
    }
    let (code, out, _) = b.run(&["alerts", "-c", &cfg]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("UBACKUP WARNING") && out.contains("queue_backlog"),
        "{out}"
    );
    b.node("n9", false, &[]);
    let (code, out, _) = b.run(&["alerts", "-c", &cfg, "--json"]);
    assert_eq!(code, 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "critical");
    assert!(v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "node_down" && a["subject"] == "n9"));
}

#[test]
fn redis_unreachable_is_unknown_exit_3() {
    let b = Bench::new("");
    // a port nothing listens on
    let port = ubackup_testkit::free_port();
    let text = std::fs::read_to_string(&b.config).unwrap().replace(
        &format!("redis_port = {}", b.redis.port),
        &format!("redis_port = {port}"),
    );
    let cfg = b.dir.path().join("down.conf");
    std::fs::write(&cfg, text).unwrap();
    for cmd in ["alerts", "status", "queue"] {
        let (code, out, _) = b.run(&[cmd, "-c", p(&cfg)]);
        assert_eq!(code, 3, "{cmd}: {out}");
        assert!(
            out.starts_with("UBACKUP UNKNOWN") && out.contains("unreachable"),
            "{cmd}: {out}"
        );
    }
}

#[test]
fn config_errors_name_the_key_and_exit_3() {
    let b = Bench::new("");
    let cfg = b.dir.path().join("bad.conf");
    std::fs::write(
        &cfg,
        "[global]\nredis_host = 127.0.0.1\n[reporter]\noverdue_factor = soon\n",
    )
    .unwrap();
    let (code, _, err) = b.run(&["alerts", "-c", p(&cfg)]);
    assert_eq!(code, 3);
    assert!(
        err.contains("[reporter] overdue_factor") && err.contains("`soon` is not valid"),
        "{err}"
    );
    // disk with an indexer config: no server_root_path
    let (code, out, _) = b.run(&["disk", "-c", p(&b.config)]);
    assert_eq!(code, 3);
    assert!(out.contains("server_root_path: missing"), "{out}");
    // status without any catalog
    let cfg = b.dir.path().join("nocat.conf");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nredis_host = 127.0.0.1\nredis_port = {}\ncatalog = off\n",
            b.redis.port
        ),
    )
    .unwrap();
    let (code, out, _) = b.run(&["status", "-c", p(&cfg)]);
    assert_eq!(code, 3);
    assert!(
        out.contains("[global] catalog") && out.contains("es_urls"),
        "{out}"
    );
    let (code, _, err) = b.run(&[
        "alerts",
        "-c",
        p(&b.config),
        "--webhook",
        "http://127.0.0.1:1/",
    ]);
    assert_eq!(code, 3, "--webhook needs --state");
    assert!(err.contains("--state"), "{err}");
}

#[test]
fn shipped_example_configs_serve_the_reporter() {
    use std::path::Path;
    use ubackup_reporter::config::ReporterConfig;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let server = ReporterConfig::load(&root.join("server.conf")).unwrap();
    assert_eq!(server.node_id().unwrap(), "5");
    assert_eq!(
        server.server_root_path().unwrap(),
        Path::new("/backup/uuzubackup/")
    );
    assert!(server.redis().is_ok());
    assert_eq!(
        server.queues(),
        vec!["level1".to_string(), "uuzuback_f".to_string()]
    );
    let indexer = ReporterConfig::load(&root.join("indexer.conf")).unwrap();
    assert!(indexer.redis().is_ok());
    assert!(!indexer.message_queue().is_empty());
    let t = &indexer.thresholds;
    assert_eq!((t.overdue_factor, t.backlog_threshold), (1.5, 1000));
    // the [reporter] section documented in docs/reporter.md
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reporter.md"))
            .unwrap();
    let start = doc
        .find("```ini\n[reporter]")
        .expect("docs/reporter.md has a [reporter] example")
        + "```ini\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let text = format!("[global]\nredis_host = 127.0.0.1\n{}", &doc[start..end]);
    let cfg = ReporterConfig::parse(Path::new("docs/reporter.md"), &text).unwrap();
    assert!(cfg.unknown_keys.is_empty(), "{:?}", cfg.unknown_keys);
    assert_eq!(cfg.thresholds.min_size["mysql"], 10 << 20);
}

/// redis_degraded: critical while the master has fewer online replicas than
/// the reporter's `redis_min_replicas`, gone once a real replica is online.
#[tokio::test]
async fn redis_degraded_while_replicas_are_short_then_resolved() {
    let mut b = Bench::new("");
    let text = std::fs::read_to_string(&b.config).unwrap().replacen(
        "[global]\n",
        "[global]\nredis_min_replicas = 1\n",
        1,
    );
    b.config = b.dir.path().join("min-replicas.conf");
    std::fs::write(&b.config, text).unwrap();

    let r = b.alerts().await;
    let a = r
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::RedisDegraded)
        .expect("redis_degraded raised without a replica");
    assert_eq!(a.id, "redis_degraded:redis");
    assert_eq!(a.severity, Severity::Critical);
    assert!(
        a.reason
            .contains("0 online replica(s), redis_min_replicas asks for 1"),
        "{}",
        a.reason
    );
    assert_eq!(r.status, Severity::Critical);

    let port = b.redis.port.to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ids = b.alert_ids().await;
        if !has(&ids, "redis_degraded:redis") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis_degraded still raised with an online replica: {ids:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // and without the key nothing is asked of the replicas
    let plain = Bench::new("");
    assert!(!has(&plain.alert_ids().await, "redis_degraded:redis"));
}
