//! `status` shows a paused node and a down node, the queues, the last 24 h
//! and the instance counts; text and `--json` carry the same data.

use crate::common;

use common::*;
use ubackup_common::keys::state;
use ubackup_common::message::now_ms;

#[tokio::test]
async fn status_shows_paused_and_down_nodes_queues_and_last_day() {
    let b = Bench::new("overdue_grace_secs = 0\nslowest_pulls = 2\n");
    b.node("5", true, &[(state::IP, "10.20.0.5"), (state::ACTIVE, "3")]);
    b.node(
        "6",
        true,
        &[
            (state::IP, "10.20.0.6"),
            (state::PAUSED, "1"),
            (state::PAUSE_REASON, "operator"),
            (state::ACTIVE, "0"),
        ],
    );
    b.node(
        "7",
        false,
        &[
            (state::IP, "10.20.0.7"),
            (state::HEARTBEAT_MS, &(now_ms() - 312_000).to_string()),
        ],
    );
    let mut c = b.conn();
    for i in 0..3 {
        redis::cmd("LPUSH")
            .arg(&b.q1)
            .arg(message(1, i, now_ms() / 1000 - 90))
            .query::<()>(&mut c)
            .unwrap();
    }
    redis::cmd("LPUSH")
        .arg(b.keys.inflight("5", &b.q2))
        .arg(message(1, 7, now_ms() / 1000))
        .query::<()>(&mut c)
        .unwrap();
    let mut slow = ok(3306, 3000, 3600);
    slow.duration_ms = Some(754_000);
    slow.size = 40 << 30;
    let mut old = ok(3307, 90_000, 3600); // more than 24 h ago: not counted
    old.duration_ms = Some(999_999);
    b.store(vec![
        slow,
        ok(3308, 600, 3600),
        client_failed(3309, 300, "script exited 2"),
        old,
    ])
    .await;

    let (code, text, _) = b.run(&["status", "-c", p(&b.config)]);
    assert_eq!(code, 0, "{text}");
    println!("{text}");
    let line = |id: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row {id}:\n{text}"))
            .to_string()
    };
    assert!(line("6").contains("PAUSED (operator)"), "{text}");
    assert!(
        line("7").contains("DOWN") && line("7").contains("5m12s ago"),
        "{text}"
    );
    assert!(
        line("5").contains(" up ")
            && line("5").contains("3/4")
            && line("5").contains("50.0% of 1.0 TiB"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&b.q1) && l.contains(" 3 ") && l.contains("oldest 1m")),
        "{text}"
    );
    assert!(
        text.contains(&format!("in flight: 1 (5/{} 1)", b.q2)),
        "{text}"
    );
    assert!(
        text.contains("backups ok 2, failed 1 (illegal 0), shipped 40.0 GiB"),
        "{text}"
    );
    let slow_line = text
        .lines()
        .find(|l| l.contains("12m34s"))
        .expect("slowest pull listed");
    assert!(
        slow_line.contains("111111/mysql/3306/mygame") && slow_line.contains("40.0 GiB"),
        "{slow_line}"
    );
    assert!(
        !text.contains("16m39s"),
        "a pull older than 24 h is not in the window"
    );
    // 3307's last success is 25 h ago: overdue; 3309 failed: failing
    assert!(
        text.contains("4 registered, 1 overdue, 1 failing"),
        "{text}"
    );
    assert!(text.contains("health CRITICAL"), "{text}");

    let (code, json, _) = b.run(&["status", "-c", p(&b.config), "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let n6 = nodes.iter().find(|n| n["id"] == "6").unwrap();
    assert_eq!(
        (
            n6["paused"].as_bool(),
            n6["pause_reason"].as_str(),
            n6["up"].as_bool()
        ),
        (Some(true), Some("operator"), Some(true))
    );
    let n7 = nodes.iter().find(|n| n["id"] == "7").unwrap();
    assert_eq!(n7["up"], false);
    assert_eq!(v["last_24h"]["stats"]["ok"], 2);
    assert_eq!(v["instances"]["overdue"], 1);
    assert_eq!(v["queues"]["lists"][0]["list"], b.q1.as_str());
    assert_eq!(v["queues"]["lists"][0]["depth"], 3);
}

/// With Sentinel (issue 17): `status` names the master commands go to, its
/// replica as the master reports it, and what each sentinel answers; a
/// sentinel that is down shows as not answering.
#[test]
fn status_shows_the_redis_master_its_replicas_and_the_sentinels() {
    use ubackup_testkit::cluster::{SentinelOpts, SentinelSetup};
    let mut s = SentinelSetup::start(SentinelOpts::default()).expect("sentinel set-up");
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db");
    ubackup_catalog::SqliteCatalog::open(&catalog).unwrap();
    let conf = dir.path().join("reporter.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nredis_sentinels = {}\nredis_master_name = ubackup\nredis_queue = q1\nmessage_queue = mq\nkey_prefix = {}\ncatalog = {}\n",
            s.sentinel_list(),
            ubackup_testkit::unique("rs:"),
            catalog.display()
        ),
    )
    .unwrap();
    s.sentinels[2].kill9();
    let master = s.master_port().unwrap();
    let (_, text, err) = run_bin(&["status", "-c", p(&conf)]);
    assert!(
        text.contains(&format!(
            "redis master 127.0.0.1:{master}, replicas: 127.0.0.1:{} (online",
            s.servers[1].port
        )),
        "{text}{err}"
    );
    assert!(
        text.contains(&format!(
            "127.0.0.1:{} names 127.0.0.1:{master}",
            s.sentinels[0].port
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{} NOT ANSWERING", s.sentinels[2].port)),
        "{text}"
    );
    let (_, json, err) = run_bin(&["status", "--json", "-c", p(&conf)]);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}{err}"));
    assert_eq!(v["redis_view"]["master"], format!("127.0.0.1:{master}"));
    assert_eq!(v["redis_view"]["replicas"].as_array().unwrap().len(), 1);
    assert_eq!(v["redis_view"]["sentinels"].as_array().unwrap().len(), 3);
}
